"""Sessions to MNE: channel types, units, rates, meas_date, annotations; exports read back with MNE/mne-bids."""

from __future__ import annotations

import csv
import datetime as dt
import json
import uuid

import mne
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from acquisition import SessionWriter, StreamSpec, open_session
from acquisition.cli.export import export
from acquisition.io.export import export_session, to_mne, write_bids
from acquisition.session.to_mne import pair_markers

EMG_RATE, EEG_RATE = 2000.0, 500.0
START_TIME = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
START_LSL = 1000.0  # recorder LSL clock at START_TIME
EMG_T0, EEG_T0 = 1001.2, 1001.5  # first samples, recorder clock
EMG_OFFSET, EEG_OFFSET = 5.0, -95.0  # recorder = source + offset
EMG_LABELS = ["EMG_CORR_L", "EMG_ZYG_L", "EMG_ZYG_R"]
EEG_LABELS = ["Fz", "Cz", "Pz", "Oz"]
MARKERS = [(1002.0, "onset/happiness/micro"), (1002.1, "apex/happiness/micro"), (1002.3, "offset/happiness/micro"),
           (1002.5, "note"), (1003.0, "onset/anger/macro"), (1004.0, "offset/anger/macro")]
EMG_XML = """<?xml version="1.0"?><info><name>EMG</name><type>EMG</type><desc><muscles>
<muscle><label>EMG_CORR_L</label><name>corrugator</name><side>L</side></muscle>
<muscle><label>EMG_ZYG_L</label><name>zygomaticus_major</name><side>L</side></muscle>
<muscle><label>EMG_ZYG_R</label><name>zygomaticus_major</name><side>R</side></muscle>
</muscles></desc></info>"""


def _offsets(writer, offset: float, first_source_time: float) -> None:
    collection = first_source_time + np.array([0.0, 2.0, 4.0])
    writer.append_clock_offsets(collection, np.full(3, offset), np.full(3, 1e-4))


def emg_data(n: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    return (20e-6 * rng.standard_normal((n, len(EMG_LABELS)))).astype(np.float32)


def eeg_data(times: np.ndarray) -> np.ndarray:
    """Slow sines (volts), so resampled values can be checked against the formula."""
    freqs = np.array([3.0, 5.0, 7.0, 2.0])
    return (20e-6 * np.sin(2 * np.pi * freqs[None, :] * (times[:, None] - EEG_T0))).astype(np.float32)


def write_session(path, *, emg_s: float = 4.0, eeg_s: float = 4.0, markers=MARKERS, emg_xml: str = EMG_XML,
                  emg_units: str = "V", metadata: dict | None = None):
    meta = {"start_time": START_TIME.isoformat(), "start_lsl_time": START_LSL}
    meta.update(metadata or {})
    with SessionWriter(path, subject_id="sub-07", metadata=meta) as w:
        if emg_s is not None:
            emg = w.add_stream(StreamSpec("EMG", "EMG", 3, "float32", EMG_RATE, "emg-src", channel_labels=EMG_LABELS,
                                          channel_units=[emg_units] * 3, channel_types=["EMG"] * 3, info_xml=emg_xml))
            n = int(emg_s * EMG_RATE)
            source = EMG_T0 - EMG_OFFSET + np.arange(n) / EMG_RATE
            emg.append(emg_data(n), source)
            if n:
                _offsets(emg, EMG_OFFSET, source[0])
        if eeg_s is not None:
            eeg = w.add_stream(StreamSpec("EEG", "EEG", 4, "float32", EEG_RATE, "eeg-src", channel_labels=EEG_LABELS,
                                          channel_units=["V"] * 4, channel_types=["EEG"] * 4))
            n = int(eeg_s * EEG_RATE)
            times = EEG_T0 + np.arange(n) / EEG_RATE
            eeg.append(eeg_data(times), times - EEG_OFFSET)
            _offsets(eeg, EEG_OFFSET, times[0] - EEG_OFFSET)
        if markers is not None:
            mk = w.add_stream(StreamSpec("Markers", "Markers", 1, "string", 0.0, "mk-src"))
            mk.append([[text] for _, text in markers], [t for t, _ in markers])
    return path


@pytest.fixture
def session_path(tmp_path):
    return write_session(tmp_path / "s.h5")


def test_single_stream_channels_rate_meas_date_annotations(session_path):
    with open_session(session_path) as s:
        raw = s.to_mne("EMG")
        stored = s.streams["EMG"].data[:]
    assert raw.ch_names == EMG_LABELS and raw.get_channel_types() == ["emg"] * 3
    assert raw.info["sfreq"] == EMG_RATE
    np.testing.assert_array_equal(raw.get_data(), stored.T.astype(np.float64))  # volts, unchanged
    assert raw.info["meas_date"] == START_TIME + dt.timedelta(seconds=EMG_T0 - START_LSL)
    ann = raw.annotations
    assert list(ann.description) == ["happiness/micro", "apex/happiness/micro", "note", "anger/macro"]
    np.testing.assert_allclose(ann.onset, np.array([1002.0, 1002.1, 1002.5, 1003.0]) - EMG_T0, atol=1e-9)
    np.testing.assert_allclose(ann.duration, [0.3, 0.0, 0.0, 1.0], atol=1e-9)


def test_two_rates_are_resampled_onto_the_highest_and_aligned(session_path):
    raw = to_mne(session_path)
    assert raw.info["sfreq"] == EMG_RATE
    assert raw.get_channel_types(EEG_LABELS) == ["eeg"] * 4 and raw.get_channel_types(EMG_LABELS) == ["emg"] * 3
    # Common grid: from the later first sample (EEG) to the earlier last sample (EMG).
    n_expected = int(np.floor((EMG_T0 + 7999 / EMG_RATE - EEG_T0) * EMG_RATE)) + 1
    assert raw.n_times == n_expected
    k0 = int(round((EEG_T0 - EMG_T0) * EMG_RATE))
    np.testing.assert_array_equal(raw.get_data(EMG_LABELS), emg_data(8000)[k0 : k0 + n_expected].T)
    grid = EEG_T0 + raw.times
    expected = eeg_data(grid).T
    inner = (raw.times > 0.5) & (raw.times < raw.times[-1] - 0.5)  # FFT resampling rings at the edges only
    np.testing.assert_allclose(raw.get_data(EEG_LABELS)[:, inner], expected[:, inner], atol=0.01 * 20e-6)
    assert raw.info["meas_date"] == START_TIME + dt.timedelta(seconds=EEG_T0 - START_LSL)
    np.testing.assert_allclose(raw.annotations.onset, np.array([1002.0, 1002.1, 1002.5, 1003.0]) - EEG_T0, atol=1e-9)


def test_pair_markers():
    times = np.array([0.0, 0.5, 1.0, 1.2, 2.0, 3.0, 4.0])
    texts = ["onset/a/micro", "onset/b/macro", "offset/a/micro", "apex/b/macro", "offset/b/macro", "offset/c/x",
             "onset/d/x"]
    onsets, durations, descriptions = pair_markers(times, texts)
    assert descriptions == ["a/micro", "b/macro", "apex/b/macro", "offset/c/x", "onset/d/x"]
    np.testing.assert_allclose(onsets, [0.0, 0.5, 1.2, 3.0, 4.0])
    np.testing.assert_allclose(durations, [1.0, 1.5, 0.0, 0.0, 0.0])


def test_markers_unpaired_and_left_out(session_path):
    raw = to_mne(session_path, "EMG", pair_expression_markers=False)
    assert list(raw.annotations.description) == [text for _, text in MARKERS]
    assert len(to_mne(session_path, "EMG", markers=None).annotations) == 0


def test_voltage_units_are_scaled_to_volts(tmp_path):
    path = write_session(tmp_path / "uv.h5", eeg_s=None, emg_units="uV")
    with open_session(path) as s:
        stored = s.streams["EMG"].data[:]
    np.testing.assert_allclose(to_mne(path).get_data(), stored.T.astype(np.float64) * 1e-6, rtol=1e-12)
    bad = write_session(tmp_path / "counts.h5", eeg_s=None, emg_units="counts")
    with pytest.raises(ValueError, match=r"EMG_CORR_L \(emg, unit 'counts'\).*channel_units"):
        to_mne(bad)


def test_unknown_channel_types_become_misc_with_a_warning(tmp_path, emosync_log):
    path = tmp_path / "au.h5"
    with SessionWriter(path) as w:
        au = w.add_stream(StreamSpec("AU", "ActionUnits", 2, "float32", 30.0, "au", channel_labels=["AU06", "AU12"],
                                     channel_types=["AU", "AU"]))
        au.append(np.ones((30, 2), np.float32), np.arange(30) / 30)
    with pytest.raises(ValueError, match=r"no EEG or EMG stream.*'AU' \(type 'ActionUnits'.*streams=\["):
        to_mne(path)
    raw = to_mne(path, "AU")
    assert raw.get_channel_types() == ["misc", "misc"] and raw.info["sfreq"] == 30.0
    assert "AU06 (AU), AU12 (AU)" in emosync_log.text and "'misc'" in emosync_log.text


def test_empty_streams_are_skipped_or_refused(tmp_path, emosync_log):
    path = write_session(tmp_path / "empty.h5", emg_s=0)
    raw = to_mne(path)
    assert raw.ch_names == EEG_LABELS
    assert "Stream EMG has no samples; skipped" in emosync_log.text
    only_empty = write_session(tmp_path / "only_empty.h5", emg_s=0, eeg_s=None)
    with pytest.raises(ValueError, match="are empty.*EMG"):
        to_mne(only_empty)


def test_video_and_marker_streams_are_refused_as_channels(session_path):
    with pytest.raises(ValueError, match="marker stream.*markers="):
        to_mne(session_path, "Markers")
    with pytest.raises(ValueError, match="No stream named 'nope'.*'EMG'"):
        to_mne(session_path, "nope")


def test_gap_is_annotated_and_markers_stay_on_their_samples(tmp_path, emosync_log):
    path = tmp_path / "gap.h5"
    with SessionWriter(path, metadata={"start_lsl_time": 0.0}) as w:
        emg = w.add_stream(StreamSpec("EMG", "EMG", 1, "float32", 1000.0, "e", channel_labels=["EMG1"]))
        k = np.r_[np.arange(0, 2000), np.arange(4000, 6000)]  # samples 2000-3999 (2 s) never arrived
        emg.append(k[:, None].astype(np.float32), k / 1000.0)
        mk = w.add_stream(StreamSpec("Markers", "Markers", 1, "string", 0.0, "m"))
        mk.append([["before"], ["after"]], [1.0, 5.0])
    raw = to_mne(path)
    assert raw.n_times == 4000 and "1 gap(s)" in emosync_log.text
    ann = {d: o for d, o in zip(raw.annotations.description, raw.annotations.onset)}
    assert ann["BAD boundary"] == pytest.approx(2.0) and ann["EDGE boundary"] == pytest.approx(2.0)
    # Each marker lands on the sample recorded at its time: value k = time * 1000.
    for name, t in (("before", 1.0), ("after", 5.0)):
        sample = int(round(ann[name] * raw.info["sfreq"]))
        assert raw.get_data()[0, sample] == pytest.approx(t * 1000)


@pytest.mark.parametrize("fmt, suffix, streams", [("fif", "_raw.fif", None), ("edf", ".edf", "EMG"),
                                                  ("bdf", ".bdf", "EMG"), ("brainvision", ".vhdr", None)])
def test_file_exports_read_back_with_mne(session_path, tmp_path, fmt, suffix, streams):
    raw = to_mne(session_path, streams)
    out = tmp_path / f"export{suffix}"
    assert export_session(session_path, out, fmt, streams=streams) == [out]
    back = mne.io.read_raw(out, preload=True, verbose=False)
    assert back.ch_names == raw.ch_names and back.info["sfreq"] == raw.info["sfreq"]
    data, original = back.get_data()[:, : raw.n_times], raw.get_data()
    span = original.max(axis=1, keepdims=True) - original.min(axis=1, keepdims=True)
    # Quantization: EDF 16 bit and BDF 24 bit over each channel's range; FIF and BrainVision store float32.
    tolerance = {"edf": span / 65535, "bdf": span / 2**24, "fif": 1e-7 * np.abs(original).max(),
                 "brainvision": 1e-7 * np.abs(original).max()}[fmt]
    assert np.all(np.abs(data - original) <= tolerance + 1e-15)
    # MNE's BrainVision reader prefixes marker texts with their type ("Comment/").
    assert [d.removeprefix("Comment/") for d in back.annotations.description][:4] == list(raw.annotations.description)
    np.testing.assert_allclose(back.annotations.onset[:4], raw.annotations.onset, atol=1.0 / raw.info["sfreq"])
    np.testing.assert_allclose(back.annotations.duration[:4], raw.annotations.duration, atol=1.0 / raw.info["sfreq"])
    if fmt != "brainvision":  # BrainVision keeps the date in the marker file only for MNE's reader
        delta = abs((back.info["meas_date"] - raw.info["meas_date"]).total_seconds())
        assert delta < (1e-6 if fmt == "fif" else 1.0)  # EDF/BDF headers store whole seconds


def test_csv_export_one_file_per_stream_with_time_columns(session_path, tmp_path):
    files = export_session(session_path, tmp_path / "csv", "csv")
    assert sorted(f.name for f in files) == ["s_EEG.csv", "s_EMG.csv", "s_Markers.csv"]
    with open_session(session_path) as s:
        emg = s.streams["EMG"]
        stored, times = emg.data[:], emg.times
    table = np.loadtxt(tmp_path / "csv" / "s_EMG.csv", delimiter=",", skiprows=1)
    with open(tmp_path / "csv" / "s_EMG.csv") as f:
        assert next(csv.reader(f)) == ["time_s", "lsl_time_s", *EMG_LABELS]
    np.testing.assert_array_equal(table[:, 2:].astype(np.float32), stored)  # float32 values round-trip exactly
    np.testing.assert_array_equal(table[:, 1], times)
    np.testing.assert_allclose(table[:, 0], times - EMG_T0, atol=1e-9)  # EMG starts first
    with open(tmp_path / "csv" / "s_Markers.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["time_s", "lsl_time_s", "marker"] and [r[2] for r in rows[1:]] == [m for _, m in MARKERS]
    np.testing.assert_allclose([float(r[1]) for r in rows[1:]], [t for t, _ in MARKERS])


def test_bids_export_reads_back_with_mne_bids(session_path, tmp_path):
    from mne_bids import BIDSPath, read_raw_bids

    root = tmp_path / "bids"
    files = write_bids(session_path, root, task="mimicry", emg_reference="bipolar, one pair per muscle")
    assert {f.parent.name for f in files} == {"eeg", "emg"}
    direct = {"emg": to_mne(session_path, "EMG", line_freq=50.0), "eeg": to_mne(session_path, "EEG")}
    for datatype, raw in direct.items():
        path = BIDSPath(subject="07", task="mimicry", datatype=datatype, suffix=datatype, root=root)
        back = read_raw_bids(path, verbose=False)
        assert back.info["sfreq"] == raw.info["sfreq"] and back.ch_names == raw.ch_names
        assert back.get_channel_types() == [datatype] * len(raw.ch_names)
        data, original = back.get_data()[:, : raw.n_times], raw.get_data()
        span = original.max(axis=1, keepdims=True) - original.min(axis=1, keepdims=True)
        tolerance = span / 65535 if datatype == "emg" else 1e-7 * np.abs(original).max()  # EDF / BrainVision
        assert np.all(np.abs(data - original) <= tolerance + 1e-15)
        assert "happiness/micro" in back.annotations.description
    emg_dir = root / "sub-07" / "emg"
    sidecar = json.loads((emg_dir / "sub-07_task-mimicry_emg.json").read_text())
    assert sidecar["EMGPlacementScheme"] == "Other"
    assert "TODO" not in json.dumps(sidecar) and "EMG_ZYG_R: zygomaticus major (right)" in sidecar[
        "EMGPlacementSchemeDescription"]
    assert sidecar["EMGReference"] == "bipolar, one pair per muscle" and sidecar["PowerLineFrequency"] == 50.0
    with open(emg_dir / "sub-07_task-mimicry_channels.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [r["target_muscle"] for r in rows] == ["corrugator (left)", "zygomaticus major (left)",
                                                  "zygomaticus major (right)"]


def test_bids_emg_needs_a_placement_description(tmp_path):
    path = write_session(tmp_path / "nomuscles.h5", eeg_s=None, emg_xml="")
    with pytest.raises(ValueError, match="no muscle metadata.*emg_placement_description"):
        write_bids(path, tmp_path / "bids")
    files = write_bids(path, tmp_path / "bids", emg_placement_description="Over the muscles, by palpation.")
    sidecar = json.loads(files[0].with_suffix(".json").read_text())
    assert sidecar["EMGPlacementSchemeDescription"] == "Over the muscles, by palpation."


def test_cli_export(session_path, tmp_path):
    app = typer.Typer()
    app.command()(export)
    runner = CliRunner()
    out = tmp_path / "cli_raw.fif"
    result = runner.invoke(app, [str(session_path), str(out), "--format", "fif", "--stream", "emg"])
    assert result.exit_code == 0, result.output
    assert mne.io.read_raw_fif(out, verbose=False).ch_names == EMG_LABELS
    result = runner.invoke(app, [str(session_path), str(out), "--format", "fif"])
    assert result.exit_code == 1 and "already exists; pass overwrite" in " ".join(result.output.split())
    result = runner.invoke(app, [str(session_path), str(out), "--format", "gdf"])
    assert result.exit_code == 1 and "must be one of" in " ".join(result.output.split())


def test_export_of_a_session_recorded_from_the_simulated_rig(tmp_path):
    """The real path: LSL outlets of the simulated rig -> recorder -> session -> EDF and BIDS."""
    from mne_bids import BIDSPath, read_raw_bids

    from tests.conftest import record_rig
    from synth.rig import SimulatedRig, load_rig_config

    prefix = f"t{uuid.uuid4().hex[:10]}_"
    config = load_rig_config("light", [f"name_prefix={prefix}", "rgb.enabled=false", "depth.enabled=false",
                                       "au.enabled=false", "timeline.expressions_per_minute=60",
                                       "start_delay_s=0.1"])
    rig = SimulatedRig(config, seed=3, duration_s=60)
    fname = tmp_path / "rig.h5"
    record_rig(rig, fname, 3.0)
    emg_name = rig.stream_name("emg")
    raw = to_mne(fname, "emg")
    with open_session(fname) as s:
        effective = s.streams[emg_name].sync.effective_srate
    # Same-host clock offsets still jitter by microseconds, so over 3 s the fitted rate is within ~20 ppm.
    assert raw.info["sfreq"] in (2000.0, effective) and raw.info["sfreq"] == pytest.approx(2000.0, rel=1e-4)
    assert set(raw.get_channel_types()) == {"emg"}
    with open_session(fname) as s:
        np.testing.assert_array_equal(raw.get_data(), s.streams[emg_name].data[:].T.astype(np.float64))
        sent = [text for t, text in rig.timeline.markers() if rig.t0 + t <= s.streams[emg_name].timestamps[-1]]
    assert len(raw.annotations) > 0 and all(d in {t.partition("/")[2] for t in sent} | set(sent)
                                            for d in raw.annotations.description)
    combined = to_mne(fname)
    assert combined.info["sfreq"] == raw.info["sfreq"] and len(combined.ch_names) == 8 + 32
    root = tmp_path / "bids"
    write_bids(fname, root, emg_reference="simulated")
    back = read_raw_bids(BIDSPath(subject="unknown", task="emosync", datatype="emg", suffix="emg", root=root),
                         verbose=False)
    span = np.ptp(raw.get_data(), axis=1, keepdims=True)
    assert np.all(np.abs(back.get_data()[:, : raw.n_times] - raw.get_data()) <= span / 65535 + 1e-15)
