"""AU catalogue, prototypes and timelines: durations, dynamics, determinism, markers."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from acquisition.annotate.action_units import AU_CATALOGUE, AU_IDS, AU_INDEX, EMOTION_PROTOTYPES
from synth.facs import ExpressionEvent, TimelineConfig, generate_timeline, muscle_activation, raised_cosine_ramp


def test_catalogue_covers_required_aus():
    assert AU_IDS == (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45)
    assert set(AU_CATALOGUE) == set(AU_IDS)
    for variants in EMOTION_PROTOTYPES.values():
        for variant in variants:
            assert set(variant) <= set(AU_IDS)
    assert set(EMOTION_PROTOTYPES["happiness"][0]) == {6, 12}
    assert set(EMOTION_PROTOTYPES["surprise"][0]) == {1, 2, 5, 26}


def test_envelope_onset_apex_offset():
    e = ExpressionEvent(1.0, 1.2, 1.5, 2.0, "happiness", "macro", {12: 4.0})
    t = np.array([0.9, 1.0, 1.1, 1.2, 1.4, 1.5, 1.75, 2.0, 2.1])
    env = e.envelope(t)
    np.testing.assert_allclose(env, [0, 0, 0.5, 1, 1, 1, 0.5, 0, 0], atol=1e-9)
    np.testing.assert_allclose(raised_cosine_ramp(np.array([0.25])), [0.5 - 0.5 * np.cos(np.pi / 4)])


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_timeline_durations_and_determinism(seed):
    config = TimelineConfig(expressions_per_minute=30, micro_fraction=0.5)
    tl = generate_timeline(config, 600.0, seed)
    again = generate_timeline(config, 600.0, seed)
    assert [(e.onset_s, e.emotion, e.kind) for e in tl.events] == [(e.onset_s, e.emotion, e.kind) for e in again.events]
    expressions = tl.expressions
    kinds = {e.kind for e in expressions}
    assert kinds == {"micro", "macro"}
    for e in expressions:
        assert e.onset_s < e.apex_s <= e.apex_end_s < e.offset_s <= 600.0
        if e.kind == "micro":
            assert e.duration_s <= 0.5
        else:
            assert 0.5 < e.duration_s <= 4.0
    # expressions never overlap each other (blinks may)
    for a, b in zip(expressions, expressions[1:]):
        assert b.onset_s >= a.offset_s
    assert generate_timeline(config, 600.0, seed + 100).events[0].onset_s != tl.events[0].onset_s


def test_intensities_follow_events():
    tl = generate_timeline(TimelineConfig(expressions_per_minute=20, blinks_per_minute=0), 120.0, 3)
    event = tl.expressions[0]
    times = np.array([event.onset_s - 0.01, (event.apex_s + event.apex_end_s) / 2])
    au = tl.intensities(times)
    assert au.shape == (2, 17) and au.dtype == np.float32
    assert np.all(au[0] == 0)
    for au_id, peak in event.peak.items():
        assert au[1, AU_INDEX[au_id]] == pytest.approx(min(peak, 5.0), rel=1e-5)
    assert au.max() <= 5.0
    markers = tl.markers()
    first = [m for m in markers if m[0] >= event.onset_s][:3]
    assert [m[1].split("/")[0] for m in first] == ["onset", "apex", "offset"]
    assert first[0][1] == f"onset/{event.emotion}/{event.kind}"


def test_muscle_activation():
    au = np.zeros((2, 17))
    au[1, AU_INDEX[12]] = 5.0
    act = muscle_activation(au, "zygomaticus_major")
    np.testing.assert_allclose(act, [0.0, 1.0])
    with pytest.raises(ValueError, match="known muscles"):
        muscle_activation(au, "biceps")


@pytest.mark.parametrize("bad", [{"micro_duration_s": (0.2, 0.8)}, {"macro_duration_s": (0.3, 2.0)},
                                 {"emotions": ["joy"]}, {"unknown_key": 1}, {"macro_intensity": (2, 7)}])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValidationError):
        TimelineConfig(**bad)


# --------------------------------------------------------------------------- validation, frame rates, CSV
def test_parse_au_and_emotion():
    from acquisition.annotate.action_units import check_emotion, parse_au

    assert parse_au("AU12") == 12 and parse_au("au06") == 6 and parse_au(" 45 ") == 45 and parse_au(4) == 4
    for bad in ("AU3", "AU99", "smile", ""):
        with pytest.raises(ValueError, match="known AUs: AU01"):
            parse_au(bad)
    assert check_emotion("fear") == "fear"
    with pytest.raises(ValueError, match="known emotions: happiness"):
        check_emotion("joy")


def test_check_intensities():
    from acquisition.annotate.action_units import check_intensities

    ok = np.zeros((3, 17))
    ok[1, AU_INDEX[12]] = 5.0
    assert check_intensities(ok).dtype == np.float32
    bad = ok.copy()
    bad[2, AU_INDEX[4]] = 5.5
    with pytest.raises(ValueError, match="AU04 = 5.5 at row 2 is outside the FACS 0-5 scale"):
        check_intensities(bad)
    with pytest.raises(ValueError, match="outside"):
        check_intensities(np.full((1, 17), np.nan))
    with pytest.raises(ValueError, match=r"shape \(n_frames, 17\)"):
        check_intensities(np.zeros((2, 5)))


@pytest.mark.parametrize("fps", [30.0, 200.0])
def test_expression_timeline_at_any_fps(fps):
    from synth.facs import expression_timeline, frame_times

    tl = expression_timeline("happiness", "micro", seed=4)
    (event,) = tl.expressions
    assert event.kind == "micro" and event.duration_s <= 0.5 and set(event.peak) >= {6, 12}
    assert tl.duration_s == pytest.approx(event.duration_s + 0.2)
    times = frame_times(tl.duration_s, fps)
    assert len(times) == int(np.floor(tl.duration_s * fps + 1e-9)) and np.allclose(np.diff(times), 1 / fps)
    au = tl.intensities(times)
    assert au[0].max() == 0 and au[:, AU_INDEX[12]].max() > 0.9 * event.peak[12] * (1 if fps == 200 else 0.8)
    apex = int(np.argmax(au[:, AU_INDEX[12]]))
    assert event.onset_s <= times[apex] <= event.offset_s
    assert expression_timeline("happiness", "micro", seed=4).events == tl.events
    fixed = expression_timeline("anger", "macro", seed=1, duration_s=2.0)
    (event,) = fixed.expressions
    assert fixed.duration_s == 2.0 and event.onset_s >= 0.1 and event.offset_s <= 1.9 + 1e-9
    # centred: equal neutral time on either side (a window around the apex fits)
    assert event.onset_s == pytest.approx(2.0 - event.offset_s)
    with pytest.raises(ValueError, match="macro expression lasts"):
        expression_timeline("anger", "macro", seed=1, duration_s=0.6)
    with pytest.raises(ValueError, match="Unknown expression kind"):
        expression_timeline("anger", "huge", seed=1)
    with pytest.raises(ValueError, match="shorter than one frame at 30 fps"):
        frame_times(0.02, 30.0)


def test_read_au_timeline_csv(tmp_path):
    from synth.facs import read_au_timeline_csv

    path = tmp_path / "t.csv"
    path.write_text("time_s, AU12 ,au06\n1.0,0,0\n1.5,4,2\n2.0,0,1\n")
    tl = read_au_timeline_csv(path)
    assert tl.start_s == 1.0 and tl.duration_s == 1.0 and tl.markers() == [] and tl.expressions == []
    au = tl.intensities(np.array([1.0, 1.25, 1.5, 3.0]))
    np.testing.assert_allclose(au[:, AU_INDEX[12]], [0, 2, 4, 0])
    np.testing.assert_allclose(au[:, AU_INDEX[6]], [0, 1, 2, 1])
    assert au[:, AU_INDEX[1]].max() == 0
    for text, message in [("time_s,AU12,AU12\n0,1,1\n1,1,1\n", "two columns"),
                          ("time_s,AU12\n0,1\n1,x\n", "row 3, column 'AU12': 'x' is not a number"),
                          ("time_s,AU12\n", "no rows"), ("time_s,AU12\n0,-1\n1,0\n", "outside the FACS"),
                          ("time_s,AU12\n0,1\n1,2,3\n2,1\n", "row 3 has 3 cells but the header names 2"),
                          ("time_s,AU12\n0,1\n1\n", "row 3 has 1 cells"),
                          ("time_s,AU12,AU06\n0,1,\n1,2,1\n", "row 2, column 'AU06' is empty")]:
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            read_au_timeline_csv(path)
    with pytest.raises(FileNotFoundError):
        read_au_timeline_csv(tmp_path / "none.csv")


def test_au_labels():
    from acquisition.annotate.action_units import AU_IDS, AU_LABELS

    assert len(AU_LABELS) == len(AU_IDS) and AU_LABELS[0] == "AU01" and AU_LABELS[-1] == "AU45"
