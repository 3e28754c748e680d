"""Storage forms of video frames (raw, HDF5 filters, per-frame images), reading windows into a buffer, auto choice."""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from acquisition import SessionWriter, StreamSpec, open_session
from acquisition.session.alignment import window
from acquisition.session.compression_choice import choose_frame_compression


def _face_like_frames(n, h=60, w=80):
    """Smooth pictures with a moving bright disc: compressible like camera frames, different from each other."""
    y, x = np.mgrid[:h, :w]
    frames = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        disc = ((x - 10 - i) ** 2 + (y - h / 2) ** 2) < 150
        frames[i] = (np.stack([(x // 8) * 20, (y // 8) * 25, disc * 200], axis=-1) % 256).astype(np.uint8)
    return frames


def _spec(compression, shape=(60, 80, 3), rate=100.0):
    encoding = "RGB8" if len(shape) == 3 else "DEPTH16-mm"
    return StreamSpec("Cam", "VideoRaw", int(np.prod(shape)), "int8" if len(shape) == 3 else "int16", rate, "cam-1",
                      frame_shape=shape, encoding=encoding, compression=compression, can_drop_samples=True)


@pytest.mark.parametrize("compression", ["none", "lz4", "blosc2", "png"])
def test_lossless_forms_round_trip_exactly(tmp_path, compression):
    frames = _face_like_frames(30)
    depth = (np.arange(30 * 60 * 80).reshape(30, 60, 80) % 4000 + 300).astype(np.uint16)
    fname = tmp_path / f"{compression}.h5"
    with SessionWriter(fname) as w:
        w.add_stream(_spec(compression)).append(frames, np.arange(30) / 100)
        w.add_stream(StreamSpec("Depth", "VideoRaw", 60 * 80, "int16", 100.0, "cam-2", frame_shape=(60, 80),
                                encoding="DEPTH16-mm", compression=compression)).append(depth, np.arange(30) / 100)
    with open_session(fname) as s:
        rgb = s.streams["Cam"]
        assert rgb.info["compression"] == compression
        np.testing.assert_array_equal(rgb.data[:], frames)
        np.testing.assert_array_equal(rgb.data[[29, 3, 3]], frames[[29, 3, 3]])
        np.testing.assert_array_equal(s.streams["Depth"].data[:], depth)
        stored = rgb._group["data"].id.get_storage_size()
    if compression != "none":
        assert stored < 0.6 * frames.nbytes  # compressed on disk, exact on read


def test_filtered_stream_is_readable_by_a_fresh_process(tmp_path):
    """Our reader registers hdf5plugin's filters itself: a new interpreter reads without importing it first."""
    frames = _face_like_frames(10)
    fname = tmp_path / "lz4.h5"
    with SessionWriter(fname) as w:
        w.add_stream(_spec("lz4")).append(frames, np.arange(10) / 100)
    code = ("import sys; from acquisition import open_session; s = open_session(sys.argv[1]); "
            "print(int(s.streams['Cam'].data[:].astype('int64').sum())); "
            "print('hdf5plugin' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(fname)], capture_output=True, text=True, check=True)
    total, imported = out.stdout.split()
    assert int(total) == int(frames.astype(np.int64).sum()) and imported == "True"
    with h5py.File(fname, "r") as f:  # the filter really is in the file (id 32004: LZ4, registered by hdf5plugin)
        assert f["streams/Cam/data"].id.get_create_plist().get_filter(0)[0] == 32004


@pytest.mark.parametrize("compression", ["none", "lz4", "png"])
def test_window_reads_into_a_reused_buffer(tmp_path, compression):
    frames = _face_like_frames(50)
    fname = tmp_path / "w.h5"
    with SessionWriter(fname) as w:
        w.add_stream(_spec(compression)).append(frames, 1000 + np.arange(50) / 100)
    buffer = np.zeros((40, 60, 80, 3), np.uint8)
    with open_session(fname) as s:
        st = s.streams["Cam"]
        win = window(st, 1000.1, 1000.3, out=buffer)
        assert win.first_index == 10 and win.data.shape[0] == 20
        assert np.shares_memory(win.data, buffer)
        np.testing.assert_array_equal(win.data, frames[10:30])
        np.testing.assert_array_equal(window(st, 1000.1, 1000.3).data, frames[10:30])  # without a buffer
        with pytest.raises(ValueError, match="out must have at least 20 rows"):
            window(st, 1000.1, 1000.3, out=np.zeros((5, 60, 80, 3), np.uint8))
        np.testing.assert_array_equal(st.data[5:9, :10, :20], frames[5:9, :10, :20])  # partial frames


def test_bad_storage_forms_are_clear_errors():
    with pytest.raises(ValueError, match="compression must be one of"):
        _spec("zip")
    with pytest.raises(ValueError, match="depth must be stored losslessly"):
        _spec("jpeg", shape=(60, 80))
    with pytest.raises(ValueError, match="applies to video frames only"):
        StreamSpec("EMG", "EMG", 2, "float32", 1000.0, "emg", compression="lz4")


def test_auto_choice_measures_lossless_forms_and_says_why():
    frames = _face_like_frames(8)
    choice = choose_frame_compression(_spec("none", rate=30.0), frames)
    by_form = {t.compression: t for t in choice.trials}
    assert set(by_form) == {"lz4", "blosc2", "png", "none"} and choice.compression in by_form
    assert all(t.cpu_ms_per_frame > 0 and t.ratio > 0 and not t.error for t in by_form.values())
    assert by_form["none"].ratio == pytest.approx(1.0, rel=0.05)
    # 30 fps of 80x60 frames is easy for every form: the most compact one wins, and the reason says so
    assert round(by_form[choice.compression].ratio, 1) == max(round(t.ratio, 1) for t in by_form.values())
    assert "most compact form that keeps up" in choice.reason
    assert json.loads(choice.to_json())["compression"] == choice.compression
    # an impossible rate: nothing keeps up, the fastest is taken and the reason warns
    hopeless = choose_frame_compression(_spec("none", rate=1e9), frames)
    assert "no form keeps up" in hopeless.reason and "expect dropped frames" in hopeless.reason
    with pytest.raises(ValueError, match="lossless storage forms"):
        choose_frame_compression(_spec("none"), frames, candidates=("jpeg",))
    with pytest.raises(ValueError, match="not a video stream"):
        choose_frame_compression(StreamSpec("EMG", "EMG", 2, "float32", 1000.0, "emg"), frames)


def test_parallel_lz4_read_equals_hdf5s_own(tmp_path):
    """The multi-core LZ4 path returns exactly what HDF5's filter returns, incompressible frames included."""
    from acquisition.session.lz4_frames import is_plain_lz4, read_lz4_frames

    frames = _face_like_frames(12)
    frames[5] = np.random.default_rng(0).integers(0, 256, frames[5].shape, dtype=np.uint8)  # stored uncompressed
    fname = tmp_path / "lz4.h5"
    with SessionWriter(fname) as w:
        w.add_stream(_spec("lz4")).append(frames, np.arange(12) / 100)
        w.add_stream(StreamSpec("B2", "VideoRaw", 60 * 80 * 3, "int8", 100.0, "cam-2", frame_shape=(60, 80, 3),
                                encoding="RGB8", compression="blosc2")).append(frames, np.arange(12) / 100)
    with open_session(fname) as s:
        data = s.streams["Cam"].data
        assert data._lz4 and not s.streams["B2"].data._lz4  # only plain LZ4 takes the parallel path
        out = np.zeros((12, 60, 80, 3), np.uint8)
        assert read_lz4_frames(data._dataset, 0, 12, out)
        np.testing.assert_array_equal(out, frames)
        np.testing.assert_array_equal(data[2:9], frames[2:9])
        hdf5 = s.streams["Cam"]._group["data"]
        assert is_plain_lz4(hdf5)
        np.testing.assert_array_equal(hdf5[2:9], frames[2:9])
        # a C-contiguous buffer is required; anything else falls back to HDF5's own reading
        assert not read_lz4_frames(data._dataset, 0, 4, np.zeros((4, 80, 60, 3), np.uint8).transpose(0, 2, 1, 3))
