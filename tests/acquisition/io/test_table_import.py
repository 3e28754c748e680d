"""Text-table import: spec validation, a synthetic table, and the real Nilsonne facial-EMG recording."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import mne
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from acquisition import open_session
from acquisition.utils.config import ConfigError
from acquisition.cli.imports import import_table as import_table_command
from acquisition.io.export import to_mne
from acquisition.annotate.processing import normalize_to_baseline
from acquisition.io.table import find_pulses, import_table, load_table_spec

NILSONNE = "physio/nilsonne_FMOV_09.txt"

SPEC = """
delimiter: ","
skip_rows: 1
header_row: true
sampling_rate_hz: 250
streams:
  - name: EMG
    type: EMG
    unit: V
    scale: 1.0e-6
    channels:
      - {column: zyg_uV, label: EMG_ZYG, muscle: zygomaticus_major, side: L}
      - {column: 2, label: EMG_CORR, muscle: corrugator, side: L}
markers:
  name: Stim
  pulses:
    - {column: trig_a, label: smile, threshold: 1.0}
    - {column: trig_b, label: frown, threshold: 1.0, edge: falling}
"""


def _write_table(path, n=1000):
    rng = np.random.default_rng(4)
    zyg, corr = rng.normal(0, 10, n), rng.normal(0, 5, n)
    a, b = np.zeros(n), np.zeros(n)
    if n >= 1000:
        a[[100, 500]] = 5.0
        a[501:510] = 5.0
        b[300:320] = 5.0
    with open(path, "w") as f:
        f.write("# exported by a test\n")
        f.write("time,zyg_uV,corr_uV,trig_a,trig_b\n")
        for i in range(n):
            f.write(f"{i / 250:.4f},{float(zyg[i])!r},{float(corr[i])!r},{a[i]},{b[i]}\n")
    return zyg, corr


def test_synthetic_table_becomes_a_session(tmp_path):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(SPEC)
    zyg, corr = _write_table(tmp_path / "t.csv")
    out = import_table(tmp_path / "t.csv", tmp_path / "t.h5", spec_path, subject_id="sub-x")
    with open_session(out) as s:
        emg, stim = s.streams["EMG"], s.streams["Stim"]
        assert s.info["subject_id"] == "sub-x" and s.info["imported_from"] == "t.csv"
        assert emg.nominal_srate == 250 and emg.info["channel_units"] == ["V", "V"] and emg.info["unit"] == "V"
        np.testing.assert_allclose(emg.data[:], np.column_stack([zyg, corr]) * 1e-6, rtol=1e-15)
        np.testing.assert_array_equal(emg.timestamps, np.arange(1000) / 250)
        assert len(emg.clock_offsets) == 0
        assert stim.data[:, 0].tolist() == ["smile", "frown", "smile"]
        np.testing.assert_allclose(stim.timestamps, np.array([100, 320, 500]) / 250)  # frown: falling edge
    raw = to_mne(out)
    assert raw.get_channel_types() == ["emg", "emg"] and raw.info["sfreq"] == 250
    np.testing.assert_allclose(raw.annotations.onset, np.array([100, 320, 500]) / 250, atol=1e-12)


def test_find_pulses():
    x = np.array([5.0, 5, 0, 0, 5, 5, 5, 0, 5])
    np.testing.assert_array_equal(find_pulses(x, 2.5), [4, 8])  # the pulse high at sample 0 has no rising edge
    np.testing.assert_array_equal(find_pulses(x, 2.5, "falling"), [2, 7])


def test_spec_errors_say_what_is_wrong(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC.replace("sampling_rate_hz: 250", "sampling_rate_hz: 250\nsampling_rate: 250"))
    with pytest.raises(ConfigError, match="sampling_rate\n.*Extra inputs are not permitted"):
        load_table_spec(bad)
    bad.write_text(SPEC.replace("header_row: true", "header_row: false"))
    with pytest.raises(ConfigError, match="columns are named.*header_row"):
        load_table_spec(bad)
    bad.write_text(SPEC.replace("column: 2,", "column: 9,"))
    _write_table(tmp_path / "t.csv", n=10)
    with pytest.raises(ValueError, match="column 9 does not exist.*5 columns"):
        import_table(tmp_path / "t.csv", tmp_path / "t.h5", bad)
    with pytest.raises(ConfigError, match="Unknown import config 'nope'.*nilsonne"):
        load_table_spec("nope")


def _nilsonne_columns(shared_data):
    return np.loadtxt(shared_data / NILSONNE, delimiter="\t", usecols=range(8))


@pytest.fixture
def nilsonne_session(shared_data, tmp_path):
    return import_table(shared_data / NILSONNE, tmp_path / "s09.h5", "nilsonne", subject_id="sub-09")


def test_nilsonne_import_onsets_rate_and_units(shared_data, nilsonne_session):
    table = _nilsonne_columns(shared_data)
    with open_session(nilsonne_session) as s:
        assert set(s.streams) == {"EMG", "SCR", "Stimuli"}
        emg, stim = s.streams["EMG"], s.streams["Stimuli"]
        assert emg.n_samples == table.shape[0] == 26523
        assert emg.nominal_srate == 100.0 and emg.sync.effective_srate == pytest.approx(100.0, rel=1e-12)
        assert emg.info["channel_units"] == ["V"] * 4 and s.streams["SCR"].info["channel_units"] == ["uS"]
        np.testing.assert_allclose(emg.data[:], table[:, 1:5] * 1e-3, rtol=1e-15)  # mV -> V
        labels = stim.data[:, 0].tolist()
        onsets = np.round(stim.timestamps * 100).astype(int)
    assert len(labels) == 12 and {c: labels.count(c) for c in set(labels)} == {"angry": 4, "happy": 4, "neutral": 4}
    for column, condition in ((5, "angry"), (6, "happy"), (7, "neutral")):
        rising = np.flatnonzero(np.diff((table[:, column] > 2.5).astype(int)) == 1) + 1
        np.testing.assert_array_equal(onsets[np.array(labels) == condition], rising)
    raw = to_mne(nilsonne_session, ["EMG", "SCR"])
    assert raw.info["sfreq"] == 100.0
    assert raw.get_channel_types() == ["emg", "emg", "misc", "misc", "gsr"]
    np.testing.assert_allclose(raw.get_data(["SCR"])[0], table[:, 0] * 1e-6, rtol=1e-15)  # uS -> S
    assert sorted(raw.annotations.description) == sorted(labels)


def test_nilsonne_epoch_averages_equal_numpy_on_the_file(shared_data, nilsonne_session):
    table = _nilsonne_columns(shared_data)
    raw = to_mne(nilsonne_session)
    events, event_id = mne.events_from_annotations(raw, verbose=False)
    epochs = mne.Epochs(raw, events, event_id, tmin=-2.0, tmax=6.0, baseline=None, preload=True, verbose=False)
    assert len(epochs) == 12
    for condition, column in (("angry", 5), ("happy", 6), ("neutral", 7)):
        onsets = np.flatnonzero(np.diff((table[:, column] > 2.5).astype(int)) == 1) + 1
        windows = onsets[:, None] + np.arange(-200, 601)  # -2 to +6 s at 100 Hz
        for label, file_column in (("ZYG_RECT", 3), ("CORR_RECT", 4)):
            direct = (table[windows, file_column] * 1e-3).mean(axis=0)
            mne_mean = epochs[condition].average(picks=[label]).data[0]
            np.testing.assert_allclose(mne_mean, direct, rtol=1e-12)
            base = table[windows, file_column][:, :201]  # -2 to 0 s, inclusive
            ratio = (table[windows, file_column] / base.mean(axis=1, keepdims=True)).mean(axis=0)
            normalized = normalize_to_baseline(epochs[condition], (-2.0, 0.0), picks=[label])
            np.testing.assert_allclose(normalized.average(picks=[label]).data[0], ratio, rtol=1e-12)


def test_nilsonne_example_writes_a_figure(shared_data, tmp_path):
    path = Path(__file__).resolve().parents[3] / "examples" / "nilsonne_mimicry.py"
    spec = importlib.util.spec_from_file_location("nilsonne_mimicry", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    png = module.main(["--data", str(shared_data / NILSONNE), "--out", str(tmp_path)])
    assert png.stat().st_size > 20_000
    results = module.compute(tmp_path / "nilsonne_FMOV_09.h5")
    assert {m.n_epochs for kind in results.values() for m in kind.values()} == {4}


def test_cli_import_table(shared_data, tmp_path):
    app = typer.Typer()
    app.command()(import_table_command)
    runner = CliRunner()
    out = tmp_path / "s09.h5"
    args = [str(shared_data / NILSONNE), str(out), "--spec", "nilsonne", "--subject", "sub-09"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Stimuli: 12 samples" in result.output and "EMG: 26523 samples at 100 Hz" in result.output
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "never overwrites" in " ".join(result.output.split())


def test_spec_files_in_configs_validate():
    spec = load_table_spec("nilsonne")
    assert spec.sampling_rate_hz == 100.0 and [p.label for p in spec.markers.pulses] == ["angry", "happy", "neutral"]
    assert load_table_spec("nilsonne", ["sampling_rate_hz=1000"]).sampling_rate_hz == 1000.0
