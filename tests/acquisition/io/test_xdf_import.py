"""XDF import: every real file of ../shared/data/xdf against pyxdf, and synthetic files with known damage.

The reference is pyxdf 1.17.5 on the same file: sample counts and data must be equal
(after our microvolt -> volt conversion), raw stamps and clock offsets identical, and
our read-time synchronization (:mod:`acquisition.sync.synchronize`) must match pyxdf's synchronized,
dejittered ``time_stamps`` within :data:`TIME_TOLERANCE_S`.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from acquisition import open_session
from acquisition.utils.logs import logger
from acquisition.io.xdf import XdfFormatError, import_xdf, scan_xdf

from tests.conftest import SHARED_DATA
from .xdf_writer import XDFWriter, truncate_copy

pyxdf = pytest.importorskip("pyxdf")

#: pyxdf fits each clock segment with an ADMM Huber solver stopped after 1000 iterations, we with
#: scipy's least_squares (Huber loss) run to convergence; on the real files below the two lines
#: differ by at most 9.0e-9 s (clock_resets.xdf; 5.6e-9, 5.0e-9, 3.7e-9, 8.1e-10, 8.7e-11 and
#: 2.7e-15 s on the others), so 2e-8 s holds with a 2x margin and would catch any real difference.
TIME_TOLERANCE_S = 2e-8

_XDF_DIR = SHARED_DATA / "xdf"
REAL_FILES = sorted(p.name for p in _XDF_DIR.glob("*.xdf")) if _XDF_DIR.is_dir() else ["(no shared data)"]
CLI = [sys.executable, "-c", "import typer; from acquisition.cli.imports import import_xdf; typer.run(import_xdf)"]


@pytest.fixture
def warnings_log():
    """Messages the emosync logger emits at WARNING or above during the test."""
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def _real(shared_data, name: str):
    path = shared_data / "xdf" / name
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


def _pyxdf_by_name(path, **kwargs) -> dict[str, dict]:
    streams, _ = pyxdf.load_xdf(path, **kwargs)
    return {s["info"]["name"][0]: s for s in streams}


def _assert_matches_pyxdf(session_path, xdf_path) -> dict[str, float]:
    """Compare an imported session with pyxdf on the same file; return the max time difference per stream."""
    synced = _pyxdf_by_name(xdf_path)
    raw = _pyxdf_by_name(xdf_path, synchronize_clocks=False, dejitter_timestamps=False)
    differences = {}
    with open_session(session_path) as session:
        assert sorted(session.streams) == sorted(synced)
        for name, ref in synced.items():
            st = session.streams[name]
            assert st.n_samples == len(ref["time_stamps"]), name
            np.testing.assert_array_equal(st.timestamps, raw[name]["time_stamps"])
            np.testing.assert_array_equal(st.clock_offsets.collection_times, raw[name]["clock_times"])
            np.testing.assert_array_equal(st.clock_offsets.offsets, raw[name]["clock_values"])
            assert np.all(np.isnan(st.clock_offsets.uncertainties))
            if ref["info"]["channel_format"][0] == "string":
                assert st.data[:].tolist() == [list(row) for row in ref["time_series"]]
            else:
                expected = np.asarray(ref["time_series"])
                factors = st.info.get("xdf_unit_factors")
                if factors is not None:
                    expected = expected.astype(st.data.dtype) * np.asarray(factors, dtype=st.data.dtype)
                np.testing.assert_array_equal(st.data[:], expected.reshape(st.data.shape))
            if st.n_samples:
                differences[name] = float(np.max(np.abs(st.times - ref["time_stamps"])))
                assert differences[name] <= TIME_TOLERANCE_S, (name, differences[name])
            assert st.info["info_xml"].lstrip().startswith("<?xml") and f"<name>{name}</name>" in st.info["info_xml"]
            assert ("xdf_footer_xml" in st.info) == ("footer" in ref)
    return differences


# -- the writer used by these tests ------------------------------------------------------------
def test_xdf_writer_output_reads_back_with_pyxdf(tmp_path):
    path = tmp_path / "w.xdf"
    eeg = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    counts = np.arange(40, dtype=np.int16).reshape(20, 2)
    with XDFWriter(path, header={"datetime": "2025-01-31T00:21:17+0000"}) as w:
        w.add_stream(5, "EEG", "EEG", 3, 100.0, "float32", channel_labels=["a", "b", "c"],
                     channel_units=["microvolts"] * 3, channel_types=["EEG"] * 3)
        w.add_stream(9, "Counts", "misc", 2, 10.0, "int16")
        w.add_stream(2, "Markers", "Markers", 1, 0.0, "string")
        w.write_samples(5, eeg[:25], 1000 + np.arange(25) / 100)
        w.write_samples(9, counts, 1000 + np.arange(20) / 10, omit_timestamps=True)
        w.write_samples(2, [["start"], ["µ-émotion ✓"]], [1000.1, 1000.3])
        w.write_clock_offset(5, 1000.0, -3.5)
        w.write_boundary()
        w.write_samples(5, eeg[25:], 1000.25 + np.arange(25) / 100)
        for sid in (5, 9, 2):
            w.write_footer(sid)
    streams = _pyxdf_by_name(path, synchronize_clocks=False, dejitter_timestamps=False)
    np.testing.assert_array_equal(streams["EEG"]["time_series"], eeg)
    np.testing.assert_allclose(streams["EEG"]["time_stamps"], 1000 + np.arange(50) / 100, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(streams["Counts"]["time_series"], counts)
    np.testing.assert_allclose(streams["Counts"]["time_stamps"], 1000 + np.arange(20) / 10, atol=1e-9)
    assert streams["Markers"]["time_series"] == [["start"], ["µ-émotion ✓"]]
    assert streams["EEG"]["clock_times"] == [1000.0] and streams["EEG"]["clock_values"] == [-3.5]
    assert streams["EEG"]["footer"]["info"]["sample_count"] == ["50"]
    assert streams["EEG"]["info"]["desc"][0]["channels"][0]["channel"][0]["unit"] == ["microvolts"]


# -- every real file -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", REAL_FILES)
def test_real_xdf_matches_pyxdf(shared_data, tmp_path, name):
    path = _real(shared_data, name)
    report = import_xdf(path, tmp_path / "s.h5")
    differences = _assert_matches_pyxdf(tmp_path / "s.h5", path)
    assert set(report["streams"]) == set(differences) | set(report["empty_streams"])
    with open_session(tmp_path / "s.h5") as s:
        assert s.info["source_format"] == "xdf" and s.info["source_file"] == name
        assert s.info["xdf_version"] == "1.0"
        assert s.info["xdf_import_report"]["streams"].keys() == report["streams"].keys()
    assert not list(tmp_path.glob(".*partial"))


def test_clock_reset_file_gives_two_clock_segments_like_pyxdf(shared_data, tmp_path):
    path = _real(shared_data, "clock_resets.xdf")
    import_xdf(path, tmp_path / "s.h5")
    ref = _pyxdf_by_name(path)
    with open_session(tmp_path / "s.h5") as s:
        for name in ("BioSemi", "MyMarkerStream"):
            sync = s.streams[name].sync
            assert len(sync.clock_segments) == 2
            segments = ref[name]["info"]["clock_segments"]
            assert len(segments) == 2
            # The same samples on each side of the reset as pyxdf.
            np.testing.assert_array_equal(np.bincount(sync.sample_clock_segment), [b - a + 1 for a, b in segments])


def test_cut_off_real_recording_is_imported_and_the_loss_reported(shared_data, tmp_path, warnings_log):
    # This LabRecorder file ends 560 bytes into a 944-byte Samples chunk (72 ECG samples).
    path = _real(shared_data, "hrvmatlab_2022-01-17-timothy-2-hard-easy-medium.xdf")
    report = import_xdf(path, tmp_path / "s.h5")
    assert report["complete"] is False and report["truncated"] is True
    assert report["truncated_at_byte"] == 716240
    ecg = report["streams"]["HeartyPatch"]
    assert ecg["samples_imported"] == 52592 and ecg["samples_lost"] == 72 and ecg["chunks_skipped"] == 1
    assert ecg["incomplete_chunks"] == [{"byte": 716240, "samples": 72}]
    assert report["streams"]["Keep Talking Stream"]["samples_imported"] == 849
    assert report["streams"]["Keep Talking Stream"]["samples_lost"] == 0
    assert sorted(report["missing_footers"]) == ["HeartyPatch", "Keep Talking Stream"]
    assert any("72 sample(s)" in m for m in warnings_log)
    assert any("ends inside a chunk at byte 716240" in m for m in warnings_log)


def test_empty_streams_are_kept_and_reported(shared_data, tmp_path):
    path = _real(shared_data, "empty_streams.xdf")
    report = import_xdf(path, tmp_path / "s.h5")
    assert sorted(report["empty_streams"]) == ["Empty data stream: test stream 0 counter",
                                               "Empty marker stream: test stream 0 counter"]
    with open_session(tmp_path / "s.h5") as s:
        assert len(s.streams) == 4
        empty = s.streams["Empty data stream: test stream 0 counter"]
        assert empty.n_samples == 0 and empty.times.shape == (0,) and len(empty.clock_offsets) > 0
        assert s.streams["Empty marker stream: test stream 0 counter"].data[:].shape == (0, 1)
        assert s.info["start_time"] == "2025-01-31T00:21:17+00:00"  # from the XDF file header


def test_minimal_file_keeps_int16_and_strings(shared_data, tmp_path):
    path = _real(shared_data, "minimal.xdf")
    report = import_xdf(path, tmp_path / "s.h5")
    with open_session(tmp_path / "s.h5") as s:
        eeg = s.streams["SendDataC"]
        assert eeg.data.dtype == np.int16 and eeg.info["unit"] == "unknown"  # no units in the file: not scaled
        assert report["streams"]["SendDataC"]["units"]["unknown_unit_channels"] == 3
        assert s.streams["SendDataString"].data[:].dtype == object


def test_real_file_truncated_at_half(shared_data, tmp_path):
    cut = tmp_path / "half.xdf"
    truncate_copy(_real(shared_data, "hrvmatlab_daniel_session_1.xdf"), cut, 0.5)
    report = import_xdf(cut, tmp_path / "s.h5")
    assert report["truncated"] and not report["complete"]
    assert sorted(report["missing_footers"]) == ["HeartyPatch", "Keep Talking Stream"]
    _assert_matches_pyxdf(tmp_path / "s.h5", cut)
    assert 0.3 * 76784 < report["streams"]["HeartyPatch"]["samples_imported"] < 0.6 * 76784


# -- synthetic files -------------------------------------------------------------------------------
def _two_stream_file(path, *, corrupt: bool = False, units: str = "microvolts") -> dict[str, np.ndarray]:
    """EEG (4 ch float32, 200 Hz) + markers, 10 chunks, boundaries every 2 chunks; optionally a corrupt chunk."""
    rng = np.random.default_rng(1)
    eeg = rng.normal(scale=50, size=(1000, 4)).astype(np.float32)
    stamps = 5000.0 + np.arange(1000) / 200
    with XDFWriter(path) as w:
        w.add_stream(1, "EEG", "EEG", 4, 200.0, "float32", source_id="eeg-1",
                     channel_labels=["Fz", "Cz", "Pz", "EOG"], channel_units=[units, units, units, "microvolts"],
                     channel_types=["EEG", "EEG", "EEG", "misc"])
        w.add_stream(2, "Markers", "Markers", 1, 0.0, "string", source_id="mk-1")
        for k in range(10):
            if corrupt and k == 5:
                w.write_corrupt_samples_chunk(1)
            w.write_samples(1, eeg[100 * k : 100 * (k + 1)], stamps[100 * k : 100 * (k + 1)])
            w.write_samples(2, [[f"m{k}"]], [stamps[100 * k] + 0.01])
            w.write_clock_offset(1, stamps[100 * k], 2.0 + 1e-5 * k)
            w.write_clock_offset(2, stamps[100 * k], 2.0 + 1e-5 * k)
            if k % 2 == 1:
                w.write_boundary()
        w.write_footer(1)
        w.write_footer(2)
    return {"eeg": eeg, "stamps": stamps}


def test_microvolts_are_converted_to_volts(tmp_path, warnings_log):
    truth = _two_stream_file(tmp_path / "uv.xdf")
    report = import_xdf(tmp_path / "uv.xdf", tmp_path / "s.h5")
    with open_session(tmp_path / "s.h5") as s:
        st = s.streams["EEG"]
        data = st.data[:]
        assert data.dtype == np.float32
        np.testing.assert_array_equal(data[:, :3], truth["eeg"][:, :3] * np.float32(1e-6))
        np.testing.assert_array_equal(data[:, 3], truth["eeg"][:, 3])  # a misc channel is not a voltage
        assert st.info["channel_units"] == ["V", "V", "V", "microvolts"]
        assert st.info["xdf_original_units"] == ["microvolts"] * 4
        assert st.info["xdf_unit_factors"] == [1e-6, 1e-6, 1e-6, 1.0]
        assert st.info["unit"] == "V"
    assert report["streams"]["EEG"]["units"] == {"converted_channels": 3, "unknown_unit_channels": 0,
                                                 "original_units": ["microvolts"]}
    assert report["complete"] and not warnings_log
    _assert_matches_pyxdf(tmp_path / "s.h5", tmp_path / "uv.xdf")


@pytest.mark.parametrize("unit,factor", [("µV", 1e-6), ("uV", 1e-6), ("mV", 1e-3), ("V", 1.0)])
def test_integer_microvolts_become_double_volts(tmp_path, unit, factor):
    counts = np.arange(-30, 30, dtype=np.int16).reshape(20, 3)
    with XDFWriter(tmp_path / "i.xdf") as w:
        w.add_stream(1, "EMG", "EMG", 3, 1000.0, "int16", channel_units=[unit] * 3)
        w.write_samples(1, counts, np.arange(20) / 1000)
    import_xdf(tmp_path / "i.xdf", tmp_path / "s.h5")
    with open_session(tmp_path / "s.h5") as s:
        st = s.streams["EMG"]
        if factor == 1.0:
            assert st.data.dtype == np.int16 and "xdf_unit_factors" not in st.info
            np.testing.assert_array_equal(st.data[:], counts)
        else:
            assert st.data.dtype == np.float64 and st.info["xdf_channel_format"] == "int16"
            assert st.info["channel_format"] == "double64"
            np.testing.assert_array_equal(st.data[:], counts * factor)


def test_unknown_units_are_kept_with_a_warning(tmp_path, warnings_log):
    truth = _two_stream_file(tmp_path / "c.xdf", units="counts")
    report = import_xdf(tmp_path / "c.xdf", tmp_path / "s.h5")
    with open_session(tmp_path / "s.h5") as s:
        np.testing.assert_array_equal(s.streams["EEG"].data[:], truth["eeg"])
        assert s.streams["EEG"].info["unit"] == "unknown"
    assert report["streams"]["EEG"]["units"]["unknown_unit_channels"] == 3
    assert any("no known voltage unit" in m and "Fz='counts'" in m for m in warnings_log)


def test_corrupt_chunk_is_skipped_and_reported(tmp_path):
    truth = _two_stream_file(tmp_path / "bad.xdf", corrupt=True)
    report = import_xdf(tmp_path / "bad.xdf", tmp_path / "s.h5")
    ref = _pyxdf_by_name(tmp_path / "bad.xdf", synchronize_clocks=False, dejitter_timestamps=False)
    eeg = report["streams"]["EEG"]
    # pyxdf drops the corrupt chunk and resynchronizes at the next boundary (after chunk 5):
    # the corrupt chunk, chunk 5 of EEG (100 samples) and marker 5 are lost; we import exactly what
    # pyxdf reads, and the scan (which skips the corrupt chunk by its length) counts what was lost.
    assert eeg["samples_imported"] == len(ref["EEG"]["time_stamps"]) == 900
    assert eeg["samples_lost"] == 100 and eeg["chunks_skipped"] == 2 and eeg["unreadable_chunks"] == 1
    assert report["streams"]["Markers"]["samples_imported"] == 9
    assert report["streams"]["Markers"]["samples_lost"] == 1
    assert not report["complete"]
    assert any("corruption" in e["message"] for e in report["reader_errors"])
    with open_session(tmp_path / "s.h5") as s:
        kept = np.r_[0:500, 600:1000]
        np.testing.assert_array_equal(s.streams["EEG"].timestamps, truth["stamps"][kept])
        factors = np.array([1e-6, 1e-6, 1e-6, 1.0]).astype(np.float32)
        np.testing.assert_array_equal(s.streams["EEG"].data[:], truth["eeg"][kept] * factors)
    _assert_matches_pyxdf(tmp_path / "s.h5", tmp_path / "bad.xdf")


def test_garbage_region_in_the_chunk_structure_is_reported(tmp_path):
    with XDFWriter(tmp_path / "hole.xdf") as w:
        w.add_stream(1, "S", "misc", 1, 10.0, "float32")
        w.write_samples(1, np.zeros((5, 1)), np.arange(5) / 10)
        w.write_raw(b"\x00" * 4096)  # a hole of zeros, as after a crash of the file system
        w.write_boundary()
        w.write_samples(1, np.ones((5, 1)), 0.5 + np.arange(5) / 10)
    index = scan_xdf(tmp_path / "hole.xdf")
    assert len(index.damaged_regions) == 1 and index.damaged_regions[0]["problem"] == "invalid chunk length"
    report = import_xdf(tmp_path / "hole.xdf", tmp_path / "s.h5")
    assert report["streams"]["S"]["samples_imported"] == len(_pyxdf_by_name(tmp_path / "hole.xdf")["S"]["time_stamps"])
    assert report["streams"]["S"]["samples_imported"] == 10 and not report["complete"]
    assert report["damaged_regions"][0]["bytes_skipped"] > 4096


def test_what_pyxdf_cannot_read_past_is_reported(tmp_path):
    # A stray FileHeader chunk with broken XML in mid-file makes pyxdf raise (ParseError): the samples
    # read before it are kept, the clock offsets come from the chunk scan (all of them), the rest is lost.
    with XDFWriter(tmp_path / "stray.xdf") as w:
        w.add_stream(1, "S", "misc", 2, 100.0, "float32")
        for k in range(5):
            if k == 3:
                w.write_chunk(1, b"", "<?xml version='1.0'?><info><version>1.0</vers")
            w.write_samples(1, np.full((10, 2), k, np.float32), k * 0.1 + np.arange(10) / 100)
            w.write_clock_offset(1, k * 0.1, 0.5)
        w.write_footer(1)
    report = import_xdf(tmp_path / "stray.xdf", tmp_path / "s.h5")
    s = report["streams"]["S"]
    assert s["samples_imported"] == 30 and s["samples_lost"] == 20 and s["chunks_skipped"] == 2
    assert s["clock_offsets"] == 5 and not report["complete"]
    assert any("pyxdf stopped reading" in e["message"] for e in report["reader_errors"])
    assert report["damaged_regions"][0]["problem"].startswith("a second FileHeader chunk")
    with open_session(tmp_path / "s.h5") as session:
        np.testing.assert_array_equal(session.streams["S"].data[:, 0], np.repeat([0, 1, 2], 10))
        assert session.info["xdf_version"] == "1.0"


def test_duplicate_names_get_a_suffix(tmp_path):
    with XDFWriter(tmp_path / "d.xdf") as w:
        for sid in (3, 4, 5):
            w.add_stream(sid, "Amp", "EMG", 1, 100.0, "float32", channel_units=["V"])
            w.write_samples(sid, np.full((3, 1), sid, np.float32), np.arange(3) / 100)
    import_xdf(tmp_path / "d.xdf", tmp_path / "s.h5")
    with open_session(tmp_path / "s.h5") as s:
        assert sorted(s.streams) == ["Amp", "Amp_2", "Amp_3"]
        assert s.streams["Amp_2"].info["lsl_name"] == "Amp" and s.streams["Amp_2"].info["xdf_stream_id"] == 4
        assert s.streams["Amp_3"].data[0, 0] == 5


def test_video_frames_in_xdf_become_frames(tmp_path):
    frames = np.random.default_rng(2).integers(0, 256, size=(4, 6, 8, 3), dtype=np.uint8)
    with XDFWriter(tmp_path / "v.xdf") as w:
        w.add_stream(1, "Cam", "VideoRaw", 6 * 8 * 3, 30.0, "int8",
                     desc={"encoding": "RGB8", "frame": {"height": 6, "width": 8, "channels": 3},
                           "synchronization": {"can_drop_samples": "true"}})
        w.write_samples(1, frames.view(np.int8).reshape(4, -1), np.arange(4) / 30)
    import_xdf(tmp_path / "v.xdf", tmp_path / "s.h5")
    with open_session(tmp_path / "s.h5") as s:
        cam = s.streams["Cam"]
        assert cam.modality == "rgb" and cam.info["can_drop_samples"] is True
        np.testing.assert_array_equal(cam.data[:], frames)


def test_select_streams_by_name(tmp_path):
    _two_stream_file(tmp_path / "x.xdf")
    report = import_xdf(tmp_path / "x.xdf", tmp_path / "s.h5", streams=["Markers"])
    assert list(report["streams"]) == ["Markers"]
    with pytest.raises(XdfFormatError, match=r"no stream named \['Nope'\]"):
        import_xdf(tmp_path / "x.xdf", tmp_path / "t.h5", streams=["Nope"])


# -- failures ----------------------------------------------------------------------------------------
def test_text_file_is_not_xdf(tmp_path):
    fake = tmp_path / "notes.xdf"
    fake.write_text("subject 3, session 2: all fine\n")
    with pytest.raises(XdfFormatError, match=r"not an XDF file \(magic 'XDF:' missing"):
        import_xdf(fake, tmp_path / "s.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.xdf"]


def test_existing_output_is_never_overwritten(tmp_path):
    _two_stream_file(tmp_path / "x.xdf")
    out = tmp_path / "s.h5"
    out.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="never overwrites"):
        import_xdf(tmp_path / "x.xdf", out)
    assert out.read_bytes() == b"precious"
    import_xdf(tmp_path / "x.xdf", out, if_exists="rename")
    assert (tmp_path / "s_old1.h5").read_bytes() == b"precious"


def test_failure_midway_leaves_no_file(tmp_path, monkeypatch):
    _two_stream_file(tmp_path / "x.xdf")
    from acquisition.session.writer import StreamWriter

    def broken(self, data, timestamps):
        raise OSError("disk on fire")

    monkeypatch.setattr(StreamWriter, "append", broken)
    with pytest.raises(OSError, match="disk on fire"):
        import_xdf(tmp_path / "x.xdf", tmp_path / "s.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.xdf"]


def test_memory_stays_bounded(tmp_path):
    # A 9 MB file imported in 1 MB blocks: the import holds a few blocks, not the file (pyxdf alone
    # would hold all of it). benchmarks/xdf_memory.py measures the same on a 1 GB file.
    path = tmp_path / "big.xdf"
    block = np.random.default_rng(3).normal(size=(1000, 32)).astype(np.float32)
    with XDFWriter(path) as w:
        w.add_stream(1, "EEG", "EEG", 32, 1000.0, "float32", channel_units=["V"] * 32)
        for k in range(64):
            w.write_samples(1, block, k + np.arange(1000) / 1000)
        w.write_footer(1)
    size = path.stat().st_size
    tracemalloc.start()  # numpy reports its buffers to tracemalloc
    try:
        report = import_xdf(path, tmp_path / "s.h5", block_bytes=1 << 20, checksum=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report["streams"]["EEG"]["samples_imported"] == 64_000 and size > 8e6
    assert peak < min(5e6, size / 2), f"peak traced memory {peak / 1e6:.1f} MB for a {size / 1e6:.0f} MB file"


# -- the command line ---------------------------------------------------------------------------------
def test_cli_imports_and_prints_report(tmp_path):
    _two_stream_file(tmp_path / "x.xdf", corrupt=True)
    done = subprocess.run([*CLI, str(tmp_path / "x.xdf"), str(tmp_path / "s.h5")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "INCOMPLETE" in done.stdout and "EEG" in done.stdout and "could not be imported" in done.stdout
    strict = subprocess.run([*CLI, str(tmp_path / "x.xdf"), str(tmp_path / "t.h5"), "--strict", "--json"],
                            capture_output=True, text=True, timeout=120)
    assert strict.returncode == 3
    assert json.loads(strict.stdout)["streams"]["EEG"]["samples_lost"] == 100


def test_cli_errors_are_clear(tmp_path):
    fake = tmp_path / "fake.xdf"
    fake.write_text("hello")
    done = subprocess.run([*CLI, str(fake), str(tmp_path / "s.h5")], capture_output=True, text=True, timeout=60)
    stderr = " ".join(done.stderr.split())  # rich wraps long lines
    assert done.returncode == 1 and "not an XDF file (magic 'XDF:' missing" in stderr and "Traceback" not in stderr
    _two_stream_file(tmp_path / "x.xdf")
    (tmp_path / "s.h5").write_bytes(b"x")
    done = subprocess.run([*CLI, str(tmp_path / "x.xdf"), str(tmp_path / "s.h5")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and "already exists" in " ".join(done.stderr.split())
