"""Expression spotting: find onset-apex-offset intervals in AU or landmark streams, and score them.

This module turns a continuous facial-expression signal (an ``ActionUnits`` stream, ground
truth from the simulated rig or estimated from video by ``emosync annotate``; or, without
AUs, a ``*-Landmarks`` stream of 478 x (x, y, z) face-mesh points) into discrete expression
intervals, labels them micro (<= 0.5 s) or macro (> 0.5 s), and writes them back into the
session as a marker stream in the rig's ``"<phase>/<label>/<kind>"`` format, through
:meth:`SessionWriter.replace_derived <acquisition.session.writer.SessionWriter.replace_derived>`
(a failed run leaves an earlier result in place). It also holds :func:`spot_eval`, the
MEGC-style interval scoring (IoU >= 0.5) used by the tests and by
``benchmarks/spotting_eval.py``. Expressions are labelled with the AU vocabulary and EMFACS
prototypes of :mod:`acquisition.annotate.action_units`.

Method (details and rationale in ``docs/spotting.md``):

1. Rows with NaN (no face found) are linearly interpolated when the gap is at most
   ``max_nan_gap_s``; longer gaps are masked and never spotted into.
2. Each channel is low-pass filtered (zero-phase Butterworth, ``smooth_hz``), a rolling median
   (``baseline_window_s``) is subtracted and the rest is divided by its robust SD (1.4826 MAD,
   at least ``noise_floor``). AU45 (blink) is excluded; for landmarks, rigid head motion is
   removed by per-frame Procrustes alignment and the eye landmarks are excluded.
3. The combined activation is the L2 norm of the positive z-scores across channels, itself
   robustly standardized; hysteresis thresholding (``high``/``low``) gives candidate intervals.
4. Edges are extended to where the activation leaves the baseline (``edge_fraction`` of the
   peak height, or a local minimum); close intervals are merged, short ones dropped; the apex
   is the activation maximum. Dominant AUs are those near the largest at the apex, and an
   emotion is named only when the apex AU pattern is close to an EMFACS prototype.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any
from collections.abc import Sequence

import numpy as np
from scipy import ndimage, optimize, signal

from acquisition.utils.docs import fill_doc
from acquisition.utils.logs import logger, verbose
from acquisition.session.markers import parse_expression_markers
from acquisition.session.format import StreamSpec

from acquisition.annotate.action_units import AU_LABELS, EMOTION_PROTOTYPES, MICRO_MAX_DURATION_S

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


@dataclass(frozen=True)
class SpotConfig:
    """Parameters of :func:`spot_expressions` (times in seconds, thresholds in robust SDs).

    Attributes
    ----------
    smooth_hz : float
        Cut-off (Hz) of the zero-phase 4th-order Butterworth low-pass applied to every channel.
    baseline_window_s : float
        Length (s) of the rolling median that tracks each channel's neutral level.
    noise_floor : float
        Smallest per-channel noise SD of AU channels (intensity, 0-5 scale); keeps noise-free
        ground truth from dividing by zero.
    landmark_noise_floor : float
        The same for landmark motion, in units of the face size (RMS distance of the
        landmarks from their centroid).
    high, low : float
        Hysteresis thresholds on the standardized combined activation: an interval is a run
        above ``low`` that reaches ``high``.
    edge_fraction : float
        Onset/offset are moved outwards to where the activation falls to this fraction of the
        interval's peak height (above baseline), or to a local minimum.
    merge_gap_s : float
        Intervals separated by less than this are merged.
    min_duration_s : float
        Shorter intervals are dropped.
    max_nan_gap_s : float
        NaN gaps up to this long are interpolated; longer ones are masked.
    exclude_aus : tuple of int
        AUs left out of the activation (AU45: blinks are not expressions).
    au_fraction : float
        An AU is dominant if its apex intensity is at least this fraction of the largest.
    min_au_intensity : float
        ... and at least this intensity above its baseline (0-5 scale).
    emotion_similarity : float
        Minimum cosine similarity between the apex AU pattern and an EMFACS prototype
        variant to name an emotion; below it the label is the dominant AUs.
    """

    smooth_hz: float = 5.0
    baseline_window_s: float = 20.0
    noise_floor: float = 0.05
    landmark_noise_floor: float = 1e-3
    high: float = 6.0
    low: float = 3.0
    edge_fraction: float = 0.1
    merge_gap_s: float = 0.2
    min_duration_s: float = 0.1
    max_nan_gap_s: float = 0.25
    exclude_aus: tuple[int, ...] = (45,)
    au_fraction: float = 0.4
    min_au_intensity: float = 0.3
    emotion_similarity: float = 0.9

    def __post_init__(self) -> None:
        if not 0 < self.low < self.high:
            raise ValueError(f"Need 0 < low < high, got low={self.low}, high={self.high}.")
        for name in ("smooth_hz", "baseline_window_s", "noise_floor", "landmark_noise_floor"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}.")


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
    out_stream : str | None
        Name of the marker stream written, None if nothing was written.
    """

    source: str
    source_kind: str
    reason: str
    intervals: list[SpottedInterval]
    out_stream: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (intervals with their labels and durations)."""
        return {"source": self.source, "source_kind": self.source_kind, "reason": self.reason,
                "out_stream": self.out_stream,
                "intervals": [{**asdict(i), "label": i.label, "duration_s": i.duration_s} for i in self.intervals]}


# ---------------------------------------------------------------------------- signal processing
def _robust_sd(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """1.4826 x median absolute deviation (the SD for Gaussian data), ignoring NaN."""
    med = np.nanmedian(x, axis=axis, keepdims=True)
    return 1.4826 * np.nanmedian(np.abs(x - med), axis=axis)


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
    sd = np.maximum(_robust_sd(deviation[valid]), noise_floor)
    return deviation, deviation / sd


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` (stop exclusive) of the True runs of a boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _intervals_from_activation(activation: np.ndarray, srate: float, config: SpotConfig,
                               blocked: np.ndarray) -> list[tuple[int, int, int]]:
    """Hysteresis, edge refinement, merging and duration filter: ``(onset, apex, offset)`` frames."""
    act = np.where(blocked, -np.inf, activation)
    candidates = [(a, b) for a, b in _runs(act > config.low) if np.max(act[a:b]) >= config.high]
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
    for i in np.flatnonzero(finite):
        p = xyz[i] - xyz[i].mean(axis=0)
        rotation, scale = _procrustes(p, ref_c)
        out[i] = np.linalg.norm(scale * p @ rotation - ref_c, axis=1)
    return out


def _procrustes(points: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, float]:
    """Rotation R and scale s minimizing ||s points R - reference|| (both centred)."""
    rotation, _ = _orthogonal_procrustes(points, reference)
    norm = float(np.sum(points**2))
    scale = float(np.sum((points @ rotation) * reference) / norm) if norm > 0 else 1.0
    return rotation, scale


def _orthogonal_procrustes(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float]:
    from scipy.linalg import orthogonal_procrustes

    return orthogonal_procrustes(a, b)


def _au_columns(channel_labels: Sequence[str] | None, n_channels: int,
                config: SpotConfig) -> tuple[list[int], list[int]]:
    """Columns to spot in and their AU numbers: every AU channel except ``config.exclude_aus``."""
    labels = list(channel_labels) if channel_labels is not None else AU_LABELS[:n_channels]
    if len(labels) != n_channels:
        raise ValueError(f"{len(labels)} channel labels for {n_channels} channels.")
    columns, aus = [], []
    for i, label in enumerate(labels):
        try:
            au = int(str(label).upper().removeprefix("AU"))
        except ValueError:
            raise ValueError(f"Channel {label!r} is not an AU name like 'AU12'.") from None
        if au not in config.exclude_aus:
            columns.append(i)
            aus.append(au)
    return columns, aus


@verbose
@fill_doc
def spot_expressions(values: np.ndarray, timestamps: np.ndarray, *, srate: float | None = None,
                     channel_labels: Sequence[str] | None = None, source_kind: str = "au",
                     config: SpotConfig | None = None, verbose: bool | str | None = None) -> list[SpottedInterval]:
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
        channels. Channels in ``config.exclude_aus`` (AU45) are ignored.
    source_kind : ``"au"`` | ``"landmarks"``
        What ``values`` hold.
    config : SpotConfig | None
        Method parameters (defaults: :class:`SpotConfig`).
    %(verbose)s

    Returns
    -------
    intervals : list of SpottedInterval
        In time order.
    """
    config = config or SpotConfig()
    values = np.asarray(values, dtype=np.float64)
    timestamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)
    if values.ndim != 2 or values.shape[0] != timestamps.size:
        raise ValueError(f"values must be (n_frames, n_channels) with one time stamp per frame; got {values.shape} "
                         f"and {timestamps.size} time stamps.")
    if values.shape[0] < 3:
        raise ValueError(f"Need at least 3 frames to spot expressions, got {values.shape[0]}.")
    if not srate:
        srate = 1.0 / float(np.median(np.diff(timestamps)))
    aus: list[int] = []
    if source_kind == "au":
        columns, aus = _au_columns(channel_labels, values.shape[1], config)
        x = values[:, columns]
        prototypes = EMOTION_PROTOTYPES
    elif source_kind == "landmarks":
        x = landmark_motion(values)
        prototypes = {}
    else:
        raise ValueError(f"source_kind must be 'au' or 'landmarks', got {source_kind!r}.")
    x, long_gap = _fill_nan_rows(x, srate, config.max_nan_gap_s)
    valid = ~long_gap
    floor = config.noise_floor if source_kind == "au" else config.landmark_noise_floor
    deviation, z = _channel_z(x, srate, config, valid, floor)
    combined = np.sqrt(np.sum(np.clip(z, 0.0, None) ** 2, axis=1))
    base = float(np.median(combined[valid]))
    spread = max(float(_robust_sd(combined[valid])), 1.0)
    activation = (combined - base) / spread
    # A long gap blocks its own frames and a short margin: filter edge effects live there.
    margin = int(round(0.1 * srate))
    blocked = ndimage.binary_dilation(long_gap, iterations=margin) if long_gap.any() and margin else long_gap
    frames = _intervals_from_activation(activation, srate, config, blocked)
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
def _is_landmarks(stream: Any) -> bool:
    return stream.name.endswith("-Landmarks") or str(stream.info.get("type", "")).lower() == "landmarks"


def choose_source(session: Any, stream: str | None = None) -> tuple[Any, str, str]:
    """Pick the stream to spot in.

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
        if str(st.info.get("type", "")).lower() == "actionunits":
            return st, "au", "chosen with --stream"
        if _is_landmarks(st):
            return st, "landmarks", "chosen with --stream"
        raise ValueError(f"Stream {stream!r} is of type {st.info.get('type')!r}; spotting needs an ActionUnits "
                         f"stream or a '*-Landmarks' stream. Streams: {listing}.")
    au_streams = [s for s in session.streams.values() if str(s.info.get("type", "")).lower() == "actionunits"]
    estimated = [s for s in au_streams if s.name.endswith("-AU")]
    if estimated:
        return estimated[0], "au", "estimated AU stream (*-AU)"
    if au_streams:
        return au_streams[0], "au", "first ActionUnits stream (no estimated *-AU stream)"
    landmarks = [s for s in session.streams.values() if _is_landmarks(s)]
    if landmarks:
        return landmarks[0], "landmarks", "landmark motion (no ActionUnits stream)"
    raise ValueError(f"{session.fname} has no ActionUnits stream and no '*-Landmarks' stream to spot in. "
                     f"Streams: {listing}. Run `emosync annotate` on the video first, or pass --stream.")


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
    """Choose the source stream, read it and spot in it."""
    from acquisition.session.reader import open_session

    with open_session(fname) as session:
        st, kind, reason = choose_source(session, stream)
        if st.n_samples == 0:
            raise ValueError(f"Stream {st.name!r} in {fname} is empty (0 samples); nothing to spot.")
        values = np.asarray(st.data[:], dtype=np.float64)
        timestamps = np.asarray(st.timestamps)
        intervals = spot_expressions(values, timestamps, srate=st.nominal_srate,
                                     channel_labels=st.info.get("channel_labels") or None if kind == "au" else None,
                                     source_kind=kind, config=config)
        source = _Source(st.name, dict(st.info), st.clock_offsets,
                         {n: _author(s.info) for n, s in session.streams.items()})
    return SpotResult(st.name, kind, reason, intervals), source


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
    """The marker stream: the source's host, and the method's parameters and intervals as attributes."""
    return StreamSpec(name, "Markers", 1, "string", 0.0, source_id=f"emosync-spot:{source.info.get('source_id', '')}",
                      hostname=str(source.info.get("hostname", "")), channel_labels=["expression"],
                      can_drop_samples=False,
                      extra={"derived_by": DERIVED_BY, "derived_from": source.name, "spotting_source": source.name,
                             "spotting_config": json.dumps(asdict(config)),
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
        Source stream; default an estimated ``*-AU`` stream, else the first ``ActionUnits``
        stream, else a ``*-Landmarks`` stream.
    out_stream : str | None
        Name of the marker stream to write (default ``"<source>-Spotted"``).
    overwrite : bool
        Replace an existing spotting stream of that name (never a stream spotting did not write),
        once the new one is written.
    write : bool
        False to only compute.
    config : SpotConfig | None
        Method parameters.
    %(verbose)s

    Returns
    -------
    result : SpotResult
    """
    from acquisition.session.writer import SessionWriter

    config = config or SpotConfig()
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


# ---------------------------------------------------------------------------- evaluation
@dataclass(frozen=True)
class Interval:
    """A reference or spotted interval: onset and offset in seconds, and its class."""

    onset_s: float
    offset_s: float
    kind: str
    label: str = ""


def _as_interval(item: Any) -> Interval:
    if isinstance(item, Interval):
        return item
    if isinstance(item, SpottedInterval):
        return Interval(item.onset_s, item.offset_s, item.kind, item.label)
    onset, offset, kind, *rest = item
    return Interval(float(onset), float(offset), str(kind), str(rest[0]) if rest else "")


def intervals_from_markers(times: Sequence[float], texts: Sequence[str]) -> list[Interval]:
    """The complete expressions of ``onset/apex/offset`` markers, as intervals.

    Markers are paired by :func:`acquisition.session.markers.parse_expression_markers` (its
    docstring states the rule for unmatched, repeated and misplaced markers).

    Parameters
    ----------
    times : sequence of float
        Marker times in seconds: a stream's synchronized :attr:`~acquisition.Stream.times`, so
        reference and spotted intervals are on one clock.
    texts : sequence of str
        Marker strings; other markers (blink, trial start...) are ignored.

    Returns
    -------
    intervals : list of Interval
        Expressions with an onset and an offset, in onset order; incomplete ones are left out.
    """
    return [Interval(e.onset_s, e.offset_s, e.kind, e.label) for e in parse_expression_markers(times, texts).complete]


def interval_iou(a: Interval, b: Interval) -> float:
    """Intersection over union of two time intervals (0 when disjoint)."""
    inter = min(a.offset_s, b.offset_s) - max(a.onset_s, b.onset_s)
    union = max(a.offset_s, b.offset_s) - min(a.onset_s, b.onset_s)
    return max(inter, 0.0) / union if union > 0 else 0.0


def _prf(tp: int, fp: int, fn: int) -> dict[str, float | int]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def spot_eval(spotted: Sequence[Any], truth: Sequence[Any], *, iou_threshold: float = 0.5) -> dict[str, Any]:
    """Score spotted intervals against ground truth (MEGC convention: IoU >= 0.5).

    A spotted interval is a true positive if its IoU with a ground-truth interval is at least
    ``iou_threshold``; each ground truth and each spot is matched at most once (maximum
    total IoU assignment, Hungarian). A TP counts for the *ground truth's* class even if the
    spot was classified differently (such class mismatches are counted in
    ``"class_mismatches"``); unmatched spots are false positives of the class they were
    given, unmatched ground truths false negatives of theirs. So per-class precision is
    ``TP_c / (TP_c + FP_c)``; ``"overall"`` ignores classes. A ratio with a zero
    denominator is reported as 0.

    Parameters
    ----------
    spotted, truth : sequence of Interval | SpottedInterval | (onset_s, offset_s, kind[, label])
        Intervals in seconds, ``kind`` ``"micro"`` or ``"macro"``.
    iou_threshold : float
        Minimum IoU for a match.

    Returns
    -------
    scores : dict
        ``{"micro": {...}, "macro": {...}, "overall": {...}, "class_mismatches": int,
        "matches": [(spot_index, truth_index, iou), ...]}`` with ``tp``, ``fp``, ``fn``,
        ``precision``, ``recall``, ``f1`` per entry.
    """
    spots = [_as_interval(s) for s in spotted]
    gts = [_as_interval(g) for g in truth]
    matches: list[tuple[int, int, float]] = []
    if spots and gts:
        iou = np.array([[interval_iou(s, g) for g in gts] for s in spots])
        eligible = iou >= iou_threshold
        rows, cols = optimize.linear_sum_assignment(np.where(eligible, -iou, 0.0))
        matches = [(int(r), int(c), float(iou[r, c])) for r, c in zip(rows, cols) if eligible[r, c]]
    matched_s = {r for r, _, _ in matches}
    matched_g = {c for _, c, _ in matches}
    scores: dict[str, Any] = {}
    for kind in ("micro", "macro"):
        tp = sum(gts[c].kind == kind for _, c, _ in matches)
        fp = sum(s.kind == kind for i, s in enumerate(spots) if i not in matched_s)
        fn = sum(g.kind == kind for i, g in enumerate(gts) if i not in matched_g)
        scores[kind] = _prf(tp, fp, fn)
    scores["overall"] = _prf(len(matches), len(spots) - len(matches), len(gts) - len(matches))
    scores["class_mismatches"] = sum(spots[r].kind != gts[c].kind for r, c, _ in matches)
    scores["matches"] = matches
    return scores
