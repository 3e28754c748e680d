"""Publish an Intel RealSense camera's aligned colour and depth as LSL streams (``[realsense]`` extra).

Depth cameras deliver two image streams that must stay paired: colour (RGB8) and depth
aligned to the colour camera, converted from the device's z16 units to millimetres
(``z16 * depth_scale``, the session format's ``DEPTH16-mm``). :class:`RealSenseSource`
publishes, per frameset:

- ``<prefix>-Color``: ``VideoRaw`` RGB8, ``H * W * 3`` int8 values per sample;
- ``<prefix>-Depth``: ``VideoRaw`` DEPTH16-mm, ``H * W`` int16 values per sample (reinterpreted
  as uint16 by the recorder);
- ``<prefix>-FrameIndex``: ``VideoFrameIndex`` ``[frame_index, lsl_time, color_device_ms, depth_device_ms]``,
  so the device's own hardware time stamps are kept next to the LSL time.

All three share one time stamp: ``pylsl.local_clock()`` when the frameset arrived. The
colour intrinsics (``fx, fy, ppx, ppy, width, height, model, coeffs``) and the depth scale
go into each stream's ``desc``, so depth can be back-projected to 3-D later.

``pyrealsense2`` is imported only when a real device is opened; the conversion and
publishing code takes any object with the pipeline's small interface, which is how it is
tested without hardware (``tests/acquisition/test_video_sources.py``).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Protocol

import numpy as np
import pylsl

from acquisition.utils.logs import logger
from acquisition.lsl import make_stream_info

#: Seconds of frames an outlet keeps for a slow inlet.
VIDEO_MAX_BUFFERED_S = 10
_UINT16_MAX = np.iinfo(np.uint16).max


class Pipeline(Protocol):
    """The part of ``pyrealsense2.pipeline`` this module uses (after ``start``)."""

    def wait_for_frames(self, timeout_ms: int = ...) -> Any:
        """Block until the next frameset; it has ``get_color_frame()`` and ``get_depth_frame()``."""


def _import_pyrealsense2() -> Any:
    try:
        import pyrealsense2 as rs
    except ImportError as err:
        raise ImportError(
            "RealSense cameras need pyrealsense2, which is not installed. Install the extra: "
            "pip install 'emosync[realsense]' (Intel publishes wheels for Linux x86_64, Windows "
            "and some macOS versions; elsewhere build librealsense with its Python bindings).") from err
    return rs


def open_realsense(serial: str | None = None, *, width: int = 640, height: int = 480,
                   fps: int = 30) -> tuple[Any, float, Any]:
    """Start a RealSense pipeline with colour (rgb8) and depth (z16) at the same size and rate.

    Parameters
    ----------
    serial : str | None
        Serial number of the camera to open (default: the first one found).
    width, height : int
        Frame size in pixels for both streams.
    fps : int
        Frame rate in Hz (a rate the camera supports: 6, 15, 30, 60, 90).

    Returns
    -------
    pipeline : pyrealsense2.pipeline
        The started pipeline.
    depth_scale_m : float
        Metres per z16 depth unit (typically 0.001).
    align : pyrealsense2.align
        Aligns depth to the colour camera; pass it to :class:`RealSenseSource`.
    """
    rs = _import_pyrealsense2()
    config = rs.config()
    if serial:
        config.enable_device(serial)
    config.enable_stream(rs.stream.color, width, height, rs.format.rgb8, fps)
    config.enable_stream(rs.stream.depth, width, height, rs.format.z16, fps)
    pipeline = rs.pipeline()
    try:
        profile = pipeline.start(config)
    except RuntimeError as err:
        raise RuntimeError(
            f"Could not start the RealSense camera {serial or '(first found)'} at {width}x{height} {fps} Hz: {err}. "
            "Check the USB 3 connection, that no other program (realsense-viewer) holds it, and that the "
            "camera supports this mode.") from err
    depth_scale = float(profile.get_device().first_depth_sensor().get_depth_scale())
    return pipeline, depth_scale, rs.align(rs.stream.color)


def intrinsics_of(frame: Any) -> dict[str, Any]:
    """Pinhole intrinsics of a frame's stream profile (pixels), as plain values.

    Returns ``{}`` when the frame does not carry a video stream profile.
    """
    try:
        intr = frame.profile.as_video_stream_profile().get_intrinsics()
    except AttributeError:
        return {}
    return {"width": int(intr.width), "height": int(intr.height), "fx": float(intr.fx), "fy": float(intr.fy),
            "ppx": float(intr.ppx), "ppy": float(intr.ppy), "model": str(intr.model),
            "coeffs": [float(c) for c in intr.coeffs]}


def depth_to_mm(z16: np.ndarray, depth_scale_m: float) -> np.ndarray:
    """Convert device depth units to millimetres.

    Parameters
    ----------
    z16 : array of uint16, shape (height, width)
        Raw depth in device units; 0 means no measurement.
    depth_scale_m : float
        Metres per unit (``depth_sensor.get_depth_scale()``).

    Returns
    -------
    depth_mm : array of uint16, shape (height, width)
        Depth in mm, rounded; 0 stays 0 (invalid), values beyond 65535 mm are clipped.
    """
    z16 = np.asarray(z16)
    scale_mm = depth_scale_m * 1000.0
    if np.isclose(scale_mm, 1.0, rtol=0, atol=1e-9):
        return z16.astype(np.uint16, copy=True)  # the common 1 mm unit: no arithmetic needed
    return np.clip(np.rint(z16.astype(np.float64) * scale_mm), 0, _UINT16_MAX).astype(np.uint16)


class RealSenseSource:
    """Publish aligned colour + depth framesets from a RealSense pipeline over LSL.

    Parameters
    ----------
    pipeline : Pipeline | None
        A started pipeline; None opens a camera with :func:`open_realsense` (needs pyrealsense2).
        Any object with ``wait_for_frames()`` returning a frameset with ``get_color_frame()`` /
        ``get_depth_frame()`` (frames with ``get_data()``, ``get_timestamp()``,
        ``get_frame_number()`` and optionally ``profile``) works.
    depth_scale_m : float | None
        Metres per depth unit; required with an injected ``pipeline``.
    align : object | None
        Called as ``align.process(frameset)`` before use (depth to colour); None when the
        frames are already aligned.
    name_prefix : str
        Stream names are ``<prefix>-Color``, ``<prefix>-Depth``, ``<prefix>-FrameIndex``.
    serial : str | None
        Device serial (opening a camera, and in ``source_id``).
    width, height, fps : int
        Mode to open a camera with (ignored for an injected pipeline, except ``fps`` as the nominal rate).
    color_format : ``"rgb8"`` | ``"bgr8"``
        Channel order the pipeline delivers colour in.
    timeout_ms : int
        How long to wait for a frameset before giving up.
    """

    def __init__(self, pipeline: Pipeline | None = None, *, depth_scale_m: float | None = None,
                 align: Any = None, name_prefix: str = "RealSense", serial: str | None = None,
                 width: int = 640, height: int = 480, fps: int = 30, color_format: str = "rgb8",
                 timeout_ms: int = 5000) -> None:
        if color_format not in ("rgb8", "bgr8"):
            raise ValueError(f"color_format must be 'rgb8' or 'bgr8', got {color_format!r}.")
        if pipeline is None:
            pipeline, depth_scale_m, align = open_realsense(serial, width=width, height=height, fps=fps)
        elif depth_scale_m is None:
            raise ValueError("An injected pipeline needs depth_scale_m (metres per depth unit, e.g. 0.001).")
        self.pipeline = pipeline
        self.depth_scale_m = float(depth_scale_m)  # type: ignore[arg-type]
        self.align = align
        self.fps = float(fps)
        self.color_format = color_format
        self.timeout_ms = timeout_ms
        self.n_frames = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # The first frameset fixes the shapes and intrinsics the outlets announce.
        self._pending = self._wait()
        color, depth = self._pending
        color_arr, depth_arr = np.asanyarray(color.get_data()), np.asanyarray(depth.get_data())
        if color_arr.ndim != 3 or color_arr.shape[2] != 3 or depth_arr.ndim != 2:
            raise ValueError(f"Expected colour (H, W, 3) and depth (H, W) frames, got {color_arr.shape} and "
                             f"{depth_arr.shape}; open the camera with rgb8/bgr8 colour and z16 depth.")
        if color_arr.shape[:2] != depth_arr.shape:
            raise ValueError(f"Colour {color_arr.shape[:2]} and depth {depth_arr.shape} differ in size: depth is not "
                             "aligned to colour. Pass align=pyrealsense2.align(pyrealsense2.stream.color).")
        self.color_shape = tuple(int(v) for v in color_arr.shape)
        self.depth_shape = tuple(int(v) for v in depth_arr.shape)
        self.intrinsics = intrinsics_of(color)
        host = socket.gethostname()
        base_id = f"emosync-realsense:{host}:{serial or 'device'}"
        self.source_id = base_id
        self.names = {k: f"{name_prefix}-{k}" for k in ("Color", "Depth", "FrameIndex")}
        self._color_outlet = self._video_outlet(self.names["Color"], "RGB8", self.color_shape, "int8",
                                                f"{base_id}:color")
        self._depth_outlet = self._video_outlet(self.names["Depth"], "DEPTH16-mm", self.depth_shape, "int16",
                                                f"{base_id}:depth")
        info = make_stream_info(self.names["FrameIndex"], "VideoFrameIndex", channel_count=4,
                                nominal_srate=self.fps, channel_format="double64", source_id=f"{base_id}:frames",
                                channel_labels=["frame_index", "lsl_time", "color_device_ms", "depth_device_ms"],
                                channel_units=["", "s", "ms", "ms"], channel_types=["misc"] * 4,
                                can_drop_samples=True)
        self._index_outlet = pylsl.StreamOutlet(info)

    def _video_outlet(self, name: str, encoding: str, shape: tuple[int, ...], fmt: str,
                      source_id: str) -> pylsl.StreamOutlet:
        info = make_stream_info(name, "VideoRaw", channel_count=int(np.prod(shape)), nominal_srate=self.fps,
                                channel_format=fmt, source_id=source_id, encoding=encoding, frame_shape=shape,
                                can_drop_samples=True, manufacturer="Intel RealSense via emosync")
        desc = info.desc()
        desc.append_child_value("depth_scale_m", repr(self.depth_scale_m))
        desc.append_child_value("aligned_to", "color")
        desc.append_child_value("clock", "local_clock() of this host at frameset arrival; device ms in FrameIndex")
        if self.intrinsics:
            node = desc.append_child("intrinsics")
            for key, value in self.intrinsics.items():
                node.append_child_value(key, " ".join(map(repr, value)) if isinstance(value, list) else str(value))
        return pylsl.StreamOutlet(info, max_buffered=VIDEO_MAX_BUFFERED_S)

    def _wait(self) -> tuple[Any, Any]:
        frameset = self.pipeline.wait_for_frames(self.timeout_ms)
        if self.align is not None:
            frameset = self.align.process(frameset)
        color, depth = frameset.get_color_frame(), frameset.get_depth_frame()
        if not color or not depth:
            raise RuntimeError("The RealSense frameset lacks a colour or depth frame; enable both streams.")
        return color, depth

    def step(self) -> float:
        """Wait for one frameset, convert it and publish it; return its LSL time stamp (s)."""
        if self._pending is not None:
            color, depth = self._pending
            self._pending = None
        else:
            color, depth = self._wait()
        stamp = pylsl.local_clock()  # arrival time; the device's clock is kept in FrameIndex
        rgb = np.asanyarray(color.get_data())
        if self.color_format == "bgr8":
            rgb = rgb[..., ::-1]
        depth_mm = depth_to_mm(np.asanyarray(depth.get_data()), self.depth_scale_m)
        if rgb.shape != self.color_shape or depth_mm.shape != self.depth_shape:
            raise RuntimeError(f"Frame size changed mid-stream ({rgb.shape}, {depth_mm.shape}); restart the source.")
        self._color_outlet.push_chunk(np.ascontiguousarray(rgb).reshape(1, -1).view(np.int8), [stamp])
        self._depth_outlet.push_chunk(depth_mm.reshape(1, -1).view(np.int16), [stamp])
        self._index_outlet.push_sample([float(self.n_frames), stamp, float(color.get_timestamp()),
                                        float(depth.get_timestamp())], stamp)
        self.n_frames += 1
        return stamp

    def run(self, duration_s: float | None = None, stop_event: threading.Event | None = None,
            max_frames: int | None = None) -> None:
        """Publish framesets until ``duration_s``, ``stop_event``, ``max_frames`` or :meth:`stop`."""
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while not self._stop.is_set() and not (stop_event is not None and stop_event.is_set()):
            if deadline is not None and time.monotonic() >= deadline:
                break
            if max_frames is not None and self.n_frames >= max_frames:
                break
            self.step()

    def start(self) -> None:
        """Publish in a background thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run_logged, name="realsense", daemon=True)
        self._thread.start()

    def _run_logged(self) -> None:
        try:
            self.run()
        except Exception as err:  # a background thread cannot raise to the caller: log it
            logger.error("RealSense source stopped: %s", err)

    def stop(self) -> None:
        """Stop publishing and stop the pipeline (if it has ``stop()``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        stop = getattr(self.pipeline, "stop", None)
        if callable(stop):
            try:
                stop()
            except RuntimeError as err:  # already stopped
                logger.debug("pipeline.stop(): %s", err)
