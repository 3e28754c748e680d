"""Direct camera capture with OpenCV (a video file stands in for the device) and its frame-index LSL stream."""

from __future__ import annotations

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
