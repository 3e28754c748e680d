"""The privacy audit on real sessions of the simulated rig: it fails on copies, passes held-out frames, runs end to end.

One session-scoped set of rig sessions (two training subjects, one held-out subject) and one
tiny generator serve every test here; corpora are written through ``acquisition.SessionWriter``
in the corpus layout (``corpus.json`` + ``sessions/seq-XXXXX.h5``) by
:func:`synth.privacy.corpus_frames.write_reference_corpus`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


#: Small and fast: the audit's identity encoder and MIA at test size.
FAST = ["threads=1", "identity.steps=40", "identity.batch_size=32", "membership.max_frames=32", "membership.repeats=1"]


def _rig_session(path: Path, identity: int, seed: int) -> Path:
    from synth.rig.offline import write_rig_session

    return write_rig_session(path, duration_s=2.0, seed=seed, profile="light",
                             overrides=[f"identity_seed={identity}", "timeline.expressions_per_minute=60"],
                             modalities=("rgb", "depth", "au"))


@pytest.fixture(scope="session")
def rig_sessions(tmp_path_factory) -> dict[str, list[Path]]:
    """Training subjects (faces 3 and 5) and a held-out subject (face 7), 2 s each."""
    root = tmp_path_factory.mktemp("privacy-sessions")
    return {"train": [_rig_session(root / "train-a.h5", 3, 3), _rig_session(root / "train-b.h5", 5, 5)],
            "holdout": [_rig_session(root / "holdout.h5", 7, 7)]}


@pytest.fixture(scope="session")
def tiny_model(rig_sessions, tmp_path_factory) -> Path:
    """A tiny diffusion generator trained for a few steps on the training sessions (part A's training API)."""
    from synth.generative.config import load_synth_config
    from synth.generative.train import train_generator

    out = tmp_path_factory.mktemp("privacy-model") / "model"
    # Part A's tiny config (32 px, stride 2), a few steps: the audit needs a real model folder, not a good model.
    config = load_synth_config("tiny-diffusion", ["optim.steps=3", "threads=1", "logging.sample_every=1000"])
    return train_generator(rig_sessions["train"], config, out, progress=False, device="cpu")


def write_corpus(corpus_dir: Path, rgbd: np.ndarray, aus: np.ndarray, *, model_dir: Path,
                 rejection: dict | None = None) -> Path:
    """Frames as a corpus folder: sessions written through SessionWriter, corpus.json beside them."""
    from synth.privacy.corpus_frames import write_reference_corpus

    return write_reference_corpus(corpus_dir, rgbd, aus, model_dir=model_dir, note="test frames", rejection=rejection)


def _frames(model_dir: Path, sessions: list[Path]):
    from synth.generative import load_face_frames, load_generator

    return load_face_frames(sessions, load_generator(model_dir).image_size)


def test_audit_flags_a_corpus_of_training_copies(rig_sessions, tiny_model, tmp_path):
    from synth.privacy import audit_corpus, load_audit_config

    train = _frames(tiny_model, rig_sessions["train"])
    rng = np.random.default_rng(0)
    copies = np.clip(train.rgbd[::3] + rng.normal(0, 0.01, train.rgbd[::3].shape), -1, 1).astype(np.float32)
    corpus = write_corpus(tmp_path / "copies", copies, train.aus[::3], model_dir=tiny_model,
                          rejection=None)
    report = audit_corpus(tiny_model, corpus, rig_sessions["train"], rig_sessions["holdout"],
                          load_audit_config("audit", FAST))
    result = report.result
    assert result["passed"] is False
    assert result["memorized_frames"] == len(copies)  # every copy lies under the calibrated threshold
    assert result["checks"]["nn_pixel_p01"]["passed"] is False
    assert result["checks"]["memorized_fraction"]["passed"] is False
    assert result["nearest_neighbour"]["synthetic_to_train"]["median"] < 0.02  # ~ the added noise
    assert result["rejection_rate"] is None
    # The held-out fraction under the threshold is measured (the floor may set the threshold), not assumed.
    from acquisition.utils.hashing import file_sha256
    from synth.privacy.nearest import nearest_neighbours

    mem = result["memorization"]
    holdout_nn = nearest_neighbours(_frames(tiny_model, rig_sessions["holdout"]).rgbd, report.closest_pairs[1]).distance
    assert mem["holdout_fraction_under_threshold"] == pytest.approx(np.mean(holdout_nn < mem["threshold"]))
    # What was audited is recorded, so a data card can tell when the corpus changed afterwards.
    manifest = json.loads((corpus / "corpus.json").read_text())
    assert result["inputs"]["corpus_sha256"] == file_sha256(corpus / "corpus.json")
    assert result["inputs"]["sequence_ids"] == [seq["id"] for seq in manifest["sequences"]]
    files = report.write(tmp_path / "out")
    assert json.loads(files["json"].read_text())["passed"] is False
    markdown = files["markdown"].read_text()
    assert "FAIL" in markdown and files["closest_pairs"].stat().st_size > 0
    assert f"measured: {100 * mem['holdout_fraction_under_threshold']:.3g} % of held-out" in markdown
    first = files["json"].read_text()
    again = report.write(tmp_path / "out")  # a second audit never overwrites the first
    assert [p.name for p in again.values()] == ["audit-2.json", "audit-2.md", "closest_pairs-2.png",
                                                "identity_distances-2.png"]
    assert files["json"].read_text() == first


def test_held_out_real_frames_as_a_corpus_pass_the_distance_checks(rig_sessions, tiny_model, tmp_path):
    from synth.privacy import audit_corpus, load_audit_config

    holdout = _frames(tiny_model, rig_sessions["holdout"])
    corpus = write_corpus(tmp_path / "real", holdout.rgbd, holdout.aus, model_dir=tiny_model,
                          rejection={"n_generated": 12, "n_rejected": 3, "rate": 0.25,
                                                                   "threshold": 0.1})
    result = audit_corpus(tiny_model, corpus, rig_sessions["train"], rig_sessions["holdout"],
                          load_audit_config("audit", FAST)).result
    for name in ("nn_pixel_p01", "nn_pixel_median", "nn_embedding_p01", "nn_embedding_median", "memorized_fraction"):
        assert result["checks"][name]["passed"] is True, (name, result["checks"][name])
    assert result["memorized_frames"] <= 0.02 * len(holdout)
    assert result["rejection_rate"] == pytest.approx(0.25)
    assert result["inputs"]["baseline"] == "held-out subjects"
    # One held-out person in one session: nothing to resample, every interval is its point value.
    assert {k: result["reference_interval"][k] for k in ("unit", "n_units")} == {"unit": "session", "n_units": 1}
    pixel = result["nearest_neighbour"]
    assert pixel["holdout_interval"]["median"] == [pixel["holdout_to_train"]["median"]] * 2
    assert pixel["holdout_interval"]["n_resamples"] == 0
    assert result["membership_inference"]["interval"]["auc"] == [result["membership_inference"]["auc"]] * 2
    assert result["memorization"]["interval"]["threshold"] == [result["memorization"]["threshold"]] * 2
    # ... and how other people would judge is unknown, not "holds".
    stable = [c["stable"] for c in result["checks"].values() if "stable" in c]
    assert len(stable) == 6 and set(stable) == {None}
    # The identity encoder tells the two training faces apart on frames it did not train on.
    assert result["nearest_neighbour_embedding"]["encoder"]["validation_accuracy"] >= 0.9


def test_audit_refuses_a_training_session_as_holdout(rig_sessions, tiny_model, tmp_path):
    from synth.privacy import audit_corpus, load_audit_config

    holdout = _frames(tiny_model, rig_sessions["holdout"])
    corpus = write_corpus(tmp_path / "c", holdout.rgbd[:10], holdout.aus[:10], model_dir=tiny_model)
    with pytest.raises(ValueError, match="training sessions"):
        audit_corpus(tiny_model, corpus, None, rig_sessions["train"][:1], load_audit_config("audit", FAST))


def test_rejection_filter_from_model_dir_drops_copies_keeps_other_faces(rig_sessions, tiny_model):
    from synth.privacy import NearestNeighbourFilter

    nn_filter = NearestNeighbourFilter.from_model_dir(tiny_model)
    train = _frames(tiny_model, rig_sessions["train"])
    holdout = _frames(tiny_model, rig_sessions["holdout"])
    assert nn_filter.calibration["method"] == "leave-moment-out"
    assert nn_filter(train.rgbd[::2]).all()  # the model's training frames (stride 2) are exact copies
    assert not nn_filter(holdout.rgbd).any()
    with pytest.raises(ValueError, match="'auto' or a number"):
        NearestNeighbourFilter.from_model_dir(tiny_model, threshold="median")


def test_cli_audit_end_to_end(rig_sessions, tiny_model, tmp_path):
    import typer
    from typer.testing import CliRunner

    from synth.cli.audit import audit

    holdout = _frames(tiny_model, rig_sessions["holdout"])
    corpus = write_corpus(tmp_path / "c", holdout.rgbd[::2], holdout.aus[::2], model_dir=tiny_model)
    app = typer.Typer()
    app.command("audit")(audit)
    app.command("other")(lambda: None)  # two commands, so typer keeps "audit" as a sub-command name
    args = ["audit", str(tiny_model), str(corpus), *sum((["--train", str(p)] for p in rig_sessions["train"]), []),
            "--holdout", str(rig_sessions["holdout"][0]), "--json", *sum((["--set", s] for s in FAST), [])]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    result = json.loads(first.stdout)  # exactly one JSON object on stdout
    for key in ("membership_inference", "nearest_neighbour", "nearest_neighbour_embedding", "memorized_frames",
                "rejection_rate", "passed", "thresholds", "n_frames"):
        assert key in result
    assert 0.0 <= result["membership_inference"]["auc"] <= 1.0
    assert set(result["nearest_neighbour"]["holdout_to_train"]) >= {"median", "p01"}
    assert result["inputs"]["corpus_matches_model"] is True
    assert json.loads((corpus / "audit.json").read_text()) == {**result, "files": result["files"]}
    assert (corpus / "audit.md").is_file() and (corpus / "closest_pairs.png").is_file()
    bad = CliRunner().invoke(app, ["audit", str(tiny_model), str(corpus), "--holdout", str(rig_sessions["holdout"][0]),
                                   "--set", "rule.nope=1"])
    assert bad.exit_code == 1 and "nope" in bad.output


def test_corpus_frames_round_trip_and_even_subsampling(tiny_model, tmp_path):
    from synth.privacy.corpus_frames import load_corpus_frames, write_reference_corpus

    rng = np.random.default_rng(1)
    rgbd = rng.uniform(-1, 1, (10, 4, 32, 32)).astype(np.float32)
    corpus = write_reference_corpus(tmp_path / "c", rgbd, np.zeros((10, 17)), model_dir=tiny_model, note="noise",
                                    frames_per_sequence=4)
    whole = load_corpus_frames(corpus, 32)
    assert list(whole.sequence_ids) == ["seq-00000"] * 4 + ["seq-00001"] * 4 + ["seq-00002"] * 2
    np.testing.assert_allclose(whole.rgbd[:, :3], rgbd[:, :3], atol=0.5 / 127.5 + 1e-6)  # 8-bit RGB
    np.testing.assert_allclose(whole.rgbd[:, 3], rgbd[:, 3], atol=1.0 / 1200 + 1e-6)  # 1-mm depth over 1200 mm
    part = load_corpus_frames(corpus, 32, max_frames=4)  # frames 0, 3, 6, 9 of the concatenation
    np.testing.assert_array_equal(part.frame_index, [0, 3, 2, 1])
    np.testing.assert_array_equal(part.rgbd, whole.rgbd[[0, 3, 6, 9]])
    with pytest.raises(FileExistsError):
        write_reference_corpus(tmp_path / "c", rgbd, np.zeros((10, 17)), model_dir=tiny_model, note="again")
    with pytest.raises(FileNotFoundError, match="not a corpus folder"):
        load_corpus_frames(tmp_path, 32)
