"""Video sources: video-file import, camera streaming over LSL, RealSense (faked device), depth-PNG import."""

from __future__ import annotations

import json
import shutil
import time

import cv2
import h5py
import numpy as np
import pylsl
import pytest

from acquisition import open_session
from acquisition.live.recorder import SessionRecorder
from acquisition.io.video import VideoImportError, frame_timing, import_video


def _write_clip(path, n_frames=20, fps=20.0, size=(64, 48)):
    """An MJPG avi whose frame i is a flat colour with a moving bright square (so frames differ)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    frames = []
    for i in range(n_frames):
        rgb = np.zeros((size[1], size[0], 3), np.uint8)
        rgb[:] = ((10 * i) % 256, 255 - (10 * i) % 256, 128)
        rgb[4:12, 2 * i % (size[0] - 8): 2 * i % (size[0] - 8) + 8] = 255
        frames.append(rgb)
        writer.write(rgb[..., ::-1].copy())  # OpenCV writes BGR
    writer.release()
    return np.stack(frames)


def _cv2_frames(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame[..., ::-1])
    capture.release()
    return np.stack(frames)


# -- 1. video-file import -------------------------------------------------------------------------
@pytest.mark.parametrize("clip, fps", [("WolfgangLanger_Pexels.mp4", 23.976), ("single_face.mp4", 30.0)])
def test_import_real_clip(shared_data, tmp_path, clip, fps):
    src = shared_data / "faces" / clip
    expected = _cv2_frames(src)
    out = tmp_path / "clip.h5"
    report = import_video(src, out, start_time=100.0)
    assert report["n_frames"] == len(expected) and not report["timing"]["variable_frame_rate"]
    assert report["timestamp_source"] == "container" and report["warnings"] == []
    with open_session(out) as s:
        st = s.streams["RGB"]
        assert st.n_samples == len(expected) and st.info["encoding"] == "RGB8"
        t = st.timestamps
        assert t[0] == pytest.approx(100.0) and np.all(np.diff(t) > 0)
        np.testing.assert_allclose(np.diff(t), 1 / fps, rtol=1e-3)
        for k in (0, len(expected) // 2, len(expected) - 1):  # identical decode, RGB order
            np.testing.assert_array_equal(st.data[k], expected[k])
        assert st.info["source_fourcc"] == "h264" and st.info["source_fps"] == pytest.approx(fps, rel=1e-3)
        assert st.info["source_frame_count"] == len(expected)
    with h5py.File(out, "r") as f:
        assert f.attrs["source_format"] == "video" and f.attrs["source_file"] == clip
        assert len(f.attrs["source_sha256"]) == 64
        assert json.loads(f.attrs["video_import_report"])["n_frames"] == len(expected)


def test_import_generated_clip_compressed_and_never_overwrites(tmp_path):
    clip = tmp_path / "clip.avi"
    written = _write_clip(clip, n_frames=15, fps=15.0)
    out = tmp_path / "s.h5"
    report = import_video(clip, out, compression="png", name="Cam")
    assert report["n_frames"] == 15 and report["container"]["fourcc"] == "MJPG"
    with open_session(out) as s:
        st = s.streams["Cam"]
        data = st.data[:]
        assert data.shape == (15, 48, 64, 3)
        np.testing.assert_array_equal(data, _cv2_frames(clip))  # PNG is lossless
        assert np.abs(data.astype(int) - written).mean() < 6  # MJPG-lossy vs what was written
        np.testing.assert_allclose(st.timestamps, np.arange(15) / 15.0, atol=1e-6)
    before = out.read_bytes()
    with pytest.raises(FileExistsError):
        import_video(clip, out)
    assert out.read_bytes() == before


def test_import_corrupt_and_missing_video(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    with pytest.raises(VideoImportError, match="could not|no frame"):
        import_video(bad, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()  # nothing half-written
    with pytest.raises(FileNotFoundError, match="does not exist"):
        import_video(tmp_path / "nope.mp4", tmp_path / "out.h5")


def test_frame_timing_detects_variable_frame_rate():
    regular = np.arange(30) / 30.0
    assert not frame_timing(regular, 30.0)["variable_frame_rate"]
    vfr = np.concatenate([np.arange(10) / 30.0, 10 / 30.0 + np.arange(10) / 15.0])  # drops to 15 fps
    timing = frame_timing(vfr, 30.0)
    assert timing["variable_frame_rate"] and timing["max_deviation_from_index_s"] > 0.2
    assert not frame_timing(np.zeros(5), 30.0)["timestamps_usable"]


# -- 2. camera -> LSL --------------------------------------------------------------------------------
def _wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_stream_camera_is_recorded(tmp_path, unique_prefix):
    from acquisition.devices.camera_stream import CameraStreamer

    clip = tmp_path / "cam.avi"
    written = _write_clip(clip, n_frames=24, fps=20.0)
    name = f"{unique_prefix}Cam"
    streamer = CameraStreamer(str(clip), name=name)
    fname = tmp_path / "rec.h5"
    rec = SessionRecorder(fname, streams=[f"name='{name}'"])
    rec.start()
    try:
        assert _wait_for(lambda: any(w.inlet is not None for w in rec._workers.values()))
        time.sleep(0.5)  # the inlet's connection completes before the first frame
        streamer.run(duration_s=10)  # a file source ends by itself
        assert _wait_for(lambda: rec.status()[name]["received"] >= 24)
    finally:
        rec.stop()
    assert streamer.stats() == {"read": 24, "published": 24, "dropped": 0}
    with open_session(fname) as s:
        st = s.streams[name]
        assert st.info["encoding"] == "RGB8" and st.info["can_drop_samples"]
        assert st.info["source_id"] == streamer.source_id and st.info["nominal_srate"] == pytest.approx(20.0)
        data = st.data[:]
        assert data.shape == (24, 48, 64, 3)
        np.testing.assert_array_equal(data, _cv2_frames(clip))  # exactly what OpenCV decoded
        assert np.abs(data.astype(int) - written).mean() < 6
        assert abs(np.median(np.diff(st.timestamps)) - 1 / 20) < 0.01  # paced like a live camera


def test_stream_camera_resizes_and_paces_a_file_at_the_requested_rate(tmp_path, unique_prefix):
    """A 20 fps file asked for 10 fps is delivered like a camera set to 10 fps: every frame, 0.1 s apart."""
    from acquisition.devices.camera_stream import CameraStreamer

    clip = tmp_path / "cam.avi"
    _write_clip(clip, n_frames=20, fps=20.0)
    streamer = CameraStreamer(str(clip), name=f"{unique_prefix}Small", width=32, height=24, fps=10.0,
                              publish_frame_index=False)
    found = pylsl.resolve_bypred(f"name='{unique_prefix}Small'", 1, 3.0)
    inlet = pylsl.StreamInlet(found[0])
    inlet.open_stream(timeout=3.0)
    time.sleep(0.3)
    streamer.start()
    assert _wait_for(lambda: not streamer.running, timeout=5)  # the file ended, after 20 / 10 = 2 s
    time.sleep(0.2)
    frames, stamps = inlet.pull_chunk(timeout=0.0, max_samples=100)  # before the outlet goes away
    inlet.close_stream()
    streamer.stop()
    assert len(stamps) == streamer.n_published == 20 and streamer.n_dropped == 0
    assert abs(np.median(np.diff(stamps)) - 0.1) < 0.01
    assert np.asarray(frames).shape[1] == 24 * 32 * 3
    with pytest.raises(ValueError, match="both width and height"):
        CameraStreamer(str(clip), width=32)


# -- 3. RealSense, with a fake device behind the real conversion and publishing code ---------------
class _Intrinsics:
    width, height, fx, fy, ppx, ppy, model, coeffs = 8, 6, 5.5, 5.6, 3.9, 2.8, "distortion.brown_conrady", [0.0] * 5


class _Profile:
    def as_video_stream_profile(self):
        return self

    def get_intrinsics(self):
        return _Intrinsics()


class _Frame:
    def __init__(self, data, t_ms, number):
        self._data, self._t, self._n, self.profile = data, t_ms, number, _Profile()

    def get_data(self):
        return self._data

    def get_timestamp(self):
        return self._t

    def get_frame_number(self):
        return self._n

    def __bool__(self):
        return True


class _Frameset:
    def __init__(self, color, depth):
        self._color, self._depth = color, depth

    def get_color_frame(self):
        return self._color

    def get_depth_frame(self):
        return self._depth


class FakePipeline:
    """Frames k = 0, 1, ...: colour (k, 2k, 3k) everywhere, depth z16 = 1000 + 100 k + column index."""

    def __init__(self, shape=(6, 8)):
        self.shape, self.k, self.stopped = shape, 0, False

    def wait_for_frames(self, timeout_ms=5000):
        h, w = self.shape
        k = self.k
        self.k += 1
        color = np.empty((h, w, 3), np.uint8)
        color[:] = (k, 2 * k, 3 * k)
        depth = (1000 + 100 * k + np.arange(w, dtype=np.uint16)[None, :].repeat(h, 0)).astype(np.uint16)
        depth[0, 0] = 0  # an invalid pixel stays 0
        depth[0, 1] = 65000  # beyond 16-bit once scaled: clipped
        time.sleep(0.02)
        return _Frameset(_Frame(color, 5000.0 + 33.3 * k, k), _Frame(depth, 5000.1 + 33.3 * k, k))

    def stop(self):
        self.stopped = True


def test_realsense_fake_device_publishes_aligned_rgb_and_depth_mm(tmp_path, unique_prefix):
    from acquisition.devices.realsense import RealSenseSource

    prefix = f"{unique_prefix}RS"
    pipeline = FakePipeline()
    # 0.0002 m per unit (TUM-like): z16 1000 -> 200 mm
    source = RealSenseSource(pipeline, depth_scale_m=0.0002, name_prefix=prefix, fps=30)
    fname = tmp_path / "rs.h5"
    rec = SessionRecorder(fname, streams=[f"starts-with(name,'{prefix}-')"])
    rec.start()
    try:
        assert _wait_for(lambda: sum(w.inlet is not None for w in rec._workers.values()) == 3)
        time.sleep(0.5)
        source.run(max_frames=10)
        assert _wait_for(lambda: all(v["received"] >= 10 for v in rec.status().values()))
    finally:
        rec.stop()
        source.stop()
    assert pipeline.stopped
    with open_session(fname) as s:
        color, depth, index = (s.streams[f"{prefix}-{k}"] for k in ("Color", "Depth", "FrameIndex"))
        assert color.info["encoding"] == "RGB8" and depth.info["encoding"] == "DEPTH16-mm"
        assert depth.info["unit"] == "mm" and color.n_samples == depth.n_samples == index.n_samples == 10
        rgb, mm = color.data[:], depth.data[:]
        k = np.arange(10)
        np.testing.assert_array_equal(rgb[:, 2, 3], np.stack([k, 2 * k, 3 * k], 1))
        expected = np.rint((1000 + 100 * k[:, None] + np.arange(8)[None, :]) * 0.2)
        np.testing.assert_array_equal(mm[:, 3, :], expected)
        assert np.all(mm[:, 0, 0] == 0) and np.all(mm[:, 0, 1] == 13000)
        np.testing.assert_array_equal(color.timestamps, depth.timestamps)  # one stamp per frameset
        idx = index.data[:]
        np.testing.assert_array_equal(idx[:, 0], k)
        np.testing.assert_allclose(idx[:, 2], 5000.0 + 33.3 * k)  # device time kept
        np.testing.assert_allclose(idx[:, 1], color.timestamps)
        assert "<depth_scale_m>0.0002</depth_scale_m>" in depth.info["info_xml"]
        assert "<fx>5.5</fx>" in color.info["info_xml"]


def test_realsense_conversion_and_missing_dependency(monkeypatch):
    import sys

    from acquisition.devices import realsense

    z = np.array([[0, 1000, 65535]], np.uint16)
    np.testing.assert_array_equal(realsense.depth_to_mm(z, 0.001), z)
    np.testing.assert_array_equal(realsense.depth_to_mm(z, 0.0001), [[0, 100, 6554]])
    np.testing.assert_array_equal(realsense.depth_to_mm(z, 0.002), [[0, 2000, 65535]])
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)
    with pytest.raises(ImportError, match=r"emosync\[realsense\]"):
        realsense.RealSenseSource()
    with pytest.raises(ValueError, match="depth_scale_m"):
        realsense.RealSenseSource(FakePipeline())


# -- 4. depth-PNG folders ------------------------------------------------------------------------
@pytest.mark.parametrize("camera, scale, raw_median", [("redwood", 1.0, 1861), ("tum", 0.2, 12075)])
def test_import_real_depth_frames(shared_data, tmp_path, camera, scale, raw_median):
    from acquisition.io.depth import import_depth

    folder = tmp_path / camera  # one folder per camera: the two datasets use different units
    folder.mkdir()
    for src in sorted((shared_data / "depth").glob(f"{camera}_*")):
        shutil.copy(src, folder / src.name)
    raw = cv2.imread(str(next(folder.glob("*depth*"))), cv2.IMREAD_UNCHANGED)
    out = tmp_path / f"{camera}.h5"
    report = import_depth(folder, out, rate=30, depth_scale_mm=scale)
    assert report["n_depth_frames"] == 1 and report["n_color_frames"] == 1 and report["warnings"] == []
    assert 500 < report["median_depth_mm"] < 5000  # a room scene
    with open_session(out) as s:
        depth, rgb = s.streams["Depth"], s.streams["RGB"]
        assert depth.info["encoding"] == "DEPTH16-mm" and depth.info["unit"] == "mm"
        mm = depth.data[0]
        assert mm.dtype == np.uint16 and mm.shape == (480, 640)
        assert np.median(mm[mm > 0]) == pytest.approx(raw_median * scale, abs=1)
        np.testing.assert_array_equal(mm == 0, raw == 0)  # invalid pixels stay invalid
        color = cv2.imread(str(next(folder.glob("*color*"))))[..., ::-1]
        np.testing.assert_array_equal(rgb.data[0], color)  # PNG storage is lossless
        assert depth.info["depth_scale_mm"] == scale


def test_import_depth_sequence_with_timestamps_file(tmp_path):
    from acquisition.io.depth import import_depth

    folder = tmp_path / "seq"
    folder.mkdir()
    stamps = 1305031102.0 + np.array([0.0, 0.031, 0.07, 0.1])
    lines = ["# timestamp filename"]
    for k, t in enumerate(stamps):
        cv2.imwrite(str(folder / f"{t:.6f}.png"), np.full((4, 5), 5000 + 500 * k, np.uint16))
        lines.append(f"{t:.6f} depth/{t:.6f}.png")
    (tmp_path / "depth.txt").write_text("\n".join(reversed(lines[1:])) + "\n")  # order must not matter
    out = tmp_path / "seq.h5"
    report = import_depth(folder, out, rate=None, depth_scale_mm=0.2, timestamps=tmp_path / "depth.txt")
    assert report["n_depth_frames"] == 4 and report["n_color_frames"] == 0
    with open_session(out) as s:
        st = s.streams["Depth"]
        np.testing.assert_allclose(st.timestamps, stamps, atol=1e-6)
        np.testing.assert_array_equal(st.data[:, 0, 0], [1000, 1100, 1200, 1300])  # 5000 units per metre
    (folder / "z_rgb.png").write_bytes(cv2.imencode(".png", np.zeros((4, 5, 3), np.uint8))[1].tobytes())
    from acquisition.io.video import VideoImportError

    with pytest.raises(VideoImportError, match="not a 16-bit"):
        import_depth(folder, tmp_path / "bad.h5", rate=30)


# -- command line ---------------------------------------------------------------------------------
def test_cli_commands(tmp_path):
    from typer.testing import CliRunner

    import typer

    from acquisition.cli import imports as cli_imports
    from acquisition.cli import stream as cli_stream

    app = typer.Typer()
    app.command("import-video")(cli_imports.import_video)
    app.command("import-depth")(cli_imports.import_depth)
    app.command("stream-camera")(cli_stream.stream_camera)
    runner = CliRunner()
    clip = tmp_path / "clip.avi"
    _write_clip(clip, n_frames=6, fps=12.0)
    result = runner.invoke(app, ["import-video", str(clip), str(tmp_path / "v.h5"), "--start-time", "5", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["first_time_s"] == pytest.approx(5.0)
    result = runner.invoke(app, ["import-video", str(clip), str(tmp_path / "v.h5")])
    assert result.exit_code == 1  # never overwrites
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    result = runner.invoke(app, ["import-video", str(bad), str(tmp_path / "b.h5")])
    assert result.exit_code == 1 and not (tmp_path / "b.h5").exists()
    folder = tmp_path / "d"
    folder.mkdir()
    cv2.imwrite(str(folder / "0001.png"), np.full((4, 5), 1500, np.uint16))
    result = runner.invoke(app, ["import-depth", str(folder), str(tmp_path / "d.h5"), "--rate", "15"])
    assert result.exit_code == 0 and "median 1500 mm" in result.output
    result = runner.invoke(app, ["stream-camera", "--device", str(tmp_path / "missing.avi")])
    assert result.exit_code == 1
