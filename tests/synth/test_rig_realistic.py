"""The realistic rig profile: each confound switch, subjects, the wide identity family, ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from acquisition import open_session
from acquisition.annotate.action_units import AU_INDEX
from acquisition.utils.config import ConfigError
from synth.rig import SimulatedRig, load_rig_config
from synth.rig.face import FaceRenderer

SMALL = ["rgb.width=96", "rgb.height=72", "depth.width=96", "depth.height=72"]
#: Every confound and the idle behaviour off, no expressions or blinks: a still, neutral face.
ALL_OFF = ["idle.enabled=false", "head_motion.enabled=false", "talking.enabled=false", "lighting.enabled=false",
           "camera_noise.enabled=false", "subjects.enabled=false", "face.family=default"]
STILL = ALL_OFF + ["timeline.expressions_per_minute=0", "timeline.blinks_per_minute=0"]


def realistic(*overrides: str):
    return load_rig_config("realistic", SMALL + list(overrides))


@pytest.mark.parametrize("override, words", [
    ("talking.loudness=1", "loudness"),
    ("head_motion.max_deg=[50,10,10]", "max_deg"),
    ("talking.bout_duration_s=[8,2]", "bout_duration_s"),
    ("talking.emg_drive={nose_muscle: 0.5}", "nose_muscle"),
    ("subjects.eeg_alpha_hz=[3,20]", "eeg_alpha_hz"),
    ("lighting.gain_rms=0.9", "gain_rms"),
    ("face.family=huge", "family"),
])
def test_config_rejects_unknown_keys_and_bad_ranges(override, words):
    with pytest.raises(ConfigError, match=words):
        load_rig_config("realistic", [override])


def test_all_switches_off_gives_the_default_rig():
    """The confounds are the only difference: with every switch off, realistic == default, sample for sample."""
    off = SimulatedRig(realistic(*ALL_OFF), seed=3, duration_s=20)
    default = SimulatedRig(load_rig_config("default", SMALL), seed=3, duration_s=20)
    for key, n in (("rgb", 6), ("depth", 6), ("emg", 4000), ("eeg", 1000), ("au", 300)):
        np.testing.assert_array_equal(off.regenerate(key, n), default.regenerate(key, n))
    assert off.talking_intervals() == [] and not off.head_pose(np.arange(5.0)).any()


@pytest.mark.parametrize("key", ["emg", "eeg", "au", "video"])
def test_realistic_generators_are_deterministic_and_chunking_invariant(key):
    config = realistic()
    rig = SimulatedRig(config, seed=5, duration_s=40)
    a, b = rig.make_generator(key), rig.make_generator(key)
    n = 12 if key == "video" else 3000
    offset = 3 if key == "video" else 0  # start the video in a move: its frames change fastest
    for g in (a, b):
        g.position = offset
    chunked = [a.next_samples(m) for m in (1, 4, n - 5)]
    whole = b.next_samples(n)
    again = SimulatedRig(config, seed=5, duration_s=40).make_generator(key)
    again.position = offset
    repeat = again.next_samples(n)
    parts = (0, 1) if key == "video" else (None,)
    for i in parts:
        def pick(x, i=i):
            return x if i is None else x[i]
        np.testing.assert_array_equal(np.concatenate([pick(c) for c in chunked]), pick(whole))
        np.testing.assert_array_equal(pick(repeat), pick(whole))


def test_talking_is_in_the_action_units_only_inside_bouts_and_never_in_markers(tmp_path):
    config = realistic(*STILL, "talking.enabled=true", "talking.bouts_per_minute=12")
    rig = SimulatedRig(config, seed=2, duration_s=65)
    bouts = rig.talking_intervals()
    assert len(bouts) >= 3 and all(b - a > 0.5 for a, b in bouts)
    t = np.arange(60 * 30) / 30.0
    au = rig.timeline.intensities(t)
    talk_cols = [AU_INDEX[a] for a in (10, 14, 25, 26)]
    others = np.delete(au, talk_cols, axis=1)
    assert not others.any()  # no emotion, no blink: talking is jaw and lips only
    inside = np.zeros(t.size, bool)
    for a, b in bouts:
        inside |= (t >= a) & (t <= b)
    assert not au[~inside].any()
    jaw = au[inside, AU_INDEX[26]]
    assert jaw.max() > 1.0 and (jaw == 0).mean() > 0.05  # syllable pulses: open and closed within a bout
    talk_s = sum(b - a for a, b in bouts if b < 60)
    n_syllables = len(signal.find_peaks(au[:, AU_INDEX[26]], height=0.3)[0])
    assert 2.5 < n_syllables / talk_s < 5.5  # syllable rate 3.5-5.5 Hz, less the pauses between words
    # Written sessions: ActionUnits carry the talking, Markers stay empty without expressions.
    path = rig_session(tmp_path / "talk.h5", config_overrides=STILL + ["talking.enabled=true",
                                                                       "talking.bouts_per_minute=12"])
    with open_session(path) as s:
        assert s.streams["ActionUnits"].data[:, AU_INDEX[26]].max() > 1.0
        assert len(s.streams["Markers"].times) == 0
    off = SimulatedRig(realistic(*STILL), seed=2, duration_s=65)
    assert not off.timeline.intensities(t).any() and off.talking_intervals() == []


def rig_session(path, *, config_overrides, profile="realistic", seed=2, duration_s=30.0,
                modalities=("au", "markers")):
    from synth.rig.offline import write_rig_session

    return write_rig_session(path, duration_s=duration_s, seed=seed, profile=profile,
                             overrides=SMALL + list(config_overrides), modalities=modalities)


def test_ground_truth_aus_carry_expressions_talking_and_blinks_markers_only_expressions(tmp_path):
    overrides = ["timeline.expressions_per_minute=12"]
    path = rig_session(tmp_path / "all.h5", config_overrides=overrides, duration_s=60)
    rig = SimulatedRig(realistic(*overrides), seed=2, duration_s=65)
    with open_session(path) as s:
        au, times = np.asarray(s.streams["ActionUnits"].data), np.asarray(s.streams["ActionUnits"].times)
        marker_texts = list(s.streams["Markers"].data[:, 0])
    assert marker_texts and all(m.split("/")[0] in ("onset", "apex", "offset") and "blink" not in m
                                for m in marker_texts)
    assert len(marker_texts) == 3 * len([e for e in rig.timeline.expressions if e.offset_s < 60])
    talking = np.zeros(times.size, bool)
    for a, b in rig.talking_intervals():
        talking |= (times >= a) & (times <= b)
    assert talking.any() and au[talking, AU_INDEX[26]].max() > 1.0
    assert au[:, AU_INDEX[45]].max() == pytest.approx(5.0)  # blinks stay


def test_talking_drives_lower_face_emg_and_temporal_eeg():
    config = realistic(*STILL, "talking.enabled=true", "talking.bouts_per_minute=12")
    rig = SimulatedRig(config, seed=2, duration_s=65)
    srate = config.emg.srate_hz
    emg = rig.regenerate("emg", int(60 * srate)).astype(np.float64)
    speech = rig.timeline.speech_envelope(np.arange(emg.shape[0]) / srate + config.emg.lead_s) > 0.5
    labels = [c.label for c in config.emg.channels]
    rms = lambda x: float(np.sqrt(np.mean(x**2)))  # noqa: E731
    ment, corr = emg[:, labels.index("EMG_MENT_L")], emg[:, labels.index("EMG_CORR_L")]
    assert rms(ment[speech]) > 5 * rms(ment[~speech])  # mentalis works during speech (no AU17 in the truth)
    assert rms(corr[speech]) < 1.5 * rms(corr[~speech])  # brows do not
    eeg = rig.regenerate("eeg", int(60 * config.eeg.srate_hz)).astype(np.float64)
    t7 = eeg[:, config.eeg.channels.index("T7")]
    speech_eeg = rig.timeline.speech_envelope(np.arange(t7.size) / config.eeg.srate_hz) > 0.5
    hp = signal.sosfilt(signal.butter(4, 30, "highpass", fs=config.eeg.srate_hz, output="sos"), t7)
    assert rms(hp[speech_eeg]) > 2 * rms(hp[~speech_eeg])


def test_lighting_switch_changes_frame_brightness_and_nothing_else():
    n = 60
    still = SimulatedRig(realistic(*STILL), seed=1, duration_s=30).regenerate("rgb", n)
    means = still.reshape(n, -1).mean(axis=1)
    assert np.ptp(means) == 0  # a still neutral face under constant light
    lit_rig = SimulatedRig(realistic(*STILL, "lighting.enabled=true"), seed=1, duration_s=30)
    lit = lit_rig.regenerate("rgb", n)
    lit_means = lit.reshape(n, -1).mean(axis=1)
    assert np.ptp(lit_means) > 1.0  # drift and flicker
    np.testing.assert_array_equal(lit_rig.regenerate("depth", 3), SimulatedRig(
        realistic(*STILL), seed=1, duration_s=30).regenerate("depth", 3))  # light does not move the head
    gains = lit_rig.make_generator("video").camera.gains(np.arange(n) / 30.0)
    # Frame means follow the gain (background and face both lit), to within 8-bit rounding.
    ratio = lit_means / means
    assert np.corrcoef(ratio, gains.mean(axis=1))[0, 1] > 0.99


def test_camera_noise_switch_adds_sensor_noise_to_rgb_and_depth():
    quiet = SimulatedRig(realistic(*STILL), seed=1, duration_s=30)
    noisy = SimulatedRig(realistic(*STILL, "camera_noise.enabled=true", "camera_noise.rgb_sigma=4"), seed=1,
                         duration_s=30)
    rgb_q, depth_q = quiet.make_generator("video").next_samples(2)
    rgb_n, depth_n = noisy.make_generator("video").next_samples(2)
    diff = rgb_n.astype(float) - rgb_q
    assert 3.0 < diff.std() < 5.0 and abs(diff.mean()) < 0.5
    assert not np.array_equal(rgb_n[0], rgb_n[1])  # fresh noise every frame
    d = depth_n.astype(float) - depth_q
    wall = depth_q == depth_q.max()
    assert 2.0 < d[wall].std() < 7.0  # 2 mm at 1 m grows to 4.5 mm at the 1.5 m wall
    assert d[~wall].std() < d[wall].std()  # the closer face is less noisy
    assert np.array_equal(depth_q[0], depth_q[1])


def test_head_motion_moves_rgb_and_depth_together_and_reports_its_pose():
    config = realistic(*STILL, "head_motion.enabled=true")
    rig = SimulatedRig(config, seed=4, duration_s=120)
    t = np.arange(0, 120, 0.1)
    pose = rig.head_pose(t)
    assert pose.shape == (t.size, 6)
    assert np.abs(pose[:, 0]).max() > 12 and np.abs(pose[:, 0]).max() <= 25  # large turns, within the limit
    assert np.abs(pose[:, 5]).max() > 40 and np.abs(pose[:, 5]).max() <= 100  # toward/away from the camera
    speed = np.abs(np.diff(pose[:, 0])) / 0.1
    assert speed.max() > 40  # sudden re-orientations (deg/s)
    near, far = int(np.argmin(pose[:, 5])), int(np.argmax(pose[:, 5]))
    video = rig.make_generator("video")
    frames = {}
    for i in (near, far):
        video.position = int(round(t[i] * config.rgb.fps))
        frames[i] = video.next_samples(1)
    bg = FaceRenderer(96, 72).background_distance_mm
    area = {i: int((frames[i][1][0] < bg).sum()) for i in frames}
    assert area[near] > 1.1 * area[far]  # closer head, bigger in the image
    z_near, z_far = (np.median(frames[i][1][0][frames[i][1][0] < bg]) for i in (near, far))
    assert (z_far - z_near) == pytest.approx(pose[far, 5] - pose[near, 5], abs=25)
    for i in frames:  # RGB differs from the background exactly where depth says the head is
        background = FaceRenderer(96, 72).render(np.zeros(17), translation_mm=(0, 0, 190))[0]
        moved = np.abs(frames[i][0][0].astype(int) - background).sum(axis=2) > 12
        head = frames[i][1][0] < bg
        assert (moved == head).mean() > 0.95


def test_subjects_differ_in_emg_eeg_and_expressiveness_deterministically():
    from synth.rig.subjects import draw_subject

    config = realistic()
    subjects = [draw_subject(i, config.subjects, config.emg.channels) for i in range(8)]
    again = draw_subject(3, config.subjects, config.emg.channels)
    np.testing.assert_array_equal(again.emg_gain, subjects[3].emg_gain)
    assert again.emg_crosstalk == subjects[3].emg_crosstalk
    for name in ("emg_noise_scale", "eeg_alpha_hz", "eeg_artifact_scale", "expressiveness"):
        values = [getattr(s, name) for s in subjects]
        lo, hi = getattr(config.subjects, name)
        assert len(set(values)) == 8 and all(lo <= v <= hi for v in values)
    # The rig uses them: alpha peak moves with the subject, EMG amplitude with its gain.
    peaks, emg_rms = [], []
    for i in (0, 5):
        rig = SimulatedRig(realistic(*STILL, "subjects.enabled=true", f"identity_seed={i}"), seed=1, duration_s=40)
        eeg = rig.regenerate("eeg", 30 * 500).astype(np.float64)[:, config.eeg.channels.index("O1")]
        f, p = signal.welch(eeg, fs=500, nperseg=2048)
        band = (f > 6) & (f < 14)
        peaks.append(f[band][np.argmax(p[band])])
        emg_rms.append(float(np.sqrt(np.mean(rig.regenerate("emg", 4000).astype(np.float64) ** 2))))
        assert abs(peaks[-1] - rig.subject.eeg_alpha_hz) < 1.0
    assert abs(peaks[0] - peaks[1]) > 0.3 or abs(emg_rms[0] / emg_rms[1] - 1) > 0.2
    # Expressiveness scales the expressions, not the blinks.
    expressive = SimulatedRig(realistic(*ALL_OFF, "subjects.enabled=true", "identity_seed=5"), seed=1,
                              duration_s=60)
    plain = SimulatedRig(realistic(*ALL_OFF), seed=1, duration_s=60)
    t = np.arange(0, 60, 1 / 30)
    ratio = expressive.subject.expressiveness
    a, b = expressive.timeline.intensities(t), plain.timeline.intensities(t)
    cols = [c for c in range(17) if c != AU_INDEX[45]]
    unclipped = b[:, cols] * max(ratio, 1.0) < 5.0
    np.testing.assert_allclose(a[:, cols][unclipped], np.clip(b[:, cols] * ratio, 0, 5)[unclipped], atol=1e-5)
    np.testing.assert_array_equal(a[:, AU_INDEX[45]], b[:, AU_INDEX[45]])


def test_wide_family_has_new_faces_and_glasses_and_keeps_the_default_family():
    au = np.zeros(17)
    np.testing.assert_array_equal(FaceRenderer(96, 72, identity_seed=4).render(au)[0],
                                  FaceRenderer(96, 72, identity_seed=4, family="default").render(au)[0])
    wide = [FaceRenderer(64, 64, identity_seed=i, family="wide") for i in range(12)]
    assert 1 <= sum(r.has_glasses for r in wide) <= 11
    default = FaceRenderer(64, 64, identity_seed=0)
    assert not default.has_glasses
    assert not np.array_equal(wide[0].render(au)[0], default.render(au)[0])
    skin = [r._id.skin_rgb.mean() for r in wide]
    assert max(skin) - min(skin) > 60  # pale to dark
    with pytest.raises(ValueError, match="family"):
        FaceRenderer(96, 72, family="narrow")


def test_glasses_render_in_rgb_and_depth():
    au = np.zeros(17)
    seed = next(i for i in range(50) if FaceRenderer(64, 64, identity_seed=i, family="wide").has_glasses)
    with_glasses = FaceRenderer(320, 240, identity_seed=seed, family="wide")
    glasses = with_glasses._glasses
    rgb, depth = with_glasses.render(au)
    with_glasses._glasses = None  # the same face without them
    bare_rgb, bare_depth = with_glasses.render(au)
    changed = np.abs(rgb.astype(int) - bare_rgb).sum(axis=2) > 30
    assert changed.sum() > 100  # rims, bridge and temples
    closer = depth < bare_depth
    assert closer.sum() > 50 and (bare_depth[closer] - depth[closer]).max() >= 5  # the frame sits before the eyes
    frame = rgb[changed].astype(float)
    assert np.abs(frame - glasses.rgb).sum(axis=1).min() < 40  # some pixels carry the frame colour


def test_translation_scales_and_shifts_the_head_consistently():
    r = FaceRenderer(160, 120, identity_seed=2)
    au = np.zeros(17)
    rgb0, d0 = r.render(au)
    bg = r.background_distance_mm
    for z in (-100.0, 100.0):
        rgb, d = r.render(au, translation_mm=(0, 0, z))
        scale = (d < bg).sum() / (d0 < bg).sum()
        expected = (r._pivot[2] / (r._pivot[2] + z)) ** 2
        assert scale == pytest.approx(expected, rel=0.08)
        assert np.median(d[d < bg]) - np.median(d0[d0 < bg]) == pytest.approx(z, abs=8)
    _, d = r.render(au, translation_mm=(30, 0, 0))
    cols = np.flatnonzero((d < bg).any(axis=0))
    cols0 = np.flatnonzero((d0 < bg).any(axis=0))
    assert cols.mean() - cols0.mean() == pytest.approx(30 * r.pixels_per_mm, abs=1.5)
    with pytest.raises(ValueError, match="translation_mm"):
        r.render(au, translation_mm=(0, 0, 500))
    with pytest.raises(ValueError, match="translation_mm"):
        r.render(au, translation_mm=(0, 0))


def test_write_rig_session_realistic_with_identity_override(tmp_path):
    path = rig_session(tmp_path / "r.h5", config_overrides=["identity_seed=12"], duration_s=2.0,
                       modalities=("rgb", "depth", "emg", "eeg", "au", "markers"))
    with open_session(path) as s:
        assert s.info["subject_id"] == "sub-id012"
        assert s.streams["RGB"].data.shape[0] == 60 and s.streams["EMG"].data.shape[0] == 4000


def test_simulate_command_runs_the_realistic_profile_and_rejects_bad_overrides(unique_prefix):
    from typer.testing import CliRunner

    import emosync

    size = [a for o in SMALL for a in ("--set", o)]
    result = CliRunner().invoke(emosync.app, ["simulate", "--profile", "realistic", "--duration", "1", "--seed", "7",
                                              "--name-prefix", unique_prefix, *size])
    assert result.exit_code == 0, result.output
    assert "Confounds on: head_motion, talking, lighting, camera_noise, subjects; face family wide" in result.output
    bad = CliRunner().invoke(emosync.app, ["simulate", "--profile", "realistic", "--duration", "1",
                                           "--set", "talking.bout_duration_s=[9,1]"])
    assert bad.exit_code == 1 and "bout_duration_s" in bad.output
