"""Session files: writer/reader round trips, compression, metadata, refusal to overwrite."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from acquisition import SCHEMA_VERSION, SessionWriter, StreamSpec, open_session
from acquisition.session.writer import check_output_path

from tests.conftest import emosync_command


def _emg_spec(name: str = "EMG") -> StreamSpec:
    return StreamSpec(name, "EMG", 3, "float32", 2000.0, "emg-src", hostname="lab",
                      channel_labels=["EMG_ZYG_L", "EMG_CORR_L", "EMG_FRONT_L"], channel_units=["V"] * 3,
                      channel_types=["EMG"] * 3)


def test_round_trip_all_kinds(tmp_path):
    rng = np.random.default_rng(0)
    emg = rng.normal(size=(500, 3)).astype(np.float32) * 1e-4
    rgb = rng.integers(0, 256, size=(4, 24, 32, 3), dtype=np.uint8)
    depth = rng.integers(300, 2000, size=(4, 24, 32), dtype=np.uint16)
    fname = tmp_path / "s.h5"
    with SessionWriter(fname, subject_id="sub-07", notes="round trip", metadata={"task": "faces"}) as w:
        s_emg = w.add_stream(_emg_spec())
        s_rgb = w.add_stream(StreamSpec("RGB", "VideoRaw", 24 * 32 * 3, "int8", 30.0, "cam", frame_shape=(24, 32, 3),
                                        encoding="RGB8"))
        s_png = w.add_stream(StreamSpec("Depth", "VideoRaw", 24 * 32, "int16", 30.0, "cam-d", frame_shape=(24, 32),
                                        encoding="DEPTH16-mm", compression="png"))
        s_mk = w.add_stream(StreamSpec("Markers", "Markers", 1, "string", 0.0, "mk"))
        w.start_swmr()
        s_emg.append(emg[:200], np.arange(200) / 2000)
        s_emg.append(emg[200:], np.arange(200, 500) / 2000)
        s_emg.append_clock_offsets([1.0, 6.0], [0.25, 0.2501], [1e-4, 2e-4])
        s_rgb.append(rgb, np.arange(4) / 30)
        s_png.append(depth, np.arange(4) / 30)
        s_mk.append([["onset/happiness/macro"], ["offset/happiness/macro ✓"]], [0.5, 1.5])
    with open_session(fname) as s:
        assert s.info["subject_id"] == "sub-07"
        assert s.info["schema_version"] == SCHEMA_VERSION
        assert s.info["task"] == "faces" and s.info["notes"] == "round trip"
        assert "stop_time" in s.info
        assert set(s.streams) == {"EMG", "RGB", "Depth", "Markers"}
        st = s.streams["EMG"]
        np.testing.assert_array_equal(st.data[:], emg)
        np.testing.assert_array_equal(st.data[[5, 1, 5]], emg[[5, 1, 5]])
        np.testing.assert_array_equal(st.data[-1], emg[-1])
        np.testing.assert_array_equal(st.timestamps, np.arange(500) / 2000)
        assert st.info["channel_labels"] == ["EMG_ZYG_L", "EMG_CORR_L", "EMG_FRONT_L"]
        assert st.info["unit"] == "V" and st.info["nominal_srate"] == 2000.0
        assert len(st.clock_offsets) == 2
        # the clock fit is linear in time: 0.25 s at t=1 s, drifting 20 ppm
        np.testing.assert_allclose(st.times[0], 0.25 - 20e-6, atol=1e-9)
        assert st.times.shape == (500,)
        np.testing.assert_array_equal(s.streams["RGB"].data[1:3], rgb[1:3])
        assert s.streams["RGB"].modality == "rgb"
        np.testing.assert_array_equal(s.streams["Depth"].data[:], depth)  # PNG is lossless for uint16
        assert s.streams["Depth"].info["unit"] == "mm"
        assert s.streams["Markers"].data[:, 0].tolist() == ["onset/happiness/macro", "offset/happiness/macro ✓"]
        with pytest.raises(IndexError, match="out of range"):
            st.data[500]


def test_jpeg_rgb_is_close_and_depth_refuses_jpeg(tmp_path):
    rgb = np.full((3, 32, 32, 3), 120, np.uint8)
    rgb[:, 8:24, 8:24] = [200, 40, 10]
    with SessionWriter(tmp_path / "j.h5") as w:
        w.add_stream(StreamSpec("RGB", "VideoRaw", 32 * 32 * 3, "int8", 30, "c", frame_shape=(32, 32, 3),
                                encoding="RGB8", compression="jpeg")).append(rgb, [0, 1, 2])
    with open_session(tmp_path / "j.h5") as s:
        decoded = s.streams["RGB"].data[:]
        assert decoded.shape == rgb.shape and decoded.dtype == np.uint8
        assert np.abs(decoded.astype(int) - rgb).mean() < 6
        # channel order kept: the red square stays red (a BGR mix-up would make it blue)
        np.testing.assert_allclose(decoded[:, 16, 16].astype(float), [[200, 40, 10]] * 3, atol=12)
    with pytest.raises(ValueError, match="losslessly"):
        StreamSpec("D", "VideoRaw", 4, "int16", 30, "d", frame_shape=(2, 2), encoding="DEPTH16-mm",
                   compression="jpeg")


def test_never_overwrites(tmp_path):
    fname = tmp_path / "s.h5"
    with SessionWriter(fname, notes="first"):
        pass
    before = fname.read_bytes()
    with pytest.raises(FileExistsError, match="never overwrites"):
        SessionWriter(fname)
    assert fname.read_bytes() == before
    with SessionWriter(fname, if_exists="rename", notes="second"):
        pass
    with open_session(tmp_path / "s_old1.h5") as old, open_session(fname) as new:
        assert old.info["notes"] == "first" and new.info["notes"] == "second"


def test_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "s.h5")
    (tmp_path / "afile").write_text("x")
    with pytest.raises((FileNotFoundError, NotADirectoryError)):
        check_output_path(tmp_path / "afile" / "s.h5")


def test_append_checks_shapes(tmp_path):
    with SessionWriter(tmp_path / "s.h5") as w:
        st = w.add_stream(_emg_spec())
        with pytest.raises(ValueError, match=r"expected \(2, 3\)"):
            st.append(np.zeros((2, 4)), [0.0, 0.1])
        with pytest.raises(ValueError, match="non-finite"):
            st.append_clock_offsets([0.0], [np.nan], [0.0])
        st.append_clock_offsets([0.0], [0.5], [np.nan])  # unknown uncertainty is allowed (XDF)
        with pytest.raises(ValueError, match="already exists"):
            w.add_stream(_emg_spec())


def test_not_a_session(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(ValueError, match="not an emosync session"):
        open_session(tmp_path / "other.h5")
    with pytest.raises(FileNotFoundError):
        open_session(tmp_path / "nope.h5")


def test_live_reader_follows_writer(tmp_path):
    """A reader opened during recording sees new samples after refresh (SWMR), also across a late stream."""
    fname = tmp_path / "live.h5"
    w = SessionWriter(fname)
    st = w.add_stream(_emg_spec())
    w.start_swmr()
    st.append(np.ones((10, 3), np.float32), np.arange(10.0))
    w.flush()
    reader = open_session(fname)
    assert reader.live  # followed in SWMR mode while the writer has the file open
    assert reader.streams["EMG"].n_samples == 10
    st.append(np.ones((5, 3), np.float32), np.arange(10.0, 15.0))
    w.flush()
    reader.refresh()
    assert reader.streams["EMG"].n_samples == 15
    assert reader.streams["EMG"].timestamps[-1] == 14.0
    reader.close()
    late = w.add_stream(StreamSpec("Late", "EEG", 2, "float32", 500.0, "late"))  # reopens the file under SWMR
    late.append(np.zeros((3, 2), np.float32), [0, 1, 2])
    st.append(np.ones((1, 3), np.float32), [15.0])
    w.close()
    with open_session(fname) as s:
        assert not s.live  # a closed file is read plainly, never with SWMR's retries
        assert s.streams["EMG"].n_samples == 16 and s.streams["Late"].n_samples == 3


def test_append_derived_streams_to_a_closed_session(tmp_path):
    fname = tmp_path / "s.h5"
    with SessionWriter(fname) as w:
        w.add_stream(_emg_spec()).append(np.ones((4, 3), np.float32), np.arange(4.0))
    with open_session(fname) as s:
        stop_time = s.info["stop_time"]
    with SessionWriter.append_to(fname) as w:
        with pytest.raises(ValueError, match="already exists"):
            w.add_stream(_emg_spec())
        w.add_stream(StreamSpec("FaceBox", "FaceBox", 4, "float32", 30.0, "derived")).append(
            np.zeros((2, 4), np.float32), [0.0, 1 / 30])
    with open_session(fname) as s:
        assert set(s.streams) == {"EMG", "FaceBox"} and s.info["stop_time"] == stop_time
        np.testing.assert_array_equal(s.streams["EMG"].data[:], np.ones((4, 3)))
    with pytest.raises(FileNotFoundError):
        SessionWriter.append_to(tmp_path / "missing.h5")


def _write_recording(fname, *, seconds: int = 30) -> None:
    """A 1-stream session written as the recorder writes (SWMR, a flush per 0.5 s chunk), then closed."""
    rng = np.random.default_rng(1)
    with SessionWriter(fname, subject_id="sub-01") as w:
        st = w.add_stream(_emg_spec())
        w.start_swmr()
        for k in range(2 * seconds):
            st.append(rng.normal(size=(1000, 3)).astype(np.float32) * 1e-4, (np.arange(1000) + 1000 * k) / 2000)
            st.append_clock_offsets([k / 2], [0.25], [1e-4])
            w.flush()


def _copy_truncated(fname, out, size: int):
    shutil.copyfile(fname, out)
    with open(out, "r+b") as f:
        f.truncate(size)
    return out


def _info_fails_fast(fname) -> str:
    """Run `emosync info` on a damaged file in a subprocess (a hang inside HDF5 cannot be interrupted in-process)."""
    started = time.monotonic()
    result = subprocess.run(emosync_command("info", str(fname)), capture_output=True, text=True, timeout=30)
    assert time.monotonic() - started < 20  # the interpreter's start-up included
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    return " ".join(result.stderr.split())  # rich wraps long lines


# 2 kB made the SWMR reader retry its metadata reads for minutes; 100 kB is a partial copy of this 0.7 MB file.
@pytest.mark.parametrize("size", [2_000, 100_000])
def test_truncated_session_fails_fast_naming_the_file(tmp_path, size):
    _write_recording(tmp_path / "s.h5")
    cut = _copy_truncated(tmp_path / "s.h5", tmp_path / "partial copy.h5", size)
    stderr = _info_fails_fast(cut)
    assert f"partial copy.h5 is truncated: it holds {size} bytes" in stderr
    started = time.monotonic()
    with pytest.raises(OSError, match=rf"partial copy\.h5 is truncated: it holds {size} bytes") as err:
        open_session(cut)
    assert time.monotonic() - started < 5
    assert "Copy it again" in str(err.value)


_KILLED_WRITER = """
import os, sys
import numpy as np
from acquisition import SessionWriter, StreamSpec
w = SessionWriter(sys.argv[1])
st = w.add_stream(StreamSpec("EMG", "EMG", 3, "float32", 2000.0, "emg-src"))
w.start_swmr()
for k in range(40):
    st.append(np.full((1000, 3), k, np.float32), np.arange(1000 * k, 1000 * (k + 1)) / 2000)
    w.flush()
os._exit(0)  # as if killed: the file is never closed and its SWMR-writer flags stay set
"""


def test_killed_recording_opens_in_swmr_mode_but_a_truncated_copy_of_it_fails_fast(tmp_path):
    fname = tmp_path / "killed.h5"
    subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(fname)], check=True, timeout=60)
    with open_session(fname) as s:
        assert s.live and "stop_time" not in s.info
        assert s.streams["EMG"].n_samples == 40_000  # everything up to the last flush
    cut = _copy_truncated(fname, tmp_path / "cut.h5", 100_000)
    assert "cut.h5 is truncated" in _info_fails_fast(cut)
    started = time.monotonic()
    with pytest.raises(OSError, match=r"cut\.h5 is truncated"):
        open_session(cut)
    assert time.monotonic() - started < 5


def test_damaged_or_foreign_files_name_the_file(tmp_path):
    (tmp_path / "notes.h5").write_text("not HDF5 at all")
    with pytest.raises(OSError, match=r"notes\.h5 is not a readable HDF5 session file"):
        open_session(tmp_path / "notes.h5")
    _write_recording(tmp_path / "s.h5", seconds=2)
    data = bytearray((tmp_path / "s.h5").read_bytes())
    data[4096:-4096] = bytes(len(data) - 8192)  # objects zeroed, superblock and size intact
    (tmp_path / "zeroed.h5").write_bytes(bytes(data))
    with pytest.raises((OSError, ValueError), match=r"zeroed\.h5 "):  # whichever check sees the damage first
        open_session(tmp_path / "zeroed.h5")

