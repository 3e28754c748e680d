"""BrainFlowBridge against BrainFlow's real SYNTHETIC board and real LSL on loopback.

Each test uses its own stream-name prefix so that concurrent test runs on the same
network never resolve each other's streams.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
import warnings

import numpy as np
import pytest

with warnings.catch_warnings():  # brainflow 5.x on Python < 3.12 warns about pkg_resources
    warnings.simplefilter("ignore", UserWarning)
    pytest.importorskip("brainflow")

import pylsl  # noqa: E402
from brainflow.board_shim import BoardIds, BoardShim  # noqa: E402

from acquisition.devices.brainflow_bridge import BrainFlowBridge, clock_offset, list_boards  # noqa: E402
from acquisition.lsl import spec_from_stream_info  # noqa: E402

SYNTHETIC = int(BoardIds.SYNTHETIC_BOARD)


def _prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}_"


def _inlet(name: str) -> pylsl.StreamInlet:
    found = pylsl.resolve_bypred(f"name='{name}'", 1, 5.0)
    assert found, f"LSL stream {name!r} not found within 5 s"
    inlet = pylsl.StreamInlet(found[0], max_buflen=10)
    inlet.open_stream(timeout=5.0)
    return inlet


def _pull(inlet: pylsl.StreamInlet, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Pull for ``seconds`` of wall time; return data (n_samples, n_channels) and time stamps (n_samples,)."""
    chunks, stamps = [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        data, ts = inlet.pull_chunk(timeout=0.1, max_samples=4096)
        if ts:
            chunks.append(np.asarray(data, dtype=np.float64))
            stamps.extend(ts)
    n_channels = inlet.info().channel_count()
    data = np.concatenate(chunks) if chunks else np.empty((0, n_channels))
    return data, np.asarray(stamps)


@pytest.fixture
def bridge_factory():
    """Make bridges that are always stopped, even when a test fails."""
    made: list[BrainFlowBridge] = []

    def make(board: str | int = "synthetic", **kwargs) -> BrainFlowBridge:
        kwargs.setdefault("name_prefix", _prefix())
        bridge = BrainFlowBridge(board, **kwargs)
        made.append(bridge)
        return bridge

    yield make
    for bridge in made:
        bridge.stop()


def test_synthetic_eeg_reaches_lsl_in_volts_on_the_lsl_clock(bridge_factory):
    bridge = bridge_factory()
    eeg_name = bridge.stream_names[0]
    assert eeg_name.endswith("BrainFlow-SYNTHETIC_BOARD-EEG")
    bridge.start()
    inlet = _inlet(eeg_name)
    try:
        info = inlet.info()
        seconds = 2.0
        data, stamps = _pull(inlet, seconds)
        now = pylsl.local_clock()
    finally:
        inlet.close_stream()

    eeg_rows = BoardShim.get_eeg_channels(SYNTHETIC)
    rate = BoardShim.get_sampling_rate(SYNTHETIC)
    assert rate == 250
    assert info.type() == "EEG"
    assert info.channel_count() == len(eeg_rows) == data.shape[1]
    assert info.nominal_srate() == rate
    assert info.channel_format() == pylsl.cf_float32
    assert info.source_id() == "emosync-brainflow:SYNTHETIC_BOARD:default:EEG"
    assert abs(len(stamps) - rate * seconds) <= 0.3 * rate * seconds, len(stamps)

    # BrainFlow's microvolts arrive as volts: the synthetic board stays under ~1 mV
    assert np.all(np.abs(data) < 1e-2)
    assert np.abs(data).max() > 1e-6

    spec = spec_from_stream_info(info)
    assert spec.channel_labels == list(BoardShim.get_eeg_names(SYNTHETIC))
    assert spec.channel_units == ["V"] * len(eeg_rows)
    assert spec.channel_types == ["EEG"] * len(eeg_rows)
    brainflow = info.desc().child("brainflow")
    assert brainflow.child_value("board") == "SYNTHETIC_BOARD"
    assert brainflow.child_value("board_id") == str(SYNTHETIC)
    assert brainflow.child_value("rows") == ",".join(map(str, eeg_rows))
    assert "1e-06" in brainflow.child_value("unit_conversion")

    # converted from BrainFlow's Unix time (~1.7e9) to local_clock(), one stamp per sample
    assert np.all(np.diff(stamps) > 0)
    assert abs(stamps[-1] - now) < 1.0
    assert np.median(np.diff(stamps)) == pytest.approx(1 / rate, rel=0.3)


def test_shared_rows_go_to_eeg_only_by_default():
    # The synthetic board, like a Cyton, reports the same rows as EEG and as EMG
    assert BoardShim.get_emg_channels(SYNTHETIC) == BoardShim.get_eeg_channels(SYNTHETIC)
    prefix = _prefix()
    assert BrainFlowBridge("synthetic", name_prefix=prefix).stream_names == [
        f"{prefix}BrainFlow-SYNTHETIC_BOARD-EEG"]
    assert BrainFlowBridge("synthetic", name_prefix=prefix, shared_rows="emg").stream_names == [
        f"{prefix}BrainFlow-SYNTHETIC_BOARD-EMG"]
    # a board whose EMG rows differ from its EEG rows keeps them in an EMG stream
    galea = BrainFlowBridge("galea", name_prefix=prefix)
    assert galea.stream_names == [f"{prefix}BrainFlow-GALEA_BOARD-EEG", f"{prefix}BrainFlow-GALEA_BOARD-EMG"]
    with pytest.raises(ValueError, match="shared_rows"):
        BrainFlowBridge("synthetic", shared_rows="eog")


def test_default_publishes_no_emg_stream(bridge_factory):
    bridge = bridge_factory()
    bridge.start()
    emg_name = bridge.stream_names[0].replace("-EEG", "-EMG")
    assert pylsl.resolve_bypred(f"name='{emg_name}'", 1, 0.5) == []


def test_shared_rows_both_publishes_the_same_rows_as_emg(bridge_factory):
    bridge = bridge_factory(shared_rows="both")
    eeg_name, emg_name = bridge.stream_names
    assert emg_name.endswith("-EMG")
    bridge.start()
    inlet = _inlet(emg_name)
    try:
        info = inlet.info()
        data, stamps = _pull(inlet, 0.5)
    finally:
        inlet.close_stream()
    n = len(BoardShim.get_emg_channels(SYNTHETIC))
    assert info.type() == "EMG"
    assert info.channel_count() == n
    assert info.source_id().endswith(":EMG")
    spec = spec_from_stream_info(info)
    assert spec.channel_labels == [f"EMG{i + 1}" for i in range(n)]
    assert spec.channel_units == ["V"] * n
    assert spec.channel_types == ["EMG"] * n
    assert len(stamps) > 0 and np.all(np.abs(data) < 1e-2)
    stats = bridge.stats()
    assert stats[eeg_name] == stats[emg_name] > 0


def test_stats_grow_stop_twice_and_restart(bridge_factory):
    bridge = bridge_factory(chunk_interval_s=0.02)
    name = bridge.stream_names[0]
    assert bridge.stats() == {name: 0}
    bridge.stop()  # before start: nothing to do
    bridge.start()
    assert bridge.is_running
    time.sleep(0.3)
    first = bridge.stats()[name]
    time.sleep(0.3)
    second = bridge.stats()[name]
    assert 0 < first < second
    bridge.stop()
    bridge.stop()
    assert not bridge.is_running
    assert bridge.stats()[name] >= second  # stop() pushes what BrainFlow still buffered
    bridge.start()  # the board is released, so it can be prepared again
    time.sleep(0.2)
    bridge.stop()
    assert bridge.stats()[name] > 0


def test_run_streams_for_a_duration_then_stops(bridge_factory):
    bridge = bridge_factory()
    started = time.monotonic()
    bridge.run(duration_s=0.4)
    assert 0.4 <= time.monotonic() - started < 3.0
    assert not bridge.is_running
    assert bridge.stats()[bridge.stream_names[0]] > 0.4 * 250 * 0.5


def test_run_returns_when_the_event_is_set(bridge_factory):
    bridge = bridge_factory()
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    bridge.run(stop_event=stop)
    assert time.monotonic() - started < 3.0
    assert not bridge.is_running


def test_board_names_are_case_insensitive_and_ids_work():
    names = list_boards()
    assert "SYNTHETIC_BOARD" in names and "CYTON_BOARD" in names and "NO_BOARD" not in names
    for board in ("synthetic", "SYNTHETIC_BOARD", "Synthetic-Board", -1, "-1"):
        bridge = BrainFlowBridge(board)
        assert (bridge.board_name, bridge.board_id) == ("SYNTHETIC_BOARD", -1)
    assert BrainFlowBridge("cyton", serial_port="/dev/ttyUSB0").board_name == "CYTON_BOARD"
    assert BrainFlowBridge(1).board_name == "GANGLION_BOARD"


def test_unknown_board_lists_valid_names():
    with pytest.raises(ValueError) as excinfo:
        BrainFlowBridge("synthetik")
    message = str(excinfo.value)
    assert "'synthetik'" in message and "Did you mean SYNTHETIC_BOARD" in message
    assert "CYTON_BOARD" in message and "BoardIds" in message and "list_boards()" in message
    with pytest.raises(ValueError, match="Unknown BrainFlow board 9999"):
        BrainFlowBridge(9999)


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="mac_address"):
        BrainFlowBridge("synthetic", board_params={"mac_adress": "00:11"})
    with pytest.raises(ValueError, match="integer"):
        BrainFlowBridge("synthetic", board_params={"timeout": "soon"})
    with pytest.raises(ValueError, match="chunk_interval_s"):
        BrainFlowBridge("synthetic", chunk_interval_s=0)
    with pytest.raises(ValueError, match="master_board"):
        BrainFlowBridge("playback_file")


def test_source_id_names_the_device_address():
    bridge = BrainFlowBridge("cyton", serial_port="/dev/ttyUSB0", source_prefix="lab")
    assert bridge._streams[0].source_id == "lab:CYTON_BOARD:/dev/ttyUSB0:EEG"
    muse = BrainFlowBridge("muse_2", board_params={"mac_address": "00:55:DA:B0:00:01"})
    assert muse._streams[0].source_id == "emosync-brainflow:MUSE_2_BOARD:00:55:DA:B0:00:01:EEG"


def test_missing_port_raises_a_helpful_error_and_releases(bridge_factory):
    port = f"/dev/emosync-no-such-port-{uuid.uuid4().hex[:6]}"
    bridge = bridge_factory("cyton", serial_port=port)
    with pytest.raises(RuntimeError) as excinfo:
        bridge.start()
    message = str(excinfo.value)
    assert "CYTON_BOARD" in message and port in message and "permission" in message.lower()
    assert not bridge.is_running
    bridge.stop()
    bridge.stop()


def test_a_board_held_by_another_bridge_is_reported(bridge_factory):
    first = bridge_factory()
    first.start()
    second = bridge_factory()  # the same board with the same parameters
    with pytest.raises(RuntimeError, match="SYNTHETIC_BOARD.*already holds"):
        second.start()
    second.stop()
    time.sleep(0.2)
    assert first.is_running and first.stats()[first.stream_names[0]] > 0


def test_missing_brainflow_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "brainflow", None)
    monkeypatch.setitem(sys.modules, "brainflow.board_shim", None)
    with pytest.raises(ImportError, match=r'pip install "emosync\[brainflow\]"'):
        BrainFlowBridge("synthetic")
    with pytest.raises(ImportError, match=r"emosync\[brainflow\]"):
        list_boards()


def test_clock_offset_maps_unix_time_to_local_clock():
    offset = clock_offset()
    assert abs((time.time() - offset) - pylsl.local_clock()) < 5e-3
