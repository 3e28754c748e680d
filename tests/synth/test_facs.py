"""AU catalogue, prototypes and timelines: durations, dynamics, determinism, markers."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from synth.facs import (AU_CATALOGUE, AU_IDS, AU_INDEX, EMOTION_PROTOTYPES, ExpressionEvent, TimelineConfig,
                        generate_timeline, muscle_activation, raised_cosine_ramp)


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
