"""BrainFlow recordings (``DataFilter.write_file``) as sessions: the synthetic board, end to end and by rows."""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import pytest

from acquisition import open_session
from acquisition.io.brainflow import BrainFlowFileError, import_brainflow, read_brainflow_file

from .conformance import check_importer

with warnings.catch_warnings():  # brainflow 5.x on Python < 3.12 warns about pkg_resources at its first call
    warnings.simplefilter("ignore", UserWarning)
    pytest.importorskip("brainflow")
    from brainflow.board_shim import BoardIds, BoardShim, BrainFlowInputParams
    from brainflow.data_filter import DataFilter

    SYNTHETIC = int(BoardIds.SYNTHETIC_BOARD)
    EEG_ROWS = BoardShim.get_eeg_channels(SYNTHETIC)
    TS_ROW = BoardShim.get_timestamp_channel(SYNTHETIC)
    MARKER_ROW = BoardShim.get_marker_channel(SYNTHETIC)
    N_ROWS = BoardShim.get_num_rows(SYNTHETIC)


@pytest.fixture(scope="module")
def recorded():
    """About 2 s of the synthetic board, recorded by BrainFlow itself, with one marker (3.0) after 1 s."""
    BoardShim.disable_board_logger()
    board = BoardShim(SYNTHETIC, BrainFlowInputParams())
    board.prepare_session()
    try:
        board.start_stream()
        time.sleep(1.0)
        board.insert_marker(3.0)
        time.sleep(1.0)
        data = board.get_board_data()
        board.stop_stream()
    finally:
        board.release_session()
    assert data.shape[0] == N_ROWS and data.shape[1] > 300
    return data


def _cut_mid_line(source, folder):
    """The recording cut inside its middle line (a cut at a line end would leave a shorter, valid file)."""
    text = source.read_text()
    cut = folder / source.name
    cut.write_text(text[: text.index("\n", len(text) // 2) - 3])
    return cut


def _write(path, data):
    DataFilter.write_file(np.ascontiguousarray(data), str(path), "w")
    return path


def test_conformance(recorded, tmp_path):
    source = _write(tmp_path / "rec.csv", recorded)
    stamps = recorded[TS_ROW]
    marker_at = np.flatnonzero(recorded[MARKER_ROW])
    # write_file prints six decimals: 5e-7 µV (5e-13 V) and 0.5 µs.
    known = {"BrainFlow-SYNTHETIC_BOARD-EEG": (recorded[EEG_ROWS].T * 1e-6, stamps),
             "Markers": ([["3"]] * marker_at.size, stamps[marker_at])}
    out = check_importer(import_brainflow, source, tmp_path, known=known, atol=5.1e-13, time_atol=5.1e-7,
                         truncate=_cut_mid_line, board="synthetic")
    with open_session(out) as s:
        eeg = s.streams["BrainFlow-SYNTHETIC_BOARD-EEG"]
        assert eeg.info["channel_labels"] == BoardShim.get_eeg_names(SYNTHETIC)
        assert eeg.nominal_srate == BoardShim.get_sampling_rate(SYNTHETIC) and eeg.info["channel_format"] == "double64"
        assert eeg.info["brainflow_rows"] == ",".join(map(str, EEG_ROWS))
        assert s.info["source_format"] == "brainflow-csv" and s.info["brainflow_board"] == "SYNTHETIC_BOARD"
        assert s.info["start_unix_time"] == pytest.approx(stamps[0], abs=1e-6)
        raw = s.to_mne()
    # meas_date is the first sample's wall clock; the marker is an annotation at its sample.
    # (synchronized: dejittered, so within the host's jitter of the first stamp)
    assert raw.info["meas_date"].timestamp() == pytest.approx(stamps[0], abs=2e-3)
    assert list(raw.annotations.description) == ["3"] and marker_at.size == 1
    assert raw.annotations.onset[0] == pytest.approx(marker_at[0] / raw.info["sfreq"], abs=2 / raw.info["sfreq"])


@pytest.mark.parametrize("shared_rows, streams", [
    ("eeg", {"BrainFlow-SYNTHETIC_BOARD-EEG": 16}),
    ("emg", {"BrainFlow-SYNTHETIC_BOARD-EMG": 16}),
    ("both", {"BrainFlow-SYNTHETIC_BOARD-EEG": 16, "BrainFlow-SYNTHETIC_BOARD-EMG": 16}),
])
def test_shared_rows_go_where_asked(recorded, tmp_path, shared_rows, streams):
    source = _write(tmp_path / "rec.csv", recorded)
    report = import_brainflow(source, tmp_path / "s.h5", board=-1, shared_rows=shared_rows)
    assert report["streams"] == streams and report["n_markers"] == 1
    with open_session(tmp_path / "s.h5") as s:
        for name in streams:
            np.testing.assert_allclose(s.streams[name].data[:], recorded[EEG_ROWS].T * 1e-6, atol=5.1e-13)
        if "BrainFlow-SYNTHETIC_BOARD-EMG" in streams:
            emg = s.streams["BrainFlow-SYNTHETIC_BOARD-EMG"]
            assert emg.modality == "emg" and emg.info["channel_labels"][:2] == ["EMG1", "EMG2"]
    with pytest.raises(ValueError, match="shared_rows must be one of"):
        import_brainflow(source, tmp_path / "t.h5", board=-1, shared_rows="ecg")


def test_a_file_without_markers_and_a_clock_set_back(tmp_path):
    data = np.zeros((N_ROWS, 50))
    data[EEG_ROWS] = np.arange(50) * 1.5  # µV
    data[TS_ROW] = 1.7e9 + np.arange(50) / 250
    data[TS_ROW, 30:] -= 0.5  # the host clock stepped back by NTP
    report = import_brainflow(_write(tmp_path / "r.csv", data), tmp_path / "s.h5", board="SYNTHETIC_BOARD")
    assert report["n_markers"] == 0 and report["backward_steps"] == 1
    assert "set back" in report["warnings"][0]
    with open_session(tmp_path / "s.h5") as s:
        assert sorted(s.streams) == ["BrainFlow-SYNTHETIC_BOARD-EEG"]
        np.testing.assert_allclose(s.streams["BrainFlow-SYNTHETIC_BOARD-EEG"].data[:, 0], np.arange(50) * 1.5e-6)


def test_wrong_board_and_bad_files_are_refused_clearly(recorded, tmp_path):
    source = _write(tmp_path / "rec.csv", recorded)
    with pytest.raises(BrainFlowFileError, match=r"rec.csv has 32 values per line, but the board has 24 rows: .*"
                                                 "another board"):
        import_brainflow(source, tmp_path / "s.h5", board="cyton")
    with pytest.raises(ValueError, match="Unknown BrainFlow board 'cytom'. Did you mean CYTON_BOARD"):
        import_brainflow(source, tmp_path / "s.h5", board="cytom")
    text = source.read_text()
    cut = tmp_path / "cut.csv"
    cut.write_text(text[: text.index("\n", len(text) // 2) + 20])
    with pytest.raises(BrainFlowFileError, match=r"cut.csv: line \d+ has \d+ values, not 32 \(the file ends in the "
                                                 "middle of that line: it is truncated\\)"):
        read_brainflow_file(cut, N_ROWS)
    cut.write_text(text[: text.index("\n", len(text) // 2) - 3])  # in the last value of a line: all 32 present
    with pytest.raises(BrainFlowFileError, match=r"cut.csv: line \d+ has no line end \(the file ends in the middle"):
        read_brainflow_file(cut, N_ROWS)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(BrainFlowFileError, match="empty.csv is empty"):
        import_brainflow(tmp_path / "empty.csv", tmp_path / "s.h5", board=-1)
    (tmp_path / "words.csv").write_text("a\tb\n")
    with pytest.raises(BrainFlowFileError, match="line 1 has 2 values, not 32"):
        import_brainflow(tmp_path / "words.csv", tmp_path / "s.h5", board=-1)
    with pytest.raises(FileNotFoundError, match="No BrainFlow recording at"):
        import_brainflow(tmp_path / "missing.csv", tmp_path / "s.h5", board=-1)
    assert not (tmp_path / "s.h5").exists()


def test_missing_brainflow_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "brainflow", None)
    monkeypatch.setitem(sys.modules, "brainflow.board_shim", None)
    (tmp_path / "r.csv").write_text("0.0\n")
    with pytest.raises(ImportError, match=r'pip install "emosync\[brainflow\]"'):
        import_brainflow(tmp_path / "r.csv", tmp_path / "s.h5", board="synthetic")
    assert not (tmp_path / "s.h5").exists()


def test_cli_imports_and_refuses_clearly(recorded, tmp_path):
    from typer.testing import CliRunner

    from emosync import app

    path = _write(tmp_path / "run.csv", recorded)
    out = tmp_path / "s.h5"
    result = CliRunner().invoke(app, ["import-brainflow", str(path), str(out), "--board", "synthetic", "--json"])
    assert result.exit_code == 0, result.output
    with open_session(out) as s:
        assert s.streams and all(st.n_samples > 0 for st in s.streams.values() if st.info.get("type") != "Markers")
    again = CliRunner().invoke(app, ["import-brainflow", str(path), str(out), "--board", "synthetic"])
    assert again.exit_code == 1 and "exists" in again.output
    wrong = CliRunner().invoke(app, ["import-brainflow", str(path), str(tmp_path / "t.h5"), "--board", "synthetic",
                                     "--shared-rows", "ecg"])
    assert wrong.exit_code == 1 and "--shared-rows" in wrong.output
