"""Offline synchronization: map raw LSL time stamps to the recorder's clock, then dejitter.

The method is pyxdf's (so results can be compared option for option), with two
changes that only help: clock offsets are weighted by their measured round-trip
uncertainty (a probe that waited longer is less trustworthy), and every sample is
assigned to the clock segment whose time range it falls in or is nearest to, so no
sample is left uncorrected around a clock reset.

1. **Clock segments.** The offset series is split where the source clock was reset:
   collection times go backwards, or both the time between measurements and the jump
   in offset are outliers (MAD-standardized, as pyxdf).
2. **Clock fit.** Per segment, a robust (Huber) linear fit ``offset = a + b * t``,
   with pyxdf's winsor threshold (0.1 ms) as the Huber scale, via
   :func:`scipy.optimize.least_squares`; it follows linear drift and ignores outliers.
3. **Dejitter.** For regular streams that cannot drop samples, per jitter segment
   (split at pauses longer than ``max(1 s, 500 samples)``), an ordinary least-squares
   line of time stamp on sample index replaces the stamps. Cameras, markers and
   irregular streams keep their own stamps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydantic import Field

from acquisition.utils.config import StrictModel
from acquisition.utils.logs import logger
from acquisition.sync.clock import ClockOffsetTable


class SyncOptions(StrictModel):
    """Synchronization options; names and defaults mirror ``pyxdf.load_xdf``."""

    synchronize_clocks: bool = True
    handle_clock_resets: bool = True
    dejitter_timestamps: bool = True
    jitter_break_threshold_seconds: float = Field(1.0, gt=0)
    jitter_break_threshold_samples: int = Field(500, ge=1)
    clock_reset_threshold_seconds: float = Field(5.0, ge=0)
    clock_reset_threshold_stds: float = Field(5.0, ge=0)
    clock_reset_threshold_offset_seconds: float = Field(1.0, ge=0)
    clock_reset_threshold_offset_stds: float = Field(10.0, ge=0)
    winsor_threshold: float = Field(0.0001, gt=0)
    weight_by_uncertainty: bool = True


@dataclass(frozen=True)
class ClockSegment:
    """A stretch of recording with one linear clock mapping ``offset = intercept + slope * t``.

    Attributes
    ----------
    first_offset, last_offset : int
        Inclusive indices into the clock-offset table.
    start_time_s, stop_time_s : float
        Collection times (source clock, seconds) of the first and last offset.
    intercept_s, slope : float
        The fitted mapping; ``slope * 1e6`` is the drift in ppm.
    residual_std_s : float
        Standard deviation of the offsets around the fit, in seconds.
    """

    first_offset: int
    last_offset: int
    start_time_s: float
    stop_time_s: float
    intercept_s: float
    slope: float
    residual_std_s: float

    def offset_at(self, t: np.ndarray) -> np.ndarray:
        """The fitted offset (s) at source times ``t`` (s)."""
        return self.intercept_s + self.slope * np.asarray(t)


@dataclass
class SyncResult:
    """Synchronized time stamps and what it took to get them.

    Attributes
    ----------
    times : array of float, shape (n_samples,)
        Time stamps in the recorder's clock, seconds.
    clock_segments : list of ClockSegment
        The clock mappings used (empty when no offsets were recorded).
    sample_clock_segment : array of int, shape (n_samples,)
        Index into ``clock_segments`` of each sample (-1 without offsets).
    jitter_segments : list of (int, int)
        Inclusive sample ranges without breaks (dejittered separately).
    effective_srate : float
        Sample-weighted mean rate over the jitter segments, Hz (0 if irregular/unknown).
    segment_srates : list of float
        Effective rate per jitter segment, Hz.
    jitter_before_s, jitter_after_s : float
        Standard deviation of the sample intervals around their median, before and after
        dejitter (seconds; NaN for irregular streams).
    dejittered : bool
        Whether dejitter was applied.
    """

    times: np.ndarray
    clock_segments: list[ClockSegment] = field(default_factory=list)
    sample_clock_segment: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    jitter_segments: list[tuple[int, int]] = field(default_factory=list)
    effective_srate: float = 0.0
    segment_srates: list[float] = field(default_factory=list)
    jitter_before_s: float = float("nan")
    jitter_after_s: float = float("nan")
    dejittered: bool = False


def _mad_outliers(diff: np.ndarray, thresh_stds: float, thresh_secs: float) -> np.ndarray:
    shifted = diff - np.median(diff)
    mad = np.median(np.abs(shifted)) + np.finfo(float).eps
    return (np.abs(shifted / mad) > thresh_stds) & (np.abs(shifted) > thresh_secs)


def find_clock_resets(table: ClockOffsetTable, options: SyncOptions) -> list[tuple[int, int]]:
    """Split the offset table at clock resets.

    Returns
    -------
    ranges : list of (int, int)
        Inclusive index ranges of the offsets that share one clock.
    """
    n = len(table)
    if n <= 1 or not options.handle_clock_resets:
        return [(0, n - 1)] if n else []
    time_diff = np.diff(table.collection_times)
    value_diff = np.diff(table.offsets)
    resets = (time_diff < 0) | (
        _mad_outliers(time_diff, options.clock_reset_threshold_stds, options.clock_reset_threshold_seconds)
        & _mad_outliers(value_diff, options.clock_reset_threshold_offset_stds,
                        options.clock_reset_threshold_offset_seconds))
    breaks = np.flatnonzero(resets)
    starts = np.concatenate([[0], breaks + 1])
    stops = np.concatenate([breaks, [n - 1]])
    return list(zip(starts.tolist(), stops.tolist()))


def fit_clock_segment(table: ClockOffsetTable, first: int, last: int, options: SyncOptions) -> ClockSegment:
    """Robust (Huber) linear fit of offset on collection time for offsets ``first..last`` (inclusive)."""
    # Imported here: scipy.optimize costs about 0.3 s, which `emosync --help` and `record` must not pay.
    from scipy.optimize import least_squares

    t = table.collection_times[first : last + 1]
    y = table.offsets[first : last + 1]
    if len(t) == 1 or np.ptp(t) == 0:
        return ClockSegment(first, last, float(t[0]), float(t[-1]), float(np.median(y)), 0.0, 0.0)
    scale = options.winsor_threshold
    weights = np.ones_like(y)
    unc = table.uncertainties[first : last + 1]
    if options.weight_by_uncertainty and np.all(np.isfinite(unc)) and np.all(unc > 0):
        # Relative weights: a probe with twice the round trip counts half (never more than 10x the best).
        weights = np.minimum(1.0, np.median(unc) / unc) ** 0.5
        weights = np.maximum(weights, 0.1)
    t0 = t[0]

    def residuals(p: np.ndarray) -> np.ndarray:
        return weights * ((p[0] + p[1] * (t - t0)) - y) / scale

    start = np.polyfit(t - t0, y, 1)[::-1]
    fit = least_squares(residuals, start, loss="huber", f_scale=1.0, x_scale=[scale, scale / max(np.ptp(t), 1)],
                        xtol=1e-15, ftol=1e-15, gtol=1e-15)
    intercept, slope = fit.x[0] - fit.x[1] * t0, fit.x[1]
    resid = y - (intercept + slope * t)
    return ClockSegment(first, last, float(t[0]), float(t[-1]), float(intercept), float(slope), float(np.std(resid)))


def _assign_samples(timestamps: np.ndarray, segments: list[ClockSegment], jump_s: float) -> np.ndarray:
    """Clock segment of each sample: the one whose time range holds it, else the nearest in time.

    Samples are walked in recording order, so after a reset (time stamps jump back) the
    later samples go to the later segment even though their stamps are smaller.
    """
    n = timestamps.shape[0]
    if len(segments) == 1:
        return np.zeros(n, dtype=int)
    out = np.empty(n, dtype=int)
    # Split the samples where their own stamps jump by more than jitter can explain, then give
    # each piece the segment that covers (or is nearest to) its time range, never going back.
    jumps = np.flatnonzero(np.abs(np.diff(timestamps)) > jump_s) + 1
    bounds = np.concatenate([[0], jumps, [n]])
    current = 0
    for a, b in zip(bounds[:-1], bounds[1:]):
        mid = np.median(timestamps[a:b])
        distance = [max(s.start_time_s - mid, mid - s.stop_time_s, 0.0) for s in segments]
        candidates = range(current, len(segments))
        current = min(candidates, key=lambda i: (distance[i], i))
        out[a:b] = current
    return out


def _interval_jitter(times: np.ndarray) -> float:
    if times.shape[0] < 3:
        return float("nan")
    d = np.diff(times)
    return float(np.std(d - np.median(d)))


def synchronize(timestamps: np.ndarray, clock_offsets: ClockOffsetTable, *, nominal_srate: float,
                can_drop_samples: bool, options: SyncOptions | None = None, name: str = "") -> SyncResult:
    """Synchronize one stream's raw time stamps to the recorder's clock.

    Parameters
    ----------
    timestamps : array of float, shape (n_samples,)
        Raw time stamps (source clock, seconds) in recording order.
    clock_offsets : ClockOffsetTable
        The offsets measured while recording.
    nominal_srate : float
        Nominal rate in Hz (0 for irregular streams, which are never dejittered).
    can_drop_samples : bool
        True for sources that may skip samples (cameras, markers): never dejittered.
    options : SyncOptions | None
        Method options (pyxdf's names and defaults).
    name : str
        Stream name, for log messages.

    Returns
    -------
    result : SyncResult
    """
    options = options or SyncOptions()
    stamps = np.asarray(timestamps, dtype=np.float64)
    n = stamps.shape[0]
    result = SyncResult(times=stamps.copy(), sample_clock_segment=np.full(n, -1, dtype=int))
    if n == 0:
        return result
    if options.synchronize_clocks and len(clock_offsets):
        segments = [fit_clock_segment(clock_offsets, a, b, options)
                    for a, b in find_clock_resets(clock_offsets, options)]
        assignment = _assign_samples(stamps, segments, options.clock_reset_threshold_offset_seconds)
        for i, segment in enumerate(segments):
            mask = assignment == i
            result.times[mask] = stamps[mask] + segment.offset_at(stamps[mask])
        result.clock_segments, result.sample_clock_segment = segments, assignment
        if len(segments) > 1:
            logger.info("Stream %s: %d clock resets detected", name or "?", len(segments) - 1)
    elif options.synchronize_clocks:
        logger.debug("Stream %s has no clock offsets: times are its raw stamps", name or "?")
    result.jitter_before_s = _interval_jitter(result.times) if nominal_srate > 0 else float("nan")
    if nominal_srate <= 0:
        result.jitter_segments = [(0, n - 1)]
        _warn_if_backwards(result.times, name)
        return result
    period = 1.0 / nominal_srate
    threshold = max(options.jitter_break_threshold_seconds, options.jitter_break_threshold_samples * period)
    breaks = np.flatnonzero(np.abs(np.diff(result.times)) > threshold)
    starts = np.concatenate([[0], breaks + 1])
    stops = np.concatenate([breaks, [n - 1]])
    result.jitter_segments = list(zip(starts.tolist(), stops.tolist()))
    dejitter = options.dejitter_timestamps and not can_drop_samples
    for a, b in result.jitter_segments:
        if dejitter and b > a:
            index = np.arange(a, b + 1, dtype=np.float64)
            slope, intercept = np.polyfit(index - a, result.times[a : b + 1], 1)
            result.times[a : b + 1] = intercept + slope * (index - a)
        duration = result.times[b] - result.times[a]
        result.segment_srates.append(float((b - a) / duration) if duration > 0 else 0.0)
    counts = np.array([b - a for a, b in result.jitter_segments], dtype=float)
    durations = np.array([result.times[b] - result.times[a] for a, b in result.jitter_segments])
    if durations.sum() > 0:
        result.effective_srate = float(counts.sum() / durations.sum())
        if abs(result.effective_srate - nominal_srate) / nominal_srate > 0.1:
            logger.warning("Stream %s: effective rate %.4f Hz differs from the nominal %.4f Hz by more than 10 %%",
                           name or "?", result.effective_srate, nominal_srate)
    result.dejittered = dejitter
    result.jitter_after_s = _interval_jitter(result.times)
    _warn_if_backwards(result.times, name)
    return result


def _warn_if_backwards(times: np.ndarray, name: str) -> None:
    backwards = int(np.sum(np.diff(times) < 0))
    if backwards:
        logger.warning("Stream %s: %d time stamps go backwards after synchronization (a clock problem at the "
                       "source, or a reset that was not detected); check `emosync info` and the sync plot.",
                       name or "?", backwards)
