"""Import a video file (mp4, avi, mov...) into a session as an RGB8 stream.

A clip filmed by a stand-alone camera (or a phone) has no LSL time stamps, only the
presentation times its container stores per frame. :func:`import_video` keeps those
times (not ``frame_index / fps``, which is wrong for variable-frame-rate clips),
shifts them by ``start_time`` and writes the frames with :class:`~acquisition.session.writer.SessionWriter`,
so an imported clip is a session like any recording. It lives apart from
:mod:`acquisition.devices.camera` because a file import is offline: no pacing, no LSL, and the
time stamps come from the file rather than from the clock at read time.

Decoding uses OpenCV (FFmpeg backend): after each ``read()``, ``CAP_PROP_POS_MSEC`` is
the presentation time of the frame just decoded. PyAV is not used (not a dependency);
OpenCV's FFmpeg backend reads the same container time stamps.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from acquisition.io.importing import new_session_file, source_metadata
from acquisition.session.format import StreamSpec
from acquisition.session.writer import SessionWriter, StreamWriter, check_output_path
from acquisition.utils.docs import fill_doc
from acquisition.utils.hashing import file_sha256
from acquisition.utils.logs import logger, verbose

#: Frames written per append: bounds memory for long clips (~28 MB at 640x480 RGB).
_CHUNK_FRAMES = 32
#: A frame interval further than this fraction of the nominal period from it marks variable frame rate.
VFR_TOLERANCE = 0.25


class VideoImportError(ValueError):
    """The video (or depth-image folder) could not be read; nothing was written."""


@dataclass
class VideoProbe:
    """What the container says about a clip, before decoding it.

    Attributes
    ----------
    path : Path
        The video file.
    fourcc : str
        Codec four-character code (``"h264"``, ``"MJPG"``...); ``""`` when the backend does not say.
    fps : float
        Container frame rate in Hz (``nan`` when unknown).
    frame_count : int
        Frame count stored in the container (an estimate for some formats; -1 when unknown).
    width, height : int
        Frame size in pixels.
    duration_s : float
        ``frame_count / fps`` in seconds (``nan`` when either is unknown).
    """

    path: Path
    fourcc: str
    fps: float
    frame_count: int
    width: int
    height: int
    duration_s: float


def _fourcc_text(code: float) -> str:
    value = int(code)
    if value <= 0:
        return ""
    text = value.to_bytes(4, "little").decode("ascii", "replace")
    return text.strip("\x00 ")


#: Leading bytes of still-image formats, which OpenCV's FFmpeg backend would open as a one-frame "video".
_IMAGE_MAGIC = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG", b"BM": "BMP", b"II*\x00": "TIFF",
                b"MM\x00*": "TIFF"}


def _open_capture(path: Path) -> cv2.VideoCapture:
    if not path.is_file():
        raise FileNotFoundError(f"Video file {path} does not exist. Check the path.")
    with open(path, "rb") as f:
        head = f.read(8)
    image = next((kind for magic, kind in _IMAGE_MAGIC.items() if head.startswith(magic)), None)
    if image is not None:
        raise VideoImportError(f"{path} is a still {image} image, not a video. Import a folder of depth images "
                               "with import_depth (emosync import-depth), or make a clip of the frames first "
                               "(e.g. `ffmpeg -i frame_%04d.png OUT.mp4`).")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise VideoImportError(
            f"OpenCV could not open {path} as a video (unknown container or codec, or a corrupt file). "
            "Check that it plays in a video player; re-encode it if needed, e.g. "
            "`ffmpeg -i IN -c:v libx264 OUT.mp4`.")
    return capture


def probe_video(path: str | os.PathLike) -> VideoProbe:
    """Read a clip's container metadata without decoding it.

    Parameters
    ----------
    path : path-like
        The video file.

    Returns
    -------
    probe : VideoProbe
        Codec, frame rate, frame count, size and duration as the container states them.
    """
    path = Path(path)
    capture = _open_capture(path)
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        fps = fps if np.isfinite(fps) and fps > 0 else float("nan")
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        count = count if count > 0 else -1
        return VideoProbe(path=path, fourcc=_fourcc_text(capture.get(cv2.CAP_PROP_FOURCC)), fps=fps,
                          frame_count=count, width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                          height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                          duration_s=count / fps if count > 0 and fps == fps else float("nan"))
    finally:
        capture.release()


def iter_video_frames(path: str | os.PathLike) -> Iterator[tuple[np.ndarray, float]]:
    """Decode a clip frame by frame with its container time stamps.

    Parameters
    ----------
    path : path-like
        The video file.

    Yields
    ------
    frame : array of uint8, shape (height, width, 3)
        The frame in **RGB** order (OpenCV decodes BGR; converted here).
    pts_s : float
        Presentation time of the frame in seconds from the start of the clip
        (``CAP_PROP_POS_MSEC`` after the read), as stored in the container.
    """
    capture = _open_capture(Path(path))
    try:
        while True:
            ok, frame = capture.read()
            if not ok or frame is None:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), float(capture.get(cv2.CAP_PROP_POS_MSEC)) / 1e3
    finally:
        capture.release()


def frame_timing(pts_s: np.ndarray, fps: float) -> dict[str, Any]:
    """Check container time stamps and decide whether the clip has a variable frame rate.

    Parameters
    ----------
    pts_s : array of float, shape (n_frames,)
        Presentation times in seconds.
    fps : float
        The container's nominal frame rate in Hz (``nan`` if unknown).

    Returns
    -------
    timing : dict
        ``timestamps_usable`` (strictly increasing and not all zero), ``effective_fps`` (Hz,
        from first to last frame), ``interval_min_s`` / ``interval_median_s`` / ``interval_max_s``,
        ``variable_frame_rate`` (some interval differs from ``1 / fps`` by more than
        ``VFR_TOLERANCE`` of a period) and ``max_deviation_from_index_s``: the largest difference
        between the container times and ``frame_index / fps`` (what a naive import would use).
    """
    pts_s = np.asarray(pts_s, dtype=np.float64)
    n = pts_s.size
    out: dict[str, Any] = {"timestamps_usable": False, "effective_fps": None, "interval_min_s": None,
                           "interval_median_s": None, "interval_max_s": None, "variable_frame_rate": False,
                           "max_deviation_from_index_s": None}
    if n < 2:
        out["timestamps_usable"] = n == 1
        return out
    dt = np.diff(pts_s)
    out["timestamps_usable"] = bool(np.all(dt > 0))
    if not out["timestamps_usable"]:
        return out
    out.update(effective_fps=float((n - 1) / (pts_s[-1] - pts_s[0])), interval_min_s=float(dt.min()),
               interval_median_s=float(np.median(dt)), interval_max_s=float(dt.max()))
    if fps == fps and fps > 0:
        out["variable_frame_rate"] = bool(np.max(np.abs(dt - 1.0 / fps)) > VFR_TOLERANCE / fps)
        out["max_deviation_from_index_s"] = float(np.max(np.abs(pts_s - pts_s[0] - np.arange(n) / fps)))
    else:  # no nominal rate: judge against the median interval
        out["variable_frame_rate"] = bool(np.max(np.abs(dt - np.median(dt))) > VFR_TOLERANCE * np.median(dt))
    return out


def _decode_first(video: Path) -> tuple[VideoProbe, tuple[np.ndarray, float], Iterator[tuple[np.ndarray, float]]]:
    """Probe the clip and decode its first frame: a file that cannot be decoded fails here, before any writing."""
    probe = probe_video(video)
    frames = iter_video_frames(video)
    first = next(frames, None)
    if first is None:
        raise VideoImportError(
            f"{video} opened but no frame could be decoded (corrupt or truncated file, or a codec OpenCV lacks). "
            "Re-encode it (e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`) and retry.")
    return probe, first, frames


def _video_spec(video: Path, probe: VideoProbe, frame: np.ndarray, sha: str, *, name: str, compression: str,
                start_time: float) -> StreamSpec:
    """The RGB8 stream of a clip, with what the container said about it."""
    height, width = frame.shape[:2]
    fps = probe.fps
    return StreamSpec(
        name=name, type="VideoRaw", channel_count=height * width * 3, channel_format="int8",
        nominal_srate=fps if fps == fps else 0.0, source_id=f"emosync-video-import:{sha[:16]}",
        frame_shape=(height, width, 3), encoding="RGB8", compression=compression, can_drop_samples=True,
        extra={"source_file": video.name, "source_sha256": sha, "source_fourcc": probe.fourcc,
               "source_fps": fps, "source_frame_count": probe.frame_count, "source_duration_s": probe.duration_s,
               "start_time_s": float(start_time),
               "clock": "container presentation time + start_time (s); LSL time only if start_time was"},
    )


def _write_frames(stream: StreamWriter, frames: Iterator[tuple[np.ndarray, float]], start_time: float) -> np.ndarray:
    """Append the frames in chunks as they decode, stamped ``start_time + pts``; return the pts (s)."""
    pts: list[float] = []
    chunk: list[np.ndarray] = []
    chunk_t: list[float] = []
    for frame, t in frames:
        chunk.append(frame)
        chunk_t.append(t)
        if len(chunk) == _CHUNK_FRAMES:
            stream.append(np.stack(chunk), np.asarray(chunk_t) + start_time)
            pts.extend(chunk_t)
            chunk, chunk_t = [], []
    if chunk:
        stream.append(np.stack(chunk), np.asarray(chunk_t) + start_time)
        pts.extend(chunk_t)
    return np.asarray(pts)


def _settle_frame_times(stream: StreamWriter, pts: np.ndarray, fps: float, start_time: float, video: Path,
                        warnings: list[str]) -> tuple[np.ndarray, dict[str, Any], str]:
    """Check the container times; where they are unusable, restamp the frames from ``frame_index / fps``.

    Returns the times used (s from the clip's start), their :func:`frame_timing` and where they came from.
    """
    timing = frame_timing(pts, fps)
    if timing["timestamps_usable"] or pts.size <= 1:
        return pts, timing, "container"
    if fps != fps:
        raise VideoImportError(
            f"{video}: the container's frame times are not increasing and it states no frame rate, so "
            "frame times cannot be known. Re-encode the clip with ffmpeg and retry.")
    warnings.append(f"container frame times are not strictly increasing; used frame_index / {fps:g} fps")
    # Rare (broken muxers): overwrite the stamps already written rather than decode twice.
    pts = np.arange(pts.size) / fps
    stream._timestamps[:] = start_time + pts
    return pts, timing, "frame_index/fps"


def _timing_warnings(timing: dict[str, Any], probe: VideoProbe, n_frames: int) -> list[str]:
    """What about a clip's frame times and count a user should know."""
    warnings = []
    if timing["variable_frame_rate"]:
        warnings.append(
            f"variable frame rate: frame intervals {timing['interval_min_s'] * 1e3:.1f} to "
            f"{timing['interval_max_s'] * 1e3:.1f} ms against {1e3 / probe.fps:.1f} ms nominal; container times "
            f"differ from frame_index/fps by up to {timing['max_deviation_from_index_s'] * 1e3:.1f} ms "
            "(the container times were used)")
    if probe.frame_count > 0 and probe.frame_count != n_frames:
        warnings.append(f"the container states {probe.frame_count} frames but {n_frames} decoded (the file may be "
                        "truncated or damaged; the frames that decoded were imported)")
    return warnings


@verbose
@fill_doc
def import_video(video: str | os.PathLike, out: str | os.PathLike, *, start_time: float = 0.0,
                 name: str = "RGB", subject_id: str = "sub-unknown", notes: str = "",
                 compression: str = "none", if_exists: str = "error",
                 verbose: bool | str | None = None) -> dict[str, Any]:
    """Import a video file into a new session as one RGB8 stream.

    Parameters
    ----------
    video : path-like
        The clip (anything OpenCV's FFmpeg backend reads: mp4, avi, mov, mkv...).
    out : path-like
        The session file to create; never overwritten (see ``if_exists``).
    start_time : float
        Seconds added to every frame's container time. The stored time stamps are
        ``start_time + pts``: with the default 0 they are seconds from the start of the
        clip; pass the LSL time (``pylsl.local_clock()`` of the recording machine, e.g. a
        marker's time stamp) at which the clip's first frame was taken to make the clip
        comparable with an LSL recording from that machine.
    name : str
        Stream name in the session.
    %(subject_notes)s
    compression : ``"none"`` | ``"png"`` | ``"jpeg"``
        Per-frame storage compression.
    %(if_exists)s
    %(verbose)s

    Returns
    -------
    report : dict
        ``source``, ``output``, ``stream``, ``n_frames`` (decoded), ``container`` (the
        :class:`VideoProbe` fields), ``timing`` (see :func:`frame_timing`),
        ``timestamp_source`` (``"container"`` or ``"frame_index/fps"`` when the container
        times were unusable), ``first_time_s``, ``last_time_s`` and ``warnings``.

    Raises
    ------
    FileNotFoundError
        If ``video`` does not exist.
    VideoImportError
        If the file cannot be opened or decodes to no frame (nothing is written).
    FileExistsError
        If ``out`` exists and ``if_exists="error"``.
    """
    video, out = Path(video), Path(out)
    if if_exists == "error":
        check_output_path(out)  # refuse before spending time decoding
    probe, first, frames = _decode_first(video)
    sha = file_sha256(video)
    spec = _video_spec(video, probe, first[0], sha, name=name, compression=compression, start_time=start_time)
    metadata = {**source_metadata(video, "video", checksum=False), "source_sha256": sha}
    warnings: list[str] = []
    with new_session_file(out, if_exists=if_exists) as tmp:
        with SessionWriter(tmp, subject_id=subject_id, notes=notes, metadata=metadata) as writer:
            stream = writer.add_stream(spec)
            # Frames are written as they decode; their container times are checked at the end,
            # and rewritten only in the rare case they turn out unusable.
            pts = _write_frames(stream, itertools.chain([first], frames), start_time)
            pts, timing, source = _settle_frame_times(stream, pts, probe.fps, start_time, video, warnings)
            warnings += _timing_warnings(timing, probe, pts.size)
            report = {"source": str(video), "output": str(out), "stream": name, "n_frames": int(pts.size),
                      "container": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(probe).items()},
                      "timing": timing, "timestamp_source": source, "start_time_s": float(start_time),
                      "first_time_s": float(start_time + pts[0]), "last_time_s": float(start_time + pts[-1]),
                      "warnings": warnings}
            writer.close(video_import_report=json.dumps(report))
    for message in warnings:
        logger.warning("%s: %s", video.name, message)
    height, width = first[0].shape[:2]
    logger.info("Imported %d frames (%dx%d) from %s into %s", report["n_frames"], width, height, video.name, out)
    return report
