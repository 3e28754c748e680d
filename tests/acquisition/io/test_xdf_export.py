"""XDF export: pyxdf reads back our samples, raw stamps, offsets and times; import-xdf gives back the session.

Sessions are real HDF5 files: a simulated one with known clock errors (a second host with
20 ppm drift, a clock reset, marker strings, AUs), one recorded from the light rig over real
LSL (with JPEG and PNG video), and one imported from an XDF file in microvolts. Files are
read back with the real pyxdf and the real importer.
"""

from __future__ import annotations

import hashlib
import logging
import xml.etree.ElementTree as ET

import h5py
import numpy as np
import pytest
import pyxdf
from typer.testing import CliRunner

import emosync
from acquisition import SessionWriter, StreamSpec, open_session
from acquisition.io.export import export_session
from acquisition.io.xdf import import_xdf, scan_xdf
from acquisition.io.xdf_export import XdfExportError, write_xdf
from acquisition.lsl import make_stream_info
from acquisition.sync.simulation import simulate_clock_recording

from .xdf_writer import XDFWriter

START_TIME = "2026-01-02T03:04:05.250000+00:00"
EMG_LABELS = ["EMG_CORR_L", "EMG_ZYG_L", "EMG_ZYG_R", "counter"]
MARKERS = [["onset/happiness/micro", ""], ["apex/happiness/micro", "ünïcode ✓"], ["offset/happiness/micro", "a|b"],
           ["", ""], ["blink", "x" * 300]]
#: pyxdf fits offsets unweighted; Stream.times weights them by round-trip time. Both are
#: within the simulated offset noise (20 us) of the truth; unweighted, they are one method.
SYNC_TOLERANCE_S = 2e-5
SAME_METHOD_TOLERANCE_S = 2e-8


def _append(writer, data, recording) -> None:
    writer.append(data, recording.timestamps)
    table = recording.clock_offsets
    writer.append_clock_offsets(table.collection_times, table.offsets, table.uncertainties)


def write_simulated_session(path, *, extra_streams=()) -> None:
    """12 s: EMG from a drifting second host (real LSL header), EEG with a clock reset, AUs, 2-channel markers."""
    rng = np.random.default_rng(0)
    emg = simulate_clock_recording(duration_s=12, srate=2000, offset_interval_s=2, jitter_s=5e-4, seed=1)
    eeg = simulate_clock_recording(duration_s=12, srate=500, offset_s=-300, drift_ppm=5, offset_interval_s=1,
                                   jitter_s=1e-3, reset_at_s=6, seed=2)
    au = simulate_clock_recording(duration_s=12, srate=30, offset_interval_s=2, jitter_s=2e-3, seed=1)
    emg_xml = make_stream_info("EMG", "EMG", channel_count=4, nominal_srate=2000, channel_format="float32",
                               source_id="amp-1", channel_labels=EMG_LABELS, channel_units=["V"] * 4,
                               channel_types=["EMG"] * 3 + ["misc"]).as_xml()
    with SessionWriter(path, subject_id="sub-07", metadata={"start_time": START_TIME}) as w:
        stream = w.add_stream(StreamSpec("EMG", "EMG", 4, "float32", 2000.0, "amp-1", hostname="amp-host",
                                         channel_labels=EMG_LABELS, channel_units=["V"] * 4,
                                         channel_types=["EMG"] * 3 + ["misc"], info_xml=emg_xml))
        emg_data = (1e-5 * rng.standard_normal((len(emg.timestamps), 4))).astype(np.float32)
        emg_data[:, 3] = np.arange(len(emg_data))  # a sample counter: drops and duplicates would show
        _append(stream, emg_data, emg)
        stream = w.add_stream(StreamSpec("EEG", "EEG", 3, "double64", 500.0, "eeg-1", hostname="eeg-host",
                                         channel_labels=["Fz", "Cz", "Pz"], channel_units=["V"] * 3,
                                         channel_types=["eeg"] * 3))  # no info_xml: the header is built
        _append(stream, 1e-5 * rng.standard_normal((len(eeg.timestamps), 3)), eeg)
        stream = w.add_stream(StreamSpec("ActionUnits", "ActionUnits", 2, "float32", 30.0, "au-1",
                                         channel_labels=["AU06", "AU12"]))
        _append(stream, rng.uniform(0, 5, (len(au.timestamps), 2)).astype(np.float32), au)
        stream = w.add_stream(StreamSpec("Markers", "Markers", 2, "string", 0.0, "mk-1",
                                         channel_labels=["expression", "note"]))
        stream.append(MARKERS, 100 + np.array([1.0, 1.2, 1.4, 5.0, 11.0]))  # recorder's host: offset ~0
        stream.append_clock_offsets([100.5, 106.0], [-4e-5, -3e-5], [1e-4, 2e-4])
        for spec, frames, stamps in extra_streams:
            w.add_stream(spec).append(frames, stamps)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("xdf_export")
    session = folder / "session.h5"
    write_simulated_session(session)
    out = folder / "session.xdf"
    assert write_xdf(session, out) == [out]
    return session, out


def _by_name(path, **kwargs) -> dict[str, dict]:
    streams, _ = pyxdf.load_xdf(str(path), **kwargs)
    return {s["info"]["name"][0]: s for s in streams}


def _assert_same_values(xdf_stream: dict, stream) -> None:
    stored = stream.data[:]
    if stored.dtype == object:
        assert xdf_stream["time_series"] == stored.tolist()
    else:
        values = np.asarray(xdf_stream["time_series"])
        assert values.dtype == stored.dtype
        np.testing.assert_array_equal(values, stored.reshape(values.shape))


def test_pyxdf_reads_back_the_samples_raw_stamps_and_clock_offsets(simulated):
    session, out = simulated
    raw = _by_name(out, synchronize_clocks=False, dejitter_timestamps=False)
    with open_session(session) as s:
        assert list(raw) == list(s.streams)
        for name, stream in s.streams.items():
            got = raw[name]
            _assert_same_values(got, stream)
            np.testing.assert_array_equal(got["time_stamps"], stream.timestamps)  # bit for bit
            np.testing.assert_array_equal(got["clock_times"], stream.clock_offsets.collection_times)
            np.testing.assert_array_equal(got["clock_values"], stream.clock_offsets.offsets)
            info = got["info"]
            assert info["type"][0] == stream.info["type"]
            assert info["source_id"][0] == stream.info["source_id"]
            assert float(info["nominal_srate"][0]) == stream.nominal_srate
            assert int(info["channel_count"][0]) == stream.info["channel_count"]
            labels = [c["label"][0] for c in info["desc"][0]["channels"][0]["channel"]]
            assert labels == list(stream.info["channel_labels"])
            assert int(got["footer"]["info"]["sample_count"][0]) == stream.n_samples
    assert raw["EMG"]["info"]["hostname"][0] == "amp-host"  # the stored hostname wins over the header's empty one
    assert raw["Markers"]["time_series"][1] == ["apex/happiness/micro", "ünïcode ✓"]


def test_pyxdf_synchronized_times_match_ours(simulated):
    session, out = simulated
    synced = _by_name(out)  # pyxdf's defaults: clock sync with reset handling, dejitter
    with open_session(session) as s:
        for name, stream in s.streams.items():
            theirs = synced[name]["time_stamps"]
            assert np.max(np.abs(theirs - stream.times)) < SYNC_TOLERANCE_S, name
            unweighted = stream.synchronize(weight_by_uncertainty=False).times
            assert np.max(np.abs(theirs - unweighted)) < SAME_METHOD_TOLERANCE_S, name
        assert len(synced["EEG"]["info"]["clock_segments"]) == len(s.streams["EEG"].sync.clock_segments) == 2


def _channel_meta(stream, key: str) -> list[str]:
    # A stream described by labels only reads back with '' units and types: the same metadata.
    return list(stream.info.get(key) or [""] * stream.info["channel_count"])


def test_import_xdf_of_the_export_gives_back_an_equal_session(simulated, tmp_path):
    session, out = simulated
    back = tmp_path / "back.h5"
    report = import_xdf(out, back)
    assert report["complete"] and not report["warnings"]
    with open_session(session) as a, open_session(back) as b:
        assert list(b.streams) == list(a.streams)
        assert b.info["start_time"] == a.info["start_time"] == START_TIME
        for name, stream in a.streams.items():
            other = b.streams[name]
            stored = stream.data[:]
            assert other.data.dtype == stored.dtype
            np.testing.assert_array_equal(other.data[:], stored)
            np.testing.assert_array_equal(other.timestamps, stream.timestamps)
            # uncertainties too: they travel in the footer, which ClockOffset chunks cannot hold
            np.testing.assert_array_equal(other.clock_offsets.as_array(), stream.clock_offsets.as_array())
            np.testing.assert_array_equal(other.times, stream.times)
            for key in ("type", "channel_format", "channel_count", "nominal_srate", "source_id", "hostname",
                        "modality", "unit", "can_drop_samples"):
                assert other.info[key] == stream.info[key], (name, key)
            for key in ("channel_labels", "channel_units", "channel_types"):
                assert _channel_meta(other, key) == _channel_meta(stream, key), (name, key)
        # The LSL header travels whole, with the hostname the session stores put in (liblsl left it empty).
        header, original = (ET.fromstring(x.streams["EMG"].info["info_xml"]) for x in (b, a))
        assert ET.tostring(header.find("desc")) == ET.tostring(original.find("desc"))
        assert header.findtext("uid") == original.findtext("uid") and header.findtext("hostname") == "amp-host"


def _chunk_sequence(path) -> list[tuple[int, int | None]]:
    """``(tag, stream id)`` of every chunk, read straight from the bytes as the XDF specification lays them out."""
    data = path.read_bytes()
    assert data[:4] == b"XDF:"
    pos, chunks = 4, []
    while pos < len(data):
        size = data[pos]
        length = int.from_bytes(data[pos + 1: pos + 1 + size], "little")
        body = pos + 1 + size
        tag = int.from_bytes(data[body: body + 2], "little")
        chunks.append((tag, int.from_bytes(data[body + 2: body + 6], "little") if tag in (2, 3, 4, 6) else None))
        pos = body + length
    assert pos == len(data)
    return chunks


def test_chunks_are_interleaved_with_boundaries_and_footers(simulated, tmp_path):
    session, _ = simulated
    out = tmp_path / "small_chunks.xdf"
    # 20 kB blocks split each half second of EMG (1000 samples x 25 bytes) into two Samples chunks.
    write_xdf(session, out, chunk_duration_s=0.5, boundary_interval_s=4.0, block_bytes=20_000)
    index = scan_xdf(out)
    assert not index.damaged_regions and index.truncated_at is None and index.complete_bytes == index.size
    assert "<version>1.0</version>" in index.file_header_xml
    assert "<datetime>2026-01-02T03:04:05.250000+0000</datetime>" in index.file_header_xml
    ids = {ET.fromstring(entry.header_xml).findtext("name"): sid for sid, entry in index.streams.items()}
    assert index.streams[ids["EMG"]].n_samples == 24000 and index.streams[ids["EMG"]].n_chunks >= 48
    chunks = _chunk_sequence(out)
    n = len(ids)
    assert chunks[0] == (1, None) and [tag for tag, _ in chunks[1: 1 + n]] == [2] * n  # headers first
    assert chunks[-n:] == [(6, sid) for sid in ids.values()]  # footers last
    assert 2 <= chunks.count((5, None)) <= 4  # 12 s of data, a boundary every 4 s
    samples = [sid for tag, sid in chunks if tag == 3]
    # Interleaved as a recorder writes them: EEG's first chunk comes before EMG's last one.
    assert samples.index(ids["EEG"]) < len(samples) - 1 - samples[::-1].index(ids["EMG"])
    offsets = [sid for tag, sid in chunks if tag == 4]
    assert offsets.count(ids["EEG"]) == 12 and offsets.count(ids["Markers"]) == 2
    raw = _by_name(out, synchronize_clocks=False, dejitter_timestamps=False)
    with open_session(session) as s:
        np.testing.assert_array_equal(raw["EMG"]["time_series"], s.streams["EMG"].data[:])
        np.testing.assert_array_equal(raw["EEG"]["time_stamps"], s.streams["EEG"].timestamps)


def _video_specs(n: int = 6):
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (n, 12, 16, 3), dtype=np.uint8)
    depth = rng.integers(0, 65536, (n, 12, 16), dtype=np.uint16)
    stamps = 100 + np.arange(n) / 30.0
    return [(StreamSpec("RGB", "VideoRaw", 12 * 16 * 3, "int8", 30.0, "cam-1", frame_shape=(12, 16, 3),
                        encoding="RGB8", compression="png", can_drop_samples=True), rgb, stamps),
            (StreamSpec("Depth", "VideoRaw", 12 * 16, "int16", 30.0, "cam-1d", frame_shape=(12, 16),
                        encoding="DEPTH16-mm", can_drop_samples=True), depth, stamps)]


def test_video_only_on_request_and_back_as_frames(tmp_path, emosync_log):
    session = tmp_path / "video.h5"
    write_simulated_session(session, extra_streams=_video_specs())
    default = tmp_path / "default.xdf"
    write_xdf(session, default)
    assert set(_by_name(default)) == {"EMG", "EEG", "ActionUnits", "Markers"}
    assert "Video streams ['Depth', 'RGB'] are left out" in emosync_log.text
    out = tmp_path / "video.xdf"
    write_xdf(session, out, streams=["RGB", "depth", "Markers"])  # by name and by modality
    assert "go into the XDF uncompressed" in emosync_log.text
    raw = _by_name(out, synchronize_clocks=False, dejitter_timestamps=False)
    assert set(raw) == {"RGB", "Depth", "Markers"}
    back = tmp_path / "back.h5"
    import_xdf(out, back)
    with open_session(session) as a, open_session(back) as b:
        rgb = a.streams["RGB"].data[:]  # PNG-decoded
        assert raw["RGB"]["time_series"].dtype == np.int8
        np.testing.assert_array_equal(raw["RGB"]["time_series"], rgb.reshape(len(rgb), -1).view(np.int8))
        assert raw["RGB"]["info"]["desc"][0]["synchronization"][0]["can_drop_samples"][0] == "true"
        for name in ("RGB", "Depth"):
            np.testing.assert_array_equal(b.streams[name].data[:], a.streams[name].data[:])
            assert b.streams[name].info["encoding"] == a.streams[name].info["encoding"]
            np.testing.assert_array_equal(b.streams[name].times, a.streams[name].times)


def test_recorded_rig_session_round_trips(tmp_path, unique_prefix):
    """A real recording: liblsl headers, real clock offsets, JPEG video (decoded) and PNG depth."""
    from acquisition.live.recorder import RecorderSettings, SessionRecorder
    from synth.rig import SimulatedRig, load_rig_config

    config = load_rig_config("light", [f"name_prefix={unique_prefix}", "timeline.expressions_per_minute=60",
                                       "start_delay_s=0.1"])
    rig = SimulatedRig(config, seed=3, duration_s=60)
    session = tmp_path / "rig.h5"
    rig.start()
    try:
        recorder = SessionRecorder(session, streams=[f"starts-with(name,'{unique_prefix}')"],
                                   settings=RecorderSettings(wait_timeout_s=10, clock_offset_interval_s=1.0),
                                   video_compression=f"{rig.stream_name('rgb')}=jpeg,{rig.stream_name('depth')}=png")
        recorder.start()
        recorder.wait(3.0)
        recorder.stop()
    finally:
        rig.stop()
    out = tmp_path / "rig.xdf"
    write_xdf(session, out, streams=[rig.stream_name(k) for k in ("emg", "eeg", "au", "markers", "rgb", "depth")])
    raw = _by_name(out, synchronize_clocks=False, dejitter_timestamps=False)
    synced = _by_name(out)
    back = tmp_path / "back.h5"
    import_xdf(out, back)
    with open_session(session) as a, open_session(back) as b:
        assert set(raw) == set(a.streams) and len(raw) == 6
        for name, stream in a.streams.items():
            if stream.n_samples:
                values = raw[name]["time_series"]
                if stream.info.get("frame_shape"):
                    frames = stream.data[:]
                    np.testing.assert_array_equal(values, frames.reshape(len(frames), -1).view(values.dtype))
                else:
                    _assert_same_values(raw[name], stream)
            np.testing.assert_array_equal(raw[name]["time_stamps"], stream.timestamps)
            np.testing.assert_array_equal(raw[name]["clock_values"], stream.clock_offsets.offsets)
            assert np.max(np.abs(synced[name]["time_stamps"] - stream.times), initial=0) < SYNC_TOLERANCE_S, name
            np.testing.assert_array_equal(b.streams[name].data[:], stream.data[:])
            np.testing.assert_array_equal(b.streams[name].clock_offsets.as_array(), stream.clock_offsets.as_array())
            np.testing.assert_array_equal(b.streams[name].times, stream.times)
            assert b.streams[name].info["info_xml"] == stream.info["info_xml"]  # liblsl's header, verbatim


def test_imported_microvolts_export_as_the_stored_volts(tmp_path, emosync_log):
    """An XDF in int16 microvolts imports as double volts; the export's header says what it holds."""
    original = tmp_path / "uv.xdf"
    counts = np.arange(-500, 500, dtype=np.int16).reshape(-1, 2)
    with XDFWriter(original) as w:
        w.add_stream(1, "EEG", "EEG", 2, 100.0, "int16", channel_labels=["Fz", "Cz"],
                     channel_units=["microvolts"] * 2, channel_types=["EEG"] * 2)
        w.write_samples(1, counts, 50 + np.arange(len(counts)) / 100)
        w.write_clock_offset(1, 50.0, -0.25)
        w.write_clock_offset(1, 54.0, -0.25)
        w.write_footer(1)
    session = tmp_path / "uv.h5"
    import_xdf(original, session)
    out = tmp_path / "volts.xdf"
    write_xdf(session, out)
    assert "channel_format int16 -> double64" in emosync_log.text
    eeg = _by_name(out, synchronize_clocks=False, dejitter_timestamps=False)["EEG"]
    assert eeg["info"]["channel_format"][0] == "double64"
    assert [c["unit"][0] for c in eeg["info"]["desc"][0]["channels"][0]["channel"]] == ["V", "V"]
    np.testing.assert_array_equal(eeg["time_series"], counts * 1e-6)
    back = tmp_path / "back.h5"
    report = import_xdf(out, back)
    assert report["streams"]["EEG"]["units"]["converted_channels"] == 0  # already volts: no second scaling
    with open_session(session) as a, open_session(back) as b:
        np.testing.assert_array_equal(b.streams["EEG"].data[:], a.streams["EEG"].data[:])


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _partials(folder) -> list:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


def test_a_stream_xdf_cannot_hold_is_refused_and_nothing_is_lost(tmp_path):
    session = tmp_path / "foreign.h5"
    write_simulated_session(session)
    with h5py.File(session, "r+") as f:  # as a tool outside emosync might store a counter: uint32
        group = f["streams/ActionUnits"]
        values = group["data"][()]
        del group["data"]
        group.create_dataset("data", data=values.astype(np.uint32), maxshape=(None, 2))
    before = _sha256(session)
    out = tmp_path / "out.xdf"
    with pytest.raises(XdfExportError, match=r"'ActionUnits' stores uint32 values, which XDF cannot hold.*"
                                             r"--streams EEG,EMG,Markers.*foreign\.h5 is unchanged"):
        write_xdf(session, out)
    assert not out.exists() and not _partials(tmp_path)
    assert _sha256(session) == before
    write_xdf(session, out, streams="EMG,EEG,Markers".split(","))  # the advice works
    assert set(_by_name(out, synchronize_clocks=False)) == {"EMG", "EEG", "Markers"}


def test_failure_midway_leaves_no_file_and_keeps_the_existing_one(tmp_path):
    session = tmp_path / "damaged.h5"
    specs = _video_specs(40)
    write_simulated_session(session, extra_streams=specs[:1])
    with h5py.File(session, "r+") as f:  # a frame damaged on disk, found only when it is decoded
        f["streams/RGB/data"][30] = np.frombuffer(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, dtype=np.uint8)
    out = tmp_path / "out.xdf"
    out.write_bytes(b"an earlier export")
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        write_xdf(session, out, streams=["RGB"])
    with pytest.raises(OSError, match=r"Stream 'RGB': samples \d+ to \d+ could not be read .*not a PNG/JPEG"):
        write_xdf(session, out, streams=["EMG", "RGB"], overwrite=True, block_bytes=4096)
    assert out.read_bytes() == b"an earlier export" and not _partials(tmp_path)
    with pytest.raises(FileExistsError, match="is an HDF5 file"):
        write_xdf(session, _copy(session, tmp_path), overwrite=True)
    with pytest.raises(ValueError, match="No stream named 'EMGX'.*Its streams are"):
        write_xdf(session, tmp_path / "x.xdf", streams=["EMGX"])
    with pytest.raises(ValueError, match="uncompressed XDF"):
        write_xdf(session, tmp_path / "x.xdfz")
    assert not (tmp_path / "x.xdf").exists()


def _copy(session, folder):
    target = folder / "other_session.h5"
    target.write_bytes(session.read_bytes())
    return target


def test_cli_export_xdf_with_comma_separated_streams(simulated, tmp_path):
    session, _ = simulated
    out = tmp_path / "cli.xdf"
    runner = CliRunner()
    result = runner.invoke(emosync.app, ["export", str(session), "--format", "xdf", str(out),
                                         "--streams", "EMG,Markers"])
    assert result.exit_code == 0, result.output
    assert set(_by_name(out, synchronize_clocks=False)) == {"EMG", "Markers"}
    result = runner.invoke(emosync.app, ["export", str(session), "-f", "xdf", str(out), "--streams", "EMG"])
    assert result.exit_code != 0 and "already exists" in result.output
    result = runner.invoke(emosync.app, ["export", str(session), "-f", "xdf", str(tmp_path / "n.xdf"),
                                         "-s", "Nope"])
    assert result.exit_code != 0 and "No stream named 'Nope'" in result.output
    assert export_session(session, tmp_path / "api.xdf", "xdf", streams=["AU"]) == [tmp_path / "api.xdf"]


def test_logs_what_was_written(simulated, tmp_path, emosync_log):
    session, _ = simulated
    emosync_log.set_level(logging.INFO, logger="emosync")
    write_xdf(session, tmp_path / "log.xdf")
    assert "4 stream(s) (ActionUnits 360, EEG 6000, EMG 24000, Markers 5)" in emosync_log.text
