"""The one expression-marker parser: a known answer for every pairing rule, malformed sequences included."""

from __future__ import annotations

import math

import numpy as np
import pytest

from acquisition import SessionWriter, StreamSpec, open_session
from acquisition.session.markers import (ExpressionMarker, expression_intervals, marker_texts,
                                         parse_expression_markers, read_expression_markers)

INF = math.inf


def _parse(markers):
    return parse_expression_markers([t for t, _ in markers], [text for _, text in markers])


def _tuples(parsed):
    return [(e.label, e.kind, e.onset_s, e.apex_s if not math.isnan(e.apex_s) else None, e.offset_s)
            for e in parsed.expressions]


def test_well_formed_expressions_and_other_markers():
    parsed = _parse([(1.0, "onset/fear/micro"), (1.2, "apex/fear/micro"), (1.5, "offset/fear/micro"),
                     (2.0, "blink"), (3.0, "onset/anger/macro"), (3.1, "apex/anger/macro"),
                     (4.0, "offset/anger/macro")])
    assert parsed.expressions == [ExpressionMarker("fear", "micro", 1.0, 1.5, 1.2),
                                  ExpressionMarker("anger", "macro", 3.0, 4.0, 3.1)]
    assert parsed.others == [(2.0, "blink")]
    assert [e.complete for e in parsed.expressions] == [True, True]
    assert parsed.expressions[0].duration_s == pytest.approx(0.5)
    assert parsed.expressions[1].markers() == [(3.0, "onset/anger/macro"), (3.1, "apex/anger/macro"),
                                               (4.0, "offset/anger/macro")]


def test_spans_as_the_timeline_draws_them():
    """The plot's known answer: an offset first (onset before the recording), a full span, a free marker,
    and an onset whose offset came after the recording."""
    parsed = _parse([(0.0, "offset/fear/macro"), (1.0, "onset/happiness/micro"), (2.0, "apex/happiness/micro"),
                     (3.0, "offset/happiness/micro"), (4.0, "button"), (5.0, "onset/sadness/macro")])
    assert [(e.label, e.kind, e.onset_s, e.offset_s) for e in parsed.expressions] == [
        ("fear", "macro", -np.inf, 0.0), ("happiness", "micro", 1.0, 3.0), ("sadness", "macro", 5.0, np.inf)]
    assert parsed.expressions[1].apex_s == 2.0 and parsed.others == [(4.0, "button")]


def test_unmatched_onset_stays_open_to_the_end(emosync_log):
    parsed = _parse([(5.5, "onset/anger/macro")])
    assert _tuples(parsed) == [("anger", "macro", 5.5, None, INF)]
    assert parsed.complete == [] and not parsed.expressions[0].complete
    assert "1 onset without an offset" in emosync_log.text


def test_offset_without_onset_has_an_unknown_onset(emosync_log):
    parsed = _parse([(0.0, "offset/fear/macro"), (1.0, "onset/fear/macro"), (2.0, "offset/fear/macro"),
                     (3.0, "offset/fear/macro")])
    assert _tuples(parsed) == [("fear", "macro", -INF, None, 0.0), ("fear", "macro", 1.0, None, 2.0),
                               ("fear", "macro", -INF, None, 3.0)]
    assert [e.first_s for e in parsed.expressions] == [0.0, 1.0, 3.0]
    assert "2 offset without an onset" in emosync_log.text


def test_same_label_and_kind_never_nest_an_offset_closes_the_latest_onset():
    # A second onset while one is open: the first lost its offset and stays unmatched.
    parsed = _parse([(1.0, "onset/joy/macro"), (2.0, "onset/joy/macro"), (3.0, "offset/joy/macro"),
                     (4.0, "offset/joy/macro")])
    assert _tuples(parsed) == [("joy", "macro", 1.0, None, INF), ("joy", "macro", 2.0, None, 3.0),
                               ("joy", "macro", -INF, None, 4.0)]
    assert [(e.onset_s, e.offset_s) for e in parsed.complete] == [(2.0, 3.0)]


def test_other_labels_and_kinds_overlap_freely():
    parsed = _parse([(1.0, "onset/joy/macro"), (1.5, "onset/surprise/micro"), (1.7, "onset/joy/micro"),
                     (1.8, "offset/surprise/micro"), (1.9, "offset/joy/micro"), (3.0, "offset/joy/macro")])
    assert _tuples(parsed) == [("joy", "macro", 1.0, None, 3.0), ("surprise", "micro", 1.5, None, 1.8),
                               ("joy", "micro", 1.7, None, 1.9)]


def test_apex_outside_its_expression_is_another_marker(emosync_log):
    parsed = _parse([(0.5, "apex/joy/macro"), (1.0, "onset/joy/macro"), (1.2, "apex/joy/macro"),
                     (1.4, "apex/joy/macro"), (2.0, "offset/joy/macro"), (2.5, "apex/joy/macro")])
    assert _tuples(parsed) == [("joy", "macro", 1.0, 1.2, 2.0)]
    assert parsed.others == [(0.5, "apex/joy/macro"), (1.4, "apex/joy/macro"), (2.5, "apex/joy/macro")]
    assert "3 apex outside its expression" in emosync_log.text


def test_markers_are_paired_in_time_order_and_ties_keep_recording_order():
    # Out of recording order (two streams merged, say): time decides.
    parsed = _parse([(2.0, "offset/joy/micro"), (1.0, "onset/joy/micro")])
    assert _tuples(parsed) == [("joy", "micro", 1.0, None, 2.0)]
    # Back to back at one time: the offset recorded first ends the first expression, the onset opens the next.
    parsed = _parse([(1.0, "onset/joy/micro"), (2.0, "offset/joy/micro"), (2.0, "onset/joy/micro"),
                     (3.0, "offset/joy/micro")])
    assert _tuples(parsed) == [("joy", "micro", 1.0, None, 2.0), ("joy", "micro", 2.0, None, 3.0)]
    # An onset and an offset at the same time in that order: a zero-length expression.
    assert _tuples(_parse([(1.0, "onset/a/b"), (1.0, "offset/a/b")])) == [("a", "b", 1.0, None, 1.0)]


@pytest.mark.parametrize("text", ["blink", "onset/two-parts", "onset/a/b/c", "onset//micro", "start/joy/micro",
                                  "ONSET/joy/micro", ""])
def test_non_expression_markers_are_kept_as_they_are(text):
    parsed = _parse([(1.0, text), (2.0, "onset/joy/micro"), (3.0, "offset/joy/micro")])
    assert parsed.others == [(1.0, text)]
    assert _tuples(parsed) == [("joy", "micro", 2.0, None, 3.0)]


def test_white_space_around_a_marker_is_ignored():
    parsed = _parse([(1.0, " onset/joy/micro\n"), (2.0, "offset/joy/micro ")])
    assert _tuples(parsed) == [("joy", "micro", 1.0, None, 2.0)]


def test_bad_times_are_refused_clearly():
    with pytest.raises(ValueError, match="2 marker times for 3 marker texts"):
        parse_expression_markers([1.0, 2.0], ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"finite seconds; markers \[1\] have \[nan\]"):
        parse_expression_markers([1.0, np.nan], ["a", "b"])
    assert parse_expression_markers([], []).expressions == []


def test_expression_intervals_are_the_complete_expressions_sorted():
    markers = [(0.4, "onset/happiness/macro"), (1.0, "apex/happiness/macro"), (2.5, "offset/happiness/macro"),
               (4.1, "onset/surprise/micro"), (4.4, "offset/surprise/micro"), (5.0, "blink"),
               (5.5, "onset/anger/macro"), (6.0, "offset/fear/micro")]
    assert expression_intervals([m for _, m in markers], [t for t, _ in markers]) == [
        (0.4, 2.5, "happiness", "macro"), (4.1, 4.4, "surprise", "micro")]


def test_marker_texts_join_channels_and_print_integral_numbers_plainly():
    rows = np.array([["onset/joy/micro", ""], ["a", "b"]], dtype=object)
    assert marker_texts(rows) == ["onset/joy/micro", "a|b"]
    assert marker_texts(np.array([[3.0], [2.5]])) == ["3", "2.5"]
    assert marker_texts(["x"]) == ["x"]


def test_a_stream_is_parsed_on_its_synchronized_times(tmp_path):
    """A clock reset between two markers: raw stamps go backwards, synchronized times do not."""
    fname = tmp_path / "reset.h5"
    with SessionWriter(fname) as w:
        stream = w.add_stream(StreamSpec("Markers", "Markers", 1, "string", 0.0, "mk"))
        # Source clock restarts near 0 after the onset; offsets say where each stamp sits on the recorder clock.
        stream.append([["onset/joy/macro"], ["offset/joy/macro"]], [1000.0, 2.0])
        stream.append_clock_offsets([990.0, 995.0, 1000.0, 0.0, 5.0, 10.0], [0.0] * 3 + [1001.0] * 3,
                                    [1e-4] * 6)
    with open_session(fname) as s:
        st = s.streams["Markers"]
        assert st.timestamps[1] < st.timestamps[0] < st.times[1]
        parsed = read_expression_markers(st)
        assert [(e.onset_s, e.offset_s) for e in parsed.complete] == [(pytest.approx(1000.0),
                                                                      pytest.approx(1003.0))]
    with SessionWriter(tmp_path / "empty.h5") as w:
        w.add_stream(StreamSpec("Markers", "Markers", 1, "string", 0.0, "mk"))
    with open_session(tmp_path / "empty.h5") as s:
        assert read_expression_markers(s.streams["Markers"]).expressions == []
