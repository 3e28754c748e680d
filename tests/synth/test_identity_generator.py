"""Generators of new people: the identity input, the identity prior, and the corpus contract.

One tiny identity diffusion model (``configs/synth/tiny-diffusion-identity.yaml``, 16 px, 40
steps) is trained once per test session on three light-rig subjects (``sub-id000..002``, wide
identity family), and one AU-only model for two steps on the same sessions. Sampling goes
through the real CLI and the real session files; the rule, determinism, the contract fields
other helpers read (``identity`` per sequence and per session, the top-level ``identities``),
the leaking control, clear errors and resume are checked on what was written.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from acquisition import open_session
from acquisition.annotate.action_units import AU_INDEX
from synth.generative import load_generator, read_model_card
from synth.generative.config import load_synth_config
from synth.generative.frames import rgbd_to_images
from synth.generative.identity import MAX_ACCEPT_CHECKS_PER_IDENTITY, IdentityPrior, identity_noise, nearest_distances
from synth.generative.train import build_generator, train_generator
from synth.privacy.corpus_frames import load_corpus_frames
from synth.privacy.rejection import NearestNeighbourFilter

# Macro expressions only: 4-s sessions at stride 3 keep too few frames of a micro-expression to count as trained on.
RIG = ["face.family=wide", "timeline.expressions_per_minute=40", "timeline.emotions=[happiness,surprise]",
       "timeline.micro_fraction=0"]


@pytest.fixture(scope="session")
def subject_sessions(tmp_path_factory):
    from synth.rig.offline import write_rig_session

    folder = tmp_path_factory.mktemp("id_rig")
    return [write_rig_session(folder / f"sub{k}.h5", duration_s=4.0, seed=20 + k, profile="light",
                              overrides=[f"identity_seed={k}", *RIG], modalities=("rgb", "depth", "au"))
            for k in range(3)]


@pytest.fixture(scope="session")
def identity_model(subject_sessions, tmp_path_factory):
    out = tmp_path_factory.mktemp("id_model") / "model"
    return train_generator(subject_sessions, load_synth_config("tiny-diffusion-identity"), out, progress=False)


@pytest.fixture(scope="session")
def au_only_model(subject_sessions, tmp_path_factory):
    out = tmp_path_factory.mktemp("au_model") / "model"
    config = load_synth_config("tiny-diffusion", ["optim.steps=2", "data.image_size=16", "data.max_frames=32",
                                                  "model.num_inference_steps=2"])
    return train_generator(subject_sessions, config, out, progress=False)


@pytest.fixture
def cli():
    from emosync import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["synth", "sample", *map(str, args), "--no-progress"])


def _frames(corpus_dir, seq_id):
    with open_session(corpus_dir / "sessions" / f"{seq_id}.h5") as session:
        return np.asarray(session.streams["RGB"].data[:]), dict(session.info)


# --------------------------------------------------------------------------- model and prior
def test_identity_table_and_card(identity_model):
    card = read_model_card(identity_model)
    assert card["identity"]["subjects"] == ["sub-id000", "sub-id001", "sub-id002"]
    assert "Dirichlet" in card["identity"]["description"] and card["identity"]["min_distance"] > 0
    assert (identity_model / "weights" / "identity.safetensors").is_file()
    gen = load_generator(identity_model)
    assert gen.has_identity and gen.identity_embeddings().shape == (3, 8)
    # jointly learned: the table moved away from its seeded initialization
    fresh = build_generator(load_synth_config("tiny-diffusion-identity"), subjects=gen.subjects)
    assert not np.allclose(fresh.identity_embeddings(), gen.identity_embeddings())


@pytest.mark.parametrize("kind", ["mixture", "gaussian"])
def test_new_identities_obey_the_rule_and_the_seed(identity_model, kind):
    gen = load_generator(identity_model)
    config = load_synth_config("tiny-diffusion-identity", [f"model.identity.prior={kind}"]).model.identity
    prior = IdentityPrior.fit(gen.identity_embeddings(), gen.subjects, config)
    new = prior.draw(6, seed=3)
    assert new.shape == (6, 8)
    # the rule: at least min_distance from every training embedding and from every other new identity
    assert nearest_distances(new, prior.embeddings).min() >= prior.min_distance
    pairwise = [nearest_distances(new[i], np.delete(new, i, axis=0))[0] for i in range(len(new))]
    assert min(pairwise) >= prior.min_distance
    np.testing.assert_array_equal(new, prior.draw(6, seed=3))
    assert not np.allclose(new, prior.draw(6, seed=4))
    with pytest.raises(ValueError, match="supports at most 20"):
        prior.draw(21, seed=3)


def test_draw_keeps_only_what_the_accept_check_passes(identity_model):
    gen = load_generator(identity_model)
    prior = gen.prior
    seen, verdicts = [], []

    def every_other(vector):
        seen.append(vector.copy())
        verdicts.append(len(seen) % 2 == 0)
        return verdicts[-1]

    new = prior.draw(3, seed=3, accept=every_other)
    assert len(seen) == 6  # 3 kept, each after one refusal
    np.testing.assert_allclose(new, np.array(seen)[np.array(verdicts)], rtol=1e-6)
    assert nearest_distances(new, prior.embeddings).min() >= prior.min_distance
    np.testing.assert_array_equal(prior.draw(3, seed=3, accept=lambda v: True), prior.draw(3, seed=3))
    calls = []
    with pytest.raises(ValueError, match="Only 0 of 2 new identities passed the further check"):
        prior.draw(2, seed=3, accept=lambda v: calls.append(1) and False)
    assert len(calls) == 2 * MAX_ACCEPT_CHECKS_PER_IDENTITY


def test_identity_face_filter_redraws_faces_too_close_to_training(identity_model, cli, tmp_path):
    args = [identity_model, "--emotion", "happiness", "--kind", "micro", "--n", 3, "--new-identities", 3,
            "--seed", 3, "--fps", 10, "--frames", 4]
    # threshold 0 keeps every candidate: the same people as without the filter, each face measured
    assert cli(*args, "--out", tmp_path / "plain").exit_code == 0
    result = cli(*args, "--reject-identities-closer-than", 0, "--out", tmp_path / "all")
    assert result.exit_code == 0, result.output
    plain = json.loads((tmp_path / "plain" / "corpus.json").read_text())["identities"]
    kept = json.loads((tmp_path / "all" / "corpus.json").read_text())["identities"]
    assert kept["vectors"] == plain["vectors"] and "face_filter" not in plain
    face = kept["face_filter"]
    assert (face["checked"], face["rejected"], face["method"]) == (3, 0, "given")
    distances = face["accepted_distances"]
    assert len(distances) == 3 and min(distances) > 0
    # a threshold between the candidates' distances redraws the closer ones and records why
    threshold = float(np.median(distances))
    result = cli(*args, "--reject-identities-closer-than", threshold, "--out", tmp_path / "some")
    assert result.exit_code == 0, result.output
    face = json.loads((tmp_path / "some" / "corpus.json").read_text())["identities"]["face_filter"]
    assert face["rejected"] >= 1 and "redrawn" in " ".join(result.output.split())
    assert min(face["accepted_distances"]) >= threshold > max(face["rejected_distances"])
    assert len(face["accepted_distances"]) == 3 and face["renders_per_identity"] == 3
    # ... and every frame of every sequence, rendered from the sequences' own seeds, is held as far away
    corpus = json.loads((tmp_path / "some" / "corpus.json").read_text())
    assert corpus["rejection"]["threshold"] == threshold
    train = NearestNeighbourFilter.from_model_dir(identity_model, threshold)
    frames = load_corpus_frames(tmp_path / "some", train.train_rgbd.shape[-1])
    assert len(set(frames.sequence_ids)) == 3 and train.distances(frames.rgbd).min() >= threshold
    # the stricter of --reject-closer-than and the identity threshold checks the frames
    result = cli(*args, "--reject-identities-closer-than", threshold, "--reject-closer-than", 0,
                 "--out", tmp_path / "both")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "both" / "corpus.json").read_text())["rejection"]["threshold"] == threshold
    # auto: calibrated on how close the training subjects come to each other
    result = cli(*args, "--reject-identities-closer-than", "auto", "--out", tmp_path / "auto")
    assert result.exit_code == 0, result.output
    face = json.loads((tmp_path / "auto" / "corpus.json").read_text())["identities"]["face_filter"]
    assert face["method"] == "leave-subject-out" and face["quantile"] == 0.05 and face["threshold"] > 0


@pytest.mark.parametrize("args, message", [
    (["--new-identities", 2, "--reject-identities-closer-than", 3.0], "passed the further check"),
    (["--reject-identities-closer-than", "auto"], "use it with --new-identities"),
    (["--new-identities", 2, "--reject-identities-closer-than", "far"],
     "--reject-identities-closer-than must be auto, off or a distance"),
])
def test_identity_face_filter_bad_input_writes_nothing(identity_model, cli, tmp_path, args, message):
    # RMS distances of frames in [-1, 1] are at most 2: a threshold of 3 refuses every face
    result = cli(identity_model, "--emotion", "happiness", "--n", 2, "--frames", 4, *args, "--out", tmp_path / "bad")
    assert result.exit_code != 0 and message in " ".join(result.output.split())
    assert not (tmp_path / "bad").exists()


def test_identity_is_held_over_a_sequence(identity_model):
    gen = load_generator(identity_model)
    v = gen.prior.draw(2, seed=0)
    aus = np.zeros((4, 17), np.float32)
    aus[:, AU_INDEX[12]] = np.linspace(0, 4, 4)  # AU12 rises over the sequence
    seq = gen.sample(aus, seed=5, identity=v[0], batch_size=4)
    # one vector for every frame: the frames equal those generated one at a time with that vector
    one_by_one = np.concatenate([gen.sample(aus[i:i + 1], seed=5, identity=v[0]) for i in range(4)])
    np.testing.assert_allclose(seq, one_by_one, atol=1e-5)
    # and identity is an input of its own: another identity, same AUs and noise, another face
    other = gen.sample(aus, seed=5, identity=v[1], batch_size=4)
    assert np.abs(other - seq).mean() > 1e-3
    with pytest.raises(ValueError, match=r"identity must have shape \(n_frames, 8\)"):
        gen.sample(aus, seed=5, identity=np.zeros(3, np.float32))


def test_noise_schemes_and_flicker(identity_model):
    from synth.scoring.coherence import frame_flicker

    walk = identity_noise((4, 16, 16), 400, scheme="walk", seed=1, rho=0.9)
    assert abs(walk.std() - 1) < 0.05
    lag1 = np.corrcoef(walk[:-1].ravel(), walk[1:].ravel())[0, 1]
    assert abs(lag1 - 0.9) < 0.02
    gen = load_generator(identity_model)
    aus = np.zeros((6, 17), np.float32)  # a still face: any flicker comes from the noise scheme
    v = gen.prior.draw(1, seed=0)[0]
    flicker = {s: frame_flicker(gen.sample(aus, seed=2, identity=v, noise=s)) for s in ("shared", "walk",
                                                                                       "independent")}
    assert flicker["shared"] < 1e-6 < flicker["walk"] < flicker["independent"], flicker


@pytest.mark.parametrize("name, size", [("diffusion-64-cpu", 64), ("diffusion-128", 128)])
def test_shipped_identity_configs(name, size):
    config = load_synth_config(name)
    assert config.data.image_size == size and config.model.identity.enabled
    assert config.model.identity.max_new_identities >= 50  # the 50 new identities per corpus


def test_identity_config_refusals(subject_sessions, tmp_path):
    with pytest.raises(ValueError, match="cannot be combined"):
        load_synth_config("tiny-diffusion-identity", ["privacy.dp_sgd=true", "privacy.noise_multiplier=1.0"])
    with pytest.raises(ValueError, match="sessions hold 1 subject"):
        train_generator(subject_sessions[:1], load_synth_config("tiny-diffusion-identity"), tmp_path / "m",
                        progress=False)


# --------------------------------------------------------------------------- corpus contract
def test_sample_new_identities_contract_and_determinism(identity_model, cli, tmp_path):
    args = [identity_model, "--emotion", "happiness,surprise", "--kind", "micro", "--n", 5, "--new-identities", 2,
            "--seed", 3, "--fps", 10, "--frames", 8]
    result = cli(*args, "--out", tmp_path / "c1")
    assert result.exit_code == 0, result.output
    assert "2 new identities" in result.output
    corpus = json.loads((tmp_path / "c1" / "corpus.json").read_text())
    ids = corpus["identities"]
    assert (ids["kind"], ids["n"]) == ("new", 2) and ids["min_distance"] > 0 and ids["prior"]["kind"] == "mixture"
    assert [s["identity"] for s in corpus["sequences"]] == ["new-0000", "new-0001"] * 2 + ["new-0000"]
    for entry in corpus["sequences"]:
        _, info = _frames(tmp_path / "c1", entry["id"])
        assert info["identity"] == entry["identity"]
    # deterministic from the seed: the same identities and frames again; another seed, other people
    assert cli(*args, "--out", tmp_path / "c2").exit_code == 0
    again = json.loads((tmp_path / "c2" / "corpus.json").read_text())
    assert again["identities"]["vectors"] == ids["vectors"]
    np.testing.assert_array_equal(_frames(tmp_path / "c1", "seq-00003")[0], _frames(tmp_path / "c2", "seq-00003")[0])
    assert cli(*args[:-6], "--seed", 4, "--fps", 10, "--frames", 8, "--out", tmp_path / "c3").exit_code == 0
    other = json.loads((tmp_path / "c3" / "corpus.json").read_text())["identities"]["vectors"]
    assert not np.allclose(other, ids["vectors"])
    # the sequences of one identity share a face: closer to each other than to the other identity's
    a0, a2, b1 = (_frames(tmp_path / "c1", f"seq-0000{i}")[0][0].astype(float) for i in (0, 2, 1))
    assert np.abs(a0 - a2).mean() < np.abs(a0 - b1).mean()


def test_leaking_control_writes_training_ids(identity_model, cli, tmp_path):
    result = cli(identity_model, "--emotion", "happiness", "--n", 4, "--identities-from-training", "--fps", 10,
                 "--frames", 8,
                 "--out", tmp_path / "leak")
    assert result.exit_code == 0, result.output
    corpus = json.loads((tmp_path / "leak" / "corpus.json").read_text())
    assert corpus["identities"]["kind"] == "train" and corpus["identities"]["n"] == 3
    labels = [s["identity"] for s in corpus["sequences"]]
    assert labels == ["train:sub-id000", "train:sub-id001", "train:sub-id002", "train:sub-id000"]
    assert _frames(tmp_path / "leak", "seq-00001")[1]["identity"] == "train:sub-id001"
    np.testing.assert_allclose(corpus["identities"]["vectors"], load_generator(identity_model).identity_embeddings())


@pytest.mark.parametrize("args, message", [
    (["--new-identities", 21], "supports at most 20"),
    (["--new-identities", 2, "--identities-from-training"], "not both"),
    (["--new-identities", 0], "at least 1"),
])
def test_identity_bad_input_writes_nothing(identity_model, cli, tmp_path, args, message):
    result = cli(identity_model, "--emotion", "happiness", "--n", 2, *args, "--out", tmp_path / "bad")
    assert result.exit_code != 0 and message in " ".join(result.output.split())
    assert not (tmp_path / "bad").exists()


def test_requests_for_aus_the_model_never_saw_are_refused(identity_model, cli, tmp_path):
    # The model saw happiness and surprise only (RIG): sadness needs AU04 and AU15, which no training frame shows.
    coverage = read_model_card(identity_model)["frames"]["au_coverage"]
    assert coverage["active_frames"]["AU12"] >= 5 and coverage["active_frames"]["AU04"] == 0
    assert coverage["max"]["AU12"] > coverage["active_intensity"]
    result = cli(identity_model, "--emotion", "happiness,sadness", "--n", 2, "--out", tmp_path / "sad")
    message = " ".join(result.output.split())
    assert result.exit_code != 0 and "sadness moves AU04, AU15" in message and "happiness moves" not in message
    assert "AU12 (" in message and not (tmp_path / "sad").exists()
    csv = tmp_path / "t.csv"
    csv.write_text("time_s,AU12,AU09\n0,0,0\n0.2,3,1\n0.4,0,0\n")
    result = cli(identity_model, "--au-timeline", csv, "--out", tmp_path / "timeline")
    assert result.exit_code != 0 and "the AU timeline moves AU09" in " ".join(result.output.split())
    assert not (tmp_path / "timeline").exists()
    csv.write_text("time_s,AU12,AU09\n0,0,0\n0.2,3,0\n0.4,0,0\n")  # AU09 at 0 throughout asks for nothing
    assert cli(identity_model, "--au-timeline", csv, "--fps", 10, "--out", tmp_path / "ok").exit_code == 0


def test_au_coverage_known_answer():
    from synth.generative.coverage import ACTIVE_INTENSITY, MIN_ACTIVE_FRAMES, au_coverage, emotion_aus, \
        untrained_aus

    aus = np.zeros((10, 17))
    aus[:MIN_ACTIVE_FRAMES, AU_INDEX[12]] = ACTIVE_INTENSITY  # exactly at both thresholds: trained
    aus[:MIN_ACTIVE_FRAMES - 1, AU_INDEX[4]] = 3.0            # one frame too few
    aus[:, AU_INDEX[1]] = ACTIVE_INTENSITY - 0.01              # never reaches the intensity
    coverage = au_coverage(aus)
    assert coverage["active_frames"]["AU12"] == MIN_ACTIVE_FRAMES
    assert coverage["active_frames"]["AU04"] == MIN_ACTIVE_FRAMES - 1
    assert coverage["active_frames"]["AU01"] == 0 and coverage["max"]["AU04"] == 3.0
    card = {"frames": {"au_coverage": coverage}}
    assert untrained_aus(card, [1, 4, 12]) == [1, 4]
    assert untrained_aus({"frames": {}}, [1, 4]) is None  # an older card: not checked
    assert emotion_aus("surprise") == ([1, 2, 5], [25, 26]) and emotion_aus("sadness") == ([1, 4, 15], [])


def test_guidance_is_recorded(identity_model, cli, tmp_path):
    args = ["--emotion", "happiness", "--n", 2, "--new-identities", 2, "--fps", 10, "--frames", 6, "--seed", 2]
    assert cli(identity_model, *args, "--out", tmp_path / "plain").exit_code == 0
    result = cli(identity_model, *args, "--guidance", 2.5, "--out", tmp_path / "guided")
    assert result.exit_code == 0, result.output
    corpus = json.loads((tmp_path / "guided" / "corpus.json").read_text())
    assert [s["guidance_scale"] for s in corpus["sequences"]] == [2.5, 2.5]
    assert "guidance_scale" not in json.loads((tmp_path / "plain" / "corpus.json").read_text())["sequences"][0]
    assert not np.array_equal(_frames(tmp_path / "plain", "seq-00000")[0], _frames(tmp_path / "guided", "seq-00000")[0])


def test_sampler_is_chosen_and_recorded(identity_model, cli, tmp_path):
    args = ["--emotion", "happiness", "--n", 1, "--new-identities", 1, "--fps", 10, "--frames", 6, "--seed", 2]
    assert cli(identity_model, *args, "--out", tmp_path / "default").exit_code == 0
    result = cli(identity_model, *args, "--sampler", "dpm++", "--steps", 3, "--out", tmp_path / "dpm")
    assert result.exit_code == 0, result.output
    default = json.loads((tmp_path / "default" / "corpus.json").read_text())["sequences"][0]
    dpm = json.loads((tmp_path / "dpm" / "corpus.json").read_text())["sequences"][0]
    card = read_model_card(identity_model)["config"]["model"]
    assert (default["sampler"], default["sampler_steps"]) == (card["sampler"], card["num_inference_steps"])
    assert (dpm["sampler"], dpm["sampler_steps"]) == ("dpm++", 3)
    assert not np.array_equal(_frames(tmp_path / "default", "seq-00000")[0], _frames(tmp_path / "dpm", "seq-00000")[0])
    # the swap does not touch the weights: the model's own sampler gives the default corpus again
    gen = load_generator(identity_model)
    gen.set_sampler("dpm++")
    gen.set_sampler(card["sampler"])
    vector = np.asarray(json.loads((tmp_path / "default" / "corpus.json").read_text())["identities"]["vectors"][0])
    with open_session(tmp_path / "default" / "sessions" / "seq-00000.h5") as session:
        aus = np.asarray(session.streams["ActionUnits"].data[:])
    rgb, _ = rgbd_to_images(gen.sample(aus, seed=2, identity=vector))
    np.testing.assert_array_equal(rgb, _frames(tmp_path / "default", "seq-00000")[0])
    with pytest.raises(ValueError, match="Unknown sampler 'euler'"):
        gen.set_sampler("euler")
    bad = cli(identity_model, *args, "--sampler", "euler", "--out", tmp_path / "bad")
    assert bad.exit_code != 0 and "Unknown sampler 'euler'" in bad.output and not (tmp_path / "bad").exists()


def test_au_only_model_samples_identity_none(au_only_model, cli, tmp_path):
    result = cli(au_only_model, "--emotion", "happiness", "--n", 2, "--fps", 10, "--frames", 8, "--out", tmp_path / "c")
    assert result.exit_code == 0, result.output
    corpus = json.loads((tmp_path / "c" / "corpus.json").read_text())
    assert corpus["identities"]["kind"] == "none" and corpus["identities"]["n"] == 0
    assert {s["identity"] for s in corpus["sequences"]} == {"none"}
    assert _frames(tmp_path / "c", "seq-00000")[1]["identity"] == "none"
    for flag in (["--new-identities", "5"], ["--identities-from-training"]):
        result = cli(au_only_model, "--emotion", "happiness", "--n", 2, *flag, "--out", tmp_path / "x")
        assert result.exit_code != 0 and "has no identity input" in " ".join(result.output.split())
        assert not (tmp_path / "x").exists()


def test_interrupted_sampling_resumes_with_the_same_people(identity_model, cli, tmp_path):
    common = [identity_model, "--emotion", "happiness,surprise", "--new-identities", 2, "--fps", 10, "--frames", 8]
    assert cli(*common, "--n", 3, "--seed", 7, "--out", tmp_path / "whole").exit_code == 0
    # an interrupted run left two sequences; --append (no seed, no identities) finishes it
    assert cli(*common, "--n", 2, "--seed", 7, "--out", tmp_path / "part").exit_code == 0
    result = cli(identity_model, "--emotion", "happiness,surprise", "--fps", 10, "--frames", 8, "--n", 1,
                 "--append",
                 "--out", tmp_path / "part")
    assert result.exit_code == 0, result.output
    whole, part = (json.loads((tmp_path / d / "corpus.json").read_text()) for d in ("whole", "part"))
    assert [s["identity"] for s in part["sequences"]] == [s["identity"] for s in whole["sequences"]]
    assert part["identities"]["vectors"] == whole["identities"]["vectors"]
    np.testing.assert_array_equal(_frames(tmp_path / "part", "seq-00002")[0],
                                  _frames(tmp_path / "whole", "seq-00002")[0])
    # appending other people to a corpus is refused
    result = cli(*common[:-6], "--new-identities", 3, "--n", 1, "--append", "--out", tmp_path / "part")
    assert result.exit_code != 0 and "continues with the same identities" in " ".join(result.output.split())


# --------------------------------------------------------------------------- learned AU motion model
@pytest.fixture(scope="module")
def motion_model(identity_model, tmp_path_factory):
    import shutil

    from emosync import app

    out = tmp_path_factory.mktemp("motion") / "model"
    shutil.copytree(identity_model, out, ignore=shutil.ignore_patterns("checkpoints"))
    result = CliRunner().invoke(app, ["synth", "fit-motion", str(out), "--set", "ridge=0.02"])
    assert result.exit_code == 0, result.output
    assert "AU motion model in" in result.output
    return out


def test_fit_motion_adds_a_motion_model_to_the_card(identity_model, motion_model):
    card = read_model_card(motion_model)
    assert card["motion"]["subjects"] == ["sub-id000", "sub-id001", "sub-id002"]
    assert card["config"]["model"]["motion"]["enabled"] and card["config"]["model"]["motion"]["ridge"] == 0.02
    assert set(card["motion"]["aus"]) >= {12, 1, 2}  # happiness and surprise were shown
    assert (motion_model / "weights" / "au_motion.safetensors").is_file()
    gen = load_generator(motion_model)
    assert gen.expression == "motion" and gen.motion is not None
    assert load_generator(identity_model).expression == "diffusion"  # the original is untouched


def test_motion_sequences_keep_one_face_and_follow_the_aus(identity_model, motion_model, cli, tmp_path):
    args = ["--emotion", "happiness", "--n", 1, "--new-identities", 1, "--fps", 10, "--frames", 8, "--seed", 2]
    result = cli(motion_model, *args, "--out", tmp_path / "motion")
    assert result.exit_code == 0, result.output
    seq = json.loads((tmp_path / "motion" / "corpus.json").read_text())["sequences"][0]
    assert seq["expression"] == "motion"
    rgb, _ = _frames(tmp_path / "motion", "seq-00000")
    with open_session(tmp_path / "motion" / "sessions" / "seq-00000.h5") as session:
        aus = np.asarray(session.streams["ActionUnits"].data[:])
    still = aus.max(axis=1) == 0
    assert still.sum() >= 2 and (~still).any()
    # frames with no AU are the one sampled neutral face, exactly; expressive frames differ from it
    neutral = rgb[np.flatnonzero(still)[0]].astype(int)
    assert all(np.array_equal(rgb[i], rgb[np.flatnonzero(still)[0]]) for i in np.flatnonzero(still))
    apex = int(np.argmax(aus.sum(axis=1)))
    assert np.abs(rgb[apex].astype(int) - neutral).mean() > 0.05
    # --expression diffusion samples the same model's denoiser: the frames of the model without a motion model
    assert cli(motion_model, *args, "--expression", "diffusion", "--out", tmp_path / "denoiser").exit_code == 0
    assert cli(identity_model, *args, "--out", tmp_path / "original").exit_code == 0
    np.testing.assert_array_equal(_frames(tmp_path / "denoiser", "seq-00000")[0],
                                  _frames(tmp_path / "original", "seq-00000")[0])
    assert json.loads((tmp_path / "original" / "corpus.json").read_text())["sequences"][0]["expression"] == "diffusion"


@pytest.mark.parametrize("which, args, message", [
    ("motion", ["--guidance", "2"], "Expression guidance acts on the denoiser"),
    ("plain", ["--expression", "motion"], "has no AU motion model"),
    ("motion", ["--expression", "warp"], "Unknown expression renderer 'warp'"),
])
def test_motion_bad_input_writes_nothing(identity_model, motion_model, cli, tmp_path, which, args, message):
    model = motion_model if which == "motion" else identity_model
    result = cli(model, "--emotion", "happiness", "--n", 1, *args, "--out", tmp_path / "c")
    assert result.exit_code != 0 and message in " ".join(result.output.split())
    assert not (tmp_path / "c").exists()


def test_training_with_motion_enabled_fits_it(subject_sessions, tmp_path):
    config = load_synth_config("tiny-diffusion-identity", ["optim.steps=1", "model.motion.enabled=true"])
    model = train_generator(subject_sessions, config, tmp_path / "m", progress=False)
    card = read_model_card(model)
    assert 12 in card["motion"]["aus"] and card["motion"]["n_frames"] == card["frames"]["n_frames"]
    assert load_generator(model).expression == "motion"


def test_fit_motion_refusals(au_only_model, subject_sessions, tmp_path):
    import shutil

    from emosync import app

    runner = CliRunner()
    bad = runner.invoke(app, ["synth", "fit-motion", str(au_only_model), "--set", "flow_window_px=1"])
    assert bad.exit_code != 0 and "flow_window_px" in bad.output
    # a training session that changed since training: refused, and the folder keeps no motion model
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    copies = [shutil.copy(s, sessions / s.name) for s in subject_sessions]
    model = train_generator(copies, load_synth_config("tiny-diffusion", ["optim.steps=1", "data.image_size=16",
                                                                          "data.max_frames=16"]),
                            tmp_path / "m", progress=False)
    with open(copies[0], "ab") as f:
        f.write(b"\0")
    result = runner.invoke(app, ["synth", "fit-motion", str(model)])
    assert result.exit_code != 0 and "changed since" in " ".join(result.output.split())
    assert "motion" not in read_model_card(model) and not (model / "weights" / "au_motion.safetensors").exists()
