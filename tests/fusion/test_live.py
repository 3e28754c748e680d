"""Live edge inference: the simulated rig over real LSL, the online spotter on a known burst, bad inputs."""

from __future__ import annotations

import json
import shutil
import threading
import time

import numpy as np
import pylsl
import pytest
from scipy import signal

from acquisition.lsl import make_stream_info
from acquisition.session.markers import parse_expression_markers
from acquisition.utils.config import ConfigError

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from fusion.live.config import SpotterConfig, load_live_config  # noqa: E402
from fusion.live.inputs import StreamNotFound  # noqa: E402
from fusion.live.runner import LiveRunner  # noqa: E402
from fusion.live.spotter import EMGEnvelope, OnlineSpotter, VideoMotion  # noqa: E402
from fusion.live.views import LiveModel, resize_square  # noqa: E402

# A tiny RGB + EMG model on the light rig's geometry (EMG: 8 channels at 2000 Hz; RGB 30 fps).
SMALL = ["data.clip_frames=2", "data.image_size=16", "data.window_s=0.5", "data.stride_s=0.25",
         "optim.batch_size=4", "optim.warmup_steps=2", "model.hidden_dim=16", "model.embed_dim=8",
         "model.encoders.rgb.kwargs.width=4", "model.encoders.emg.kwargs.kernel=8",
         "data.modalities=[rgb,emg]", "optim.steps=2", "data.cache=false", "data.crop=centre"]
CLASSES = ["negative", "positive", "surprise"]
FAST = {"threads": (1,), "repeats": 3}


@pytest.fixture(scope="module")
def edge_folder(tmp_path_factory):
    """An edge recognizer folder (encoders + head) exported from a tiny run on a 6 s light-rig session."""
    import torch

    from fusion.config import load_pretrain_config
    from fusion.edge.build import export_model
    from fusion.evaluate import load_run
    from fusion.recognition.head import RecognitionModel
    from fusion.train import pretrain
    from synth.rig.offline import write_rig_session

    folder = tmp_path_factory.mktemp("live")
    session = write_rig_session(folder / "s.h5", duration_s=6, seed=1, modalities=("rgb", "emg", "markers"))
    pretrain([session], load_pretrain_config("tiny", SMALL), folder / "run", progress=False)
    model, config = load_run(folder / "run")
    torch.manual_seed(0)
    rec = RecognitionModel(model.eval(), ["rgb", "emg"], CLASSES, "megc3", config.data.model_dump(), anchor="apex")
    rec.eval().save_pretrained(folder / "rec")
    export_model(folder / "rec", folder / "edge", calibrate=[session], quantize="none", **FAST)
    return folder / "edge"


@pytest.fixture(scope="module")
def rig_session(edge_folder):
    """The 6 s light-rig session the edge model was calibrated on."""
    return edge_folder.parent / "s.h5"


def _pull_all(inlet: pylsl.StreamInlet) -> tuple[list, list]:
    samples, stamps = [], []
    while True:
        s, t = inlet.pull_chunk(timeout=0.0)
        if not t:
            return samples, stamps
        samples += s
        stamps += t


def test_live_on_the_simulated_rig_publishes_markers_and_latency(edge_folder, light_rig_config):
    """12 s of the light rig over loopback: markers in the convention, stamped in the signal, one latency per window."""
    from synth.rig.simulator import SimulatedRig

    rig_config = light_rig_config.model_copy(update={"timeline": light_rig_config.timeline.model_copy(
        update={"expressions_per_minute": 40, "micro_fraction": 0.0})})
    prefix = rig_config.name_prefix
    rig = SimulatedRig(rig_config, seed=2, duration_s=60)
    rig.start()
    try:
        runner = LiveRunner(edge_folder, video=f"name='{prefix}RGB'", emg=f"name='{prefix}EMG'", name=f"{prefix}Live",
                            config=load_live_config("default", ["resolve_timeout_s=5", "warmup_s=2"]))
        assert sorted(runner.inputs) == ["emg", "rgb"] and runner.spotter_source == "emg"
        inlets = {}
        for suffix in ("Expressions", "Latency", "AU"):
            info = pylsl.resolve_bypred(f"name='{prefix}Live-{suffix}'", timeout=5)
            assert info, f"{prefix}Live-{suffix} is not visible"
            inlets[suffix] = pylsl.StreamInlet(info[0], processing_flags=0)
            inlets[suffix].open_stream(timeout=5)
        start = pylsl.local_clock()
        summary = runner.run(12.0)
        time.sleep(0.3)
        received = {k: _pull_all(inlet) for k, inlet in inlets.items()}
    finally:
        rig.stop()
    # Latency: one sample per window run, positive; a loose bound (~20 ms here when idle; CI machines are busy).
    latency = np.array(received["Latency"][0]).ravel()
    assert summary.windows >= 30 and len(latency) == summary.windows
    assert np.all(latency > 0) and np.median(latency) < 500
    assert summary.latency_ms["p50"] == pytest.approx(np.median(latency), rel=1e-3)
    # AU estimates per window, FACS 0-5, with the AUs the rig's montage covers.
    au = np.array(received["AU"][0])
    assert len(au) == summary.windows and au.shape[1] == len(runner.coder.aus) and 4 in runner.coder.aus
    assert np.all((au >= 0) & (au <= 5))
    # Expressions: complete onset/apex/offset triples in the convention, labelled by the recognizer,
    # stamped with their times in the signal (the rig's clock), not when they were published.
    texts, stamps = [s[0] for s in received["Expressions"][0]], received["Expressions"][1]
    parsed = parse_expression_markers(stamps, texts)
    assert parsed.others == [] and len(parsed.complete) == len(summary.expressions) >= 2
    truth = [(t, text) for t, text in rig.timeline.markers()]
    true_onsets = np.array([rig.t0 + t for t, text in truth if text.startswith("onset/")])
    for e in parsed.complete:
        assert e.label in CLASSES and e.kind in ("micro", "macro")
        assert start < e.onset_s <= e.apex_s <= e.offset_s < start + 13
        assert e.kind == ("micro" if e.offset_s - e.onset_s <= 0.5 else "macro")
    # Most spotted onsets fall near a true onset (the light rig's EMG is clean).
    errors = [np.min(np.abs(true_onsets - e.onset_s)) for e in parsed.complete]
    assert np.mean(np.asarray(errors) < 0.4) >= 0.5, errors


def _emg_with_burst(onset_s: float, duration_s: float, *, srate: float = 2000.0, total_s: float = 20.0):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(int(total_s * srate), 4)) * 2e-6
    b, a = signal.butter(4, [30, 300], btype="bandpass", fs=srate)
    if duration_s:
        burst = signal.lfilter(b, a, rng.normal(size=(int(duration_s * srate), 2)), axis=0)
        i0 = int(onset_s * srate)
        x[i0:i0 + len(burst), 1:3] += burst * (5e-5 / burst.std())
    return x, 100.0 + np.arange(len(x)) / srate


def _spot(x, times, srate=2000.0, chunk=40, config=None):
    config = config or SpotterConfig()
    envelope = EMGEnvelope(srate, x.shape[1], band_hz=config.band_hz, notch_hz=config.notch_hz,
                           window_s=config.envelope_window_s, out_rate_hz=config.rate_hz)
    spotter = OnlineSpotter(x.shape[1], config.rate_hz, config, delay_s=envelope.delay_s)
    found = []
    for k in range(0, len(x), chunk):
        found += spotter.update(*envelope.process(x[k:k + chunk], times[k:k + chunk]))
    return found


def test_online_spotter_finds_a_known_burst():
    """A 300 ms EMG burst at 12.0 s: one micro-expression, onset and offset within 50 ms, decided within 0.35 s."""
    x, times = _emg_with_burst(12.0, 0.3)
    found = _spot(x, times)
    assert len(found) == 1
    e = found[0]
    assert abs(e.onset_s - 112.0) < 0.05 and abs(e.offset_s - 112.3) < 0.05 and e.kind == "micro"
    assert 112.0 < e.apex_s < 112.3 and not e.forced
    assert e.decided_s - e.offset_s <= SpotterConfig().merge_gap_s + 0.15   # bounded delay
    # Chunking does not change the answer (filter state is carried between chunks).
    again = _spot(x, times, chunk=333)[0]
    assert (again.onset_s, again.offset_s) == pytest.approx((e.onset_s, e.offset_s), abs=1e-9)
    # Nothing in noise alone; a 6 s contraction is closed at max_duration_s (4 s) and called macro.
    assert _spot(*_emg_with_burst(12.0, 0.0)) == []
    long = _spot(*_emg_with_burst(10.0, 6.0))
    assert long[0].forced and long[0].kind == "macro"
    assert long[0].offset_s - long[0].onset_s == pytest.approx(4, abs=0.1)


def test_video_motion_spotter_finds_a_moving_patch():
    """Without EMG: camera noise for 12 s, a patch that moves between 8.0 and 8.4 s is one expression."""
    rng = np.random.default_rng(0)
    fps, n = 30.0, 360
    frames = np.clip(128 + rng.normal(0, 2, (n, 48, 64, 3)), 0, 255).astype(np.uint8)
    times = 50.0 + np.arange(n) / fps
    for i in np.flatnonzero((times >= 58.0) & (times < 58.4)):
        frames[i, 10:30, 10 + (i % 4) * 5:30 + (i % 4) * 5] = 250   # a bright patch jumping sideways
    motion = VideoMotion((48, 64, 3), step=2)
    config = SpotterConfig()
    spotter = OnlineSpotter(1, fps, config)
    found = []
    for k in range(0, n, 3):
        found += spotter.update(*motion.process(frames[k:k + 3].reshape(3, -1).view(np.int8), times[k:k + 3]))
    assert len(found) == 1
    assert abs(found[0].onset_s - 58.0) <= 2 / fps and abs(found[0].offset_s - 58.4) <= 3 / fps


def test_resize_matches_training_resize():
    """Live frames are resized with Pillow; training used torch's antialiased bilinear interpolate."""
    import torch

    from fusion.data import _centre_resize

    frames = np.random.default_rng(0).random((2, 3, 120, 160), dtype=np.float32)
    expected = _centre_resize(torch.from_numpy(frames), 16).numpy()
    np.testing.assert_allclose(resize_square(frames, 16), expected, atol=1e-5)


def test_views_are_the_training_windows(edge_folder, rig_session):
    """Windows cut from ring buffers equal SessionWindows' (frames, crop, resize, EMG samples, z-score)."""
    from acquisition import open_session
    from fusion.data import SessionWindows
    from fusion.live.inputs import RingBuffer
    from fusion.live.views import RunningStats

    model = LiveModel(edge_folder)
    model.video_norm = "none"   # the session's mean frame is a statistic of the whole file; checked below
    windows = SessionWindows([rig_session], window_s=0.5, stride_s=0.25, modalities=["rgb", "emg"], clip_frames=2,
                             image_size=16, crop="centre", video_norm="none")
    buffers = {}
    with open_session(rig_session) as session:
        for m, name in (("rgb", "RGB"), ("emg", "EMG")):
            stream = session.streams[name]
            data = np.asarray(stream.data[:])
            rows = data.view(np.int8).reshape(len(data), -1) if m == "rgb" else data
            buffers[m] = (RingBuffer(len(rows), rows.shape[1], rows.dtype), float(stream.nominal_srate))
            buffers[m][0].write(rows, np.asarray(stream.times), 0.0, 0.0)
        model.set_frame_shapes({"rgb": session.streams["RGB"].info["frame_shape"]})
    # The running statistics, once they have seen the whole stream, are the session's.
    model.stats["emg"] = RunningStats((8,))
    model.stats["emg"].update(buffers["emg"][0].read(0, buffers["emg"][0].total)[0])
    model._fed["emg"] = buffers["emg"][0].total
    checked = 0
    for k in range(2, len(windows) - 2, 3):
        item = windows[k]
        if not all(item["available"].values()):
            continue
        got = model.views(buffers, item["time_s"] + 0.25)
        assert got is not None
        views, _ = got
        np.testing.assert_allclose(views["rgb"][0], item["rgb"].numpy(), atol=1e-5)
        np.testing.assert_allclose(views["emg"][0], item["emg"].numpy(), atol=1e-4)
        checked += 1
    windows.close()
    assert checked >= 4


def _outlet(name: str, *, n_channels: int, srate: float, stream_type: str = "EMG", **kwargs) -> pylsl.StreamOutlet:
    labels = [] if stream_type == "VideoRaw" else [f"EMG_ZYG_{i}" for i in range(n_channels)]
    info = make_stream_info(name, stream_type, channel_count=n_channels, nominal_srate=srate,
                            channel_format="int8" if stream_type == "VideoRaw" else "float32", source_id=f"{name}-src",
                            channel_labels=labels, **kwargs)
    return pylsl.StreamOutlet(info)


@pytest.mark.parametrize("n_channels, srate, match", [
    (4, 2000.0, r"has 4 channels; the model's emg encoder expects 8"),
    (8, 1000.0, r"runs at 1000 Hz; the model's emg encoder expects 2000 Hz"),
])
def test_stream_that_does_not_fit_the_model(edge_folder, unique_prefix, n_channels, srate, match):
    name, p = f"{unique_prefix}BadEMG", unique_prefix
    outlets = [_outlet(name, n_channels=n_channels, srate=srate),   # visible while the test runs
               _outlet(f"{p}Cam", n_channels=48, srate=30.0, stream_type="VideoRaw", encoding="RGB8",
                       frame_shape=(4, 4, 3)),
               _outlet(f"{p}Bare", n_channels=48, srate=30.0, stream_type="VideoRaw")]
    config = load_live_config("default", ["resolve_timeout_s=3"])
    with pytest.raises(ValueError, match=match) as err:
        LiveRunner(edge_folder, video=f"name='{p}Cam'", emg=f"name='{name}'", config=config)
    assert name in str(err.value)
    # A --video query that finds a stream without a video encoding is refused, naming it.
    with pytest.raises(ValueError, match=f"{p}Bare.*is not a video stream"):
        LiveRunner(edge_folder, video=f"name='{p}Bare'", emg=f"name='{name}'", config=config)
    # Frames at another rate than the model's: named too.
    slow = _outlet(f"{p}Slow", n_channels=48, srate=15.0, stream_type="VideoRaw", encoding="RGB8",
                   frame_shape=(4, 4, 3))
    with pytest.raises(ValueError, match=f"{p}Slow.*runs at 15 Hz; the model's rgb encoder expects 30 Hz"):
        LiveRunner(edge_folder, video=f"name='{p}Slow'", emg=f"name='{name}'", config=config)
    del outlets, slow


def test_query_that_finds_nothing_names_it(edge_folder, unique_prefix):
    query = f"name='{unique_prefix}Nothing'"
    with pytest.raises(StreamNotFound, match=f"--video query {query!r} within 1 s"):
        LiveRunner(edge_folder, video=query, emg=query, config=load_live_config("default", ["resolve_timeout_s=1"]))
    with pytest.raises(ValueError, match=r"pass a stream query for \['emg'\]"):
        LiveRunner(edge_folder, video=query)


def test_model_folder_errors_name_the_file(edge_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'none' / 'config.json'} does not exist"):
        LiveModel(tmp_path / "none")
    newer = tmp_path / "newer"
    shutil.copytree(edge_folder, newer)
    config = json.loads((newer / "config.json").read_text())
    (newer / "config.json").write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(ValueError, match=f"{newer / 'config.json'} has format_version 99"):
        LiveModel(newer)
    (newer / "config.json").write_text(json.dumps({"format": "emosync-model", "format_version": 1}))
    with pytest.raises(ValueError, match="has format 'emosync-model', not 'emosync-edge'"):
        LiveModel(newer)
    (newer / "config.json").write_text(json.dumps({**config, "data": {**config["data"], "crop": "face"}}))
    with pytest.raises(ValueError, match="crop 'face'"):
        LiveModel(newer)


def test_cli_fails_clearly_and_config_is_validated(tmp_path):
    import typer
    from typer.testing import CliRunner

    from fusion.live.cli import live

    app = typer.Typer()
    app.command()(live)
    app.command("unused")(lambda: None)  # two commands: typer keeps `live` as a subcommand name
    result = CliRunner().invoke(app, ["live", "--model", str(tmp_path), "--emg", "type='EMG'"])
    assert result.exit_code == 1 and "config.json does not exist" in " ".join(result.output.split())
    result = CliRunner().invoke(app, ["live", "--model", str(tmp_path), "--set", "spotter.hgh=3"])
    assert result.exit_code == 1 and "hgh" in result.output
    with pytest.raises(ConfigError, match="low"):
        load_live_config("default", ["spotter.low=9"])


def test_stop_event_ends_the_run_cleanly(edge_folder, light_rig_config):
    """A stop (Ctrl-C sets the event) ends the loop within a fraction of a second and closes the inlets."""
    from synth.rig.simulator import SimulatedRig

    prefix = light_rig_config.name_prefix
    with SimulatedRig(light_rig_config, seed=3, duration_s=30):
        runner = LiveRunner(edge_folder, video=f"name='{prefix}RGB'", emg=f"name='{prefix}EMG'", name=f"{prefix}L",
                            config=load_live_config("default", ["resolve_timeout_s=5", "warmup_s=0.5"]))
        stop = threading.Event()
        threading.Timer(3.0, stop.set).start()
        t0 = time.monotonic()
        summary = runner.run(30.0, stop_event=stop)
        assert time.monotonic() - t0 < 4.0 and summary.windows > 0
        assert all(not s._thread.is_alive() for s in runner.inputs.values())


def test_live_process_does_not_load_torch():
    """The live process runs next to the recorder on small CPUs: onnxruntime and numpy, never torch or synth."""
    import subprocess
    import sys

    code = ("import sys, fusion.live.runner, fusion.live.cli; "
            "print(sorted(m for m in ('torch', 'synth', 'mne', 'mediapipe') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
