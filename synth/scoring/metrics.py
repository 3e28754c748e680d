"""Agreement between requested and measured AU intensities: per-AU r and MAE, and expression timing.

Pure numpy functions on arrays of shape ``(n_frames, n_aus)``, with no model or file in sight, so
each number the scorer reports can be checked against a hand-computed answer
(``tests/synth/test_scoring.py``).

Conventions (they decide what a number means, so they are stated once, here):

- Per-AU Pearson r and MAE are pooled over all frames of all sequences of a set.
- An AU whose *requested* intensity is constant over the set has no defined r (NaN): there is
  nothing to follow. An AU whose *measured* intensity is constant while the request varies gets
  r = 0: the measurement does not follow the request at all (a generator of constant frames
  scores 0, not "undefined").
- Timing (:func:`expression_timing`): the course of a sequence is the sum of its rendered AUs
  minus the sequence's minimum; apex = first frame of the maximum; onset = first frame of the
  run of frames at or above half the peak that contains the apex; offset = last frame of that
  run. Errors are in frames, measured minus requested (positive = late).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Standard deviations below this (FACS units) count as constant.
CONSTANT_STD = 1e-6


def _check_pair(requested: np.ndarray, measured: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    requested = np.asarray(requested, dtype=np.float64)
    measured = np.asarray(measured, dtype=np.float64)
    if requested.ndim == 1:
        requested = requested[:, None]
    if measured.ndim == 1:
        measured = measured[:, None]
    if requested.shape != measured.shape or requested.ndim != 2:
        raise ValueError(f"requested and measured must both have shape (n_frames, n_aus); got {requested.shape} "
                         f"and {measured.shape}.")
    if len(requested) < 2:
        raise ValueError(f"At least 2 frames are needed for a correlation, got {len(requested)}.")
    return requested, measured


def pearson_per_au(requested: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Pearson correlation of each AU column between requested and measured intensities.

    Parameters
    ----------
    requested : array of float, shape (n_frames, n_aus)
        The intensities asked for (FACS 0-5).
    measured : array of float, shape (n_frames, n_aus)
        The intensities the estimator measured on the frames.

    Returns
    -------
    r : array of float64, shape (n_aus,)
        NaN where the request is constant; 0 where the measurement is constant but the request is
        not (see the module docstring).
    """
    requested, measured = _check_pair(requested, measured)
    rq = requested - requested.mean(0)
    ms = measured - measured.mean(0)
    sd_rq, sd_ms = rq.std(0), ms.std(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (rq * ms).mean(0) / (sd_rq * sd_ms)
    r = np.where(sd_ms < CONSTANT_STD, 0.0, r)
    r = np.where(sd_rq < CONSTANT_STD, np.nan, r)
    return np.clip(r, -1.0, 1.0)


def mae_per_au(requested: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Mean absolute error of each AU column, in FACS intensity units (0-5 scale).

    Parameters
    ----------
    requested, measured : array of float, shape (n_frames, n_aus)

    Returns
    -------
    mae : array of float64, shape (n_aus,)
    """
    requested, measured = _check_pair(requested, measured)
    return np.abs(measured - requested).mean(0)


def rendered_aus(reference_aus: np.ndarray, *, min_std: float) -> np.ndarray:
    """Which AUs vary enough in the reference data to be measured at all.

    Parameters
    ----------
    reference_aus : array of float, shape (n_frames, n_aus)
        The true AU intensities of the reference frames.
    min_std : float
        An AU is "rendered" when its standard deviation over the reference frames is at least
        this, in FACS units. An AU that never moves in the reference data cannot be learned by
        the estimator, so its r would measure nothing.

    Returns
    -------
    mask : array of bool, shape (n_aus,)
    """
    reference_aus = np.asarray(reference_aus, dtype=np.float64)
    if reference_aus.ndim != 2:
        raise ValueError(f"reference_aus must have shape (n_frames, n_aus), got {reference_aus.shape}.")
    return reference_aus.std(0) >= min_std


@dataclass
class Timing:
    """Onset, apex and offset of one expression course, in frames from the sequence's start."""

    onset: int
    apex: int
    offset: int


def expression_timing(course: np.ndarray) -> Timing | None:
    """Onset, apex and offset of a 1-D expression course (half-maximum rule of the module docstring).

    Parameters
    ----------
    course : array of float, shape (n_frames,)
        E.g. the sum of the rendered AUs of each frame of one sequence.

    Returns
    -------
    timing : Timing | None
        None for a flat course (peak above the minimum below ``CONSTANT_STD``): no expression to time.
    """
    course = np.asarray(course, dtype=np.float64)
    if course.ndim != 1 or len(course) == 0:
        raise ValueError(f"course must have shape (n_frames,), got {course.shape}.")
    course = course - course.min()
    peak = course.max()
    if peak < CONSTANT_STD:
        return None
    apex = int(np.argmax(course))
    below = course < 0.5 * peak
    before = np.flatnonzero(below[:apex])
    after = np.flatnonzero(below[apex:])
    onset = int(before[-1] + 1) if len(before) else 0
    offset = int(apex + after[0] - 1) if len(after) else len(course) - 1
    return Timing(onset, apex, offset)


def timing_errors(requested_course: np.ndarray, measured_course: np.ndarray) -> dict[str, int] | None:
    """Measured minus requested onset, apex and offset of one sequence, in frames.

    Parameters
    ----------
    requested_course, measured_course : array of float, shape (n_frames,)
        The requested and measured expression courses of the same frames.

    Returns
    -------
    errors : dict | None
        ``{"onset", "apex", "offset"}`` in frames (positive: the measured event is late); None when
        the requested course is flat (nothing to time). A flat measured course (nothing rendered)
        counts as events at frame 0, so it is penalized rather than skipped.
    """
    requested_course = np.asarray(requested_course, dtype=np.float64)
    measured_course = np.asarray(measured_course, dtype=np.float64)
    if requested_course.shape != measured_course.shape:
        raise ValueError(f"Courses differ in length: {requested_course.shape} vs {measured_course.shape}.")
    want = expression_timing(requested_course)
    if want is None:
        return None
    got = expression_timing(measured_course) or Timing(0, 0, 0)
    return {"onset": got.onset - want.onset, "apex": got.apex - want.apex, "offset": got.offset - want.offset}


def summarize_timing(errors: list[dict[str, int] | None]) -> dict[str, float | int | None]:
    """Mean and median absolute timing error per event over sequences, in frames.

    Parameters
    ----------
    errors : list of dict | None
        :func:`timing_errors` of each sequence (None entries, flat requests, are skipped).

    Returns
    -------
    summary : dict
        ``n_sequences`` (timed), and for each of onset, apex, offset: ``<event>_mean_abs_frames`` and
        ``<event>_median_abs_frames`` (None when no sequence could be timed), plus
        ``mean_abs_frames`` (the mean over the three events).
    """
    kept = [e for e in errors if e is not None]
    out: dict[str, float | int | None] = {"n_sequences": len(kept)}
    means = []
    for event in ("onset", "apex", "offset"):
        values = np.abs([e[event] for e in kept], dtype=np.float64)
        mean = float(values.mean()) if len(values) else None
        out[f"{event}_mean_abs_frames"] = mean
        out[f"{event}_median_abs_frames"] = float(np.median(values)) if len(values) else None
        if mean is not None:
            means.append(mean)
    out["mean_abs_frames"] = float(np.mean(means)) if means else None
    return out
