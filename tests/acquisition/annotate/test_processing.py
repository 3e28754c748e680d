"""EMG envelopes, baseline normalization and EEG preprocessing, checked against numbers."""

from __future__ import annotations


import mne
import numpy as np
import pytest
from scipy import signal, stats

from acquisition.annotate.processing import (
    condition_means,
    emg_envelope,
    filter_emg,
    normalize_to_baseline,
    preprocess_eeg,
)

SFREQ = 2000.0


def _raw(data: np.ndarray, types: list[str], sfreq: float = SFREQ) -> mne.io.RawArray:
    names = [f"{t}{i}" for i, t in enumerate(types)]
    return mne.io.RawArray(np.atleast_2d(data), mne.create_info(names, sfreq, types), verbose=False)


@pytest.fixture
def burst_raw() -> mne.io.RawArray:
    """10 s of EMG noise floor + 50 Hz hum with a 1 s burst at 4-5 s, plus an untouched misc channel."""
    rng = np.random.default_rng(0)
    t = np.arange(0, 10, 1 / SFREQ)
    x = 2e-6 * rng.standard_normal(t.size) + 10e-6 * np.sin(2 * np.pi * 50 * t)
    burst = (t >= 4) & (t < 5)
    x[burst] += 50e-6 * rng.standard_normal(burst.sum())
    return _raw(np.vstack([x, x]), ["emg", "misc"])


def _direct_moving(values: np.ndarray, half: int, reduce) -> np.ndarray:
    return np.array([reduce(values[max(0, i - half) : i + half + 1]) for i in range(values.size)])


@pytest.mark.parametrize("method", ["rms", "arv"])
def test_envelope_equals_direct_numpy_on_the_filtered_signal(burst_raw, method):
    filtered = filter_emg(burst_raw).get_data()[0]
    envelope = emg_envelope(burst_raw, window_s=0.1, method=method).get_data()
    half = int(round(0.1 * SFREQ / 2))
    reduce = (lambda w: np.sqrt(np.mean(w**2))) if method == "rms" else (lambda w: np.mean(np.abs(w)))
    direct = _direct_moving(filtered, half, reduce)
    np.testing.assert_allclose(envelope[0], direct, rtol=1e-9, atol=1e-12 * direct.max())
    np.testing.assert_array_equal(envelope[1], burst_raw.get_data()[1])  # misc channel untouched
    t = burst_raw.times
    assert envelope[0][(t > 4.2) & (t < 4.8)].mean() > 10 * envelope[0][(t > 1) & (t < 3)].mean()


def test_envelope_of_an_in_band_sine_is_its_rms():
    t = np.arange(0, 10, 1 / SFREQ)  # longer than MNE's notch filter (6.6 s), as real recordings are
    amplitude = 30e-6
    env = emg_envelope(_raw(amplitude * np.sin(2 * np.pi * 120 * t), ["emg"]), window_s=0.1).get_data()[0]
    inner = (t > 1) & (t < 9)
    np.testing.assert_allclose(env[inner], amplitude / np.sqrt(2), rtol=0.01)


def test_notch_removes_mains_and_harmonics(burst_raw):
    t = burst_raw.times
    x = burst_raw.get_data()[0] + 8e-6 * np.sin(2 * np.pi * 150 * t)
    filtered = filter_emg(_raw(x, ["emg"]), notch_hz=50.0).get_data()[0]
    f, before = signal.welch(x, SFREQ, nperseg=4096)
    _, after = signal.welch(filtered, SFREQ, nperseg=4096)
    for line in (50, 150):
        i = np.argmin(np.abs(f - line))
        assert 10 * np.log10(before[i] / after[i]) > 20, line
    band = (f > 200) & (f < 400)  # the pass band away from mains lines keeps its power
    assert after[band].sum() == pytest.approx(before[band].sum(), rel=0.1)


def test_band_is_clipped_below_nyquist_and_impossible_bands_are_refused(emosync_log):
    x = np.random.default_rng(1).standard_normal(1000) * 1e-5
    filtered = filter_emg(_raw(x, ["emg"], sfreq=100.0)).get_data()[0]
    assert "not below the Nyquist frequency 50 Hz" in emosync_log.text and "using 45 Hz" in emosync_log.text
    f, before = signal.welch(x, 100.0, nperseg=256)
    _, after = signal.welch(filtered, 100.0, nperseg=256)
    stop = f > 48  # above the clipped edge and its transition band
    assert 10 * np.log10(before[stop].sum() / after[stop].sum()) > 10
    with pytest.raises(ValueError, match=r"does not fit below the Nyquist frequency 50 Hz"):
        filter_emg(_raw(x, ["emg"], sfreq=100.0), band_hz=(60.0, 500.0))
    emosync_log.clear()
    filter_emg(_raw(x, ["emg"], sfreq=100.0), band_hz=None, notch_hz=50.0)
    assert "Mains notch at 50 Hz skipped" in emosync_log.text


def test_no_emg_channels_is_a_clear_error():
    with pytest.raises(ValueError, match=r"No EMG channels selected by picks='emg'.*\{'eeg': 1\}"):
        emg_envelope(_raw(np.zeros(100), ["eeg"]))


def test_baseline_normalized_activation_is_one_in_the_baseline(burst_raw):
    env = emg_envelope(burst_raw)
    norm = normalize_to_baseline(env, (1.0, 3.0))
    base = (norm.times >= 1.0) & (norm.times <= 3.0)
    assert norm.get_data()[0][base].mean() == pytest.approx(1.0, rel=1e-12)
    e = env.get_data()[0]
    np.testing.assert_allclose(norm.get_data()[0], e / e[base].mean(), rtol=1e-12)
    events = np.array([[int(2 * SFREQ), 0, 1], [int(4 * SFREQ), 0, 2], [int(6 * SFREQ), 0, 1]])
    epochs = mne.Epochs(env, events, {"rest": 1, "burst": 2}, tmin=-1.0, tmax=1.5, baseline=None, preload=True,
                        verbose=False)
    normalized = normalize_to_baseline(epochs, (-1.0, 0.0), picks=["emg0"])
    data = normalized.get_data(picks="emg0")[:, 0]
    in_base = (epochs.times >= -1.0) & (epochs.times <= 0.0)
    np.testing.assert_allclose(data[:, in_base].mean(axis=1), 1.0, rtol=1e-12)
    raw_epochs = epochs.get_data(picks="emg0")[:, 0]
    np.testing.assert_allclose(data, raw_epochs / raw_epochs[:, in_base].mean(axis=1, keepdims=True), rtol=1e-12)
    after = (epochs.times > 0.2) & (epochs.times < 0.8)
    assert data[1, after].mean() > 10  # the burst, relative to its own baseline
    with pytest.raises(ValueError, match="baseline mean.*not positive"):
        normalize_to_baseline(_raw(np.zeros(4000), ["emg"]), (0.0, 1.0))


def test_condition_means_match_numpy_with_t_intervals(burst_raw):
    env = emg_envelope(burst_raw)
    events = np.array([[k, 0, 1 + (i % 2)] for i, k in enumerate(range(2000, 18000, 2000))])
    epochs = mne.Epochs(env, events, {"a": 1, "b": 2}, tmin=-0.2, tmax=0.5, baseline=None, preload=True,
                        verbose=False)
    means = condition_means(epochs, picks="emg")
    for condition, code in (("a", 1), ("b", 2)):
        rows = env.get_data()[0][events[events[:, 2] == code, 0][:, None] + np.arange(-400, 1001)]
        m = means[condition]
        assert m.n_epochs == rows.shape[0] and m.ch_names == ["emg0"]
        np.testing.assert_allclose(m.mean[0], rows.mean(axis=0), rtol=1e-12)
        half = stats.t.ppf(0.975, rows.shape[0] - 1) * rows.std(axis=0, ddof=1) / np.sqrt(rows.shape[0])
        np.testing.assert_allclose(m.upper[0] - m.mean[0], half, rtol=1e-9)


def test_preprocess_eeg_average_reference_band_and_notch():
    rng = np.random.default_rng(3)
    t = np.arange(0, 10, 1 / 500.0)
    common = 20e-6 * np.sin(2 * np.pi * 10 * t)
    hum = 15e-6 * np.sin(2 * np.pi * 50 * t)
    # Hum of different size per channel, so the average reference leaves some for the notch.
    eeg = np.vstack([common * (i + 1) + hum * (1 + i) + 5e-6 * rng.standard_normal(t.size) for i in range(4)])
    emg = 1e-5 * rng.standard_normal(t.size)
    raw = _raw(np.vstack([eeg, emg]), ["eeg"] * 4 + ["emg"], sfreq=500.0)
    out = preprocess_eeg(raw, band_hz=(1.0, 100.0), notch_hz=50.0)
    data = out.get_data()
    np.testing.assert_allclose(data[:4].mean(axis=0), 0.0, atol=1e-12)  # average reference survives filtering
    np.testing.assert_array_equal(data[4], emg)  # other channel types untouched
    referenced = eeg - eeg.mean(axis=0)
    f, before = signal.welch(referenced[0], 500.0, nperseg=2048)
    _, after = signal.welch(data[0], 500.0, nperseg=2048)
    i50, i10 = np.argmin(np.abs(f - 50)), np.argmin(np.abs(f - 10))
    assert before[i50] > 0 and 10 * np.log10(before[i50] / after[i50]) > 20
    assert after[i10] == pytest.approx(before[i10], rel=0.05)  # alpha kept
    kept = preprocess_eeg(raw, reference=None, band_hz=None, notch_hz=None)
    np.testing.assert_array_equal(kept.get_data(), raw.get_data())
