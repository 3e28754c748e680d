"""Training frames for the generators: aligned RGB + depth face crops with their AU intensities.

:func:`load_face_frames` reads sessions through :func:`acquisition.open_session` and
returns a :class:`FaceFrames` whose ``rgbd`` array holds RGB and depth as the four
channels of one image, so the two modalities stay pixel-aligned through training,
sampling and the privacy audit (which reads the same array).

Value conventions (shared by the generators, the corpus writer and the audit):

- RGB: ``uint8 / 127.5 - 1``, so 0 -> -1 and 255 -> +1.
- Depth: millimetres mapped linearly from :data:`DEPTH_RANGE_MM` ``(400, 1600)`` to
  ``[-1, 1]`` and clipped (near = -1, far = +1); a missing reading (0 mm) becomes far
  (+1), as the background. :func:`rgbd_to_images` inverts both maps.
- AUs: 17 intensities on the FACS 0-5 scale in :data:`synth.facs.AU_IDS` order, linearly
  interpolated from the AU stream onto each video frame's synchronized time.

Face crop: when ``emosync annotate`` has run (the session has ``<video>-FaceCrop`` and
``<video>-FaceBox``), RGB and depth are both cut from the same square around annotate's
face box (1.2 x its longer side). The stored ``FaceCrop`` images themselves are not used,
because annotate rotates them to level the eyes and the depth frames would then no longer
be pixel-aligned. Frames without a face (NaN box), and sessions without annotations, use
a centred square of side ``CENTRE_CROP_FRACTION`` (0.6) of the shorter frame side, which
holds the head of the simulated rig and of a seated participant framed by the recording
protocol. A session without annotations is named in a warning, or refused with
``require_face_boxes=True`` (``data.require_face_boxes`` in ``configs/synth``): a recording framed
otherwise would train on centre crops without a face. Sessions of a synthetic corpus (root
attribute ``generator_kind``) already hold crops and are used whole. Crops are resized with area
interpolation (OpenCV ``INTER_AREA``) to ``image_size``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from acquisition import logger, open_session
from acquisition.annotate.action_units import AU_IDS, MAX_INTENSITY

#: Depth range (millimetres) mapped to [-1, 1]; outside values are clipped.
DEPTH_RANGE_MM: tuple[float, float] = (400.0, 1600.0)
#: Side of the fallback centre crop as a fraction of the shorter frame side.
CENTRE_CROP_FRACTION = 0.6
#: Number of channels of one generated sample: R, G, B, depth.
N_CHANNELS = 4
#: Conditioning width: one intensity per FACS AU in :data:`synth.facs.AU_IDS`.
N_AUS = len(AU_IDS)


@dataclass
class FaceFrames:
    """Face crops with their conditioning, one row per video frame.

    Attributes
    ----------
    rgbd : array of float32, shape (n_frames, 4, image_size, image_size)
        RGB and depth in [-1, 1] (see the module docstring for the maps).
    aus : array of float32, shape (n_frames, 17)
        AU intensities (0-5) in :data:`synth.facs.AU_IDS` order.
    subject_ids : array of str, shape (n_frames,)
        The session's ``subject_id`` for each frame.
    session_files : array of str, shape (n_frames,)
        The session file each frame came from.
    times_s : array of float64, shape (n_frames,)
        Synchronized video time of each frame, in seconds.
    """

    rgbd: np.ndarray
    aus: np.ndarray
    subject_ids: np.ndarray
    session_files: np.ndarray
    times_s: np.ndarray

    def __len__(self) -> int:
        return int(self.rgbd.shape[0])

    @property
    def image_size(self) -> int:
        """Side of the square crops, in pixels."""
        return int(self.rgbd.shape[-1])

    def subset(self, index: np.ndarray | slice) -> FaceFrames:
        """The frames at ``index`` (an index array, boolean mask or slice)."""
        return FaceFrames(self.rgbd[index], self.aus[index], self.subject_ids[index], self.session_files[index],
                          self.times_s[index])


def rgb_to_unit(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB ``(..., H, W, 3)`` -> float32 ``(..., 3, H, W)`` in [-1, 1]."""
    return np.moveaxis(np.asarray(rgb, dtype=np.float32) / 127.5 - 1.0, -1, -3)


def depth_to_unit(depth_mm: np.ndarray) -> np.ndarray:
    """Depth in mm ``(..., H, W)`` -> float32 ``(..., 1, H, W)`` in [-1, 1]; 0 (no reading) becomes far (+1)."""
    near, far = DEPTH_RANGE_MM
    depth = np.asarray(depth_mm, dtype=np.float32)
    depth = np.where(depth <= 0, far, depth)
    return (np.clip((depth - near) / (far - near), 0.0, 1.0) * 2.0 - 1.0)[..., None, :, :]


def rgbd_to_images(rgbd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Invert the value maps: (N, 4, H, W) in [-1, 1] -> RGB uint8 (N, H, W, 3) and depth mm uint16 (N, H, W)."""
    rgbd = np.clip(np.asarray(rgbd, dtype=np.float32), -1.0, 1.0)
    rgb = np.round((np.moveaxis(rgbd[:, :3], 1, -1) + 1.0) * 127.5).astype(np.uint8)
    near, far = DEPTH_RANGE_MM
    depth = np.round(near + (rgbd[:, 3] + 1.0) / 2.0 * (far - near)).astype(np.uint16)
    return rgb, depth


def _resize(frame: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)


def evenly_spaced(n: int, k: int | None) -> np.ndarray:
    """Indices of ``k`` of ``n`` items spread evenly (first and last kept); all ``n`` if ``k`` is None or >= n."""
    if k is None or n <= k:
        return np.arange(n)
    return np.linspace(0, n - 1, k).round().astype(int)   # spacing > 1: no repeats


def centre_box(height: int, width: int) -> tuple[int, int, int, int]:
    """The fallback crop box ``(x0, y0, x1, y1)``: a centred square of side 0.6 x the shorter side."""
    side = max(1, int(round(CENTRE_CROP_FRACTION * min(height, width))))
    y0, x0 = (height - side) // 2, (width - side) // 2
    return x0, y0, x0 + side, y0 + side


def _square_box(box: np.ndarray, height: int, width: int) -> tuple[int, int, int, int] | None:
    """A square around a face box (1.2 x its longer side), clipped to the frame; None for a missing face."""
    if not np.all(np.isfinite(box)):
        return None
    x0, y0, x1, y1 = (float(v) for v in box)
    side = 1.2 * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = min(side, height, width)
    ax0 = int(round(min(max(cx - side / 2, 0), width - side)))
    ay0 = int(round(min(max(cy - side / 2, 0), height - side)))
    return ax0, ay0, ax0 + int(side), ay0 + int(side)


def _find(session, suffix: str, video: str) -> str | None:
    name = f"{video}-{suffix}"
    return name if name in session.streams else None


def _au_stream(session, video: str) -> str:
    """The AU stream: the session's recorded ``ActionUnits`` stream, else annotate's ``<video>-AU(s)``."""
    recorded = [n for n, s in session.streams.items()
                if s.info.get("type") == "ActionUnits" and not n.startswith(f"{video}-")]
    if recorded:
        return recorded[0]
    for suffix in ("AU", "AUs"):
        if (name := _find(session, suffix, video)) is not None:
            return name
    listing = ", ".join(session.streams) or "none"
    raise ValueError(f"{session.fname} has no AU stream (an 'ActionUnits' stream, or {video}-AU from "
                     f"`emosync annotate {session.fname}`); streams: {listing}. The generators are conditioned "
                     "on AUs: record them, simulate them, or run `emosync annotate` first.")


def _pick(session, modality: str, what: str) -> str:
    names = [n for n, s in session.streams.items() if s.modality == modality and s.info.get("frame_shape")
             and "derived_kind" not in s.info]
    if not names:
        listing = ", ".join(f"{n} ({s.modality})" for n, s in session.streams.items()) or "none"
        raise ValueError(f"{session.fname} has no {what} video stream; the generators need aligned RGB and "
                         f"depth (RealSense or the simulated rig). Streams: {listing}.")
    return names[0]


def _interp_rows(times_s: np.ndarray, src_times_s: np.ndarray, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return np.column_stack([np.interp(times_s, src_times_s, values[:, j]) for j in range(values.shape[1])])


def _streams(session, fname: Path) -> tuple[Any, Any, Any, str]:
    """The session's RGB, depth and AU streams (and the RGB stream's name); clear errors when one is missing."""
    video = _pick(session, "rgb", "RGB")
    depth_name = _pick(session, "depth", "depth")
    au_name = _au_stream(session, video)
    rgb_stream, depth_stream, au_stream = (session.streams[n] for n in (video, depth_name, au_name))
    if rgb_stream.n_samples == 0 or depth_stream.n_samples == 0 or au_stream.n_samples == 0:
        raise ValueError(f"{fname}: empty stream among {video}, {depth_name}, {au_name}.")
    return rgb_stream, depth_stream, au_stream, video


@dataclass
class _SessionPlan:
    """The frames of one session to use, chosen before any video is decoded."""

    index: np.ndarray           # RGB frame indices
    times_s: np.ndarray         # their synchronized times
    aus: np.ndarray             # their AUs, (n, 17)
    dropped: int                # frames left out for NaN AUs
    centre_cropped: bool        # no face boxes from `emosync annotate`: every frame gets the centre crop


def _has_face_boxes(session, video: str) -> bool:
    """Whether ``emosync annotate`` has boxed the faces of ``video`` (its FaceCrop and FaceBox streams)."""
    return _find(session, "FaceCrop", video) is not None and _find(session, "FaceBox", video) is not None


def _frame_plan(fname: Path, stride: int) -> _SessionPlan:
    """Candidate frames of one session without decoding video.

    Frames whose interpolated AUs are NaN (``emosync annotate`` writes NaN where it found no face) are
    dropped: training them as a neutral face would teach the model that neutral looks like anything.
    """
    with open_session(fname) as session:
        rgb_stream, _, au_stream, video = _streams(session, fname)
        times = rgb_stream.times[::stride]
        index = np.arange(rgb_stream.n_samples)[::stride]
        # A frame whose interpolation weights a NaN AU sample gets NaN (np.interp) and is dropped below.
        au = _interp_rows(times, au_stream.times, np.asarray(au_stream.data[:]))
        centre_cropped = not _has_face_boxes(session, video) and "generator_kind" not in session.info
    valid = ~np.isnan(au).any(axis=1)
    return _SessionPlan(index[valid], np.asarray(times)[valid], au[valid], int((~valid).sum()), centre_cropped)


def _check_face_boxes(sessions: Sequence[str | os.PathLike], plans: Sequence[_SessionPlan], *,
                      require: bool) -> None:
    """Refuse (``require``) or name in a warning each session whose frames would all be centre-cropped."""
    unboxed = [str(f) for f, plan in zip(sessions, plans) if plan.centre_cropped]
    if unboxed and require:
        raise ValueError(f"require_face_boxes (data.require_face_boxes) is set, but {', '.join(unboxed)} "
                         f"{'has' if len(unboxed) == 1 else 'have'} no face boxes (<video>-FaceBox and -FaceCrop "
                         "streams). Run `emosync annotate SESSION.h5` on each, or set "
                         "data.require_face_boxes=false to centre-crop them.")
    for fname in unboxed:
        logger.warning("%s has no face boxes (<video>-FaceBox from `emosync annotate`): its frames are centre-cropped "
                       "(a square of %.1f x the shorter side), which holds a face only if the recording put it there. "
                       "Run `emosync annotate %s` first (data.require_face_boxes=true refuses such sessions).",
                       fname, CENTRE_CROP_FRACTION, fname)


def _load_session(fname: Path, image_size: int, index: np.ndarray, times: np.ndarray, au: np.ndarray) -> FaceFrames:
    """Decode and crop only the RGB frames ``index`` (at ``times``, with AUs ``au``) and their nearest depth."""
    with open_session(fname) as session:
        rgb_stream, depth_stream, _, video = _streams(session, fname)
        # Depth frames are matched to the nearest RGB frame in time (same camera clock on a RealSense).
        depth_times = depth_stream.times
        nearest = np.clip(np.searchsorted(depth_times, times), 0, len(depth_times) - 1)
        before = np.clip(nearest - 1, 0, len(depth_times) - 1)
        nearest = np.where(np.abs(depth_times[before] - times) < np.abs(depth_times[nearest] - times), before, nearest)
        box_name = _find(session, "FaceBox", video) if _has_face_boxes(session, video) else None
        rgb_all = rgb_stream.data
        depth_all = depth_stream.data
        crops_rgb, crops_depth = [], []
        height, width = rgb_stream.info["frame_shape"][:2]
        boxes = np.asarray(session.streams[box_name].data[:]) if box_name else None
        already_crops = "generator_kind" in session.info  # a synthetic corpus session: frames are crops
        for i, j in zip(index, nearest):
            depth = np.asarray(depth_all[int(j)])
            if depth.shape[:2] != (height, width):
                depth = cv2.resize(depth, (width, height), interpolation=cv2.INTER_NEAREST)
            box = _square_box(boxes[int(i)], height, width) if boxes is not None else None
            x0, y0, x1, y1 = box or ((0, 0, width, height) if already_crops else centre_box(height, width))
            crops_rgb.append(_resize(np.asarray(rgb_all[int(i)])[y0:y1, x0:x1], image_size))
            crops_depth.append(_resize(depth[y0:y1, x0:x1].astype(np.float32), image_size))
        subject = str(session.info.get("subject_id", "sub-unknown"))
    if not len(index):
        rgbd = np.zeros((0, N_CHANNELS, image_size, image_size), np.float32)
    else:
        rgbd = np.concatenate([rgb_to_unit(np.stack(crops_rgb)), depth_to_unit(np.stack(crops_depth))], axis=1)
    n = len(index)
    return FaceFrames(rgbd.astype(np.float32), np.clip(au, 0.0, MAX_INTENSITY).astype(np.float32),
                      np.array([subject] * n), np.array([str(fname)] * n), np.asarray(times, dtype=np.float64))


def load_face_frames(sessions: Sequence[str | os.PathLike], image_size: int, *, stride: int = 1,
                     max_frames: int | None = None, require_face_boxes: bool = False) -> FaceFrames:
    """Read face crops (RGB + depth) and AU intensities from sessions.

    Parameters
    ----------
    sessions : sequence of path-like
        Session files with an RGB stream, a depth stream and AUs (a recorded ``ActionUnits``
        stream, or ``<video>-AU`` from ``emosync annotate``).
    image_size : int
        Side of the square crops, in pixels.
    stride : int
        Keep every ``stride``-th video frame.
    max_frames : int | None
        Keep at most this many frames in total, evenly spaced over the concatenation (chosen before
        any frame is decoded). Frames whose AUs are NaN (no face found) are dropped first, with a warning.
    require_face_boxes : bool
        Refuse sessions without ``emosync annotate``'s face boxes instead of centre-cropping them
        with a warning (sessions of a synthetic corpus hold crops and need none).

    Returns
    -------
    frames : FaceFrames

    Raises
    ------
    ValueError
        If no session is given, a session lacks RGB, depth or AUs (the message lists its streams), or
        lacks face boxes while ``require_face_boxes``.
    FileNotFoundError
        If a session file does not exist.
    """
    if not sessions:
        raise ValueError("No training sessions given: pass at least one session file with RGB, depth and AUs.")
    if image_size < 8:
        raise ValueError(f"image_size must be at least 8 pixels, got {image_size}.")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}.")
    plans = [_frame_plan(Path(f), stride) for f in sessions]
    _check_face_boxes(sessions, plans, require=require_face_boxes)
    dropped = sum(p.dropped for p in plans)
    if dropped:
        logger.warning("Dropped %d frame(s) without AUs (NaN: no face found by `emosync annotate`)", dropped)
    total = sum(len(p.index) for p in plans)
    if total == 0:
        raise ValueError(f"The sessions {[str(s) for s in sessions]} hold no video frames with AUs.")
    # Choose the kept frames over the concatenation first, then decode only those.
    keep = evenly_spaced(total, max_frames)
    parts, offset = [], 0
    for fname, plan in zip(sessions, plans):
        local = keep[(keep >= offset) & (keep < offset + len(plan.index))] - offset
        offset += len(plan.index)
        parts.append(_load_session(Path(fname), image_size, plan.index[local], plan.times_s[local], plan.aus[local]))
    frames = FaceFrames(*(np.concatenate([getattr(p, name) for p in parts]) for name in
                          ("rgbd", "aus", "subject_ids", "session_files", "times_s")))
    logger.info("Loaded %d face frames (%d px, %d AUs) from %d session(s)", len(frames), image_size, len(AU_IDS),
                len(sessions))
    return frames
