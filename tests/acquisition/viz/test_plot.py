"""Session plots and the HTML report: panels present, files written, bad input refused clearly."""

from __future__ import annotations

import re
import numpy as np
import pytest
import typer
from matplotlib.image import imread
from typer.testing import CliRunner

from acquisition import SessionWriter, StreamSpec, open_session
from acquisition.cli.plot import plot, report
from acquisition.viz import plot as plot_module
from acquisition.sync.simulation import simulate_clock_recording
from acquisition.viz.plot import plot_sync, plot_timeline
from acquisition.session.reader import StreamData, Session
from acquisition.viz.report import make_report

DURATION_S = 4.0
AU_LABELS = [f"AU{au:02d}" for au in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45)]
EMG_LABELS = ["EMG_CORR_L", "EMG_ZYG_L", "EMG_ZYG_R", "EMG_ORBOC_L"]
EEG_LABELS = ["Fp1", "Fz", "Cz", "Pz", "O1", "O2"]
MARKERS = [(0.5, "onset/happiness/micro"), (0.65, "apex/happiness/micro"), (0.9, "offset/happiness/micro"),
           (1.5, "trial start"), (2.0, "onset/anger/macro"), (2.5, "apex/anger/macro"), (3.4, "offset/anger/macro")]


def _regular(w: SessionWriter, spec: StreamSpec, data: np.ndarray, t0: float = 1000.0) -> None:
    stream = w.add_stream(spec)
    stream.append(data, t0 + np.arange(data.shape[0]) / spec.nominal_srate)
    stream.append_clock_offsets([t0 + 1, t0 + 3], [1e-4, 1.1e-4], [8e-5, 9e-5])


def write_session(fname, *, video: bool = True, empty_emg: bool = False) -> None:
    """A small session with every modality the timeline draws (4 s, tiny frames)."""
    rng = np.random.default_rng(0)
    with SessionWriter(fname, subject_id="sub-plot", metadata={"synthetic": True}) as w:
        if video:
            n = int(DURATION_S * 30)
            rgb = np.zeros((n, 48, 64, 3), np.uint8)
            rgb[..., 0] = np.linspace(0, 255, n, dtype=np.uint8)[:, None, None]
            _regular(w, StreamSpec("RGB", "VideoRaw", 48 * 64 * 3, "int8", 30.0, "cam", frame_shape=(48, 64, 3),
                                   encoding="RGB8", can_drop_samples=True), rgb)
            depth = np.full((n, 48, 64), 1500, np.uint16)
            depth[:, 12:36, 20:44] = 650 + rng.integers(0, 40, (n, 24, 24))
            _regular(w, StreamSpec("Depth", "VideoRaw", 48 * 64, "int16", 30.0, "cam-d", frame_shape=(48, 64),
                                   encoding="DEPTH16-mm", compression="png", can_drop_samples=True), depth)
        emg = rng.normal(0, 3e-6, (int(DURATION_S * 2000), len(EMG_LABELS))).astype(np.float32)
        emg[1000:1800, 1:3] *= 40  # a smile: zygomaticus bursts during the happiness span
        spec = StreamSpec("EMG", "EMG", len(EMG_LABELS), "float32", 2000.0, "amp-emg", channel_labels=EMG_LABELS,
                          channel_units=["V"] * len(EMG_LABELS))
        if empty_emg:
            w.add_stream(spec)
        else:
            _regular(w, spec, emg)
        eeg = rng.normal(0, 10e-6, (int(DURATION_S * 250), len(EEG_LABELS))).astype(np.float32)
        _regular(w, StreamSpec("EEG", "EEG", len(EEG_LABELS), "float32", 250.0, "amp-eeg", channel_labels=EEG_LABELS,
                               channel_units=["V"] * len(EEG_LABELS)), eeg)
        au = np.zeros((int(DURATION_S * 30), len(AU_LABELS)), np.float32)
        au[15:27, [4, 8]] = 3.0
        _regular(w, StreamSpec("ActionUnits", "ActionUnits", len(AU_LABELS), "float32", 30.0, "au",
                               channel_labels=AU_LABELS), au)
        markers = w.add_stream(StreamSpec("Markers", "Markers", 1, "string", 0.0, "mk", can_drop_samples=True))
        markers.append([[text] for _, text in MARKERS], [1000.0 + t for t, _ in MARKERS])


@pytest.fixture(scope="module")
def session_path(tmp_path_factory):
    fname = tmp_path_factory.mktemp("plot") / "full.h5"
    write_session(fname)
    return fname


def _titles(fig) -> list[str]:
    return [ax.get_title(loc="left") for ax in fig.axes if ax.get_title(loc="left")]


def test_timeline_has_one_panel_per_modality(session_path, tmp_path):
    out = tmp_path / "timeline.png"
    fig = plot_timeline(session_path, out, width=10, dpi=60)
    assert out.is_file()
    height_px, width_px = imread(out).shape[:2]
    assert (width_px, height_px) == tuple(np.round(fig.get_size_inches() * 60).astype(int))
    kinds = [t.split(" · ")[0] for t in _titles(fig)]
    assert kinds == ["RGB video", "Depth", "Expression markers", "Action units (ground truth)", "Facial EMG", "EEG"]
    panels = {t.split(" · ")[0]: ax for ax in fig.axes if (t := ax.get_title(loc="left"))}
    assert [t.get_text() for t in panels["Facial EMG"].get_yticklabels()] == EMG_LABELS
    assert "µV" in panels["Facial EMG"].get_title(loc="left") and "µV" in panels["EEG"].get_title(loc="left")
    assert [t.get_text() for t in panels["Action units (ground truth)"].get_yticklabels()] == AU_LABELS
    assert "s" in panels["EEG"].get_xlabel()  # only the bottom panel carries the time label
    legend = [t.get_text() for t in panels["Expression markers"].get_legend().get_texts()]
    assert {"happiness", "anger", "micro", "macro"} <= set(legend)
    colorbars = [ax.get_ylabel() for ax in fig.axes if not ax.get_title(loc="left")]
    assert "depth (mm)" in colorbars and "intensity" in colorbars
    assert len(panels["RGB video"].images) >= 3  # thumbnails


def test_timeline_reads_only_the_thumbnails_it_draws(session_path, monkeypatch):
    video_reads = []
    original = StreamData.__getitem__

    def spy(self, key):
        if self.ndim >= 3:
            video_reads.append(key)
        return original(self, key)

    monkeypatch.setattr(StreamData, "__getitem__", spy)
    plot_timeline(session_path, n_frames=4, streams=["RGB", "Depth", "Markers"], width=8, dpi=50)
    assert len(video_reads) == 2 * 4 and all(isinstance(k, int) for k in video_reads)


def test_timeline_window_and_signal_rendering(session_path):
    fig = plot_timeline(session_path, start=1.0, duration=2.0, streams=["EEG", "EMG"], width=8, dpi=50)
    emg, eeg = (ax for ax in fig.axes if ax.get_title(loc="left"))
    assert emg.get_xlim() == pytest.approx((1.0, 3.0)) and eeg.get_title(loc="left").startswith("EEG")
    assert "min-max" not in eeg.get_title(loc="left") and len(eeg.lines) == len(EEG_LABELS)  # few samples: lines
    long = plot_timeline(session_path, streams=["EEG"], width=4, dpi=20)  # 1000 samples on ~70 px
    (ax,) = (a for a in long.axes if a.get_title(loc="left"))
    assert "min-max per pixel column" in ax.get_title(loc="left") and len(ax.collections) == len(EEG_LABELS)


def test_session_with_only_markers(tmp_path, caplog):
    fname = tmp_path / "markers.h5"
    with SessionWriter(fname) as w:
        stream = w.add_stream(StreamSpec("Markers", "Markers", 1, "string", 0.0, "mk"))
        stream.append([[text] for _, text in MARKERS], [50.0 + t for t, _ in MARKERS])
    fig = plot_timeline(fname, tmp_path / "m.png", width=8, dpi=50)
    assert [t.split(" · ")[0] for t in _titles(fig)] == ["Expression markers"]
    sync = plot_sync(fname, tmp_path / "s.png", width=8, dpi=50)
    assert "no clock offsets" in " ".join(t.get_text() for ax in sync.axes for t in ax.texts)


def test_other_numeric_streams_get_a_signals_panel(tmp_path):
    fname = tmp_path / "misc.h5"
    with SessionWriter(fname) as w:
        _regular(w, StreamSpec("Accel", "Accelerometer", 3, "float32", 100.0, "acc", channel_units=["g"] * 3),
                 np.random.default_rng(1).normal(0, 0.1, (300, 3)).astype(np.float32))
    fig = plot_timeline(fname, width=8, dpi=50)
    (title,) = _titles(fig)
    assert title.startswith("Signals (Accelerometer) · Accel") and "(g)" in title


def test_binning_in_blocks_matches_a_direct_computation(session_path, monkeypatch):
    monkeypatch.setattr(plot_module, "_BLOCK_VALUES", 64)  # many blocks, bins straddling none of them
    with open_session(session_path) as session:
        stream = session.streams["EMG"]
        lo, hi = float(stream.times[10]), float(stream.times[-1])
        bins = plot_module._bin_signal(stream, lo, hi, 37, ("sum", "sumsq", "min", "max"))
        data = np.asarray(stream.data[:], dtype=np.float64)
        which = np.digitize(stream.times, bins.edges) - 1
        for b in (0, 17, 36):
            rows = data[(which == b) & (stream.times >= lo) & (stream.times < hi)]
            assert bins.counts[b] == rows.shape[0]
            np.testing.assert_allclose(bins.stats["sum"][b], rows.sum(axis=0), rtol=1e-9, atol=1e-15)
            np.testing.assert_allclose(bins.stats["sumsq"][b], (rows**2).sum(axis=0), rtol=1e-9, atol=1e-20)
            np.testing.assert_array_equal(bins.stats["min"][b], rows.min(axis=0))
            np.testing.assert_array_equal(bins.stats["max"][b], rows.max(axis=0))


def test_empty_stream_is_skipped_with_a_warning(tmp_path, emosync_log):
    fname = tmp_path / "empty.h5"
    write_session(fname, video=False, empty_emg=True)
    fig = plot_timeline(fname, width=8, dpi=50)
    assert "EMG has no samples" in emosync_log.text
    assert not any(t.startswith("Facial EMG") for t in _titles(fig))
    assert any(t.startswith("EEG") for t in _titles(fig))


def test_bad_input_gives_clear_errors(session_path, tmp_path):
    with pytest.raises(FileNotFoundError, match="No session file"):
        plot_timeline(tmp_path / "missing.h5")
    with pytest.raises(ValueError, match="looks like a session file"):
        plot_timeline(session_path, tmp_path / "oops.h5")
    with pytest.raises(FileNotFoundError, match="does not exist. Create it first"):
        plot_sync(session_path, tmp_path / "nowhere" / "s.png")
    with pytest.raises(ValueError, match=r"No stream \['Nope'\].*'EEG'"):
        plot_timeline(session_path, streams=["Nope"])
    with pytest.raises(ValueError, match="outside the session"):
        plot_timeline(session_path, start=100)
    with pytest.raises(ValueError, match="extensions"):
        plot_timeline(session_path, tmp_path / "x.nope")
    with pytest.raises(ValueError, match="HTML"):
        make_report(session_path, tmp_path / "r.png")
    with pytest.raises(ValueError, match="outside the session"):
        make_report(session_path, tmp_path / "r.html", start=-1, raw=False)


def test_sync_plot_shows_fit_residuals_and_resets(tmp_path):
    fname = tmp_path / "clock.h5"
    rec = simulate_clock_recording(duration_s=60, srate=100.0, drift_ppm=20.0, reset_at_s=30.0, seed=1)
    with SessionWriter(fname) as w:
        eeg = w.add_stream(StreamSpec("Remote", "EEG", 1, "float32", rec.srate, "remote"))
        eeg.append(np.zeros((rec.timestamps.shape[0], 1), np.float32), rec.timestamps)
        table = rec.clock_offsets
        eeg.append_clock_offsets(table.collection_times, table.offsets, table.uncertainties)
        local = w.add_stream(StreamSpec("Local", "EEG", 1, "float32", 100.0, "local"))
        local.append(np.zeros((100, 1), np.float32), 100 + np.arange(100) / 100.0)
    out = tmp_path / "sync.png"
    fig = plot_sync(fname, out, width=10, dpi=50)
    height_px, width_px = imread(out).shape[:2]
    assert (width_px, height_px) == tuple(np.round(fig.get_size_inches() * 50).astype(int))
    titles = _titles(fig)
    assert "Local: clock offset, change since its segment's start (ms)" in titles
    assert "Remote: residual around the fit (µs)" in titles
    offset_ax = next(ax for ax in fig.axes if ax.get_title(loc="left").startswith("Remote: clock offset"))
    assert any(line.get_color() == "red" for line in offset_ax.lines)  # the reset...
    assert any("reset: offset -1000.0" in t.get_text() for t in offset_ax.texts)  # ...and its jump
    text = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    # The source clock runs 20 ppm fast, so the offset (recorder - source) shrinks by 20 us per second.
    assert "clock resets: 1" in text and re.search(r"seg 1: drift -(19|20)\.\d+ ppm", text) and "jitter" in text


def test_report_has_every_section(session_path, tmp_path):
    out = tmp_path / "report.html"
    with open_session(session_path) as session:
        make_report(session, out, streams=["RGB", "EEG", "EMG", "Markers"], dpi=30)
    page = out.read_text()
    for section in ("Summary", "Timeline", "Clock synchronization", "Markers", "sub-plot", "onset/anger/macro",
                    "trial start"):
        assert section in page
    try:
        import acquisition.io.export  # noqa: F401  -- written alongside; the report works without it
    except ImportError:
        return
    assert "MNE raw · EEG" in page and "EMG power spectrum · EMG" in page


def test_report_survives_a_failing_mne_export(session_path, tmp_path, monkeypatch, emosync_log):
    def broken(self, *args, **kwargs):
        raise RuntimeError("exporter unavailable")

    monkeypatch.setattr(Session, "to_mne", broken)
    out = tmp_path / "report.html"
    make_report(session_path, out, streams=["EEG"], dpi=20)
    assert "Timeline" in out.read_text()
    assert "MNE raw section of EEG skipped" in emosync_log.text and "exporter unavailable" in emosync_log.text


def test_cli(session_path, tmp_path):
    app = typer.Typer()
    app.command("plot")(plot)
    app.command("report")(report)
    runner = CliRunner()
    result = runner.invoke(app, ["plot", str(session_path), str(tmp_path / "t.png"), "--duration", "2",
                                 "--streams", "EMG,Markers", "--width", "8", "--dpi", "40"])
    assert result.exit_code == 0, result.output
    assert "Wrote" in result.output and (tmp_path / "t.png").is_file()
    result = runner.invoke(app, ["plot", str(session_path), str(tmp_path / "s.png"), "--sync", "-s", "EEG",
                                 "--width", "8", "--dpi", "40"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["report", str(session_path), str(tmp_path / "r.html"), "--no-raw", "--dpi", "30",
                                 "-s", "Markers"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["plot", str(tmp_path / "missing.h5"), str(tmp_path / "x.png")])
    assert result.exit_code == 1 and "No session file" in result.output
