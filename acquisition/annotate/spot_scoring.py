"""Scoring of spotted expression intervals against a reference (MEGC convention, IoU >= 0.5).

:func:`spot_eval` matches spotted to reference intervals one-to-one (Hungarian assignment
maximizing IoU, a pair counts only at IoU >= ``iou_threshold``) and reports TP, FP, FN,
precision, recall and F1 for micro-expressions, macro-expressions and overall.
:func:`intervals_from_markers` turns a marker stream's ``onset/.../offset`` pairs (the rig's
ground truth or what spotting wrote) into :class:`Interval`. Kept apart from the detector in
:mod:`acquisition.annotate.spotting` so that every spotter is scored by the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Sequence

import numpy as np
from scipy import optimize

from acquisition.session.markers import parse_expression_markers


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
    if hasattr(item, "onset_s") and hasattr(item, "offset_s"):  # a SpottedInterval, or any interval-like object
        return Interval(float(item.onset_s), float(item.offset_s), str(item.kind), str(getattr(item, "label", "")))
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


def spot_eval(spotted: Sequence[Any], truth: Sequence[Any], *, iou_threshold: float = 0.5,
              unknown: Sequence[tuple[float, float]] = ()) -> dict[str, Any]:
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
    unknown : sequence of (start_s, stop_s)
        Spans where the reference is unknown, e.g. an expression whose offset the recording
        cut off (:func:`unknown_spans`): an unmatched spot that overlaps one is dropped, neither
        a true nor a false positive (``"ignored"`` counts them).

    Returns
    -------
    scores : dict
        ``{"micro": {...}, "macro": {...}, "overall": {...}, "class_mismatches": int,
        "ignored": int, "matches": [(spot_index, truth_index, iou), ...]}`` with ``tp``, ``fp``,
        ``fn``, ``precision``, ``recall``, ``f1`` per entry.
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
    ignored = {i for i, s in enumerate(spots) if i not in matched_s
               and any(s.onset_s < stop and s.offset_s > start for start, stop in unknown)}
    false = [s for i, s in enumerate(spots) if i not in matched_s and i not in ignored]
    scores: dict[str, Any] = {}
    for kind in ("micro", "macro"):
        tp = sum(gts[c].kind == kind for _, c, _ in matches)
        fp = sum(s.kind == kind for s in false)
        fn = sum(g.kind == kind for i, g in enumerate(gts) if i not in matched_g)
        scores[kind] = _prf(tp, fp, fn)
    scores["overall"] = _prf(len(matches), len(false), len(gts) - len(matches))
    scores["class_mismatches"] = sum(spots[r].kind != gts[c].kind for r, c, _ in matches)
    scores["ignored"] = len(ignored)
    scores["matches"] = matches
    return scores


def pool_scores(scores: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pool :func:`spot_eval` results (e.g. over subjects): sum TP/FP/FN per class, then recompute the ratios.

    Parameters
    ----------
    scores : sequence of dict
        :func:`spot_eval` outputs.

    Returns
    -------
    pooled : dict
        ``{"micro": {...}, "macro": {...}, "overall": {...}, "class_mismatches": int, "ignored": int}``.
    """
    pooled: dict[str, Any] = {}
    for key in ("micro", "macro", "overall"):
        tp, fp, fn = (sum(int(s[key][c]) for s in scores) for c in ("tp", "fp", "fn"))
        pooled[key] = _prf(tp, fp, fn)
    pooled["class_mismatches"] = sum(int(s["class_mismatches"]) for s in scores)
    pooled["ignored"] = sum(int(s.get("ignored", 0)) for s in scores)
    return pooled


def truth_intervals(session: Any, name: str) -> list[Interval]:
    """The reference intervals of a session's marker stream, on the recorder's clock.

    Parameters
    ----------
    session : Session
        An open session (:func:`acquisition.open_session`).
    name : str
        The marker stream holding ``onset/<label>/<kind>`` ... ``offset/...`` pairs (the rig's
        ``Markers``).

    Returns
    -------
    intervals : list of Interval

    Raises
    ------
    ValueError
        If there is no such stream, it is not a marker stream, or it holds no complete
        onset/offset pair; the message lists the session's marker streams.
    """
    markers = [n for n, st in session.streams.items() if str(st.info.get("type", "")).lower() == "markers"]
    listing = ", ".join(markers) or "none"
    if name not in session.streams:
        raise ValueError(f"No stream {name!r} in {session.fname} to score against. Marker streams: {listing}.")
    stream = session.streams[name]
    if name not in markers:
        raise ValueError(f"Stream {name!r} in {session.fname} is of type {stream.info.get('type')!r}, not Markers; "
                         f"--truth needs a marker stream with onset/offset pairs. Marker streams: {listing}.")
    intervals = intervals_from_markers(stream.times, [row[0] for row in stream.data[:]]) if stream.n_samples else []
    if not intervals:
        raise ValueError(f"Marker stream {name!r} in {session.fname} holds no onset/<label>/<kind> ... "
                         f"offset/<label>/<kind> pair ({stream.n_samples} markers), so there is nothing to score "
                         f"against. Marker streams: {listing}.")
    return intervals


def unknown_spans(session: Any, name: str) -> list[tuple[float, float]]:
    """Spans of a marker stream's incomplete expressions (no onset or no offset), for ``spot_eval(unknown=...)``.

    An expression the recording cut off has an onset but no offset: where it ends is unknown,
    so a spot there is neither right nor wrong. Spans run from the known marker to the end (or
    from the start) of time.
    """
    stream = session.streams[name]
    if not stream.n_samples:
        return []
    parsed = parse_expression_markers(stream.times, [row[0] for row in stream.data[:]])
    return [(e.onset_s, e.offset_s) for e in parsed.expressions if not e.complete]
