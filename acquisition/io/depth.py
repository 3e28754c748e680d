"""Import a folder of 16-bit depth PNGs (and matching colour images) into a session.

RGB-D datasets (TUM RGB-D, Redwood, Open3D, most RealSense/Kinect dumps) store one
16-bit PNG per depth frame in device units, often with the colour frame beside it.
:func:`import_depth` converts the units to millimetres (the session format's
``DEPTH16-mm``), stamps the frames from a nominal rate or from a time-stamp file, and
writes a ``DEPTH16-mm`` stream plus an RGB8 stream when colour frames match the depth
frames one to one. One folder holds one camera: frames must share one size and one unit.

Known units (``depth_scale_mm`` = millimetres per stored unit): Redwood, RealSense dumps
and Kinect v2 tools 1.0 (1000 per metre); TUM RGB-D 0.2 (5000 per metre).
"""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from acquisition.io.importing import new_session_file, source_metadata
from acquisition.io.video import VideoImportError
from acquisition.session.format import StreamSpec
from acquisition.session.writer import SessionWriter, StreamWriter, check_output_path
from acquisition.utils.docs import fill_doc
from acquisition.utils.hashing import file_sha256
from acquisition.utils.logs import logger, verbose

_UINT16_MAX = np.iinfo(np.uint16).max
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def scale_depth(raw: np.ndarray, depth_scale_mm: float) -> np.ndarray:
    """Convert stored depth units to millimetres.

    Parameters
    ----------
    raw : array of uint16, shape (height, width)
        Depth as stored in the PNG; 0 means no measurement.
    depth_scale_mm : float
        Millimetres per stored unit (1.0 for mm; 0.2 for TUM's 5000 units per metre).

    Returns
    -------
    depth_mm : array of uint16, shape (height, width)
        Rounded to whole mm; 0 stays 0, values beyond 65535 mm are clipped.
    """
    if depth_scale_mm == 1.0:
        return raw.astype(np.uint16, copy=False)
    return np.clip(np.rint(raw.astype(np.float64) * depth_scale_mm), 0, _UINT16_MAX).astype(np.uint16)


def read_timestamps_file(path: str | os.PathLike) -> tuple[list[str | None], np.ndarray]:
    """Read per-frame times from a text file.

    Accepts one row per frame, comma- or whitespace-separated, ``#`` comments and an
    optional header: either ``time`` alone (rows in frame order) or a time and a file
    name in either order (TUM's ``depth.txt``: ``1305031102.160407 depth/1305031102.160407.png``).

    Returns
    -------
    names : list of str | None, length n
        The file name (base name) per row, or None when the file lists times only.
    times_s : array of float, shape (n,)
        Times in seconds.
    """
    names: list[str | None] = []
    times: list[float] = []
    for line_no, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        tokens = line.replace(",", " ").split()
        if _is_float(tokens[0]):  # "time [file]"; TUM file names are times too, so the first wins
            value, name = float(tokens[0]), (Path(tokens[1]).name if len(tokens) > 1 else None)
        elif len(tokens) > 1 and _is_float(tokens[1]):  # "file time"
            value, name = float(tokens[1]), Path(tokens[0]).name
        elif not times:  # a header row
            continue
        else:
            raise VideoImportError(f"{path} line {line_no}: no time in {line!r}. Expected 'time[,file]' rows.")
        names.append(name)
        times.append(value)
    if not times:
        raise VideoImportError(f"{path} holds no time stamps.")
    return names, np.asarray(times, dtype=np.float64)


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _read_image(path: Path, *, depth: bool) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED if depth else cv2.IMREAD_COLOR)
    if image is None:
        raise VideoImportError(f"Could not read image {path} (truncated, corrupt or not an image).")
    if depth:
        if image.dtype != np.uint16 or image.ndim != 2:
            raise VideoImportError(
                f"{path.name} is not a 16-bit single-channel depth PNG (got {image.dtype}, shape {image.shape}). "
                "If it is a colour image, make --color-pattern match it; else select depth files with "
                "--depth-pattern.")
        return image
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _find_frames(folder: Path, depth_pattern: str, color_pattern: str) -> tuple[list[Path], list[Path]]:
    """Depth and colour image files of a folder, each sorted by name."""
    if not folder.is_dir():
        raise FileNotFoundError(f"Depth folder {folder} does not exist or is not a folder.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)
    color_files = [p for p in files if fnmatch.fnmatch(p.name, color_pattern)]
    depth_files = [p for p in files if fnmatch.fnmatch(p.name, depth_pattern) and p not in color_files]
    if not depth_files:
        raise VideoImportError(f"No depth images matching {depth_pattern!r} (and not {color_pattern!r}) in {folder}.")
    return depth_files, color_files


def _frame_times(depth_files: list[Path], rate: float | None, timestamps: str | os.PathLike | None,
                 start_time: float) -> tuple[np.ndarray, float]:
    """Time stamp of each depth frame (s) and the nominal rate (Hz, 0 for irregular)."""
    n = len(depth_files)
    if timestamps is None:
        if not rate or rate <= 0:
            raise ValueError("Give a positive --rate (Hz) or a --timestamps file.")
        return start_time + np.arange(n) / float(rate), float(rate)
    ts_names, ts_times = read_timestamps_file(timestamps)
    if all(ts_names) and set(ts_names) >= {p.name for p in depth_files}:
        lookup = dict(zip(ts_names, ts_times))
        times = np.array([lookup[p.name] for p in depth_files])
    elif len(ts_times) == n:
        times = ts_times
    else:
        raise VideoImportError(f"{timestamps} lists {len(ts_times)} times for {n} depth frames and does not name "
                               "every depth file; give one row per frame.")
    if not np.all(np.diff(times) > 0):
        raise VideoImportError(f"The times in {timestamps} are not increasing in file-name order.")
    return times + start_time, float(rate) if rate else 0.0


def _depth_spec(folder: Path, first_file: Path, shape: tuple[int, ...], *, name: str, nominal: float,
                depth_scale_mm: float) -> StreamSpec:
    sha = file_sha256(first_file)
    extra = {"source_folder": folder.name, "depth_scale_mm": float(depth_scale_mm),
             "source_first_file": first_file.name, "source_first_sha256": sha,
             "clock": "start_time + rate/timestamp-file time (s)"}
    return StreamSpec(name=name, type="VideoRaw", channel_count=int(np.prod(shape)), channel_format="int16",
                      nominal_srate=nominal, source_id=f"emosync-depth-import:{sha[:16]}", frame_shape=tuple(shape),
                      encoding="DEPTH16-mm", compression="png", can_drop_samples=True, extra=extra)


def _color_spec(folder: Path, first_file: Path, shape: tuple[int, ...], depth: StreamSpec, *, name: str
                ) -> StreamSpec:
    return StreamSpec(name=name, type="VideoRaw", channel_count=int(np.prod(shape)), channel_format="int8",
                      nominal_srate=depth.nominal_srate, source_id=f"{depth.source_id}:color", frame_shape=shape,
                      encoding="RGB8", compression="png", can_drop_samples=True,
                      extra={"source_folder": folder.name, "source_first_file": first_file.name})


def _write_depth_frames(depth_stream: StreamWriter, color_stream: StreamWriter | None, depth_files: list[Path],
                        color_files: list[Path], times: np.ndarray, depth_scale_mm: float
                        ) -> tuple[list[float], list[float]]:
    """Append every frame (depth in mm, and its colour frame); return per frame the median depth and valid fraction."""
    medians, valid = [], []
    shape = None
    for k, path in enumerate(depth_files):
        raw = _read_image(path, depth=True)
        shape = shape or raw.shape
        if raw.shape != shape:
            raise VideoImportError(f"{path.name} is {raw.shape[1]}x{raw.shape[0]} but {depth_files[0].name} is "
                                   f"{shape[1]}x{shape[0]}: one folder must hold one camera's frames.")
        mm = scale_depth(raw, depth_scale_mm)
        ok = mm > 0
        valid.append(float(ok.mean()))
        medians.append(float(np.median(mm[ok])) if ok.any() else np.nan)
        depth_stream.append(mm[None], times[k:k + 1])
        if color_stream is not None:
            color_stream.append(_read_image(color_files[k], depth=False)[None], times[k:k + 1])
    return medians, valid


@verbose
@fill_doc
def import_depth(folder: str | os.PathLike, out: str | os.PathLike, *, rate: float | None = 30.0,
                 depth_scale_mm: float = 1.0, depth_pattern: str = "*.png", color_pattern: str = "*_color*",
                 timestamps: str | os.PathLike | None = None, start_time: float = 0.0, name: str = "Depth",
                 color_name: str = "RGB", subject_id: str = "sub-unknown", notes: str = "",
                 if_exists: str = "error", verbose: bool | str | None = None) -> dict[str, Any]:
    """Import a folder of 16-bit depth PNGs (plus matching colour frames) into a new session.

    Parameters
    ----------
    folder : path-like
        One camera's frames. Depth files are those matching ``depth_pattern`` but not
        ``color_pattern``, sorted by name; colour files match ``color_pattern``.
    out : path-like
        The session file to create; never overwritten (see ``if_exists``).
    rate : float | None
        Frame rate in Hz: frame ``k`` is stamped ``start_time + k / rate``. Ignored when
        ``timestamps`` is given (then the stream is irregular unless ``rate`` is set).
    depth_scale_mm : float
        Millimetres per stored depth unit (TUM RGB-D: 0.2; Redwood and most others: 1.0).
    depth_pattern, color_pattern : str
        Shell patterns (``fnmatch``) on file names.
    timestamps : path-like | None
        A time-stamp file (see :func:`read_timestamps_file`); its times (s) plus ``start_time``
        are used instead of ``rate``. With file names, rows are matched to depth files by name.
    start_time : float
        Seconds added to every time stamp (e.g. the LSL time of the first frame).
    name, color_name : str
        Stream names of the depth and colour streams.
    %(subject_notes)s
    %(if_exists)s
    %(verbose)s

    Returns
    -------
    report : dict
        ``source``, ``output``, ``n_depth_frames``, ``n_color_frames``, ``frame_shape``,
        ``depth_scale_mm``, ``median_depth_mm`` (valid pixels), ``valid_fraction`` and ``warnings``.

    Raises
    ------
    VideoImportError
        If an image cannot be read, is not 16-bit depth, or differs in size from the first
        (nothing is written).
    """
    folder, out = Path(folder), Path(out)
    if not depth_scale_mm > 0:
        raise ValueError(f"depth_scale_mm must be positive, got {depth_scale_mm}.")
    if if_exists == "error":
        check_output_path(out)
    depth_files, color_files = _find_frames(folder, depth_pattern, color_pattern)
    n = len(depth_files)
    times, nominal = _frame_times(depth_files, rate, timestamps, start_time)
    warnings: list[str] = []
    if color_files and len(color_files) != n:
        warnings.append(f"{len(color_files)} colour images for {n} depth images: colour not imported "
                        "(they must match one to one, in name order)")
        color_files = []
    shape = _read_image(depth_files[0], depth=True).shape
    spec = _depth_spec(folder, depth_files[0], shape, name=name, nominal=nominal, depth_scale_mm=depth_scale_mm)
    metadata = {**source_metadata(folder, "depth-images"), "source_files": n}
    with new_session_file(out, if_exists=if_exists) as tmp:
        with SessionWriter(tmp, subject_id=subject_id, notes=notes, metadata=metadata) as writer:
            depth_stream = writer.add_stream(spec)
            color_stream = None
            if color_files:
                c0 = _read_image(color_files[0], depth=False)
                if c0.shape[:2] != shape:
                    warnings.append(f"colour frames are {c0.shape[1]}x{c0.shape[0]}, depth {shape[1]}x{shape[0]}: "
                                    "stored as they are (not registered)")
                color_stream = writer.add_stream(_color_spec(folder, color_files[0], c0.shape, spec, name=color_name))
            medians, valid = _write_depth_frames(depth_stream, color_stream, depth_files, color_files, times,
                                                 depth_scale_mm)
            report = {"source": str(folder), "output": str(out), "n_depth_frames": n,
                      "n_color_frames": len(color_files), "frame_shape": list(shape),
                      "depth_scale_mm": float(depth_scale_mm),
                      "median_depth_mm": float(np.nanmedian(medians)) if np.isfinite(medians).any() else None,
                      "valid_fraction": float(np.mean(valid)), "warnings": warnings}
            writer.close(depth_import_report=json.dumps(report))
    for message in warnings:
        logger.warning("%s: %s", folder.name, message)
    logger.info("Imported %d depth frames (%d colour) from %s into %s", n, len(color_files), folder, out)
    return report
