"""AU-conditioned generators: training frames, tiny diffusion and GAN models, resume, corpus, bad input.

Two tiny models (``configs/synth/tiny-*.yaml``) are trained once per test session on three
light-rig sessions (CPU, one thread). Conditioning is checked against a proxy computed from
the training data itself: the direction in which real smiling frames (AU12 > 2) differ from
neutral ones in the pixels where they differ most (the mouth corners and cheeks); generated
frames with the happiness prototype (AU6 + AU12 at 4) must differ from generated neutral
frames (same seed) along that direction.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from acquisition import open_session
from acquisition.session.markers import expression_intervals
from acquisition.annotate.action_units import AU_INDEX
from synth.facs import read_au_timeline_csv
from synth.generative import load_face_frames, load_generator, model_sha256, read_model_card, training_sessions
from synth.generative.config import load_synth_config
from synth.generative.corpus import read_corpus, sample_corpus
from synth.generative.train import train_generator

RIG_OVERRIDES = ["timeline.expressions_per_minute=40", "timeline.emotions=[happiness,surprise,anger]",
                 "timeline.micro_fraction=0.2"]
GAN_STEPS = 250
DIFFUSION_STEPS = 120


@pytest.fixture(scope="session")
def rig_sessions(tmp_path_factory):
    from synth.rig.offline import write_rig_session

    folder = tmp_path_factory.mktemp("synth_rig")
    return [write_rig_session(folder / f"s{i}.h5", duration_s=16.0, seed=10 + i, profile="light",
                              overrides=RIG_OVERRIDES, modalities=("rgb", "depth", "au")) for i in range(3)]


@pytest.fixture(scope="session")
def gan_model(rig_sessions, tmp_path_factory):
    out = tmp_path_factory.mktemp("gan") / "model"
    config = load_synth_config("tiny-gan", [f"optim.steps={GAN_STEPS}", "logging.checkpoint_every=125",
                                            "logging.sample_every=125"])
    return train_generator(rig_sessions, config, out, progress=False)


@pytest.fixture(scope="session")
def diffusion_model(rig_sessions, tmp_path_factory):
    out = tmp_path_factory.mktemp("diffusion") / "model"
    config = load_synth_config("tiny-diffusion", [f"optim.steps={DIFFUSION_STEPS}"])
    return train_generator(rig_sessions, config, out, progress=False)


def smile_alignment(model_dir, sessions, seeds=range(4)) -> np.ndarray:
    """Cosine between (generated happy - generated neutral) and (real smile - real neutral), per seed."""
    gen = load_generator(model_dir)
    frames = load_face_frames(sessions, gen.image_size, stride=2)
    smile = frames.aus[:, AU_INDEX[12]] > 2
    neutral = frames.aus.max(axis=1) < 0.3
    assert smile.sum() >= 10 and neutral.sum() >= 10
    real = frames.rgbd[smile, :3].mean(0) - frames.rgbd[neutral, :3].mean(0)
    region = np.abs(real) >= np.quantile(np.abs(real), 0.95)
    aus = np.zeros((2, 17), np.float32)
    aus[1, AU_INDEX[6]] = aus[1, AU_INDEX[12]] = 4.0
    out = []
    for seed in seeds:
        pair = gen.sample(aus, seed=seed)
        diff = (pair[1, :3] - pair[0, :3])[region]
        out.append(float(diff @ real[region] / (np.linalg.norm(diff) * np.linalg.norm(real[region]) + 1e-12)))
    return np.array(out)


# --------------------------------------------------------------------------- frames
def test_load_face_frames(rig_sessions):
    frames = load_face_frames(rig_sessions[:1], 32, stride=3, max_frames=100)
    assert frames.rgbd.shape == (100, 4, 32, 32) and frames.rgbd.dtype == np.float32
    assert frames.rgbd.min() >= -1 and frames.rgbd.max() <= 1
    assert frames.aus.shape == (100, 17) and 0 <= frames.aus.min() and frames.aus.max() <= 5
    with open_session(rig_sessions[0]) as s:
        subject = s.info["subject_id"]
    assert set(frames.subject_ids) == {subject} and frames.session_files[0] == str(rig_sessions[0])
    assert np.all(np.diff(frames.times_s) > 0)
    # AUs are the session's own, resampled at the frame times (same 30 Hz clock here).
    with open_session(rig_sessions[0]) as s:
        au = np.asarray(s.streams["ActionUnits"].data[:])
        times = s.streams["ActionUnits"].times
    k = int(np.argmin(np.abs(times - frames.times_s[10])))
    np.testing.assert_allclose(frames.aus[10], au[k], atol=1e-4)
    # the face (near depth, < 0 after the map) is inside the crop, background (far) around it
    assert frames.rgbd[:, 3, 16, 16].max() < 0 and frames.rgbd[:, 3, 0, 0].min() > 0.8
    # max_frames picks frames before decoding: the same frames as subsetting the whole load
    whole = load_face_frames(rig_sessions[:2], 32, stride=3)
    picked = load_face_frames(rig_sessions[:2], 32, stride=3, max_frames=50)
    index = np.linspace(0, len(whole) - 1, 50).round().astype(int)
    np.testing.assert_array_equal(picked.rgbd, whole.rgbd[index])
    np.testing.assert_array_equal(picked.session_files, whole.session_files[index])
    np.testing.assert_array_equal(picked.times_s, whole.times_s[index])


def test_load_face_frames_drops_frames_without_aus(tmp_path, emosync_log):
    from acquisition import SessionWriter, StreamSpec
    from acquisition.annotate.action_units import AU_LABELS

    n, side = 6, 24
    times = np.arange(n) / 30.0
    au = np.full((n, 17), 1.0, np.float32)
    au[2] = np.nan  # what `emosync annotate` writes where it found no face
    rgb = np.random.default_rng(0).integers(0, 255, (n, side, side, 3), dtype=np.uint8)
    fname = tmp_path / "nan.h5"
    with SessionWriter(fname, subject_id="sub-nan") as w:
        w.add_stream(StreamSpec("RGB", "VideoRaw", side * side * 3, "int8", 30.0, "rgb", frame_shape=(side, side, 3),
                                encoding="RGB8")).append(rgb, times)
        w.add_stream(StreamSpec("Depth", "VideoRaw", side * side, "int16", 30.0, "depth", frame_shape=(side, side),
                                encoding="DEPTH16-mm")).append(np.full((n, side, side), 700, np.uint16), times)
        w.add_stream(StreamSpec("ActionUnits", "ActionUnits", 17, "float32", 30.0, "au", channel_labels=AU_LABELS)
                     ).append(au, times)
    with emosync_log.at_level("WARNING", logger="emosync"):
        frames = load_face_frames([fname], 16)
    assert len(frames) == n - 1 and np.isfinite(frames.aus).all() and frames.aus.min() == 1.0
    np.testing.assert_allclose(frames.times_s, np.delete(times, 2), atol=1e-9)
    assert "Dropped 1 frame(s) without AUs" in emosync_log.text


def test_load_face_frames_errors(tmp_path, rig_sessions):
    from synth.rig.offline import write_rig_session

    no_au = write_rig_session(tmp_path / "noau.h5", duration_s=1.0, seed=1, modalities=("rgb", "depth"))
    with pytest.raises(ValueError, match="no AU stream"):
        load_face_frames([no_au], 32)
    no_depth = write_rig_session(tmp_path / "nodepth.h5", duration_s=1.0, seed=1, modalities=("rgb", "au"))
    with pytest.raises(ValueError, match="no depth video stream"):
        load_face_frames([no_depth], 32)
    with pytest.raises(ValueError, match="No training sessions"):
        load_face_frames([], 32)
    with pytest.raises(FileNotFoundError):
        load_face_frames([tmp_path / "missing.h5"], 32)


def _boxed_session(fname, *, face_boxes: bool):
    """A 40x40 session whose face (white, top-left 6x6) is off centre; with ``emosync annotate``'s box streams."""
    from acquisition import SessionWriter, StreamSpec
    from acquisition.annotate.action_units import AU_LABELS

    n, side = 4, 40
    times = np.arange(n) / 30.0
    rgb = np.zeros((n, side, side, 3), np.uint8)
    rgb[:, :6, :6] = 255
    with SessionWriter(fname, subject_id="sub-box") as w:
        w.add_stream(StreamSpec("RGB", "VideoRaw", side * side * 3, "int8", 30.0, "rgb", frame_shape=(side, side, 3),
                                encoding="RGB8")).append(rgb, times)
        w.add_stream(StreamSpec("Depth", "VideoRaw", side * side, "int16", 30.0, "depth", frame_shape=(side, side),
                                encoding="DEPTH16-mm")).append(np.full((n, side, side), 700, np.uint16), times)
        w.add_stream(StreamSpec("ActionUnits", "ActionUnits", 17, "float32", 30.0, "au", channel_labels=AU_LABELS)
                     ).append(np.ones((n, 17), np.float32), times)
        if face_boxes:
            w.add_stream(StreamSpec("RGB-FaceBox", "FaceBox", 4, "float32", 30.0, "rgb-FaceBox",
                                    channel_labels=["x0", "y0", "x1", "y1"], extra={"derived_kind": "FaceBox"})
                         ).append(np.tile(np.float32([1, 1, 5, 5]), (n, 1)), times)
            w.add_stream(StreamSpec("RGB-FaceCrop", "VideoRaw", 8 * 8 * 3, "int8", 30.0, "rgb-FaceCrop",
                                    frame_shape=(8, 8, 3), encoding="RGB8", extra={"derived_kind": "FaceCrop"})
                         ).append(np.zeros((n, 8, 8, 3), np.uint8), times)
    return fname


def test_load_face_frames_warns_or_refuses_without_face_boxes(tmp_path, emosync_log):
    boxed = _boxed_session(tmp_path / "boxed.h5", face_boxes=True)
    bare = _boxed_session(tmp_path / "bare.h5", face_boxes=False)
    with emosync_log.at_level("WARNING", logger="emosync"):
        frames = load_face_frames([boxed], 16, require_face_boxes=True)
    assert frames.rgbd[:, :3].min() == 1.0  # cut around the (white) face box, not from the centre
    assert "no face boxes" not in emosync_log.text
    # By default a session without boxes is still centre-cropped (as before), and named in a warning.
    with emosync_log.at_level("WARNING", logger="emosync"):
        frames = load_face_frames([boxed, bare], 16)
    assert frames.rgbd[4:, :3].max() == -1.0  # the centre crop misses the face
    warnings = [r.getMessage() for r in emosync_log.records if "no face boxes" in r.getMessage()]
    assert len(warnings) == 1 and str(bare) in warnings[0] and f"emosync annotate {bare}" in warnings[0]
    with pytest.raises(ValueError, match=r"require_face_boxes.*bare\.h5 has no face boxes.*emosync annotate") as err:
        load_face_frames([boxed, bare], 16, require_face_boxes=True)
    assert "boxed.h5" not in str(err.value)


# --------------------------------------------------------------------------- models
def test_gan_trains_and_conditions(gan_model, rig_sessions):
    card = read_model_card(gan_model)
    assert card["kind"] == "gan" and card["steps"] == GAN_STEPS and card["frames"]["n_frames"] > 0
    assert [p.name for p in training_sessions(gan_model)] == ["s0.h5", "s1.h5", "s2.h5"]
    assert (gan_model / "loss.csv").is_file() and (gan_model / "loss.png").is_file()
    assert sorted(p.name for p in (gan_model / "samples").glob("*.png")) == ["step-0000125.png", "step-0000250.png"]
    cosines = smile_alignment(gan_model, rig_sessions)
    assert cosines.mean() > 0.1, cosines


def test_diffusion_trains_and_conditions(diffusion_model, rig_sessions):
    card = read_model_card(diffusion_model)
    assert card["kind"] == "diffusion" and card["privacy"]["dp_sgd"] is False
    assert (diffusion_model / "weights" / "model_index.json").is_file()
    cosines = smile_alignment(diffusion_model, rig_sessions)
    assert cosines.mean() > 0.25, cosines


@pytest.mark.parametrize("which", ["gan_model", "diffusion_model"])
def test_roundtrip_same_samples_and_hash(which, request, tmp_path):
    model_dir = request.getfixturevalue(which)
    gen = load_generator(model_dir)
    aus = np.zeros((5, 17), np.float32)
    aus[:, AU_INDEX[12]] = np.linspace(0, 4, 5)
    first = gen.sample(aus, seed=7)
    gen.save_pretrained(tmp_path / "copy")
    again = load_generator(tmp_path / "copy").sample(aus, seed=7)
    np.testing.assert_array_equal(first, again)
    assert model_sha256(tmp_path / "copy") == model_sha256(model_dir)
    assert first.shape == (5, 4, 32, 32) and np.abs(first).max() <= 1
    assert not np.array_equal(first, gen.sample(aus, seed=8))
    # shared noise: equal AUs give identical frames, different AUs different ones
    flat = gen.sample(np.repeat(aus[:1], 3, 0), seed=7)
    np.testing.assert_allclose(flat[0], flat[2], atol=1e-5)
    assert np.abs(first[0] - first[-1]).max() > 1e-3
    # the membership statistic is per sample and deterministic for a seed
    frames = load_face_frames(training_sessions(model_dir)[:1], 32, max_frames=6)
    loss = gen.per_sample_loss(torch.from_numpy(frames.rgbd), torch.from_numpy(frames.aus), seed=1)
    assert loss.shape == (6,) and torch.isfinite(loss).all()
    torch.testing.assert_close(loss, gen.per_sample_loss(torch.from_numpy(frames.rgbd),
                                                         torch.from_numpy(frames.aus), seed=1))


@pytest.mark.parametrize("which", ["gan_model", "diffusion_model"])
def test_model_folder_layout_and_the_earlier_layout(which, request, tmp_path):
    """config.json + weights/ (the shared model folder); a folder with emosync_model.json still loads and migrates."""
    import shutil

    model_dir = request.getfixturevalue(which)
    card = json.loads((model_dir / "config.json").read_text())
    kind = which.split("_")[0]
    assert (card["format"], card["format_version"], card["kind"]) == ("emosync-model", 2, kind)
    assert not (model_dir / "emosync_model.json").exists() and card["config"]["model"]["kind"] == kind
    # What `emosync synth train` wrote before: the same weights/, the card as emosync_model.json.
    old = shutil.copytree(model_dir, tmp_path / "old", ignore=shutil.ignore_patterns("checkpoints", "samples"))
    (old / "config.json").unlink()
    (old / "emosync_model.json").write_text(json.dumps(
        {**{k: v for k, v in card.items() if k != "format_version"}, "format": "emosync-generator",
         "format_version": 1}, indent=2, sort_keys=True))
    assert model_sha256(old) == model_sha256(model_dir)
    assert read_model_card(old)["steps"] == card["steps"] and training_sessions(old) == training_sessions(model_dir)
    aus = np.zeros((2, 17), np.float32)
    aus[1, AU_INDEX[12]] = 4.0
    expected = load_generator(model_dir).sample(aus, seed=1, num_inference_steps=2)
    gen = load_generator(old)
    np.testing.assert_array_equal(gen.sample(aus, seed=1, num_inference_steps=2), expected)
    with pytest.raises(FileExistsError, match="already holds a training run"):
        train_generator(training_sessions(old), load_synth_config(f"tiny-{kind}"), old, progress=False)
    gen.save_pretrained(old)  # migration: load and save; the hash (what corpora record) is unchanged
    assert not (old / "emosync_model.json").exists() and read_model_card(old)["format_version"] == 2
    assert model_sha256(old) == model_sha256(model_dir)


def test_load_generator_refuses_other_folders(tmp_path):
    from fusion.model import MultiModalEncoder

    MultiModalEncoder({"emg": {"encoder": "conv1d", "encoder_kwargs": {"n_chans": 2, "n_times": 50, "width": 4}}},
                      hidden_dim=8, embed_dim=4).save_pretrained(tmp_path / "encoder")
    with pytest.raises(ValueError, match="holds a 'multimodal-encoder' model, not 'diffusion' or 'gan'"):
        load_generator(tmp_path / "encoder")
    with pytest.raises(ValueError, match="holds a 'multimodal-encoder' model"):
        read_model_card(tmp_path / "encoder")
    with pytest.raises(FileNotFoundError, match="is not a model folder: no config.json"):
        load_generator(tmp_path)


def test_expression_guidance_known_answer():
    """One DDIM step is affine in the model output, so frames(g) = neutral + g * (frames(1) - neutral)."""
    from synth.generative.diffusion import DiffusionGenerator

    torch.manual_seed(0)
    gen = DiffusionGenerator(load_synth_config("tiny-diffusion", ["model.sampler=ddim"]).model, 16)
    aus = np.zeros((2, 17), np.float32)
    aus[:, [5, 11]] = [[2.0, 4.0], [1.0, 3.0]]  # AU6 and AU12
    with torch.no_grad():  # an untrained UNet's output is near 0 (zero-initialised): give it a real signal
        gen.unet.conv_out.weight.normal_(0, 0.05)
    frames = {g: gen.sample(aus, seed=1, num_inference_steps=1, guidance_scale=g) for g in (1.0, 1.5, 2.0)}
    neutral = gen.sample(np.zeros_like(aus), seed=1, num_inference_steps=1)
    inside = np.all([np.abs(x) < 0.999 for x in (*frames.values(), neutral)], axis=0)  # pixels never clamped
    assert inside.mean() > 0.5
    for g in (1.5, 2.0):
        np.testing.assert_allclose(frames[g][inside], (neutral + g * (frames[1.0] - neutral))[inside], atol=1e-5)
    assert np.abs(frames[2.0] - frames[1.0]).max() > 1e-3  # guidance changed something
    # neutral requests are unchanged by guidance; g <= 0 is refused
    np.testing.assert_allclose(gen.sample(np.zeros_like(aus), seed=1, num_inference_steps=1, guidance_scale=3.0),
                               neutral, atol=1e-6)
    with pytest.raises(ValueError, match="guidance_scale must be > 0"):
        gen.sample(aus, seed=1, guidance_scale=0.0)


@pytest.mark.parametrize("sampler", ["dpm++", "ddim"])
def test_sampler_longer_than_batch(sampler):
    # Multistep samplers keep state across calls to step(): each batch must start from a fresh schedule.
    from synth.generative.diffusion import DiffusionGenerator

    config = load_synth_config("tiny-diffusion", [f"model.sampler={sampler}"]).model
    torch.manual_seed(0)
    gen = DiffusionGenerator(config, 16)
    aus = np.zeros((3, 17), np.float32)
    frames = gen.sample(aus, seed=1, num_inference_steps=3, batch_size=2)
    assert frames.shape == (3, 4, 16, 16) and np.isfinite(frames).all()
    # shared noise, same AUs: the frame in the second batch equals those in the first
    np.testing.assert_allclose(frames[2], frames[0], atol=1e-5)
    np.testing.assert_allclose(gen.sample(aus[:1], seed=1, num_inference_steps=3), frames[:1], atol=1e-5)


def test_resume_is_exact(rig_sessions, tmp_path):
    base = ["logging.checkpoint_every=3", "logging.sample_every=100", "data.max_frames=64"]
    full = train_generator(rig_sessions, load_synth_config("tiny-gan", ["optim.steps=6", *base]), tmp_path / "full",
                           progress=False)
    part = tmp_path / "part"
    train_generator(rig_sessions, load_synth_config("tiny-gan", ["optim.steps=3", *base]), part, progress=False)
    train_generator(rig_sessions, load_synth_config("tiny-gan", ["optim.steps=6", *base]), part, resume=True,
                    progress=False)
    a, b = (torch.load(sorted((d / "checkpoints").glob("*.pt"))[-1], weights_only=False) for d in (full, part))
    assert a["step"] == b["step"] == 6
    for module in ("generator", "discriminator"):
        for key, value in a["modules"][module].items():
            torch.testing.assert_close(value, b["modules"][module][key], rtol=0, atol=0)
    assert a["log"][-1]["loss"] == b["log"][-1]["loss"] and a["log"][-1]["step"] == 6
    assert model_sha256(full) == model_sha256(part)
    with pytest.raises(FileExistsError, match="--resume"):
        train_generator(rig_sessions, load_synth_config("tiny-gan", ["optim.steps=6", *base]), part, progress=False)
    with pytest.raises(ValueError, match="another config.*latent_dim"):
        train_generator(rig_sessions, load_synth_config("tiny-gan", ["optim.steps=9", "model.latent_dim=8", *base]),
                        part, resume=True, progress=False)
    with pytest.raises(ValueError, match="other sessions"):
        train_generator(rig_sessions[:1], load_synth_config("tiny-gan", ["optim.steps=9", *base]), part,
                        resume=True, progress=False)


def test_training_bad_input(tmp_path, rig_sessions):
    config = load_synth_config("tiny-gan", ["optim.steps=2"])
    with pytest.raises(ValueError, match="empty"):
        train_generator([], config, tmp_path / "m", progress=False)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train_generator(rig_sessions, config, tmp_path / "m2", resume=True, progress=False)
    (tmp_path / "m5").mkdir()
    (tmp_path / "m5" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty and holds no training run"):
        train_generator(rig_sessions, config, tmp_path / "m5", progress=False)
    assert (tmp_path / "m5" / "notes.txt").read_text() == "keep me"
    from acquisition.utils.config import ConfigError

    with pytest.raises(ConfigError, match="divisible by 16"):
        load_synth_config("tiny-gan", ["data.image_size=40"])
    with pytest.raises(ConfigError, match="target_epsilon"):
        load_synth_config("tiny-diffusion", ["privacy.dp_sgd=true"])
    with pytest.raises(ValueError, match="diffusion model only"):
        train_generator(rig_sessions, load_synth_config("tiny-gan", ["privacy.dp_sgd=true",
                                                                    "privacy.noise_multiplier=1.0"]),
                        tmp_path / "m3", progress=False)
    # The rig sessions have no face boxes (no `emosync annotate`): refused by config, nothing written.
    with pytest.raises(ValueError, match=r"data\.require_face_boxes.*s0\.h5.*no face boxes"):
        train_generator(rig_sessions, load_synth_config("tiny-gan", ["data.require_face_boxes=true"]),
                        tmp_path / "m4", progress=False)
    assert not (tmp_path / "m4").exists()
    with pytest.raises(ConfigError, match="require_face_boxes"):
        load_synth_config("tiny-gan", ["data.require_face_boxes=maybe"])


def test_dp_sgd_reports_epsilon(rig_sessions, tmp_path):
    # sample_every=1: a sample grid (eval mode) between steps must not break opacus' hooks at the next step.
    base = ["data.max_frames=64", "privacy.dp_sgd=true", "logging.log_every=1", "logging.sample_every=1",
            "model.num_inference_steps=1"]
    part = tmp_path / "dp-part"
    target = ["privacy.target_epsilon=8.0", *base]
    train_generator(rig_sessions[:1], load_synth_config("tiny-diffusion", ["optim.steps=2", *target]), part,
                    progress=False)
    privacy = read_model_card(part)["privacy"]
    assert privacy["dp_sgd"] is True and privacy["delta"] == 1e-5 and privacy["noise_multiplier"] > 0
    assert 0 < privacy["epsilon"] <= 8.0
    assert load_generator(part).sample(np.zeros((2, 17), np.float32), seed=0).shape == (2, 4, 32, 32)
    # Resume keeps the checkpoint's noise multiplier (recomputing it from the target for 3 steps would change it)
    # and the DP noise is seeded per step, so 2 steps + resume equals 3 steps straight at that noise multiplier.
    sigma = privacy["noise_multiplier"]
    train_generator(rig_sessions[:1], load_synth_config("tiny-diffusion", ["optim.steps=3", *target]), part,
                    resume=True, progress=False)
    assert read_model_card(part)["privacy"]["noise_multiplier"] == sigma
    full = train_generator(rig_sessions[:1], load_synth_config("tiny-diffusion", [
        "optim.steps=3", f"privacy.noise_multiplier={sigma!r}", *base]), tmp_path / "dp-full", progress=False)
    a, b = (torch.load(sorted((d / "checkpoints").glob("*.pt"))[-1], weights_only=False) for d in (full, part))
    assert a["step"] == b["step"] == 3 and a["noise_multiplier"] == b["noise_multiplier"] == sigma
    for key, value in a["modules"]["unet"].items():
        torch.testing.assert_close(value, b["modules"]["unet"][key], rtol=0, atol=0)


# --------------------------------------------------------------------------- corpus and CLI
@pytest.fixture
def cli():
    from synth.cli.synth import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def test_sample_corpus_cli(gan_model, cli, tmp_path):
    out = tmp_path / "c1"
    result = cli("sample", gan_model, "--emotion", "happiness", "--kind", "micro", "--n", 3, "--seed", 3,
                 "--out", out, "--emg", "--no-progress")
    assert result.exit_code == 0, result.output
    corpus = json.loads((out / "corpus.json").read_text())
    assert corpus["synthetic"] is True and corpus["seeds"] == [3, 5] and corpus["rejection"] is None
    assert corpus["generator"]["kind"] == "gan" and corpus["generator"]["model_sha256"] == model_sha256(gan_model)
    assert corpus["generator"]["config"]["model"]["kind"] == "gan"
    assert [s["id"] for s in corpus["sequences"]] == ["seq-00000", "seq-00001", "seq-00002"]
    seq = corpus["sequences"][0]
    assert seq["file"] == "sessions/seq-00000.h5" and seq["emotion"] == "happiness" and seq["kind"] == "micro"
    with open_session(out / seq["file"]) as s:
        assert s.info["synthetic"] is True and s.info["subject_id"] == "synthetic" and s.info["seed"] == 3
        assert s.info["model_sha256"] == corpus["generator"]["model_sha256"]
        assert {n: st.modality for n, st in s.streams.items()} == {
            "RGB": "rgb", "Depth": "depth", "ActionUnits": "au", "Markers": "markers", "EMG": "emg"}
        assert s.streams["RGB"].n_samples == seq["n_frames"] == s.streams["ActionUnits"].n_samples
        au = np.asarray(s.streams["ActionUnits"].data[:])
        texts = [str(t[0]) for t in np.asarray(s.streams["Markers"].data[:])]
        (onset, offset, emotion, kind), = expression_intervals(texts, s.streams["Markers"].times)
        assert (emotion, kind) == ("happiness", "micro") and 0 < offset - onset <= 0.5
        assert au[:, AU_INDEX[12]].max() > 0.5 and au[0].max() == 0
        emg = np.asarray(s.streams["EMG"].data[:])
        assert emg.shape[1] == 8 and np.std(emg) > 0
    # a corpus session is training-data shaped: whole frames (already crops), the conditioning as AUs
    frames = load_face_frames([out / seq["file"]], 32)
    assert len(frames) == seq["n_frames"] and frames.subject_ids[0] == "synthetic"
    np.testing.assert_allclose(frames.aus, au, atol=1e-5)
    regenerated = load_generator(gan_model).sample(au, seed=3)
    np.testing.assert_allclose(frames.rgbd[:, :3], regenerated[:, :3], atol=1 / 127.5 + 1e-6)
    # never overwrite; --append adds new ids
    result = cli("sample", gan_model, "--emotion", "anger", "--n", 1, "--out", out, "--no-progress")
    assert result.exit_code == 1 and "never overwrites" in result.output
    assert len(read_corpus(out)["sequences"]) == 3
    result = cli("sample", gan_model, "--emotion", "anger", "--kind", "macro", "--n", 2, "--seed", 10,
                 "--out", out, "--append", "--no-progress")
    assert result.exit_code == 0, result.output
    corpus = read_corpus(out)
    assert [s["id"] for s in corpus["sequences"]][-2:] == ["seq-00003", "seq-00004"]
    assert corpus["seeds"] == [3, 11] and corpus["sequences"][-1]["kind"] == "macro"
    # --append without --seed continues after the last seed used; a seed already in the corpus is refused
    result = cli("sample", gan_model, "--emotion", "surprise", "--n", 1, "--out", out, "--append", "--no-progress")
    assert result.exit_code == 0, result.output
    assert read_corpus(out)["sequences"][-1]["seed"] == 12 and read_corpus(out)["seeds"] == [3, 12]
    result = cli("sample", gan_model, "--emotion", "surprise", "--n", 2, "--seed", 2, "--out", out, "--append",
                 "--no-progress")
    assert result.exit_code == 1 and "Seed 3 is already used" in " ".join(result.output.split()), result.output
    assert len(read_corpus(out)["sequences"]) == 6


def test_sample_au_timeline_csv_at_200_fps(diffusion_model, cli, tmp_path):
    csv = tmp_path / "timeline.csv"
    csv.write_text("time_s,AU12,AU06\n0.0,0,0\n0.05,4,2\n0.1,0,0\n")
    result = cli("sample", diffusion_model, "--au-timeline", csv, "--fps", 200, "--steps", 3, "--out",
                 tmp_path / "c2", "--no-progress")
    assert result.exit_code == 0, result.output
    seq = read_corpus(tmp_path / "c2")["sequences"][0]
    assert seq["fps"] == 200 and seq["n_frames"] == 20 and seq["emotion"] is None
    with open_session(tmp_path / "c2" / seq["file"]) as s:
        assert "Markers" not in s.streams and s.streams["RGB"].nominal_srate == 200
        au = np.asarray(s.streams["ActionUnits"].data[:])
    expected = read_au_timeline_csv(csv).intensities(np.arange(20) / 200)
    np.testing.assert_allclose(au, expected, atol=1e-6)
    assert au[10, AU_INDEX[12]] == pytest.approx(4.0)


def test_rejection_hook_counts(gan_model, tmp_path):
    calls = []

    def reject_first(rgbd):
        calls.append(len(rgbd))
        return np.full(len(rgbd), len(calls) == 1)

    reject_first.threshold = 0.5
    corpus = sample_corpus(gan_model, tmp_path / "c3", n=2, seed=0, emotions=["surprise", "anger"],
                           reject=reject_first)
    assert corpus["rejection"] == {"n_generated": 3, "n_rejected": 1, "rate": pytest.approx(1 / 3), "threshold": 0.5}
    assert [s["seed"] for s in corpus["sequences"]] == [1, 2] and corpus["seeds"] == [0, 2]
    assert [s["emotion"] for s in corpus["sequences"]] == ["surprise", "anger"]  # cycled over kept sequences
    with pytest.raises(RuntimeError, match="gave up"):
        sample_corpus(gan_model, tmp_path / "c4", n=1, emotions=["surprise"], reject=lambda x: np.ones(len(x), bool),
                      max_attempts_factor=2)
    assert not (tmp_path / "c4").exists()  # nothing kept: no half-made folder blocks a rerun
    # A run that gives up after keeping some leaves a consistent corpus that --append continues.
    with pytest.raises(RuntimeError, match="gave up"):
        sample_corpus(gan_model, tmp_path / "c5", n=3, emotions=["surprise"], max_attempts_factor=1,
                      reject=lambda x, calls=[]: np.full(len(x), bool(calls.append(1) or len(calls) > 1)))
    partial = read_corpus(tmp_path / "c5")
    assert [s["seed"] for s in partial["sequences"]] == [0] and partial["seeds"] == [0, 2]
    assert partial["rejection"]["n_generated"] == 3 and partial["rejection"]["n_rejected"] == 2
    resumed = sample_corpus(gan_model, tmp_path / "c5", n=1, emotions=["surprise"], append=True)
    assert [s["seed"] for s in resumed["sequences"]] == [0, 3] and resumed["rejection"]["n_generated"] == 4


@pytest.mark.parametrize("args, message", [
    (["--emotion", "joy"], "Unknown emotion 'joy'"),
    (["--emotion", "happiness", "--kind", "mega"], "Unknown expression kind"),
    (["--emotion", "happiness", "--kind", "macro", "--frames", "16"], "macro expression lasts"),
    (["--emotion", "happiness", "--reject-closer-than", "near"], "auto, off or a distance"),
    (["--emotion", "happiness", "--guidance", "2"], "Expression guidance works on diffusion models"),
    (["--emotion", "happiness", "--sampler", "dpm++"], "--sampler chooses a diffusion sampler"),
    (["--emotion", "fear"], "fear moves AU20"),  # the model saw happiness, surprise and anger only
    ([], "--emotion"),
])
def test_sample_bad_input(gan_model, cli, tmp_path, args, message):
    result = cli("sample", gan_model, *args, "--out", tmp_path / "bad", "--no-progress")
    assert result.exit_code == 1
    assert message in " ".join(result.output.split()), result.output
    assert not (tmp_path / "bad" / "corpus.json").exists()


@pytest.mark.parametrize("text, message", [
    ("time_s,AU99\n0,1\n1,2\n", "Unknown action unit 'AU99'"),
    ("time_s,AU12\n0,1\n1,7\n", "outside the FACS 0-5 scale"),
    ("time_s,AU12\n0,1\n0,2\n", "strictly increasing"),
    ("AU12\n1\n", "time_s"),
    ("time_s,AU12\n0,1\n0.01,2\n", "shorter than one frame"),
])
def test_sample_bad_timeline(gan_model, cli, tmp_path, text, message):
    (tmp_path / "t.csv").write_text(text)
    result = cli("sample", gan_model, "--au-timeline", tmp_path / "t.csv", "--out", tmp_path / "bad", "--no-progress")
    assert result.exit_code == 1
    assert message in " ".join(result.output.split()), result.output


def test_train_cli(rig_sessions, cli, tmp_path):
    result = cli("train", rig_sessions[0], "--config", "tiny-gan", "--out", tmp_path / "m", "--set", "optim.steps=2",
                 "--set", "data.max_frames=32", "--no-progress")
    assert result.exit_code == 0, result.output
    assert read_model_card(tmp_path / "m")["steps"] == 2
    result = cli("train", rig_sessions[0], "--config", "tiny-gan", "--out", tmp_path / "m", "--no-progress")
    assert result.exit_code == 1 and "--resume" in result.output
    result = cli("train", rig_sessions[0], "--config", "tiny-gan", "--out", tmp_path / "m2", "--set", "model.bogus=1")
    assert result.exit_code == 1 and "bogus" in result.output
