"""How much an audit figure depends on which real people happen to be the held-out reference.

The frame-level bounds of the audit (held-out p01 and median nearest-neighbour distances, the
memorization threshold) and the membership-inference AUC are statistics of a handful of held-out
people's frames. Frames of one person are not independent draws: four disjoint groups of 4
held-out people gave one corpus memorization thresholds of 0.119 to 0.159 and one model membership
AUCs of 0.547 to 0.704 (benchmarks/RESULTS.md, "Intervals over held-out people").
:func:`cluster_bootstrap` estimates that spread from the data at hand by resampling whole people
(or whole sessions) with replacement, the unit that varies between audits, and recomputing the
statistic on each resample. With few people the intervals come out too narrow, above all for
1st-percentile statistics, which follow the single closest person (measured in the same section).

Written here because the bootstrap of :func:`scipy.stats.bootstrap` resamples observations, which
for frames of a few people gives an interval far too narrow; a cluster bootstrap is a loop over
resampled group indices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class ClusterInterval:
    """Point value and percentile interval of one or more statistics under a cluster bootstrap.

    Attributes
    ----------
    point : ndarray of float64, shape (n_statistics,)
        The statistics on every row.
    low, high : ndarray of float64, shape (n_statistics,)
        The ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles over the resamples;
        equal to ``point`` when there is only one group (nothing to resample).
    confidence : float
        Coverage of the percentile interval.
    n_groups : int
        Distinct groups (people, or sessions) the rows come from.
    n_resamples : int
        Resamples drawn (0 with a single group).
    """

    point: np.ndarray
    low: np.ndarray
    high: np.ndarray
    confidence: float
    n_groups: int
    n_resamples: int

    def to_dict(self, names: list[str], unit: str) -> dict[str, Any]:
        """``{name: [low, high], ..., "confidence", "n_units", "unit", "n_resamples"}`` for the audit's JSON."""
        if len(names) != len(self.point):
            raise ValueError(f"{len(names)} names for {len(self.point)} statistics")
        out: dict[str, Any] = {name: [float(lo), float(hi)] for name, lo, hi in zip(names, self.low, self.high)}
        return {**out, "confidence": self.confidence, "n_units": self.n_groups, "unit": unit,
                "n_resamples": self.n_resamples}


def cluster_bootstrap(groups: np.ndarray, statistic: Callable[[np.ndarray], Any], *, n_resamples: int = 1000,
                      confidence: float = 0.9, seed: int = 0) -> ClusterInterval:
    """Percentile interval of ``statistic`` when whole groups of rows are resampled with replacement.

    Parameters
    ----------
    groups : array, shape (n_rows,)
        The group (person, session) of each row; any hashable labels.
    statistic : callable
        ``statistic(rows)`` with ``rows`` an int array of row indices (repeated groups repeat their
        rows) returns a float or a 1-D array of floats (several statistics from one resample).
    n_resamples : int
        Resamples; each draws as many groups as there are, with replacement.
    confidence : float
        Coverage of the interval, in (0, 1).
    seed : int
        Seed of the resampling.

    Returns
    -------
    interval : ClusterInterval
    """
    groups = np.asarray(groups)
    if groups.ndim != 1 or groups.size == 0:
        raise ValueError(f"groups must be a non-empty 1-D array (one label per row), got shape {groups.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    _, inverse = np.unique(groups, return_inverse=True)
    rows_of = [np.flatnonzero(inverse == g) for g in range(inverse.max() + 1)]
    point = np.atleast_1d(np.asarray(statistic(np.arange(groups.size)), dtype=np.float64))
    if len(rows_of) < 2:
        return ClusterInterval(point, point.copy(), point.copy(), float(confidence), len(rows_of), 0)
    rng = np.random.default_rng([int(seed), 0xB007])
    draws = np.empty((n_resamples, point.size))
    for b in range(n_resamples):
        picked = rng.integers(0, len(rows_of), len(rows_of))
        draws[b] = np.atleast_1d(statistic(np.concatenate([rows_of[g] for g in picked])))
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(draws, [tail, 1.0 - tail], axis=0)
    return ClusterInterval(point, low, high, float(confidence), len(rows_of), int(n_resamples))


def verdict_is_stable(passes: Callable[[float], bool], low: float, high: float) -> bool:
    """Whether a check gives the same verdict at both ends of an interval (of its bound or of its value)."""
    return bool(passes(low)) == bool(passes(high))


# -- the audit's intervals ----------------------------------------------------------------------

def reference_units(subject_ids: np.ndarray, session_files: np.ndarray) -> tuple[np.ndarray, str]:
    """The unit resampled for held-out frames: their people when there are two or more, else their sessions."""
    subjects = np.asarray(subject_ids).astype(str)
    if len(set(subjects)) >= 2:
        return subjects, "subject"
    return np.asarray(session_files).astype(str), "session"


@dataclass
class ReferenceIntervals:
    """The intervals of one audit: its held-out frames' units and the settings; None everywhere when disabled.

    Parameters
    ----------
    config : ReferenceIntervalConfig
        ``reference_interval`` of the audit config.
    seed : int
        Seed of every resampling.
    units : ndarray of str, shape (n_holdout_frames,)
        The unit of each held-out frame (:func:`reference_units`).
    unit : ``"subject"`` | ``"session"``
    """

    config: Any
    seed: int
    units: np.ndarray
    unit: str

    @classmethod
    def of(cls, holdout: Any, config: Any, seed: int) -> ReferenceIntervals:
        """For the held-out :class:`~synth.generative.frames.FaceFrames`; warns when they hold few people."""
        from acquisition import logger

        units, unit = reference_units(holdout.subject_ids, holdout.session_files)
        intervals = cls(config, int(seed), units, unit)
        if config.enabled and intervals.n_units < config.advised_units:
            logger.warning("The held-out reference holds %d %s(s); its bounds move with who is in it (see the "
                           "intervals in audit.md). %d or more make the verdict firmer.", intervals.n_units, unit,
                           config.advised_units)
        return intervals

    @property
    def n_units(self) -> int:
        """Distinct held-out units (people, or sessions)."""
        return len(set(self.units))

    def _interval(self, statistic: Callable[[np.ndarray], Any], names: list[str],
                  units: np.ndarray | None = None) -> dict[str, Any] | None:
        """:func:`cluster_bootstrap` with these settings, as the audit's JSON block (None when disabled)."""
        if not self.config.enabled:
            return None
        interval = cluster_bootstrap(self.units if units is None else units, statistic,
                                     n_resamples=self.config.n_resamples, confidence=self.config.confidence,
                                     seed=self.seed)
        return interval.to_dict(names, self.unit)

    def distances(self, holdout_distance: np.ndarray) -> dict[str, Any] | None:
        """Intervals of the held-out ``p01`` and ``median`` NN distance (the bounds of the frame-level checks)."""
        d = np.asarray(holdout_distance, dtype=np.float64)
        return self._interval(lambda rows: np.quantile(d[rows], [0.01, 0.5]), ["p01", "median"])

    def memorization(self, synthetic_distance: np.ndarray, holdout_distance: np.ndarray, mc: Any
                     ) -> dict[str, Any] | None:
        """Intervals of the memorization threshold and of the synthetic fraction under it.

        The threshold is calibrated on the held-out distances with the audit's ``memorization``
        settings ``mc`` (:func:`~synth.privacy.memorization.calibrate_threshold`), so resampling
        held-out people moves it, and with it the count of memorized synthetic frames.
        """
        from synth.privacy.memorization import calibrate_threshold

        syn, hold = np.asarray(synthetic_distance, dtype=np.float64), np.asarray(holdout_distance, dtype=np.float64)

        def statistic(rows: np.ndarray) -> list[float]:
            threshold = calibrate_threshold(hold[rows], quantile=mc.quantile, scale=mc.scale, floor=mc.floor)
            return [threshold, float(np.mean(syn < threshold)) if syn.size else 0.0]

        return self._interval(statistic, ["threshold", "memorized_fraction"])

    def membership(self, member_losses: np.ndarray, nonmember_losses: np.ndarray, rows: np.ndarray
                   ) -> dict[str, Any] | None:
        """Interval of the membership-inference AUC with the non-member people resampled.

        ``rows``: the held-out frames the non-member losses belong to.
        """
        from synth.privacy.membership import roc_auc

        members, others = -np.asarray(member_losses, dtype=np.float64), -np.asarray(nonmember_losses, dtype=np.float64)
        return self._interval(lambda picked: roc_auc(members, others[picked]), ["auc"], self.units[rows])

    def describe(self) -> dict[str, Any]:
        """The result's ``reference_interval`` block."""
        return {"enabled": self.config.enabled, "unit": self.unit, "n_units": self.n_units,
                "confidence": self.config.confidence, "n_resamples": self.config.n_resamples,
                "advised_units": self.config.advised_units}
