"""Direct camera capture with OpenCV (a video file stands in for the device) and its frame-index LSL stream."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pylsl
import pytest

from acquisition import open_session
from acquisition.devices.camera import CameraCapture
from acquisition.live.recorder import SessionRecorder


def _write_clip(path, n_frames=20, fps=20.0, size=(64, 48)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    colors = []
    for i in range(n_frames):
        rgb = (int(10 * i) % 256, 255 - int(10 * i) % 256, 128)
        colors.append(rgb)
        frame = np.zeros((size[1], size[0], 3), np.uint8)
        frame[:] = rgb[::-1]  # OpenCV writes BGR
        writer.write(frame)
    writer.release()
    return colors


def test_camera_frames_are_recorded_with_frame_index_stream(tmp_path):
    clip = tmp_path / "clip.avi"
    colors = _write_clip(clip)
    fname = tmp_path / "cam.h5"
    rec = SessionRecorder(fname, camera=str(clip))
    rec.start()
    index_name = f"{rec._camera.name}-FrameIndex"
    found = pylsl.resolve_bypred(f"source_id='{rec._camera.spec.source_id}:frames'", 1, 3.0)
    assert found and found[0].name() == index_name
    inlet = pylsl.StreamInlet(found[0])
    inlet.open_stream(timeout=3.0)
    rec.wait(1.6)
    index, stamps = inlet.pull_chunk(timeout=1.0, max_samples=100)
    inlet.close_stream()
    rec.stop()
    with open_session(fname) as s:
        st = s.streams["Camera"]
        assert st.n_samples == 20 and st.data.shape == (20, 48, 64, 3)
        means = st.data[:].reshape(20, -1, 3).mean(axis=1)
        np.testing.assert_allclose(means, np.array(colors, float), atol=8)  # RGB order, MJPG-lossy
        dt = np.diff(st.timestamps)
        assert np.all(dt > 0) and abs(np.median(dt) - 1 / 20) < 0.01  # a file is paced like a live camera
        assert len(st.clock_offsets) == 0  # stamped with the recorder's own clock
        np.testing.assert_array_equal(st.times, st.timestamps)
    # the frame-index stream lets other recorders align to the frames: index k <-> the same LSL time
    index = np.asarray(index)
    assert len(index) > 0
    k = index[:, 0].astype(int)
    np.testing.assert_allclose(index[:, 1], st.timestamps[k], atol=1e-9)


def test_bad_camera_source(tmp_path):
    with pytest.raises(RuntimeError, match="Could not open camera"):
        CameraCapture(str(tmp_path / "no_such_clip.avi"))


def test_requested_rate_paces_a_file_and_the_delivered_rate_is_stored(tmp_path, emosync_log):
    clip = tmp_path / "clip20.avi"
    _write_clip(clip, n_frames=75, fps=20.0)
    fname = tmp_path / "fast.h5"
    rec = SessionRecorder(fname, camera=str(clip), camera_fps=30.0, camera_exposure=50.0)
    rec.start()
    deadline = time.monotonic() + 10
    while rec._camera.running and time.monotonic() < deadline:
        time.sleep(0.1)
    rec.stop()
    with open_session(fname) as s:
        st = s.streams["Camera"]
        assert st.n_samples == 75 and st.nominal_srate == 30.0
        assert abs(np.median(np.diff(st.timestamps)) - 1 / 30) < 0.004  # paced at the requested 30, not the file's 20
        info = st.info
        assert info["requested_fps"] == 30.0 and info["requested_exposure"] == 50.0
        assert info["reported_fps"] == pytest.approx(20.0)  # what the file (driver) says
        assert info["delivered_fps"] == pytest.approx(30.0, rel=0.1) and info["delivered_fps_window_s"] >= 2.0
        assert info["frames_captured"] == 75
    assert "delivers" in emosync_log.text and "Exposure applies to cameras" in emosync_log.text


def test_stream_camera_reports_the_delivered_rate(tmp_path):
    from acquisition.devices.camera_stream import CameraStreamer

    clip = tmp_path / "clip.avi"
    _write_clip(clip, n_frames=60, fps=10.0)
    streamer = CameraStreamer(str(clip), fps=25.0, publish_frame_index=False)
    assert streamer.fps == 25.0
    streamer.run(duration_s=5.0)  # ends with the file, after 60 / 25 = 2.4 s
    assert streamer.stats() == {"read": 60, "published": 60, "dropped": 0}
    assert streamer.delivered_fps == pytest.approx(25.0, rel=0.1)
    with pytest.raises(ValueError, match="fps must be a positive"):
        CameraCapture(str(clip), fps=0.0)
