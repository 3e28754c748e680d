"""The cluster bootstrap behind the audit's "with other held-out people" intervals: known answers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from synth.privacy.config import ReferenceIntervalConfig
from synth.privacy.reference_interval import (ReferenceIntervals, cluster_bootstrap, reference_units,
                                              verdict_is_stable)


def _median(values: np.ndarray):
    return lambda rows: np.median(values[rows])


def test_two_people_median_takes_exactly_three_values_with_known_probabilities():
    # Person a: 10 frames at 1.0; person b: 10 frames at 3.0. A resample of two people is {a, a}
    # (median 1, p 1/4), {a, b} (median 2, p 1/2) or {b, b} (median 3, p 1/4).
    values = np.r_[np.full(10, 1.0), np.full(10, 3.0)]
    groups = np.r_[np.full(10, "a"), np.full(10, "b")]
    wide = cluster_bootstrap(groups, _median(values), n_resamples=4000, confidence=0.9, seed=1)
    assert wide.point.tolist() == [2.0] and wide.low.tolist() == [1.0] and wide.high.tolist() == [3.0]
    assert (wide.n_groups, wide.n_resamples) == (2, 4000)
    # A 40 % interval (30th to 70th percentile) lies inside the middle half: exactly 2.
    narrow = cluster_bootstrap(groups, _median(values), n_resamples=4000, confidence=0.4, seed=1)
    assert narrow.low.tolist() == [2.0] and narrow.high.tolist() == [2.0]


def test_resampling_people_is_wider_than_resampling_frames_would_be():
    # Eight people whose frames sit tightly around person-specific levels 0..7: the spread between
    # people, not the number of frames, sets the interval of the mean.
    rng = np.random.default_rng(0)
    levels = np.arange(8.0)
    values = np.concatenate([level + 0.01 * rng.standard_normal(500) for level in levels])
    groups = np.repeat(np.arange(8), 500)
    interval = cluster_bootstrap(groups, lambda rows: values[rows].mean(), n_resamples=2000, seed=0)
    # Mean of 8 people drawn with replacement: SD = SD(levels) / sqrt(8) = 0.81; 90 % ~ +-1.33.
    half_width = (interval.high[0] - interval.low[0]) / 2
    assert half_width == pytest.approx(1.645 * levels.std() / np.sqrt(8), rel=0.1)
    assert interval.low[0] < 3.5 < interval.high[0]


def test_identical_people_and_a_single_person_give_no_spread():
    values = np.tile(np.linspace(0.0, 1.0, 50), 4)
    same = cluster_bootstrap(np.repeat(np.arange(4), 50), lambda rows: np.quantile(values[rows], [0.01, 0.5]),
                             n_resamples=200)
    np.testing.assert_allclose(same.low, same.point)
    np.testing.assert_allclose(same.high, same.point)
    single = cluster_bootstrap(np.zeros(50, int), _median(values[:50]), n_resamples=200)
    assert (single.n_groups, single.n_resamples) == (1, 0)
    assert single.low[0] == single.high[0] == single.point[0] == pytest.approx(0.5)


def test_same_seed_same_interval_and_bad_arguments_refused():
    values, groups = np.arange(30.0), np.repeat(np.arange(3), 10)
    a = cluster_bootstrap(groups, _median(values), n_resamples=100, seed=5)
    b = cluster_bootstrap(groups, _median(values), n_resamples=100, seed=5)
    assert (a.low, a.high) == (b.low, b.high)
    with pytest.raises(ValueError, match="confidence"):
        cluster_bootstrap(groups, _median(values), confidence=1.0)
    with pytest.raises(ValueError, match="n_resamples"):
        cluster_bootstrap(groups, _median(values), n_resamples=0)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        cluster_bootstrap(np.array([]), _median(values))
    with pytest.raises(ValueError, match="2 names for 1"):
        a.to_dict(["p01", "median"], "subject")


def test_audit_intervals_on_two_people():
    # Held-out person a at distance 1, person b at 3 (10 frames each); synthetic frames at 1.5 and 2.5.
    hold = np.r_[np.full(10, 1.0), np.full(10, 3.0)]
    units = np.r_[np.full(10, "a"), np.full(10, "b")]
    intervals = ReferenceIntervals(ReferenceIntervalConfig(n_resamples=4000), 0, units, "subject")
    block = intervals.distances(hold)
    assert block["median"] == [1.0, 3.0] and block["p01"] == [1.0, 3.0]
    assert (block["unit"], block["n_units"], block["confidence"]) == ("subject", 2, 0.9)
    # Threshold = 0.5 x the 0.01 quantile: 0.5 ({a,a} or {a,b}) or 1.5 ({b,b}); frames strictly under it.
    syn = np.array([0.6, 1.0, 1.4, 2.0])
    mem = intervals.memorization(syn, hold, SimpleNamespace(quantile=0.01, scale=0.5, floor=0.0))
    assert mem["threshold"] == [0.5, 1.5] and mem["memorized_fraction"] == [0.0, 0.75]
    # Members' losses 0..9; non-members a: all below every member (AUC 0 with a alone), b: all above (AUC 1).
    members = np.arange(10.0)
    others = np.r_[np.full(10, -1.0), np.full(10, 20.0)]
    mia = intervals.membership(members, others, np.arange(20))
    assert mia["auc"] == [0.0, 1.0]


def test_reference_units_fall_back_to_sessions_with_one_person():
    units, unit = reference_units(np.array(["s1", "s2", "s1"]), np.array(["x.h5", "y.h5", "z.h5"]))
    assert unit == "subject" and units.tolist() == ["s1", "s2", "s1"]
    units, unit = reference_units(np.array(["s1", "s1"]), np.array(["x.h5", "y.h5"]))
    assert unit == "session" and units.tolist() == ["x.h5", "y.h5"]


def test_verdict_is_stable_only_when_both_ends_agree():
    assert verdict_is_stable(lambda bound: 0.16 >= bound, 0.10, 0.15)
    assert verdict_is_stable(lambda bound: 0.16 >= bound, 0.17, 0.20)
    assert not verdict_is_stable(lambda bound: 0.16 >= bound, 0.15, 0.17)


def test_reference_intervals_warn_on_few_people_and_switch_off(emosync_log):
    holdout = SimpleNamespace(subject_ids=np.repeat(["p1", "p2", "p3"], 5), session_files=np.repeat(["a", "b", "c"], 5))
    distance = np.repeat([1.0, 2.0, 3.0], 5)
    on = ReferenceIntervals.of(holdout, ReferenceIntervalConfig(n_resamples=200), seed=0)
    assert "holds 3 subject(s)" in emosync_log.text and "8 or more" in emosync_log.text
    assert on.describe() == {"enabled": True, "unit": "subject", "n_units": 3, "confidence": 0.9,
                             "n_resamples": 200, "advised_units": 8}
    assert on.distances(distance)["median"] == [1.0, 3.0]
    emosync_log.clear()
    ReferenceIntervals.of(holdout, ReferenceIntervalConfig(advised_units=3), seed=0)
    assert "holds" not in emosync_log.text
    off = ReferenceIntervals.of(holdout, ReferenceIntervalConfig(enabled=False), seed=0)
    assert off.distances(distance) is None and off.membership(distance, distance, np.arange(15)) is None
    assert "holds" not in emosync_log.text
