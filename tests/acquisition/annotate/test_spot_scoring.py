"""Known-answer tests of spotting's scoring: IoU, TP/FP/FN per class, one-to-one matching, pooling, references."""

from __future__ import annotations

import numpy as np
import pytest

from acquisition import SessionWriter, StreamSpec, open_session
from acquisition.annotate.spot_scoring import (Interval, interval_iou, pool_scores, spot_eval, truth_intervals,
                                               unknown_spans)


@pytest.mark.parametrize("a, b, expected", [
    ((0.0, 1.0), (0.0, 1.0), 1.0),
    ((0.0, 1.0), (0.5, 1.5), 0.5 / 1.5),
    ((0.0, 1.0), (0.25, 0.75), 0.5),
    ((0.0, 1.0), (1.0, 2.0), 0.0),      # touching: no overlap
    ((0.0, 1.0), (3.0, 4.0), 0.0),
])
def test_interval_iou(a, b, expected):
    assert interval_iou(Interval(*a, "micro"), Interval(*b, "micro")) == pytest.approx(expected)
    assert interval_iou(Interval(*b, "micro"), Interval(*a, "micro")) == pytest.approx(expected)


def test_iou_threshold_is_inclusive():
    # IoU of (0, 0.5) with (0, 1) is exactly 0.5: a TP at the MEGC threshold, not at 0.51.
    assert spot_eval([(0.0, 0.5, "micro")], [(0.0, 1.0, "macro")])["overall"]["tp"] == 1
    assert spot_eval([(0.0, 0.5, "micro")], [(0.0, 1.0, "macro")], iou_threshold=0.51)["overall"]["tp"] == 0


def test_per_class_counts_and_f1_by_hand():
    truth = [(0.0, 2.0, "macro"), (3.0, 3.4, "micro"), (5.0, 5.3, "micro"), (8.0, 9.0, "macro")]
    spotted = [(0.2, 2.0, "macro"),   # IoU 0.9 with the first macro: macro TP
               (3.0, 3.3, "micro"),   # IoU 0.75: micro TP
               (3.05, 3.35, "micro"),  # the same truth again: each truth is matched once -> micro FP
               (5.2, 5.6, "macro"),   # IoU 0.1/0.6 with the 5.0 micro: macro FP; that micro is a FN
               (12.0, 12.2, "micro")]  # nothing there: micro FP; the 8-9 s macro is a FN
    s = spot_eval(spotted, truth)
    assert [(s[k]["tp"], s[k]["fp"], s[k]["fn"]) for k in ("micro", "macro", "overall")] == \
        [(1, 2, 1), (1, 1, 1), (2, 3, 2)]
    # micro: P 1/3, R 1/2, F1 2PR/(P+R) = (1/3)/(5/6) = 0.4; macro: P 1/2, R 1/2; overall P 2/5, R 1/2.
    assert (s["micro"]["precision"], s["micro"]["recall"], s["micro"]["f1"]) == pytest.approx((1 / 3, 0.5, 0.4))
    assert (s["macro"]["precision"], s["macro"]["recall"], s["macro"]["f1"]) == pytest.approx((0.5, 0.5, 0.5))
    assert s["overall"]["f1"] == pytest.approx(2 * 0.4 * 0.5 / 0.9)
    assert s["class_mismatches"] == 0 and s["ignored"] == 0


def test_tp_counts_for_the_truth_class():
    # A 0.45 s "micro" spot on a 0.6 s macro truth is a macro TP and a class mismatch, never a micro FP.
    s = spot_eval([(0.0, 0.45, "micro")], [(0.0, 0.6, "macro")])
    assert (s["macro"]["tp"], s["micro"]["tp"], s["micro"]["fp"]) == (1, 0, 0)
    assert s["class_mismatches"] == 1


def test_assignment_maximizes_matches_not_greedy():
    # Spot 0 = truth 0 exactly (IoU 1) but also matches truth 1 (IoU 1/1.9 = 0.53); spot 1 matches only
    # truth 0 (IoU 0.8). Greedy best-IoU-first gives 1 TP; the maximum-IoU assignment gives 2.
    spotted = [(0.0, 1.0, "macro"), (0.2, 1.0, "macro")]
    truth = [(0.0, 1.0, "macro"), (0.0, 1.9, "macro")]
    s = spot_eval(spotted, truth)
    assert (s["overall"]["tp"], s["overall"]["fp"], s["overall"]["fn"]) == (2, 0, 0)
    assert sorted((r, c) for r, c, _ in s["matches"]) == [(0, 1), (1, 0)]


def test_zero_denominators_are_zero():
    s = spot_eval([], [])
    assert s["overall"] == {"tp": 0, "fp": 0, "fn": 0, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    s = spot_eval([], [(0.0, 1.0, "macro")])
    assert (s["overall"]["fn"], s["overall"]["recall"], s["overall"]["f1"]) == (1, 0.0, 0.0)


def test_unknown_spans_drop_only_unmatched_spots():
    truth = [(0.0, 1.0, "macro")]
    unknown = [(10.0, np.inf)]  # an onset at 10 s whose offset the recording cut off
    spotted = [(0.0, 1.0, "macro"), (10.5, 11.0, "macro"), (5.0, 5.3, "micro")]
    s = spot_eval(spotted, truth, unknown=unknown)
    assert (s["overall"]["tp"], s["overall"]["fp"], s["ignored"]) == (1, 1, 1)
    assert s["micro"]["fp"] == 1 and s["macro"]["fp"] == 0
    # Without the span the spot after 10 s is a false positive.
    assert spot_eval(spotted, truth)["overall"]["fp"] == 2


def test_pool_scores_sums_counts_then_recomputes():
    a = spot_eval([(0.0, 1.0, "macro")], [(0.0, 1.0, "macro")])          # TP 1
    b = spot_eval([(0.0, 0.3, "micro"), (1.0, 1.3, "micro"), (2.0, 2.3, "micro")], [])  # FP 3
    pooled = pool_scores([a, b])
    assert (pooled["overall"]["tp"], pooled["overall"]["fp"], pooled["overall"]["fn"]) == (1, 3, 0)
    # Pooled P = 1/4, R = 1 -> F1 = 0.4 (the mean of the two sessions' F1 would be 0.5).
    assert pooled["overall"]["f1"] == pytest.approx(0.4)
    assert (pooled["micro"]["fp"], pooled["macro"]["tp"]) == (3, 1)


def _session(path, markers):
    with SessionWriter(path) as w:
        w.add_stream(StreamSpec("cam-AU", "ActionUnits", 1, "float32", 30.0, "cam", channel_labels=["AU12"])
                     ).append(np.zeros((10, 1)), np.arange(10) / 30)
        for name, texts in markers.items():
            st = w.add_stream(StreamSpec(name, "Markers", 1, "string", 0.0, name))
            if texts:
                st.append([[t] for t in texts], np.arange(len(texts), dtype=float))


def test_truth_intervals_and_their_errors(tmp_path):
    path = tmp_path / "s.h5"
    _session(path, {"Markers": ["onset/fear/micro", "apex/fear/micro", "offset/fear/micro", "onset/anger/macro"],
                    "Notes": ["trial start"], "Empty": []})
    with open_session(path) as s:
        assert truth_intervals(s, "Markers") == [Interval(0.0, 2.0, "micro", "fear")]
        assert unknown_spans(s, "Markers") == [(3.0, np.inf)]
        with pytest.raises(ValueError, match=r"No stream 'Marker'.*Marker streams: Empty, Markers, Notes\."):
            truth_intervals(s, "Marker")
        with pytest.raises(ValueError, match=r"type 'ActionUnits', not Markers.*Marker streams: Empty, Markers, Notes"):
            truth_intervals(s, "cam-AU")
        with pytest.raises(ValueError, match=r"no onset/.*offset.*pair \(1 markers\)"):
            truth_intervals(s, "Notes")
        with pytest.raises(ValueError, match=r"no onset/.*\(0 markers\)"):
            truth_intervals(s, "Empty")
