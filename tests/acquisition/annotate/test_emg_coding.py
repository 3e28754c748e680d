"""EMG-based AU coding: electrode labels, known-answer envelopes, the derived stream, the command."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from acquisition import SessionWriter, StreamSpec, open_session
from acquisition.annotate.action_units import AU_INDEX, AU_LABELS
from acquisition.annotate.electrodes import channel_muscles, channel_side, muscle_of
from acquisition.annotate.emg_coding import (DERIVED_BY, CurveConfig, emg_code_session, emg_to_aus, find_baseline,
                                             load_emg_coding_config, split_bursts)
from acquisition.utils.config import ConfigError

FS = 2000.0
T0 = 500.0          # raw clock of the fake EMG amplifier, seconds
CARRIER_HZ = 137.0  # inside 20-450 Hz and off every 50 Hz harmonic, so the filters leave it alone
def _config(*overrides: str):
    """The default config with a plain curve (5 x relative activity), so known answers do not depend on the fit."""
    config = load_emg_coding_config("default", overrides)
    config.curves = {"default": CurveConfig(offset=0.0, gain=5.0, exponent=1.0)}
    return config


def _sine(amplitude_v: np.ndarray) -> np.ndarray:
    """A 137 Hz carrier whose RMS is ``amplitude_v`` (per sample): its envelope is known exactly."""
    t = np.arange(len(amplitude_v)) / FS
    return np.sqrt(2) * amplitude_v * np.sin(2 * np.pi * CARRIER_HZ * t)


def _levels(segments: list[tuple[float, float]]) -> np.ndarray:
    """Piecewise-constant RMS from ``(duration_s, rms_v)`` segments."""
    return np.concatenate([np.full(int(d * FS), v) for d, v in segments])


# ---------------------------------------------------------------------------- labels
@pytest.mark.parametrize("label, muscle", [
    ("EMG_CORR_L", "corrugator"), ("EMG_ZYG_R", "zygomaticus_major"), ("EMG_FRONT_L", "frontalis"),
    ("EMG_ORBOC_L", "orbicularis_oculi"), ("EMG_LEVLAB_L", "levator_labii"), ("EMG_MENT_L", "mentalis"),
    ("Corrugator", "corrugator"), ("zygomaticus major", "zygomaticus_major"), ("Zyg", "zygomaticus_major"),
    ("Frontalis", "frontalis"), ("OO", "orbicularis_oculi"), ("Orbicularis oris", "orbicularis_oris"),
    ("Orbicularis_Oculi-R", "orbicularis_oculi"), ("ZygomaticusMajor", "zygomaticus_major"),
    ("EXG3", None), ("Ref", None), ("Orbicularis", None)])
def test_label_to_muscle(label, muscle):
    config = load_emg_coding_config()
    assert muscle_of(label, config.muscles, config.channels) == muscle


def test_sides_aliases_and_explicit_maps():
    assert [channel_side(x) for x in ("EMG_ZYG_R", "Corrugator left", "OO", "EMG_L_R")] == ["R", "L", "", ""]
    config = load_emg_coding_config("default", ["channels.EXG1=corrugator", "muscles.mentalis=[ment, chin]"])
    mapping = channel_muscles(["EXG1", "Chin L", "EXG2"], config.muscles, config.channels)
    assert mapping == {"EXG1": "corrugator", "Chin L": "mentalis"}
    # An explicit map wins over the aliases.
    config = load_emg_coding_config("default", ["channels.Zyg=risorius"])
    assert muscle_of("Zyg", config.muscles, config.channels) == "risorius"


def test_no_known_muscle_and_ambiguous_labels_are_clear_errors():
    config = load_emg_coding_config()
    with pytest.raises(ValueError) as err:
        channel_muscles(["EXG1", "EXG2", "Status"], config.muscles, config.channels)
    message = str(err.value)
    assert "['EXG1', 'EXG2', 'Status']" in message and "--set channels.EXG1=corrugator" in message
    assert "EMG_CORR_L" in message and "zygomaticus_major" in message
    with pytest.raises(ValueError, match="several muscles.*corrugator.*mentalis"):
        muscle_of("Corr_Ment", config.muscles, config.channels)


@pytest.mark.parametrize("overrides, match", [
    (["bogus=1"], "bogus"),
    (["muscles.nose_muscle=[nm]"], "nose_muscle"),
    (["muscles.mentalis=[corr]"], "names two muscles"),
    (["channels.EXG1=nose"], "nose"),
    (["curves.AU99={gain: 1}"], "AU99"),
    (["blinks.muscle=eyelid"], "eyelid"),
    (["tuning.held_out=[0, 100]"], "share subjects"),
    (["baseline.range_s=[5, 2]"], "range_s"),
])
def test_config_rejects_bad_settings(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_emg_coding_config("default", overrides)


# ---------------------------------------------------------------------------- known answers
def test_known_envelope_gives_known_intensities():
    """Rest 10 uV, then activity of exactly 0, 1/2 and 1 x the range: AU04 reads 0, 2.5 and 5."""
    rest, top = 10e-6, 80e-6
    half = np.sqrt(rest**2 + (top / 2) ** 2)  # activity adds in power to the rest level
    full = np.sqrt(rest**2 + top**2)
    rms = _levels([(4.0, rest), (2.0, half), (2.0, rest), (2.0, full), (2.0, rest)])
    labels = ["Corrugator L", "Corrugator R"]
    emg = np.column_stack([_sine(rms), _sine(0.5 * rms)])  # the right side picks up half: relative units agree
    values, times, aus = emg_to_aus(emg, FS, labels, config=_config("range_quantile=0.9"))
    assert aus == [4] and values.shape == (len(times), 1)
    assert times[1] - times[0] == pytest.approx(0.01) and times[-1] == pytest.approx(11.99)

    def at(start, stop):
        window = (times > start + 0.2) & (times < stop - 0.2)  # away from the 0.1 s envelope edges
        return values[window, 0]

    assert np.abs(at(0.5, 4.0)).max() < 0.15
    assert at(4.0, 6.0).mean() == pytest.approx(2.5, abs=0.1)
    assert at(8.0, 10.0).mean() == pytest.approx(5.0, abs=0.1)
    # The curve maps relative activity: exponent 2 puts half the range at 5 * 0.25.
    config = _config("range_quantile=0.9")
    config.curves = {"default": CurveConfig(offset=0.0, gain=5.0, exponent=2.0)}
    squared, _, _ = emg_to_aus(emg, FS, labels, config=config)
    assert squared[(times > 4.2) & (times < 5.8), 0].mean() == pytest.approx(1.25, abs=0.08)


def test_zero_activity_gives_zero_and_noise_is_not_amplified():
    rng = np.random.default_rng(0)
    labels = ["EMG_CORR_L", "EMG_ZYG_L", "EMG_FRONT_L", "EMG_ORBOC_L", "EMG_LEVLAB_L", "EMG_MENT_L"]
    emg = np.column_stack([_sine(np.full(int(20 * FS), 10e-6)) for _ in labels])
    emg += rng.normal(0, 1e-7, emg.shape)
    values, _, aus = emg_to_aus(emg, FS, labels, config=_config())
    assert aus == [1, 2, 4, 6, 7, 9, 10, 12, 17, 45]
    assert np.abs(values).max() < 0.3 and np.abs(values).mean() < 0.1


def test_blinks_split_off_orbicularis_oculi():
    """A 0.15 s burst is a blink (AU45); 2 s of the same activity is a cheek raise (AU06/AU07)."""
    rest, top = 5e-6, 60e-6
    burst = np.sqrt(rest**2 + top**2)
    rms = _levels([(3.0, rest), (0.15, burst), (2.85, rest), (2.0, burst), (3.0, rest)])
    values, times, aus = emg_to_aus(_sine(rms)[:, None], FS, ["OO"], config=_config())
    assert aus == [6, 7, 45]
    blink, held = (times > 3.0) & (times < 3.2), (times > 6.3) & (times < 7.7)
    au6, au7, au45 = values[:, 0], values[:, 1], values[:, 2]
    assert au45[blink].max() > 2.5 and au6[blink].max() < 1.0
    assert au6[held].mean() > 4.0 and au7[held].mean() > 4.0 and au45[held].max() < 0.5
    sustained, bursts = split_bursts(np.r_[np.zeros(50), np.ones(10), np.zeros(50), np.ones(80), np.zeros(50)],
                                     100.0, 0.3)
    assert bursts[50:60].tolist() == [1.0] * 10 and sustained[110:190].tolist() == [1.0] * 80
    assert sustained[50:60].max() == 0.0 and bursts[110:190].max() == 0.0


def test_baseline_is_the_quietest_stretch_or_the_given_range():
    rng = np.random.default_rng(1)
    env = 1.0 + rng.random((2000, 3))          # 20 s at 100 Hz, busy everywhere ...
    env[1200:1400] = 0.5                       # ... but 12-14 s
    start, stop = find_baseline(env, 100.0, 2.0)
    assert (start, stop) == (12.0, 14.0)
    with pytest.raises(ValueError, match="shorter than the baseline window.*baseline.window_s"):
        find_baseline(env[:100], 100.0, 2.0)
    # A given range sets the rest level: using a stretch with activity as rest lowers everything.
    rms = _levels([(4.0, 10e-6), (2.0, 50e-6), (4.0, 10e-6)])
    labels = ["EMG_CORR_L"]
    auto, times, _ = emg_to_aus(_sine(rms)[:, None], FS, labels, config=_config())
    given, _, _ = emg_to_aus(_sine(rms)[:, None], FS, labels, config=_config("baseline.range_s=[4.5,5.5]"))
    active = (times > 4.3) & (times < 5.7)
    assert auto[active].mean() > 4.0 and given[active].mean() < 0.5
    with pytest.raises(ValueError, match="holds no sample"):
        emg_to_aus(_sine(rms)[:, None], FS, labels, config=_config("baseline.range_s=[50,60]"))


def test_bad_arrays_are_clear_errors():
    emg = _sine(np.full(int(5 * FS), 1e-5))[:, None]
    with pytest.raises(ValueError, match="one column per channel label"):
        emg_to_aus(emg, FS, ["EMG_CORR_L", "EMG_ZYG_L"], config=_config())
    with pytest.raises(ValueError, match="Nyquist"):
        emg_to_aus(emg, 500.0, ["EMG_CORR_L"], config=_config())
    emg[10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        emg_to_aus(emg, FS, ["EMG_CORR_L"], config=_config())
    with pytest.raises(ValueError, match="no AU with weight"):
        emg_to_aus(emg, FS, ["Masseter"], config=_config())


# ---------------------------------------------------------------------------- sessions
def _write_session(path, labels=("EMG_CORR_L", "EMG_ZYG_L"), *, with_emg: bool = True):
    """A session with an EMG amplifier on its own clock (offset -400 s) and a recorded AU stream."""
    rms = _levels([(4.0, 10e-6), (2.0, 60e-6), (4.0, 10e-6)])
    emg = np.column_stack([_sine(rms)] + [_sine(np.full(len(rms), 10e-6))] * (len(labels) - 1))
    with SessionWriter(path, subject_id="sub-test") as w:
        if with_emg:
            st = w.add_stream(StreamSpec("Amp", "EMG", len(labels), "float32", FS, "amp-1",
                                         channel_labels=list(labels)))
            st.append(emg.astype(np.float32), T0 + np.arange(len(emg)) / FS)
            st.append_clock_offsets([T0, T0 + 5.0], [-400.0, -400.0], [1e-4, 1e-4])
        au = w.add_stream(StreamSpec("ActionUnits", "ActionUnits", len(AU_LABELS), "float32", 30.0, "au-1",
                                     channel_labels=AU_LABELS))
        au.append(np.zeros((300, len(AU_LABELS)), np.float32), T0 + np.arange(300) / 30.0)
    return path


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_session_stream_provenance_clock_and_overwrite(tmp_path):
    path = _write_session(tmp_path / "s.h5")
    config = _config()
    result = emg_code_session(path, config=config)
    # AU06 is only 0.2 zygomaticus: not coded without an orbicularis oculi electrode (min_weight 0.5).
    assert result.out_stream == "Amp-AU" and result.au_labels == ["AU04", "AU12"]
    with open_session(path) as s:
        st = s.streams["Amp-AU"]
        assert st.info["type"] == "ActionUnits" and st.info["channel_labels"] == ["AU04", "AU12"]
        assert all(label in AU_LABELS for label in st.info["channel_labels"])
        assert st.nominal_srate == 100.0 and st.n_samples == 1000
        assert st.info["derived_by"] == DERIVED_BY and st.info["derived_from"] == "Amp"
        # JSON objects in attributes come back as dicts.
        assert st.info["emg_code_config"]["srate_hz"] == 100.0 and st.info["emg_code_config"]["tuning"]["held_out"]
        assert st.info["emg_code_muscles"] == {"EMG_CORR_L": "corrugator", "EMG_ZYG_L": "zygomaticus_major"}
        baseline = st.info["emg_code_baseline"]
        assert baseline["how"] == "quietest" and 0 <= baseline["start_s"] < baseline["stop_s"] <= 4.0
        assert baseline["rest_uv"]["EMG_CORR_L"] == pytest.approx(10.0, rel=0.05)
        # The EMG's clock: raw stamps on the amplifier clock, offsets copied, so `times` line up.
        np.testing.assert_allclose(st.timestamps[[0, -1]], [T0, T0 + 9.99])
        np.testing.assert_allclose(st.clock_offsets.offsets, s.streams["Amp"].clock_offsets.offsets)
        np.testing.assert_allclose(st.times[[0, 500]], s.streams["Amp"].times[[0, 10000]], atol=1e-9)
        data = np.asarray(st.data[:])
        assert data[450:550, 0].mean() > 4.0 and np.abs(data[:350, 0]).max() < 0.3
    before = _digest(path)
    with pytest.raises(FileExistsError, match="--overwrite"):
        emg_code_session(path, config=config)
    with pytest.raises(FileExistsError, match="not written by emg-code"):
        emg_code_session(path, config=config, out_stream="ActionUnits", overwrite=True)
    with pytest.raises(ValueError, match="No EMG channel names a known facial muscle"):
        emg_code_session(path, config=_config("muscles.corrugator=[cs]", "muscles.zygomaticus_major=[zm]"),
                         overwrite=True)
    assert _digest(path) == before  # failed runs leave the file as it was
    again = emg_code_session(path, config=_config("srate_hz=50"), overwrite=True)
    with open_session(path) as s:
        assert s.streams["Amp-AU"].n_samples == 500 and again.out_stream == "Amp-AU"
        assert [n for n in s.streams if n.startswith("Amp-AU")] == ["Amp-AU"]
    dry = emg_code_session(path, config=config, write=False)
    assert dry.out_stream is None and dry.values.shape == (1000, 2)


def test_session_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No session file"):
        emg_code_session(tmp_path / "missing.h5")
    path = _write_session(tmp_path / "no_emg.h5", with_emg=False)
    with pytest.raises(ValueError, match="no EMG stream.*ActionUnits"):
        emg_code_session(path)
    path = _write_session(tmp_path / "s.h5")
    with pytest.raises(ValueError, match="not EMG"):
        emg_code_session(path, stream="ActionUnits")
    with pytest.raises(ValueError, match="No stream 'Nope'"):
        emg_code_session(path, stream="Nope")


def flat(text: str) -> str:
    """Console output with rich's line wrapping undone (the wrap width depends on the terminal)."""
    return " ".join(text.split())


def test_cli_json_errors_and_mapping(tmp_path):
    from typer.testing import CliRunner

    from emosync import app

    runner = CliRunner()
    path = _write_session(tmp_path / "s.h5", labels=("EXG1", "EXG2"))
    res = runner.invoke(app, ["emg-code", str(path), "--json"])
    assert res.exit_code == 1 and "['EXG1', 'EXG2']" in flat(res.output) and "--set channels.EXG1" in flat(res.output)
    res = runner.invoke(app, ["emg-code", str(path), "--json", "--set", "channels.EXG1=corrugator"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["out_stream"] == "Amp-AU" and out["aus"] == ["AU04"] and out["channel_muscles"] == {"EXG1": "corrugator"}
    assert out["max"]["AU04"] > 1.5 and out["mean"]["AU04"] < out["max"]["AU04"] / 2 and out["n_samples"] == 1000
    res = runner.invoke(app, ["emg-code", str(path), "--set", "channels.EXG1=corrugator"])
    assert res.exit_code == 1 and "--overwrite" in flat(res.output)
    res = runner.invoke(app, ["emg-code", str(path), "--set", "channels.EXG1=corrugator", "--overwrite"])
    assert res.exit_code == 0 and "Wrote AU stream Amp-AU" in flat(res.output) and "corrugator" in flat(res.output)
    res = runner.invoke(app, ["emg-code", str(tmp_path / "missing.h5")])
    assert res.exit_code == 1 and "No session file" in flat(res.output)
    res = runner.invoke(app, ["emg-code", str(_write_session(tmp_path / "n.h5", with_emg=False))])
    assert res.exit_code == 1 and "no EMG stream" in flat(res.output)
    res = runner.invoke(app, ["emg-code", str(path), "--set", "nonsense=1"])
    assert res.exit_code == 1 and "nonsense" in flat(res.output)


# ---------------------------------------------------------------------------- the simulated rig
@pytest.mark.slow
def test_held_out_subject_correlates_with_the_truth(tmp_path):
    """A realistic-rig subject never used to fit anything (identity 105): r against the true AUs.

    AUs with a muscle of their own reach r >= 0.7; AU07 and AU09 share their muscle with AU06
    and AU10 (one electrode cannot tell them apart) and only have to go the right way.
    """
    from synth.rig.offline import write_rig_session

    path = write_rig_session(tmp_path / "rig.h5", duration_s=60, seed=105, profile="realistic",
                             overrides=["identity_seed=105"], modalities=["emg", "au"])
    result = emg_code_session(path, write=False)
    with open_session(path) as s:
        truth = s.streams["ActionUnits"]
        # The offline rig stamps both streams on one clock from 0, so raw stamps compare directly.
        r = {au: np.corrcoef(np.interp(truth.timestamps, result.timestamps, result.values[:, j]),
                             np.asarray(truth.data[:, AU_INDEX[au]]))[0, 1] for j, au in enumerate(result.au_ids)}
    assert result.au_ids == [1, 2, 4, 6, 7, 9, 10, 12, 17, 45]
    assert all(r[au] >= 0.7 for au in (1, 4, 12, 45)), r
    assert all(value > 0.25 for value in r.values()), r
