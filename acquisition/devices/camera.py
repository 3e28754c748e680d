"""Capture a local camera (or a video file, paced in real time) with OpenCV.

Frames are stamped with ``pylsl.local_clock()`` when they are read and, for every
frame, one sample ``[frame_index, lsl_time, unix_time]`` is published on an LSL
stream ``<name>-FrameIndex`` (type ``VideoFrameIndex``), so other recorders such
as LabRecorder can align their data to the frames (the pattern of neurobooth-os).
The recorder's ``--camera`` and ``emosync stream-camera`` share this class.

A requested frame rate and exposure are asked of the driver (``CAP_PROP_FPS``,
``CAP_PROP_AUTO_EXPOSURE`` then ``CAP_PROP_EXPOSURE``); cameras honour them only in the modes
they support, and drivers often report a rate they do not deliver. So the rate actually
delivered is measured over the first :data:`RATE_WINDOW_S` seconds of frames, logged, and
kept (:meth:`CameraCapture.rate_report`; the recorder stores it as stream attributes). A video
file is paced at the requested rate (default: its own), as a live camera would deliver it.
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

#: Seconds of frames over which the delivered frame rate is measured.
RATE_WINDOW_S = 2.0
#: ``CAP_PROP_AUTO_EXPOSURE`` values that mean "manual": V4L2 (Linux) first, then DirectShow/MSMF.
_MANUAL_EXPOSURE_MODES = (1.0, 0.25)


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
        Requested frame rate in Hz: asked of the camera driver, or the rate a video file is paced
        at (default: the camera's or the file's own rate).
    exposure : float | None
        Manual exposure in the driver's units (``cv2.CAP_PROP_EXPOSURE``; V4L2 counts 100 us steps,
        DirectShow log2 seconds). Auto exposure is switched off first. None keeps the camera's
        auto exposure; ignored (with a warning) for files.

    Attributes
    ----------
    fps : float
        The nominal frame rate (Hz): the requested one, else what the driver or file reports.
    delivered_fps : float
        Frames per second actually delivered over the first :data:`RATE_WINDOW_S` seconds (NaN
        until then).
    """

    def __init__(self, source: int | str, *, name: str | None = None, publish_frame_index: bool = True,
                 width: int | None = None, height: int | None = None, fps: float | None = None,
                 exposure: float | None = None) -> None:
        if fps is not None and not (np.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive frame rate in Hz, got {fps}.")
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
        self.requested = {"fps": fps, "exposure": exposure}
        self.reported_exposure = self._set_exposure(exposure)
        ok, first = self._capture.read()
        if not ok or first is None:
            self._capture.release()
            raise RuntimeError(f"Camera {source!r} opened but delivered no frame.")
        self._first = first
        reported = self._capture.get(cv2.CAP_PROP_FPS)
        self.reported_fps = float(reported) if reported and np.isfinite(reported) and reported > 0 else float("nan")
        # A file is paced at the requested rate; a camera delivers what it can, nominally what was asked.
        self.fps = float(fps) if fps is not None else (self.reported_fps if self.reported_fps == self.reported_fps
                                                        else 30.0)
        if fps is not None and not self.is_file and self.reported_fps == self.reported_fps \
                and abs(self.reported_fps - fps) > 0.01 * fps:
            logger.warning("Camera %s was asked for %g fps but reports %g fps; the delivered rate is measured over "
                           "the first %g s", source, fps, self.reported_fps, RATE_WINDOW_S)
        height, width = first.shape[:2]
        host = socket.gethostname()
        self.name = name or (f"Camera{source}" if isinstance(source, int) else "Camera")
        self.spec = StreamSpec(
            name=self.name, type="VideoRaw", channel_count=height * width * 3, channel_format="int8",
            nominal_srate=self.fps, source_id=f"emosync-camera:{host}:{source}", hostname=host,
            frame_shape=(height, width, 3), encoding="RGB8", can_drop_samples=True,
            extra={"capture": "opencv", "camera_source": str(source), "clock": "recorder local_clock at read",
                   "requested_fps": float("nan") if fps is None else float(fps),
                   "requested_exposure": float("nan") if exposure is None else float(exposure),
                   "reported_fps": self.reported_fps, "reported_exposure": self.reported_exposure},
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
        self.delivered_fps = float("nan")
        self._stamps: list[float] = []  # of the first RATE_WINDOW_S seconds of frames
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _set_exposure(self, exposure: float | None) -> float:
        """Switch to manual exposure and ask for ``exposure``; return what the driver reports (NaN if unknown)."""
        if exposure is None:
            return float("nan")
        if self.is_file:
            logger.warning("Exposure applies to cameras; ignored for the video file %s", self.source)
            return float("nan")
        # Which value means "manual" depends on the backend; try each until one is accepted.
        if not any(self._capture.set(cv2.CAP_PROP_AUTO_EXPOSURE, mode) for mode in _MANUAL_EXPOSURE_MODES):
            logger.warning("Camera %s did not accept manual exposure mode; the exposure request may be ignored",
                           self.source)
        if not self._capture.set(cv2.CAP_PROP_EXPOSURE, float(exposure)):
            logger.warning("Camera %s did not accept exposure %g (driver units)", self.source, exposure)
        reported = self._capture.get(cv2.CAP_PROP_EXPOSURE)
        return float(reported) if np.isfinite(reported) else float("nan")

    def first_frame_rgb(self) -> np.ndarray:
        """The first frame (read when the camera opened), RGB, shape (height, width, 3) uint8."""
        return cv2.cvtColor(self._first, cv2.COLOR_BGR2RGB)

    def _measure_rate(self, stamp: float) -> None:
        """Collect the first seconds of frame times; then log and keep the delivered rate once."""
        if self.delivered_fps == self.delivered_fps:
            return
        self._stamps.append(stamp)
        span = self._stamps[-1] - self._stamps[0]
        if span >= RATE_WINDOW_S:
            self.delivered_fps = (len(self._stamps) - 1) / span
            logger.info("Camera %s delivers %.2f fps (measured over %.1f s; asked %s, driver reports %s)",
                        self.source, self.delivered_fps, span,
                        "-" if self.requested["fps"] is None else f"{self.requested['fps']:g}",
                        f"{self.reported_fps:g}")

    def rate_report(self) -> dict[str, float]:
        """Delivered frame rate (Hz) and the window it was measured over (s), for stream attributes.

        Before :data:`RATE_WINDOW_S` seconds of frames have come, the rate over the frames so far
        (NaN with fewer than two frames).
        """
        delivered, stamps = self.delivered_fps, self._stamps
        span = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
        if delivered != delivered and span > 0:
            delivered = (len(stamps) - 1) / span
        return {"delivered_fps": float(delivered), "delivered_fps_window_s": float(min(span, RATE_WINDOW_S)),
                "frames_captured": int(self.n_frames)}

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
            self._measure_rate(stamp)
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
