"""Interference elimination for spotting: each module on its own signals, then in spot_expressions."""

from __future__ import annotations

import numpy as np
import pytest

from acquisition.annotate.action_units import AU_IDS
from acquisition.annotate.interference import (blink_frames, bridge_frames, compensate_head_motion, head_speed_deg_s,
                                               stouffer_fuse, talking_frames)
from acquisition.annotate.spot_config import load_spot_config
from acquisition.annotate.spotting import Interval, spot_eval, spot_expressions
from synth.facs import AUTimeline, ExpressionEvent

FS = 30.0
LABELS = [f"AU{au:02d}" for au in AU_IDS]
COL = {au: k for k, au in enumerate(AU_IDS)}


def _bump(t: np.ndarray, onset: float, duration: float, peak: float) -> np.ndarray:
    """A raised-cosine bump from onset to onset + duration."""
    x = np.clip((t - onset) / duration, 0.0, 1.0)
    return peak * 0.5 * (1 - np.cos(2 * np.pi * x))


def test_blink_frames_finds_brief_rises_only():
    config = load_spot_config("default").blinks
    t = np.arange(int(10 * FS)) / FS
    au45 = _bump(t, 2.0, 0.2, 4.0) + 4.0 * ((t > 6.0) & (t < 8.0))  # a blink, then 2 s with the eyes closed
    mask = blink_frames(au45, FS, config)
    margin = config.margin_s
    assert mask[(t > 2.05) & (t < 2.15)].all()
    assert mask[(t > 2.1 - margin - 0.1) & (t < 2.0)].any() and not mask[t < 2.0 - margin - 0.05].any()
    assert not mask[t > 4.0].any()  # the long closure is not a blink


def test_bridge_frames_interpolates_linearly():
    x = np.column_stack([np.arange(6.0), 10 * np.arange(6.0)])
    x[2:4] = 99.0
    mask = np.zeros(6, bool)
    mask[2:4] = True
    np.testing.assert_allclose(bridge_frames(x, mask), np.column_stack([np.arange(6.0), 10 * np.arange(6.0)]))
    np.testing.assert_array_equal(bridge_frames(x, np.ones(6, bool)), x)  # nothing to interpolate from


def test_head_motion_compensation_removes_pose_keeps_expression():
    rng = np.random.default_rng(0)
    t = np.arange(int(60 * FS)) / FS
    yaw = 20 * np.sin(2 * np.pi * t / 11.0) + 5 * np.sign(np.sin(2 * np.pi * t / 7.0))
    pitch = 10 * np.sin(2 * np.pi * t / 5.3)
    pose = np.column_stack([yaw, pitch, 0 * t])
    expression = _bump(t, 30.0, 1.0, 2.0)
    artefact = 0.04 * yaw + 0.002 * yaw**2 - 0.03 * pitch
    x = np.column_stack([expression + artefact + rng.normal(0, 0.02, t.size), artefact])
    out = compensate_head_motion(x, pose, FS, load_spot_config("default").head_motion)
    assert np.std(out[:, 1]) < 0.05 * np.std(artefact)  # the ridge keeps a little
    residual = out[:, 0] - np.median(out[:, 0])
    assert residual.max() == pytest.approx(2.0, abs=0.15)
    assert np.abs(residual[(t < 29) | (t > 32)]).max() < 0.2


def test_still_head_jitter_is_not_regressed():
    # A tracker's pose estimate of a still head twitches with the expressions themselves (under 1 deg here):
    # regressing on it would copy one AU's expression into the others. The ridge (ridge_deg = 2) leaves it alone.
    t = np.arange(int(60 * FS)) / FS
    brows, smile = _bump(t, 10.0, 1.0, 2.0), _bump(t, 30.0, 1.5, 3.0)
    jitter = np.random.default_rng(1).normal(0, 0.02, (t.size, 2))
    pose = np.column_stack([0.3 * (brows + smile), 0.2 * (brows - smile), 0 * t]) + np.pad(jitter, ((0, 0), (0, 1)))
    x = np.column_stack([brows, smile])
    out = compensate_head_motion(x, pose, FS, load_spot_config("default").head_motion)
    np.testing.assert_allclose(out - np.median(out, axis=0), x, atol=0.15)
    no_ridge = load_spot_config("default", ["head_motion.ridge_deg=0.01", "head_motion.ridge_deg_s=0.1"]).head_motion
    out = compensate_head_motion(x, pose, FS, no_ridge)
    assert np.abs(out - np.median(out, axis=0) - x).max() > 0.5


def test_head_speed():
    t = np.arange(100) / FS
    pose = np.column_stack([30 * t, 40 * t, 0 * t])  # 30 and 40 deg/s -> 50 deg/s
    np.testing.assert_allclose(head_speed_deg_s(pose, FS), 50.0)


def test_talking_frames_needs_sustained_syllable_rate():
    config = load_spot_config("default").talking
    t = np.arange(int(20 * FS)) / FS
    speech = (t > 5) & (t < 9)
    au26 = 1.5 * (1 - np.cos(2 * np.pi * 4.5 * t)) * speech + _bump(t, 14.0, 0.4, 2.5)  # 4 s of talk, a surprise
    mask = talking_frames(np.column_stack([au26]), FS, config)
    assert mask[(t > 5.5) & (t < 8.5)].all()
    assert not mask[(t > 12) | (t < 4)].any()  # the single jaw drop at 14 s and silence are not speech
    assert not talking_frames(np.zeros((t.size, 0)), FS, config).any()


def test_stouffer_fuse():
    assert stouffer_fuse(np.array([2.0]), np.array([2.0]), 1.0, 1.0)[0] == pytest.approx(4 / np.sqrt(2))
    assert stouffer_fuse(np.array([3.0]), np.array([0.0]), 1.0, 1.0)[0] == pytest.approx(3 / np.sqrt(2))
    assert stouffer_fuse(np.array([3.0]), np.array([1.0]), 0.0, 1.0)[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="cannot both be 0"):
        stouffer_fuse(np.array([1.0]), np.array([1.0]), 0.0, 0.0)


# ---------------------------------------------------------------------------- in the spotter
def _expressions() -> tuple[AUTimeline, list[Interval]]:
    def event(onset, duration, emotion, kind, peak):
        return ExpressionEvent(onset, onset + 0.3 * duration, onset + 0.5 * duration, onset + duration, emotion,
                               kind, peak)

    events = [event(3.0, 1.5, "happiness", "macro", {6: 3.0, 12: 3.0}),
              event(12.0, 0.3, "anger", "micro", {4: 2.0, 7: 1.5, 23: 2.0}),
              event(24.0, 2.0, "sadness", "macro", {1: 3.0, 4: 2.0, 15: 3.0})]
    timeline = AUTimeline(events, 40.0)
    return timeline, [Interval(e.onset_s, e.offset_s, e.kind) for e in timeline.expressions]


def _estimate(timeline: AUTimeline, t: np.ndarray, seed: int) -> np.ndarray:
    """The AU 'estimate' of a tracker: truth plus noise plus a constant neutral offset."""
    return timeline.intensities(t) + 0.3 + np.random.default_rng(seed).normal(0.0, 0.05, (t.size, len(AU_IDS)))


def _f1(intervals, truth) -> tuple[float, int]:
    s = spot_eval(intervals, truth)
    return s["overall"]["f1"], s["overall"]["fp"]


def test_blinks_leaking_into_squint_are_suppressed():
    timeline, truth = _expressions()
    t = np.arange(int(timeline.duration_s * FS)) / FS
    au = _estimate(timeline, t, 1)
    for onset in np.arange(1.0, 39.0, 2.7):  # blinks: AU45 up, and the tracker reads a squint (AU7) and brows down
        blink = _bump(t, onset, 0.2, 4.0)
        au[:, COL[45]] += blink
        au[:, COL[7]] += 0.6 * blink
        au[:, COL[1]] -= 0.3 * blink
    baseline = load_spot_config("default", ["blinks.enabled=false"])
    f1_off, fp_off = _f1(spot_expressions(au, t, srate=FS, channel_labels=LABELS, config=baseline), truth)
    f1_on, fp_on = _f1(spot_expressions(au, t, srate=FS, channel_labels=LABELS), truth)
    assert fp_off >= 5 and f1_on == 1.0 and fp_on == 0


def _turning_head(t: np.ndarray) -> np.ndarray:
    """A still head with sudden 20-degree re-orientations held for 1.5 s, as yaw/pitch/roll in degrees."""
    yaw = np.zeros_like(t)
    pitch = np.zeros_like(t)
    for start, target_yaw, target_pitch in ((7.0, 20, 5), (17.0, -20, 10), (29.0, 15, 15), (36.0, -20, -5)):
        turn = np.clip((t - start) / 0.25, 0, 1) - np.clip((t - start - 1.5) / 0.25, 0, 1)
        yaw += target_yaw * turn
        pitch += target_pitch * turn
    return np.column_stack([yaw, pitch, 0.2 * yaw])


def test_pose_driven_au_errors_are_compensated():
    timeline, truth = _expressions()
    t = np.arange(int(timeline.duration_s * FS)) / FS
    pose = _turning_head(t)
    au = _estimate(timeline, t, 2)
    # The tracker misreads brows and the mouth when the head is turned or pitched.
    au[:, COL[4]] += 0.06 * np.abs(pose[:, 0])
    au[:, COL[2]] += 0.05 * np.clip(pose[:, 1], 0, None)
    au[:, COL[20]] += 0.0025 * pose[:, 0] ** 2
    off = load_spot_config("default", ["head_motion.enabled=false"])
    f1_off, fp_off = _f1(spot_expressions(au, t, srate=FS, channel_labels=LABELS, config=off, head_pose=pose), truth)
    f1_on, fp_on = _f1(spot_expressions(au, t, srate=FS, channel_labels=LABELS, head_pose=pose), truth)
    assert fp_off >= 3 and f1_on == 1.0


def test_talking_is_not_an_expression_but_brows_during_it_are():
    timeline, truth = _expressions()
    t = np.arange(int(timeline.duration_s * FS)) / FS
    au = _estimate(timeline, t, 3)
    for start, stop in ((6.0, 9.0), (30.0, 34.0)):
        speech = (t > start) & (t < stop)
        syllables = 0.5 * (1 - np.cos(2 * np.pi * 4.5 * (t - start)))
        au[:, COL[26]] += 2.0 * syllables * speech
        au[:, COL[25]] += 2.5 * syllables * speech
        au[:, COL[10]] += 0.8 * syllables * speech
    # A surprise (brows up) in the middle of the second bout.
    surprise = _bump(t, 32.0, 1.2, 3.0)
    au[:, COL[1]] += surprise
    au[:, COL[2]] += surprise
    truth = truth + [Interval(32.0, 33.2, "macro")]
    off = load_spot_config("default", ["talking.enabled=false"])
    f1_off, fp_off = _f1(spot_expressions(au, t, srate=FS, channel_labels=LABELS, config=off), truth)
    spotted = spot_expressions(au, t, srate=FS, channel_labels=LABELS)
    f1_on, fp_on = _f1(spotted, truth)
    assert fp_off >= 2 and fp_on == 0 and f1_on == 1.0, [(s.onset_s, s.offset_s) for s in spotted]


def test_emg_fusion_adds_what_video_misses():
    timeline, truth = _expressions()
    t = np.arange(int(timeline.duration_s * FS)) / FS
    au = _estimate(timeline, t, 5)
    # The video barely sees the micro anger (weak brow lowering); the corrugator EMG does.
    micro = (t > 11.9) & (t < 12.4)
    au[micro, COL[4]] = 0.3 + 0.1 * (au[micro, COL[4]] - 0.3)
    au[micro, COL[7]] = 0.3
    au[micro, COL[23]] = 0.3
    emg = np.column_stack([timeline.intensities(t)[:, COL[4]], timeline.intensities(t)[:, COL[12]]])
    emg += np.random.default_rng(6).normal(0, 0.05, emg.shape)
    video_only = spot_expressions(au, t, srate=FS, channel_labels=LABELS)
    assisted = spot_expressions(au, t, srate=FS, channel_labels=LABELS, emg_values=emg, emg_labels=["AU04", "AU12"],
                                config=load_spot_config("default", ["emg.enabled=true"]))
    assert spot_eval(video_only, truth)["micro"]["tp"] == 0
    assert spot_eval(assisted, truth)["micro"]["tp"] == 1 and _f1(assisted, truth)[0] == 1.0
    with pytest.raises(ValueError, match="one row per frame"):
        spot_expressions(au, t, srate=FS, channel_labels=LABELS, emg_values=emg[:-1], emg_labels=["AU04", "AU12"])
