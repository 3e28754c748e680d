"""Capture a local camera (or a video file, paced in real time) with OpenCV.

Frames are stamped with ``pylsl.local_clock()`` when they are read and, for every
frame, one sample ``[frame_index, lsl_time, unix_time]`` is published on an LSL
stream ``<name>-FrameIndex`` (type ``VideoFrameIndex``), so other recorders such
as LabRecorder can align their data to the frames (the pattern of neurobooth-os).
The recorder's ``--camera`` and ``emosync stream-camera`` share this class.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from collections.abc import Callable

import cv2
import numpy as np
import pylsl

from acquisition.utils.logs import logger
from acquisition.lsl import make_stream_info
from acquisition.session.format import StreamSpec


class CameraCapture:
    """Read frames from an OpenCV source in a background thread.

    Parameters
    ----------
    source : int | str
        Camera index (``0``), or a video file / stream URL. A file is paced at its
        frame rate, as a live camera would deliver it.
    name : str | None
        Stream name (default ``Camera<index>`` or ``Camera``).
    publish_frame_index : bool
        Publish the per-frame ``VideoFrameIndex`` LSL stream.
    width, height : int | None
        Requested frame size in pixels (a hint to the camera driver; ignored for files).
    fps : float | None
        Requested frame rate in Hz (a hint to the camera driver; ignored for files).
    """

    def __init__(self, source: int | str, *, name: str | None = None, publish_frame_index: bool = True,
                 width: int | None = None, height: int | None = None, fps: float | None = None) -> None:
        if isinstance(source, str) and source.isdigit():
            source = int(source)
        self.source = source
        self.is_file = isinstance(source, str) and Path(source).is_file()
        self._capture = cv2.VideoCapture(source)
        # Ask the driver for a mode before the first read; cameras may ignore it, so the real
        # size and rate are read back from the frames and CAP_PROP_FPS below.
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, width), (cv2.CAP_PROP_FRAME_HEIGHT, height),
                            (cv2.CAP_PROP_FPS, fps)):
            if value is not None and not self.is_file:
                self._capture.set(prop, float(value))
        if not self._capture.isOpened():
            raise RuntimeError(
                f"Could not open camera {source!r}. Check the device index (0, 1, ...) or the file path, and "
                "that no other program holds the camera.")
        ok, first = self._capture.read()
        if not ok or first is None:
            self._capture.release()
            raise RuntimeError(f"Camera {source!r} opened but delivered no frame.")
        self._first = first
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else 30.0
        height, width = first.shape[:2]
        host = socket.gethostname()
        self.name = name or (f"Camera{source}" if isinstance(source, int) else "Camera")
        self.spec = StreamSpec(
            name=self.name, type="VideoRaw", channel_count=height * width * 3, channel_format="int8",
            nominal_srate=self.fps, source_id=f"emosync-camera:{host}:{source}", hostname=host,
            frame_shape=(height, width, 3), encoding="RGB8", can_drop_samples=True,
            extra={"capture": "opencv", "camera_source": str(source), "clock": "recorder local_clock at read"},
        )
        self._outlet = None
        if publish_frame_index:
            info = make_stream_info(
                f"{self.name}-FrameIndex", "VideoFrameIndex", channel_count=3, nominal_srate=self.fps,
                channel_format="double64", source_id=f"{self.spec.source_id}:frames",
                channel_labels=["frame_index", "lsl_time", "unix_time"], channel_units=["", "s", "s"],
                channel_types=["misc", "misc", "misc"], can_drop_samples=True)
            self._outlet = pylsl.StreamOutlet(info)
        self.n_frames = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, on_frame: Callable[[np.ndarray, float], None]) -> None:
        """Start capturing; ``on_frame(rgb_frame (H, W, 3) uint8, lsl_time_s)`` is called per frame."""
        self._thread = threading.Thread(target=self._run, args=(on_frame,), name=f"camera-{self.name}", daemon=True)
        self._thread.start()

    def _run(self, on_frame: Callable[[np.ndarray, float], None]) -> None:
        frame: np.ndarray | None = self._first
        started = time.monotonic()
        while not self._stop.is_set():
            if frame is None:
                ok, frame = self._capture.read()
                if not ok or frame is None:
                    logger.info("Camera %s: no more frames after %d", self.source, self.n_frames)
                    break
            if self.is_file:  # pace a file like a live camera
                self._stop.wait(max(0.0, started + self.n_frames / self.fps - time.monotonic()))
            stamp = pylsl.local_clock()
            on_frame(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), stamp)
            if self._outlet is not None:
                self._outlet.push_sample([float(self.n_frames), stamp, time.time()], stamp)
            self.n_frames += 1
            frame = None
        self._capture.release()

    @property
    def running(self) -> bool:
        """True while frames are being captured (false before start and once a file has ended)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def started(self) -> bool:
        """True once :meth:`start` was called."""
        return self._thread is not None

    def stop(self) -> None:
        """Stop capturing and release the camera."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        elif self._capture.isOpened():
            self._capture.release()
