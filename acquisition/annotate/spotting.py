"""Expression spotting: find onset-apex-offset intervals in estimated AU (or landmark) streams.

This module turns a continuous facial-expression signal (an ``ActionUnits`` stream estimated
from video by ``emosync annotate``, optionally helped by the ``<EMG>-AU`` stream of ``emosync
emg-code``; or, without AUs, a ``*-Landmarks`` stream of 478 x (x, y, z) face-mesh points) into
discrete expression intervals, labels them micro (<= 0.5 s) or macro (> 0.5 s), and writes them
back into the session as a marker stream in the rig's ``"<phase>/<label>/<kind>"`` format,
through :meth:`SessionWriter.replace_derived <acquisition.session.writer.SessionWriter.replace_derived>`
(a failed run leaves an earlier result in place). Its parameters are a
:class:`~acquisition.annotate.spot_config.SpotConfig` (``configs/spot/*.yaml``); the
interference-elimination modules live in :mod:`acquisition.annotate.interference` and the
MEGC-style scoring in :mod:`acquisition.annotate.spot_scoring` (both re-exported here).
Expressions are labelled with the AU vocabulary and EMFACS prototypes of
:mod:`acquisition.annotate.action_units`.

Method (details and rationale in ``docs/spotting.md``):

1. Rows with NaN (no face found) are linearly interpolated when the gap is at most
   ``max_nan_gap_s``; longer gaps are masked and never spotted into.
2. Interference elimination, each module switchable: blinks are bridged in the eye-region AUs;
   the part of each AU that head pose explains is regressed out; speech (syllable-rate mouth
   oscillation) takes the mouth AUs out of the activation while it lasts.
3. Each channel is low-pass filtered (zero-phase Butterworth, ``smooth_hz``), a rolling median
   (``baseline_window_s``) is subtracted and the rest is divided by its robust SD (1.4826 MAD,
   at least ``noise_floor``). EMG-assisted, the EMG AU z-scores are fused with the video ones.
4. The combined activation is the L2 norm of the positive z-scores across channels, itself
   robustly standardized; hysteresis thresholding (``high``/``low``) gives candidate intervals.
5. Edges are extended to where the activation leaves the baseline (``edge_fraction`` of the
   peak height, or a local minimum); close intervals are merged, short ones dropped; intervals
   made of fast rigid head motion without non-rigid facial motion are vetoed. Dominant AUs are
   those near the largest at the apex, and an emotion is named only when the apex AU pattern
   is close to an EMFACS prototype.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any
from collections.abc import Sequence

import numpy as np
from scipy import ndimage, signal

from acquisition.utils.docs import fill_doc
from acquisition.utils.logs import logger, verbose
from acquisition.session.format import StreamSpec

from acquisition.annotate.action_units import AU_LABELS, EMOTION_PROTOTYPES, MICRO_MAX_DURATION_S
from acquisition.annotate.interference import (blink_frames, bridge_frames, compensate_head_motion,
                                               head_speed_deg_s, nonrigid_motion_z, robust_sd, stouffer_fuse,
                                               talking_frames, true_runs)
from acquisition.annotate.spot_config import SpotConfig, load_spot_config
from acquisition.annotate.spot_scoring import (Interval, interval_iou, intervals_from_markers, pool_scores,
                                               spot_eval, truth_intervals, unknown_spans)

__all__ = ["DERIVED_BY", "Interval", "SpotConfig", "SpotResult", "SpottedInterval", "choose_source",
           "interval_iou", "intervals_from_markers", "landmark_motion", "load_spot_config", "pool_scores",
           "score_session", "spot_eval", "spot_expressions", "spot_session", "truth_intervals", "unknown_spans"]

#: ``derived_by`` of the marker streams spotting writes.
DERIVED_BY = "emosync spot"
#: Longest macro-expression in seconds; longer intervals are still called macro (see docs).
MACRO_MAX_DURATION_S = 4.0
#: Channels per face-mesh landmark frame: 478 points x (x, y, z).
N_LANDMARKS = 478
#: MediaPipe face-mesh eyelid contours and irises: they move with every blink, so they are
#: left out of the landmark motion (as AU45 is left out of the AU activation).
EYE_LANDMARKS: tuple[int, ...] = (
    33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246,          # right eye
    263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466,      # left eye
    247, 30, 29, 27, 28, 56, 190, 243, 112, 26, 22, 23, 24, 110, 25, 130,                # right lid ring
    467, 260, 259, 257, 258, 286, 414, 463, 341, 256, 252, 253, 254, 339, 255, 359,      # left lid ring
    *range(468, 478),                                                                     # irises
)


@dataclass
class SpottedInterval:
    """One spotted expression.

    Attributes
    ----------
    onset_index, apex_index, offset_index : int
        Frames (rows of the source stream) of onset, apex and offset (offset inclusive).
    onset_s, apex_s, offset_s : float
        The source's raw time stamps at those frames, in seconds (source clock).
    kind : ``"micro"`` | ``"macro"``
        Micro if ``offset_s - onset_s <= 0.5`` s.
    aus : list of int
        Dominant AUs at the apex (empty for landmark-only spotting).
    emotion : str | None
        Nearest EMFACS prototype when similar enough, else None.
    peak : float
        Standardized combined activation at the apex (robust SDs above baseline).
    """

    onset_index: int
    apex_index: int
    offset_index: int
    onset_s: float
    apex_s: float
    offset_s: float
    kind: str
    aus: list[int] = field(default_factory=list)
    emotion: str | None = None
    peak: float = 0.0

    @property
    def duration_s(self) -> float:
        """Offset minus onset, in seconds."""
        return self.offset_s - self.onset_s

    @property
    def label(self) -> str:
        """The marker label: the emotion, else the AUs (``"AU06+AU12"``), else ``"motion"``."""
        if self.emotion:
            return self.emotion
        return "+".join(f"AU{au:02d}" for au in self.aus) or "motion"

    def markers(self) -> list[tuple[float, str]]:
        """``(time_s, "<phase>/<label>/<kind>")`` for onset, apex and offset."""
        return [(t, f"{phase}/{self.label}/{self.kind}") for phase, t in
                (("onset", self.onset_s), ("apex", self.apex_s), ("offset", self.offset_s))]


@dataclass
class SpotResult:
    """What :func:`spot_session` found and wrote.

    Attributes
    ----------
    source : str
        Name of the stream spotted in.
    source_kind : ``"au"`` | ``"landmarks"``
        What was spotted on.
    reason : str
        Why this stream was chosen (for the CLI output).
    intervals : list of SpottedInterval
        The intervals, in time order.
    inputs : dict of str
        The streams used: ``source`` and, when found, ``head_pose``, ``landmarks``, ``emg``.
    out_stream : str | None
        Name of the marker stream written, None if nothing was written.
    """

    source: str
    source_kind: str
    reason: str
    intervals: list[SpottedInterval]
    inputs: dict[str, str] = field(default_factory=dict)
    out_stream: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (intervals with their labels and durations)."""
        return {"source": self.source, "source_kind": self.source_kind, "reason": self.reason,
                "inputs": self.inputs, "out_stream": self.out_stream,
                "intervals": [{**asdict(i), "label": i.label, "duration_s": i.duration_s} for i in self.intervals]}


# ---------------------------------------------------------------------------- signal processing
def _fill_nan_rows(x: np.ndarray, srate: float, max_gap_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate NaN rows linearly; return the filled array and a mask of rows in long gaps."""
    bad = ~np.all(np.isfinite(x), axis=1)
    long_gap = np.zeros(x.shape[0], dtype=bool)
    if not bad.any():
        return x, long_gap
    good = np.flatnonzero(~bad)
    if good.size < 2:
        raise ValueError(f"Only {good.size} of {x.shape[0]} frames have finite values (no face found?); "
                         "nothing to spot.")
    filled = np.empty_like(x)
    index = np.arange(x.shape[0])
    for c in range(x.shape[1]):
        filled[:, c] = np.interp(index, good, x[good, c])
    # Runs of bad rows: starts/stops from the edges of the boolean mask.
    edges = np.diff(np.concatenate([[0], bad.astype(np.int8), [0]]))
    max_gap = int(round(max_gap_s * srate))
    for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
        if stop - start > max_gap:
            long_gap[start:stop] = True
    return filled, long_gap


def _rolling_median(x: np.ndarray, srate: float, window_s: float) -> np.ndarray:
    """Rolling median along axis 0, computed at ~5 Hz and interpolated back (a 20 s median at 200 Hz is slow)."""
    step = max(1, int(srate // 5))
    coarse = x[::step]
    size = max(1, int(round(window_s * srate / step)) | 1)
    med = ndimage.median_filter(coarse, size=(size, 1), mode="nearest")
    if step == 1:
        return med
    index = np.arange(x.shape[0])
    return np.column_stack([np.interp(index, index[::step], med[:, c]) for c in range(x.shape[1])])


def _channel_z(x: np.ndarray, srate: float, config: SpotConfig, valid: np.ndarray,
               noise_floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed, baseline-corrected channels (source units) and their robust z-scores."""
    if x.shape[0] > 15 and config.smooth_hz < 0.45 * srate:
        sos = signal.butter(4, config.smooth_hz, btype="lowpass", fs=srate, output="sos")
        smooth = signal.sosfiltfilt(sos, x, axis=0, padlen=min(15, x.shape[0] - 1))
    else:
        smooth = x.copy()
    deviation = smooth - _rolling_median(smooth, srate, config.baseline_window_s)
    sd = np.maximum(robust_sd(deviation[valid]), noise_floor)
    return deviation, deviation / sd


def _intervals_from_activation(activation: np.ndarray, srate: float, config: SpotConfig,
                               blocked: np.ndarray) -> list[tuple[int, int, int]]:
    """Hysteresis, edge refinement, merging and duration filter: ``(onset, apex, offset)`` frames."""
    act = np.where(blocked, -np.inf, activation)
    candidates = [(a, b) for a, b in true_runs(act > config.low) if np.max(act[a:b]) >= config.high]
    refined: list[tuple[int, int]] = []
    for a, b in candidates:
        apex = a + int(np.argmax(act[a:b]))
        floor = config.edge_fraction * act[apex]
        # Walk outwards while the activation keeps falling: the threshold crossing is late on a slow ramp.
        while a > 0 and act[a - 1] > floor and act[a - 1] < act[a]:
            a -= 1
        while b < act.size and act[b] > floor and act[b] < act[b - 1]:
            b += 1
        refined.append((a, b))
    merged: list[list[int]] = []
    max_gap = int(round(config.merge_gap_s * srate))
    for a, b in refined:
        if merged and a - merged[-1][1] <= max_gap and not blocked[merged[-1][1]:a].any():
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    out = []
    min_len = max(2, int(np.ceil(config.min_duration_s * srate)))
    for a, b in merged:
        if b - a < min_len:
            continue
        apex = a + int(np.argmax(act[a:b]))
        out.append((a, apex, b - 1))
    return out


def _label_aus(deviation_at_apex: np.ndarray, aus: Sequence[int], config: SpotConfig,
               prototypes: dict[str, tuple[dict[int, float], ...]]) -> tuple[list[int], str | None]:
    d = np.clip(deviation_at_apex, 0.0, None)
    if d.size == 0 or d.max() < config.min_au_intensity:
        return [], None
    keep = (d >= config.au_fraction * d.max()) & (d >= config.min_au_intensity)
    dominant = [int(aus[i]) for i in np.flatnonzero(keep)]
    best, best_sim = None, config.emotion_similarity
    norm = np.linalg.norm(d)
    for emotion, variants in prototypes.items():
        for variant in variants:
            proto = np.array([variant.get(int(au), 0.0) for au in aus])
            if not proto.any():
                continue
            sim = float(d @ proto / (norm * np.linalg.norm(proto)))
            if sim >= best_sim:
                best, best_sim = emotion, sim
    return dominant, best


def landmark_motion(landmarks: np.ndarray, *, exclude: Sequence[int] = EYE_LANDMARKS) -> np.ndarray:
    """Non-rigid motion of face-mesh landmarks: per-landmark distance from a neutral shape.

    Each frame is aligned to the reference (the per-coordinate median shape over frames) by a
    similarity Procrustes fit (rotation, translation, scale), which removes rigid head motion
    and distance to the camera; what is left is facial deformation.

    Parameters
    ----------
    landmarks : array, shape (n_frames, 478 * 3) | (n_frames, 478, 3)
        Landmark coordinates (x, y, z per point, MediaPipe order); NaN rows are allowed.
    exclude : sequence of int
        Landmarks left out (default: eyelids and irises, which move with every blink).

    Returns
    -------
    motion : array, shape (n_frames, n_kept)
        Distance of each kept landmark from the reference after alignment, in units of the
        face size (RMS distance of the reference landmarks from their centroid); NaN where the
        frame was NaN.
    """
    xyz = np.asarray(landmarks, dtype=np.float64)
    xyz = xyz.reshape(xyz.shape[0], -1, 3)
    keep = np.setdiff1d(np.arange(xyz.shape[1]), np.asarray(exclude, dtype=int))
    xyz = xyz[:, keep]
    finite = np.all(np.isfinite(xyz), axis=(1, 2))
    out = np.full(xyz.shape[:2], np.nan)
    if not finite.any():
        return out
    ref = np.median(xyz[finite], axis=0)
    ref_c = ref - ref.mean(axis=0)
    # Face-size units: the same thresholds work for pixel and normalized coordinates.
    ref_c /= max(float(np.sqrt(np.mean(np.sum(ref_c**2, axis=1)))), 1e-12)
    p = xyz[finite] - xyz[finite].mean(axis=1, keepdims=True)
    # Similarity Procrustes of every frame at once (orthogonal Procrustes: R = U V^T from svd(p^T ref)).
    u, sv, vt = np.linalg.svd(np.einsum("npi,pj->nij", p, ref_c))
    rotation = u @ vt
    norm = np.einsum("npi,npi->n", p, p)
    scale = np.where(norm > 0, sv.sum(axis=1) / np.where(norm > 0, norm, 1.0), 1.0)
    aligned = scale[:, None, None] * np.einsum("npi,nij->npj", p, rotation)
    out[finite] = np.linalg.norm(aligned - ref_c, axis=2)
    return out


def _au_numbers(channel_labels: Sequence[str] | None, n_channels: int) -> list[int]:
    """AU numbers of the channels (``"AU12"`` -> 12); default the vocabulary's order."""
    labels = list(channel_labels) if channel_labels is not None else list(AU_LABELS[:n_channels])
    if len(labels) != n_channels:
        raise ValueError(f"{len(labels)} channel labels for {n_channels} channels.")
    aus = []
    for label in labels:
        try:
            aus.append(int(str(label).upper().removeprefix("AU")))
        except ValueError:
            raise ValueError(f"Channel {label!r} is not an AU name like 'AU12'.") from None
    return aus


def _frames_matching(name: str, array: np.ndarray | None, n_frames: int) -> np.ndarray | None:
    if array is None:
        return None
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != n_frames:
        raise ValueError(f"{name} must have one row per frame ({n_frames}), got shape {array.shape}.")
    return array


def _blink_mask(x_all: np.ndarray, aus_all: list[int], emg: np.ndarray | None, emg_aus: list[int], srate: float,
                config: SpotConfig) -> np.ndarray | None:
    """Blink frames from the video's blink AU, and EMG-assisted also from the EMG's (orbicularis oculi)."""
    sources = [x[:, aus.index(config.blinks.au)] for x, aus in ((x_all, aus_all), (emg, emg_aus))
               if x is not None and config.blinks.au in aus]
    if not sources:
        logger.info("Blink suppression is on but there is no AU%02d channel; skipped.", config.blinks.au)
        return None
    return np.logical_or.reduce([blink_frames(b, srate, config.blinks) for b in sources])


def _bridge_blinks(x: np.ndarray, aus: list[int], blinks: np.ndarray, config: SpotConfig) -> np.ndarray:
    columns = [k for k, au in enumerate(aus) if au in config.blinks.aus]
    x[:, columns] = bridge_frames(x[:, columns], blinks)
    return x


def _head_compensated(x_all: np.ndarray, srate: float, config: SpotConfig, head_pose: np.ndarray | None,
                      valid: np.ndarray) -> np.ndarray:
    if head_pose is None:
        logger.info("Head-motion compensation is on but no head pose was given; skipped.")
        return x_all
    pose, _ = _fill_nan_rows(head_pose, srate, config.max_nan_gap_s)
    return compensate_head_motion(x_all, pose, srate, config.head_motion, valid)


def _talking_mask(x_all: np.ndarray, aus_all: list[int], emg: np.ndarray | None, emg_aus: list[int],
                  srate: float, config: SpotConfig) -> np.ndarray:
    mouth = [x_all[:, aus_all.index(au)] for au in config.talking.detect_aus if au in aus_all]
    if emg is not None and config.emg.enabled:
        mouth += [emg[:, emg_aus.index(au)] for au in config.emg.talking_aus if au in emg_aus]
    return talking_frames(np.column_stack(mouth) if mouth else np.zeros((x_all.shape[0], 0)), srate, config.talking)


def _vetoed(frames: list[tuple[int, int, int]], pose: np.ndarray, landmarks: np.ndarray | None, srate: float,
            valid: np.ndarray, config: SpotConfig) -> list[tuple[int, int, int]]:
    """Drop intervals that are mostly fast rigid head motion without non-rigid facial motion."""
    speed = head_speed_deg_s(pose, srate)
    nonrigid = None
    kept = []
    for a, apex, b in frames:
        fast = float(np.mean(speed[a:b + 1] > config.head_motion.veto_speed_deg_s))
        if fast < config.head_motion.veto_fraction:
            kept.append((a, apex, b))
            continue
        if nonrigid is None and landmarks is not None:  # landmark motion only when an interval needs it
            motion, _ = _fill_nan_rows(landmark_motion(landmarks), srate, config.max_nan_gap_s)
            nonrigid = nonrigid_motion_z(motion, valid)
        if nonrigid is None or float(np.max(nonrigid[a:b + 1])) < config.head_motion.veto_nonrigid_z:
            logger.debug("Vetoed frames %d-%d: %.0f %% fast head motion", a, b, 100 * fast)
            continue
        kept.append((a, apex, b))
    return kept


@verbose
@fill_doc
def spot_expressions(values: np.ndarray, timestamps: np.ndarray, *, srate: float | None = None,
                     channel_labels: Sequence[str] | None = None, source_kind: str = "au",
                     config: SpotConfig | None = None, head_pose: np.ndarray | None = None,
                     landmarks: np.ndarray | None = None, emg_values: np.ndarray | None = None,
                     emg_labels: Sequence[str] | None = None,
                     verbose: bool | str | None = None) -> list[SpottedInterval]:
    """Spot expression intervals in an AU (or landmark) time series.

    Parameters
    ----------
    values : array, shape (n_frames, n_channels)
        AU intensities (0-5; channels ``"AU01"`` ... as in ``channel_labels``), or for
        ``source_kind="landmarks"`` face-mesh coordinates (478 x 3 per frame). NaN rows
        (no face) are interpolated when short and never spotted into when long.
    timestamps : array of float, shape (n_frames,)
        Time stamps in seconds (the source's raw stamps); returned times are taken from it.
    srate : float | None
        Frame rate in Hz; estimated from ``timestamps`` when None or 0.
    channel_labels : sequence of str | None
        AU channel names ``"AU%02d"``; default: the 17 AUs of the vocabulary
        (:data:`acquisition.annotate.action_units.AU_LABELS`) in order when there are 17
        channels. Channels in ``config.exclude_aus`` (AU45) are left out of the activation.
    source_kind : ``"au"`` | ``"landmarks"``
        What ``values`` hold.
    config : SpotConfig | None
        Method parameters (default: ``configs/spot/default.yaml``).
    head_pose : array, shape (n_frames, 3 | 6) | None
        Yaw, pitch, roll (degrees) and translation (cm) of the same frames (``<video>-HeadPose``),
        for head-motion compensation and the rigid-motion veto.
    landmarks : array, shape (n_frames, 1434) | None
        Face-mesh landmarks of the same frames (``<video>-Landmarks``): the veto keeps intervals
        with non-rigid facial motion.
    emg_values : array, shape (n_frames, n_emg_aus) | None
        EMG AU estimates (``emosync emg-code``) resampled to the same frames; used when
        ``config.emg.enabled``.
    emg_labels : sequence of str | None
        AU names of the ``emg_values`` columns.
    %(verbose)s

    Returns
    -------
    intervals : list of SpottedInterval
        In time order.
    """
    config = config or load_spot_config("default")
    values = np.asarray(values, dtype=np.float64)
    timestamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)
    if values.ndim != 2 or values.shape[0] != timestamps.size:
        raise ValueError(f"values must be (n_frames, n_channels) with one time stamp per frame; got {values.shape} "
                         f"and {timestamps.size} time stamps.")
    n = values.shape[0]
    if n < 3:
        raise ValueError(f"Need at least 3 frames to spot expressions, got {n}.")
    if not srate:
        srate = 1.0 / float(np.median(np.diff(timestamps)))
    head_pose = _frames_matching("head_pose", head_pose, n)
    landmarks = _frames_matching("landmarks", landmarks, n)
    emg_values = _frames_matching("emg_values", emg_values, n)
    aus: list[int] = []
    if source_kind == "au":
        aus_all = _au_numbers(channel_labels, values.shape[1])
        x_all, long_gap = _fill_nan_rows(values, srate, config.max_nan_gap_s)
        valid = ~long_gap
        emg_aus = _au_numbers(emg_labels, emg_values.shape[1]) if emg_values is not None else []
        emg = None
        if emg_values is not None and config.emg.enabled:
            emg, _ = _fill_nan_rows(emg_values, srate, config.max_nan_gap_s)
        if config.blinks.enabled and (blinks := _blink_mask(x_all, aus_all, emg, emg_aus, srate, config)) is not None:
            x_all = _bridge_blinks(x_all, aus_all, blinks, config)
            if emg is not None:  # orbicularis oculi fires with every blink too
                emg = _bridge_blinks(emg, emg_aus, blinks, config)
        if config.head_motion.enabled:
            x_all = _head_compensated(x_all, srate, config, head_pose, valid)
        columns = [k for k, au in enumerate(aus_all) if au not in config.exclude_aus]
        aus = [aus_all[k] for k in columns]
        deviation, z = _channel_z(x_all[:, columns], srate, config, valid, config.noise_floor)
        if config.talking.enabled:
            talking = _talking_mask(x_all, aus_all, emg, emg_aus, srate, config)
            z[np.ix_(talking, [k for k, au in enumerate(aus) if au in config.talking.aus])] = 0.0
            logger.debug("Talking suppression: %.1f s of speech", talking.sum() / srate)
        if emg is not None:
            _, z_emg = _channel_z(emg, srate, config, valid, config.emg.noise_floor)
            if config.talking.enabled:
                z_emg[np.ix_(talking, [k for k, au in enumerate(emg_aus) if au in config.talking.aus])] = 0.0
            extra = []
            for k, au in enumerate(emg_aus):
                if au in config.exclude_aus:
                    continue
                if au in aus:
                    col = aus.index(au)
                    z[:, col] = stouffer_fuse(z[:, col], z_emg[:, k], config.emg.video_weight, config.emg.emg_weight)
                else:
                    extra.append(k)
            z = np.column_stack([z, z_emg[:, extra]])
        elif config.emg.enabled:
            logger.info("EMG-assisted spotting is on but no EMG AU estimates were given; video only.")
        prototypes = EMOTION_PROTOTYPES
    elif source_kind == "landmarks":
        x, long_gap = _fill_nan_rows(landmark_motion(values), srate, config.max_nan_gap_s)
        valid = ~long_gap
        deviation, z = _channel_z(x, srate, config, valid, config.landmark_noise_floor)
        prototypes = {}
    else:
        raise ValueError(f"source_kind must be 'au' or 'landmarks', got {source_kind!r}.")
    combined = np.sqrt(np.sum(np.clip(z, 0.0, None) ** 2, axis=1))
    base = float(np.median(combined[valid]))
    spread = max(float(robust_sd(combined[valid])), 1.0)
    activation = (combined - base) / spread
    # A long gap blocks its own frames and a short margin: filter edge effects live there.
    margin = int(round(0.1 * srate))
    blocked = ndimage.binary_dilation(long_gap, iterations=margin) if long_gap.any() and margin else long_gap
    frames = _intervals_from_activation(activation, srate, config, blocked)
    if config.head_motion.enabled and config.head_motion.veto and head_pose is not None:
        pose, _ = _fill_nan_rows(head_pose, srate, config.max_nan_gap_s)
        frames = _vetoed(frames, pose, landmarks, srate, valid, config)
    intervals = []
    for a, apex, b in frames:
        onset_s, offset_s = float(timestamps[a]), float(timestamps[b])
        kind = "micro" if offset_s - onset_s <= MICRO_MAX_DURATION_S + 1e-9 else "macro"
        dominant, emotion = _label_aus(deviation[apex], aus, config, prototypes) if aus else ([], None)
        intervals.append(SpottedInterval(a, apex, b, onset_s, float(timestamps[apex]), offset_s, kind,
                                         dominant, emotion, float(activation[apex])))
    logger.info("Spotted %d expressions (%d micro, %d macro) in %.1f s", len(intervals),
                sum(i.kind == "micro" for i in intervals), sum(i.kind == "macro" for i in intervals),
                float(timestamps[-1] - timestamps[0]))
    return intervals


# ---------------------------------------------------------------------------- sessions
#: ``derived_by`` of the streams the video and EMG estimators write.
ANNOTATE_DERIVED_BY = "emosync annotate"
EMG_CODE_DERIVED_BY = "emosync emg-code"


def _type(stream: Any) -> str:
    return str(stream.info.get("type", "")).lower()


def _is_landmarks(stream: Any) -> bool:
    return stream.name.endswith("-Landmarks") or _type(stream) in ("landmarks", "facelandmarks")


def _is_emg_au(stream: Any) -> bool:
    return _type(stream) == "actionunits" and stream.info.get("derived_by") == EMG_CODE_DERIVED_BY


def choose_source(session: Any, stream: str | None = None) -> tuple[Any, str, str]:
    """Pick the stream to spot in: estimates first, the simulated rig's ground truth last.

    Without ``stream``: a video AU estimate (an ``ActionUnits`` stream named ``*-AU`` that
    ``emosync emg-code`` did not write, e.g. ``emosync annotate``'s ``<video>-AU``), else a
    ``*-Landmarks`` stream, else the first other ``ActionUnits`` stream (on rig sessions that is
    the ground truth, which the reason then says).

    Returns
    -------
    stream : Stream
    source_kind : ``"au"`` | ``"landmarks"``
    reason : str
        Why it was chosen (shown by the CLI).
    """
    listing = ", ".join(f"{n} ({s.info.get('type')})" for n, s in session.streams.items()) or "none"
    if stream is not None:
        if stream not in session.streams:
            raise ValueError(f"No stream {stream!r} in {session.fname}. Streams: {listing}.")
        st = session.streams[stream]
        if _type(st) == "actionunits":
            return st, "au", "chosen with --stream"
        if _is_landmarks(st):
            return st, "landmarks", "chosen with --stream"
        raise ValueError(f"Stream {stream!r} is of type {st.info.get('type')!r}; spotting needs an ActionUnits "
                         f"stream or a '*-Landmarks' stream. Streams: {listing}.")
    au_streams = [s for s in session.streams.values() if _type(s) == "actionunits" and not _is_emg_au(s)]
    estimated = [s for s in au_streams if s.name.endswith("-AU")]
    if estimated:
        return estimated[0], "au", "estimated AU stream (*-AU)"
    landmarks = [s for s in session.streams.values() if _is_landmarks(s)]
    if landmarks:
        return landmarks[0], "landmarks", "landmark motion (no estimated *-AU stream)"
    if au_streams:
        st = au_streams[0]
        simulated = str(st.info.get("source_id", "")).startswith("emosync-sim")
        return st, "au", ("the simulated rig's ground-truth AUs (no estimated *-AU or *-Landmarks stream): "
                          "run `emosync annotate` first for what a user would get" if simulated
                          else "first ActionUnits stream (no estimated *-AU or *-Landmarks stream)")
    raise ValueError(f"{session.fname} has no ActionUnits stream and no '*-Landmarks' stream to spot in. "
                     f"Streams: {listing}. Run `emosync annotate` on the video first, or pass --stream.")


def _companions(session: Any, source: Any, config: SpotConfig) -> dict[str, Any]:
    """Head pose and landmarks of the source's video (``<video>-HeadPose`` ...), and the EMG AU stream."""
    found: dict[str, Any] = {}
    if source.name.endswith("-AU"):
        stem = source.name[: -len("-AU")]
        for role, suffix in (("head_pose", "-HeadPose"), ("landmarks", "-Landmarks")):
            other = session.streams.get(stem + suffix)
            if other is not None and other.n_samples == source.n_samples:
                found[role] = other
    if config.emg.enabled:
        if config.emg.stream is not None:
            if config.emg.stream not in session.streams or _type(session.streams[config.emg.stream]) != "actionunits":
                raise ValueError(f"emg.stream {config.emg.stream!r} is not an ActionUnits stream of {session.fname}. "
                                 "Run `emosync emg-code` first, or set emg.stream to its <EMG>-AU stream.")
            found["emg"] = session.streams[config.emg.stream]
        else:
            emg = [s for s in session.streams.values() if _is_emg_au(s)]
            if emg:
                found["emg"] = emg[0]
            else:
                logger.warning("EMG-assisted spotting is on but %s has no emg-code stream (run `emosync emg-code`); "
                               "spotting from video alone.", session.fname)
    return found


def _resampled(stream: Any, times: np.ndarray) -> np.ndarray:
    """A stream's samples linearly interpolated at ``times`` (both on the recorder's clock)."""
    values = np.asarray(stream.data[:], dtype=np.float64)
    src = np.asarray(stream.times, dtype=np.float64)
    return np.column_stack([np.interp(times, src, values[:, c]) for c in range(values.shape[1])])


@dataclass
class _Source:
    """What writing the marker stream needs of the source stream and the session."""

    name: str
    info: dict[str, Any]
    clock_offsets: Any
    #: Every stream of the session and the analysis that wrote it ("" for recorded streams).
    authors: dict[str, str]


def _author(info: dict[str, Any]) -> str:
    """``derived_by`` of a stream; marker streams of spotting before it set ``derived_by`` have ``spotting_source``."""
    return str(info.get("derived_by") or (DERIVED_BY if "spotting_source" in info else ""))


def _spot_source(fname: str | os.PathLike, stream: str | None, config: SpotConfig) -> tuple[SpotResult, _Source]:
    """Choose the source stream and its companions, read them and spot."""
    from acquisition.session.reader import open_session

    with open_session(fname) as session:
        st, kind, reason = choose_source(session, stream)
        if st.n_samples == 0:
            raise ValueError(f"Stream {st.name!r} in {fname} is empty (0 samples); nothing to spot.")
        values = np.asarray(st.data[:], dtype=np.float64)
        timestamps = np.asarray(st.timestamps)
        extra: dict[str, Any] = {}
        inputs = {"source": st.name}
        if kind == "au":
            companions = _companions(session, st, config)
            for role in ("head_pose", "landmarks"):
                if role in companions:
                    extra[role] = np.asarray(companions[role].data[:], dtype=np.float64)
                    inputs[role] = companions[role].name
            if "emg" in companions:
                emg = companions["emg"]
                extra["emg_values"] = _resampled(emg, np.asarray(st.times, dtype=np.float64))
                extra["emg_labels"] = emg.info.get("channel_labels") or None
                inputs["emg"] = emg.name
        intervals = spot_expressions(values, timestamps, srate=st.nominal_srate,
                                     channel_labels=st.info.get("channel_labels") or None if kind == "au" else None,
                                     source_kind=kind, config=config, **extra)
        source = _Source(st.name, dict(st.info), st.clock_offsets,
                         {n: _author(s.info) for n, s in session.streams.items()})
    return SpotResult(st.name, kind, reason, intervals, inputs=inputs), source


def _streams_to_replace(fname: str | os.PathLike, name: str, source: _Source, overwrite: bool) -> list[str]:
    """``[name]`` if an earlier spotting stream of that name may be replaced, ``[]`` if there is none."""
    if name not in source.authors:
        return []
    if not overwrite:
        raise FileExistsError(f"{fname} already has a stream {name!r}. Pass --overwrite (overwrite=True) "
                              "to replace it, or --out-stream to choose another name.")
    if source.authors[name] != DERIVED_BY:
        raise FileExistsError(f"Stream {name!r} in {fname} was not written by spotting; refusing to replace "
                              "it. Choose another --out-stream.")
    return [name]


def _marker_spec(name: str, result: SpotResult, source: _Source, config: SpotConfig) -> StreamSpec:
    """The marker stream: the source's host, and the method's parameters, inputs and intervals as attributes."""
    return StreamSpec(name, "Markers", 1, "string", 0.0, source_id=f"emosync-spot:{source.info.get('source_id', '')}",
                      hostname=str(source.info.get("hostname", "")), channel_labels=["expression"],
                      can_drop_samples=False,
                      extra={"derived_by": DERIVED_BY, "derived_from": source.name, "spotting_source": source.name,
                             "spotting_inputs": json.dumps(result.inputs),
                             "spotting_config": config.model_dump_json(),
                             "spotting_tuning": config.tuning.model_dump_json(),
                             "spotting_intervals": json.dumps(result.to_dict()["intervals"])})


@verbose
@fill_doc
def spot_session(fname: str | os.PathLike, *, stream: str | None = None, out_stream: str | None = None,
                 overwrite: bool = False, write: bool = True, config: SpotConfig | None = None,
                 verbose: bool | str | None = None) -> SpotResult:
    """Spot expressions in a session and write them as a marker stream.

    Parameters
    ----------
    %(fname_analysis)s
    stream : str | None
        Source stream; default an estimated ``*-AU`` stream, else a ``*-Landmarks`` stream, else
        the first ``ActionUnits`` stream (see :func:`choose_source`). The video's
        ``*-HeadPose`` and ``*-Landmarks`` and, with ``config.emg.enabled``, the ``emosync
        emg-code`` stream are used by the interference-elimination modules when present.
    out_stream : str | None
        Name of the marker stream to write (default ``"<source>-Spotted"``).
    overwrite : bool
        Replace an existing spotting stream of that name (never a stream spotting did not write),
        once the new one is written.
    write : bool
        False to only compute.
    config : SpotConfig | None
        Method parameters (default ``configs/spot/default.yaml``).
    %(verbose)s

    Returns
    -------
    result : SpotResult
    """
    from acquisition.session.writer import SessionWriter

    config = config or load_spot_config("default")
    result, source = _spot_source(fname, stream, config)
    if not write:
        return result
    name = out_stream or f"{source.name}-Spotted"
    replace = _streams_to_replace(fname, name, source, overwrite)
    markers = sorted((m for i in result.intervals for m in i.markers()), key=lambda m: m[0])
    offsets = source.clock_offsets
    with SessionWriter.replace_derived(fname, [_marker_spec(name, result, source, config)], derived_by=DERIVED_BY,
                                       replace=replace) as new:
        if markers:
            new[name].append([[text] for _, text in markers], [t for t, _ in markers])
        # Same clock as the source: copy its offsets so `times` of markers and AUs align.
        if offsets.offsets.size:
            new[name].append_clock_offsets(offsets.collection_times, offsets.offsets, offsets.uncertainties)
    result.out_stream = name
    logger.info("Wrote %d markers to stream %r of %s", len(markers), name, fname)
    return result


@verbose
@fill_doc
def score_session(fname: str | os.PathLike, result: SpotResult, truth: str, *, iou_threshold: float = 0.5,
                  verbose: bool | str | None = None) -> dict[str, Any]:
    """Score a :func:`spot_session` result against a marker stream of the same session.

    Both sides go on the recorder's clock (the reference markers usually come from another
    source than the video); expressions the recording cut off are ``unknown`` spans (see
    :func:`acquisition.annotate.spot_scoring.spot_eval`).

    Parameters
    ----------
    %(fname_analysis)s
    result : SpotResult
        What :func:`spot_session` returned for this file.
    truth : str
        The reference marker stream (the simulated rig's ``Markers``).
    iou_threshold : float
        Minimum IoU of a true positive.
    %(verbose)s

    Returns
    -------
    scores : dict
        :func:`acquisition.annotate.spot_scoring.spot_eval`'s output.

    Raises
    ------
    ValueError
        If ``truth`` is missing or holds no complete onset/offset pair (the message lists the
        session's marker streams).
    """
    from acquisition.session.reader import open_session

    with open_session(fname) as session:
        reference = truth_intervals(session, truth)
        unknown = unknown_spans(session, truth)
        times = session.streams[result.source].times
        spotted = [Interval(float(times[i.onset_index]), float(times[i.offset_index]), i.kind, i.label)
                   for i in result.intervals]
    return spot_eval(spotted, reference, iou_threshold=iou_threshold, unknown=unknown)
