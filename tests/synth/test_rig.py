"""The simulated rig: deterministic generators, physiologically sensible signals, sample-exact recording."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from scipy import signal

from acquisition import open_session
from acquisition.live.recorder import SessionRecorder
from acquisition.annotate.action_units import AU_INDEX
from synth.facs import TimelineConfig
from synth.rig import SimulatedRig

from ..conftest import record_rig


@pytest.mark.parametrize("key", ["emg", "eeg", "au", "video"])
def test_generators_do_not_depend_on_chunking(light_rig_config, key):
    rig = SimulatedRig(light_rig_config, seed=5, duration_s=30)
    a, b = rig.make_generator(key), rig.make_generator(key)
    n = 40 if key == "video" else 1000
    chunked = [a.next_samples(m) for m in (1, 7, n - 8)]
    whole = b.next_samples(n)
    if key == "video":
        for i in range(2):
            np.testing.assert_array_equal(np.concatenate([c[i] for c in chunked]), whole[i])
    else:
        np.testing.assert_array_equal(np.concatenate(chunked), whole)
    other = SimulatedRig(light_rig_config, seed=6, duration_s=30).make_generator(key).next_samples(n)
    assert not np.array_equal(other[0] if key == "video" else other, whole[0] if key == "video" else whole)


def test_emg_bursts_follow_the_muscles_of_active_aus(light_rig_config):
    config = light_rig_config.model_copy(update={"timeline": TimelineConfig(
        expressions_per_minute=20, emotions=["happiness"], micro_fraction=0.0, blinks_per_minute=0)})
    rig = SimulatedRig(config, seed=1, duration_s=60)
    srate = config.emg.srate_hz
    emg = rig.regenerate("emg", int(60 * srate))
    t = np.arange(emg.shape[0]) / srate
    au12 = rig.timeline.intensities(t + config.emg.lead_s)[:, AU_INDEX[12]]
    labels = [c.label for c in config.emg.channels]
    zyg, corr = emg[:, labels.index("EMG_ZYG_L")], emg[:, labels.index("EMG_CORR_L")]
    active, rest = au12 > 3.0, au12 == 0
    assert active.sum() > srate and rest.sum() > srate
    rms = lambda x: float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))  # noqa: E731
    assert rms(zyg[active]) > 10 * rms(zyg[rest])      # zygomaticus bursts during smiles
    assert rms(corr[active]) < 2 * rms(corr[rest])      # corrugator stays quiet (no AU4 in happiness)
    assert 1e-6 < rms(zyg[rest]) < 2e-5                 # volts: noise floor + mains hum, microvolts
    f, p = signal.welch(zyg[active], fs=srate, nperseg=1024)
    assert f[np.argmax(p)] > 20 and p[f > 700].mean() < 0.05 * p[(f > 30) & (f < 400)].mean()  # 20-500 Hz band


def test_eeg_has_posterior_alpha_and_frontal_blinks(light_rig_config):
    rig = SimulatedRig(light_rig_config, seed=2, duration_s=60)
    srate = light_rig_config.eeg.srate_hz
    eeg = rig.regenerate("eeg", int(60 * srate)).astype(np.float64)
    labels = light_rig_config.eeg.channels
    f, p = signal.welch(eeg, fs=srate, nperseg=1024, axis=0)
    alpha = (f >= 8) & (f <= 12)
    o1, fz = labels.index("O1"), labels.index("Fz")
    assert p[alpha, o1].mean() > 2 * p[alpha, fz].mean()
    low, high = (f > 2) & (f < 4), (f > 30) & (f < 40)
    assert p[low, fz].mean() > 5 * p[high, fz].mean()  # 1/f background
    blink = rig.timeline.intensities(np.arange(eeg.shape[0]) / srate)[:, AU_INDEX[45]] > 4
    fp1 = labels.index("Fp1")
    assert eeg[blink, fp1].mean() > eeg[~blink, fp1].mean() + 30e-6
    assert 5e-6 < eeg[:, fz].std() < 50e-6


def test_eeg_picks_up_facial_muscle_activity_at_temporal_sites(light_rig_config):
    config = light_rig_config.model_copy(update={"timeline": TimelineConfig(
        expressions_per_minute=20, emotions=["happiness", "anger"], micro_fraction=0.0, blinks_per_minute=0)})
    rig = SimulatedRig(config, seed=8, duration_s=60)
    srate = config.eeg.srate_hz
    eeg = rig.regenerate("eeg", int(60 * srate)).astype(np.float64)
    active = rig.timeline.intensities(np.arange(eeg.shape[0]) / srate).max(axis=1) > 3.0
    labels = config.eeg.channels
    sos = signal.butter(4, [30, 90], btype="bandpass", fs=srate, output="sos")
    high = signal.sosfiltfilt(sos, eeg, axis=0)
    rms = lambda x: float(np.sqrt(np.mean(x**2)))  # noqa: E731
    t7, oz = labels.index("T7"), labels.index("Oz")
    assert rms(high[active, t7]) > 2.5 * rms(high[~active, t7])  # muscle bursts on temporal sites
    assert rms(high[active, oz]) < 1.5 * rms(high[~active, oz])  # occipital sites stay clean


def _t0_from_info_xml(xml: str) -> float:
    return float(ET.fromstring(xml).find("desc/emosync_simulation/t0").text)


@pytest.mark.parametrize("profile", ["light", "realistic"])
def test_rig_is_recorded_sample_exact(tmp_path, unique_prefix, profile):
    from synth.rig import load_rig_config

    # The realistic profile at the light profile's frame size: confounds on, same streams.
    size = [f"{k}.{d}={v}" for k in ("rgb", "depth") for d, v in (("width", 160), ("height", 120))]
    config = load_rig_config(profile, [f"name_prefix={unique_prefix}"] + (size if profile == "realistic" else []))
    rig = SimulatedRig(config, seed=11, duration_s=120, profile=profile)
    fname = tmp_path / "rig.h5"
    record_rig(rig, fname, 4.0)
    with open_session(fname) as s:
        assert {rig.stream_name(k) for k in rig.enabled_streams} == set(s.streams)
        for key in ("emg", "eeg", "au", "rgb", "depth"):
            st = s.streams[rig.stream_name(key)]
            assert st.info["source_id"] == rig.source_id(key)
            t0 = _t0_from_info_xml(st.info["info_xml"])  # provenance travels with the data
            assert t0 == rig.t0
            k = np.round((st.timestamps - t0) * st.nominal_srate).astype(int)
            assert st.n_samples > 2.5 * st.nominal_srate, key
            assert np.all(np.diff(k) == 1), f"{key}: samples lost or duplicated"
            np.testing.assert_allclose(st.timestamps, t0 + k / st.nominal_srate, rtol=0, atol=1e-9)
            expected = rig.regenerate(key, int(k[-1]) + 1)[k]
            np.testing.assert_array_equal(st.data[:], expected, err_msg=key)
        rgb = s.streams[rig.stream_name("rgb")]
        assert rgb.data.shape[1:] == (120, 160, 3) and rgb.info["encoding"] == "RGB8"
        assert s.streams[rig.stream_name("depth")].data.dtype == np.uint16
        markers = s.streams[rig.stream_name("markers")]
        sent = [(rig.t0 + t, text) for t, text in rig.timeline.markers()]
        window = [(t, text) for t, text in sent if markers.timestamps[0] - 1e-9 <= t <= markers.timestamps[-1] + 1e-9]
        assert [text for _, text in window] == markers.data[:, 0].tolist()
        np.testing.assert_allclose([t for t, _ in window], markers.timestamps, atol=1e-9)


def test_per_stream_video_compression(tmp_path, light_rig_config):
    config = light_rig_config.model_copy(update={"emg": light_rig_config.emg.model_copy(update={"enabled": False}),
                                                 "eeg": light_rig_config.eeg.model_copy(update={"enabled": False})})
    rig = SimulatedRig(config, seed=4, duration_s=60)
    fname = tmp_path / "video.h5"
    rig.start()
    try:
        rgb_name, depth_name = rig.stream_name("rgb"), rig.stream_name("depth")
        recorder = SessionRecorder(fname, streams=[f"name='{rgb_name}'", f"name='{depth_name}'"],
                                   video_compression=f"{rgb_name}=jpeg,{depth_name}=png")
        recorder.start()
        recorder.wait(2.0)
        recorder.stop()
    finally:
        rig.stop()
    with open_session(fname) as s:
        depth, rgb = s.streams[depth_name], s.streams[rgb_name]
        assert depth.info["compression"] == "png" and rgb.info["compression"] == "jpeg"
        k = np.round((depth.timestamps - rig.t0) * 30).astype(int)
        np.testing.assert_array_equal(depth.data[:], rig.regenerate("depth", k[-1] + 1)[k])  # lossless
        k = np.round((rgb.timestamps - rig.t0) * 30).astype(int)
        error = np.abs(rgb.data[:].astype(int) - rig.regenerate("rgb", k[-1] + 1)[k]).mean()
        assert error < 4.0
        assert rgb._group["data"].id.get_storage_size() < 0.3 * rgb.n_samples * 120 * 160 * 3


def test_idle_behaviour_moves_head_and_muscles_consistently(light_rig_config):
    """Idle head motion and tonic AUs: every generator sees the same total, chunking-invariant, markers unchanged."""
    from synth.rig.idle import IdleTimeline

    idle = light_rig_config.idle.model_copy(update={"enabled": True})
    config = light_rig_config.model_copy(update={"idle": idle, "timeline": TimelineConfig(
        expressions_per_minute=0, blinks_per_minute=0)})                      # neutral face, only idle activity
    rig = SimulatedRig(config, seed=3, duration_s=30)
    still = SimulatedRig(light_rig_config.model_copy(update={"timeline": config.timeline}), seed=3, duration_s=30)
    assert isinstance(rig.timeline, IdleTimeline) and rig.timeline.markers() == still.timeline.markers()
    t = np.arange(0, 30, 1 / 30)
    pose, au = rig.timeline.head_pose(t), rig.regenerate("au", len(t))
    assert np.all(np.abs(pose) <= idle.head_max_deg)
    np.testing.assert_allclose(pose.std(0), idle.head_rms_deg, rtol=0.5)      # a few degrees, per configured axis
    assert np.abs(np.diff(pose, axis=0)).max() < 2.0                          # smooth: < 2 degrees per frame
    assert au[:, AU_INDEX[12]].std() > 0.1 and np.all(au[:, AU_INDEX[45]] == 0)
    # chunking-invariant video with the head moving, and visibly different from a still head
    a, b = rig.make_generator("video"), rig.make_generator("video")
    chunked = [a.next_samples(m) for m in (1, 4)]
    whole = b.next_samples(5)
    for i in range(2):
        np.testing.assert_array_equal(np.concatenate([c[i] for c in chunked]), whole[i])
    frames = still.regenerate("rgb", 5)
    assert np.abs(whole[0].astype(int) - frames).mean() > 1.0
    # EMG follows the tonic zygomaticus activity (the same total the AU stream reports)
    srate = config.emg.srate_hz
    emg = rig.regenerate("emg", int(30 * srate)).astype(np.float64)
    zyg = emg[:, [c.label for c in config.emg.channels].index("EMG_ZYG_L")]
    rms = np.sqrt((zyg[: len(zyg) // 200 * 200].reshape(-1, 200) ** 2).mean(1))  # 0.1 s bins
    tonic = rig.timeline.intensities(np.arange(len(rms)) * 0.1 + 0.05 + config.emg.lead_s)[:, AU_INDEX[12]]
    assert np.corrcoef(rms, tonic)[0, 1] > 0.7


def test_offline_session_has_markers_and_a_face_subject(tmp_path):
    from synth.rig.config import load_rig_config
    from synth.rig.offline import write_rig_session

    overrides = ["timeline.expressions_per_minute=60", "identity_seed=7"]
    fname = write_rig_session(tmp_path / "s.h5", duration_s=12, seed=2, overrides=overrides,
                              modalities=("emg", "markers"))
    rig = SimulatedRig(load_rig_config("light", overrides), seed=2, duration_s=17)
    with open_session(fname) as s:
        assert s.info["subject_id"] == "sub-id007"
        markers = next(st for st in s.streams.values() if st.modality == "markers")
        sent = [(t, text) for t, text in rig.timeline.markers() if t < 12]
        assert len(sent) >= 6 and markers.data[:, 0].tolist() == [text for _, text in sent]
        np.testing.assert_allclose(markers.times, [t for t, _ in sent], atol=1e-9)
        assert markers.info["source_id"] == rig.source_id("markers")
