"""Publish a local camera (or a video file, paced in real time) as an LSL ``VideoRaw`` RGB8 stream.

``emosync stream-camera`` makes a webcam a network source that any recorder (emosync,
LabRecorder) records alongside EMG and EEG, instead of capturing it inside the recorder
(``emosync record --camera``). Both paths share one capture implementation,
:class:`acquisition.devices.camera.CameraCapture`; this module only adds the frame outlet. Each
frame goes out as one LSL sample of ``H * W * 3`` int8 values (LSL has no uint8; the
recorder reinterprets them), stamped with ``pylsl.local_clock()`` when it was read, with
``desc/encoding`` = ``RGB8`` and ``desc/frame`` describing the shape, the convention of
:mod:`synth.rig.simulator`.
"""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pylsl

from acquisition.utils.logs import logger
from acquisition.devices.camera import CameraCapture
from acquisition.lsl import make_stream_info

#: Seconds of frames an outlet keeps for a slow inlet (video is large: keep it short).
VIDEO_MAX_BUFFERED_S = 10


class CameraStreamer:
    """Capture a camera with :class:`~acquisition.devices.camera.CameraCapture` and push every frame to LSL.

    Parameters
    ----------
    source : int | str
        Camera index (``0``) or a video file / URL (files are paced at their frame rate).
    name : str | None
        LSL stream name (default ``Camera<index>``); the frame-index companion stream is
        ``<name>-FrameIndex``.
    width, height : int | None
        Frame size to publish in pixels, asked of the camera first; frames of another size are
        resized (``cv2.INTER_AREA``).
        Give both or neither.
    fps : float | None
        Frame rate to ask of the camera (a video file is paced at it) and the highest rate to
        publish (Hz); faster frames are dropped. Also the stream's nominal rate (default: the
        source's rate). The delivered rate is measured over the first seconds and logged (see
        :meth:`stats`).
    exposure : float | None
        Manual exposure in the driver's units (see :class:`~acquisition.devices.camera.CameraCapture`);
        None keeps auto exposure.
    publish_frame_index : bool
        Also publish ``<name>-FrameIndex`` (``[frame_index, lsl_time, unix_time]`` per frame).

    Notes
    -----
    The outlet exists once the object is constructed, so recorders can resolve it before
    :meth:`start` delivers the first frame. ``source_id`` is ``emosync-camera:<host>:<source>``,
    stable per host and device, so a restarted streamer rejoins a running recording.
    """

    def __init__(self, source: int | str, *, name: str | None = None, width: int | None = None,
                 height: int | None = None, fps: float | None = None, exposure: float | None = None,
                 publish_frame_index: bool = True) -> None:
        if (width is None) != (height is None):
            raise ValueError(f"Give both width and height, or neither (got width={width}, height={height}).")
        if fps is not None and not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}.")
        # The size and rate go to the driver as hints first; whatever it delivers is resized/dropped below.
        self.capture = CameraCapture(source, name=name, publish_frame_index=publish_frame_index, width=width,
                                     height=height, fps=fps, exposure=exposure)
        spec = self.capture.spec
        h0, w0 = spec.frame_shape[:2]  # type: ignore[index]
        self.frame_shape = (int(height), int(width), 3) if width is not None else (h0, w0, 3)
        self.fps = float(fps) if fps is not None else self.capture.fps
        self.name = self.capture.name
        self.source_id = spec.source_id
        if self.frame_shape[:2] != (h0, w0):
            logger.info("Camera %s delivers %dx%d; publishing %dx%d (resized)", source, w0, h0,
                        self.frame_shape[1], self.frame_shape[0])
        info = make_stream_info(
            self.name, "VideoRaw", channel_count=int(np.prod(self.frame_shape)), nominal_srate=self.fps,
            channel_format="int8", source_id=self.source_id, encoding="RGB8", frame_shape=self.frame_shape,
            can_drop_samples=True)
        info.desc().append_child_value("capture", "opencv")
        info.desc().append_child_value("camera_source", str(source))
        info.desc().append_child_value("clock", "local_clock() of this host when the frame was read")
        for key, value in (("requested_fps", fps), ("requested_exposure", exposure)):
            if value is not None:
                info.desc().append_child_value(key, repr(float(value)))
        self._outlet = pylsl.StreamOutlet(info, max_buffered=VIDEO_MAX_BUFFERED_S)
        self.n_published = 0
        self.n_dropped = 0
        self._last_stamp = -np.inf
        self._done = threading.Event()

    def start(self) -> None:
        """Start capturing and publishing in a background thread (returns at once)."""
        self.capture.start(self._on_frame)

    def _on_frame(self, rgb: np.ndarray, stamp: float) -> None:
        # Throttle with a small tolerance so a 30 Hz camera is not halved by jitter at --fps 30. A file is
        # already paced at fps by the capture; a frame it delivers late is followed by one on time, which
        # the throttle would drop.
        if not self.capture.is_file and stamp - self._last_stamp < 0.8 / self.fps:
            self.n_dropped += 1
            return
        self._last_stamp = stamp
        if rgb.shape != self.frame_shape:
            rgb = cv2.resize(rgb, (self.frame_shape[1], self.frame_shape[0]), interpolation=cv2.INTER_AREA)
        # push_chunk passes a contiguous numpy block straight to liblsl; push_sample would copy value by value.
        self._outlet.push_chunk(np.ascontiguousarray(rgb).reshape(1, -1).view(np.int8), [stamp])
        self.n_published += 1

    @property
    def running(self) -> bool:
        """True while frames are being captured (false once a file has ended)."""
        return self.capture.running

    def run(self, duration_s: float | None = None, stop_event: threading.Event | None = None) -> None:
        """Publish until ``duration_s`` passed, ``stop_event`` is set, or the source ends; then stop."""
        if not self.capture.started:
            self.start()
        deadline = None if duration_s is None else time.monotonic() + duration_s
        try:
            while self.running and not (stop_event is not None and stop_event.is_set()):
                if deadline is not None and time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop capturing, release the camera and close the outlet."""
        self.capture.stop()
        self._outlet = None  # type: ignore[assignment]  # drops the outlet: recorders see the stream end

    def stats(self) -> dict[str, int]:
        """Frames read, published and dropped by the ``fps`` limit."""
        return {"read": self.capture.n_frames, "published": self.n_published, "dropped": self.n_dropped}

    @property
    def delivered_fps(self) -> float:
        """Frames per second the camera delivered over its first seconds (Hz; NaN before two frames)."""
        return self.capture.rate_report()["delivered_fps"]
