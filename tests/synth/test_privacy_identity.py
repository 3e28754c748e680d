"""Identity privacy in the audit: are the corpus's people new, and can a training subject be named?

Known answers on real sessions of the simulated rig (``synth.rig.offline``, the wide identity family):
four training faces, four held-out faces (the reference for new people) and four other faces
that neither the model nor the audit saw. Corpora are written in the corpus layout with an
``identity`` per sequence, as an identity-conditioned generator records it:

- the training faces' own frames, labelled as new identities, must FAIL the identity checks;
- the other real faces, labelled as new identities, must PASS them;
- frames labelled ``train:<subject>`` (the leaking control) must be named right far above chance.

The statistics (order-statistic bound, rank test, exceedance test) are checked against values
derived by hand or by enumerating every arrangement.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

#: The audit at test size; the identity encoder needs enough steps to tell four faces apart. Membership
#: inference is not what these tests are about (tests/synth/test_privacy_audit.py runs it).
FAST = ["threads=1", "identity.steps=150", "identity.batch_size=32", "membership.enabled=false"]
IDENTITY_CHECKS = ("identity_distance_median", "identity_distance_rank", "reidentification_rate")


def _rig_session(path: Path, identity: int, seed: int) -> Path:
    from synth.rig.offline import write_rig_session

    return write_rig_session(path, duration_s=2.0, seed=seed, profile="light",
                             overrides=[f"identity_seed={identity}", "timeline.expressions_per_minute=60",
                                        "face.family=wide"],
                             modalities=("rgb", "depth", "au"))


@pytest.fixture(scope="session")
def faces(tmp_path_factory) -> dict[str, list[Path]]:
    """Training faces 1-4, held-out faces 5-8, other faces 9-12 (2 s each), and a second session of face 1."""
    root = tmp_path_factory.mktemp("identity-sessions")
    groups = {"train": (1, 2, 3, 4), "holdout": (5, 6, 7, 8), "other": (9, 10, 11, 12)}
    out = {name: [_rig_session(root / f"{name}-{i}.h5", i, i) for i in ids] for name, ids in groups.items()}
    out["train_again"] = [_rig_session(root / "train-1-again.h5", 1, 101)]
    return out


@pytest.fixture(scope="session")
def model(faces, tmp_path_factory) -> Path:
    """A tiny diffusion generator (a few steps): the audit needs a real model folder, not a good model."""
    from synth.generative.config import load_synth_config
    from synth.generative.train import train_generator

    out = tmp_path_factory.mktemp("identity-model") / "model"
    config = load_synth_config("tiny-diffusion", ["optim.steps=3", "threads=1", "logging.sample_every=1000"])
    return train_generator(faces["train"], config, out, progress=False, device="cpu")


def _frames(model_dir: Path, sessions: list[Path]):
    from synth.generative import load_face_frames, load_generator

    return load_face_frames(sessions, load_generator(model_dir).image_size)


def _corpus(path: Path, model_dir: Path, sessions: list[Path], label) -> Path:
    """The sessions' face frames as a corpus; ``label(subject_ids, k) -> identities`` (None: no identity)."""
    from synth.privacy.corpus_frames import write_reference_corpus

    frames = _frames(model_dir, sessions)
    identities = None if label is None else label(frames.subject_ids.astype(str), np.arange(len(frames)))
    return write_reference_corpus(path, frames.rgbd, frames.aus, model_dir=model_dir, note="identity test",
                                  identities=identities, frames_per_sequence=15)


def _audit(model_dir: Path, corpus: Path, train: list[Path], holdout: list[Path], overrides=()):
    from synth.privacy import audit_corpus, load_audit_config

    return audit_corpus(model_dir, corpus, train, holdout, load_audit_config("audit", [*FAST, *overrides]))


def _new_per_chunk(sid: np.ndarray, k: np.ndarray) -> np.ndarray:
    # One "new" identity per 15 frames, as a generator drawing many identities would label them.
    return np.array([f"new-{s}-{i // 15:02d}" for s, i in zip(sid, k)])


# -- known answers on rig sessions -------------------------------------------------------------------

def test_training_faces_labelled_new_fail_the_identity_checks(faces, model, tmp_path):
    corpus = _corpus(tmp_path / "copies", model, faces["train"], _new_per_chunk)
    report = _audit(model, corpus, faces["train"], faces["holdout"])
    result, block = report.result, report.result["identity_privacy"]
    assert block["mode"] == "full" and block["n_identities"]["new"] == 16
    assert block["identity_source"].startswith("corpus.json")
    assert result["checks"]["identity_distance_median"]["passed"] is False
    assert result["checks"]["identity_distance_rank"]["passed"] is False
    assert result["passed"] is False
    # A training face's own frames sit on its centroid, far closer than any new person.
    assert block["distance_test"]["synthetic_median"] < 0.01 < block["holdout"]["distance"]["min"]
    assert block["distance_test"]["rank_test"]["auc"] == 1.0
    # Each identity is attributed to the face it was cut from.
    for identity in block["synthetic"]["identities"]:
        assert identity["top1_subject"] == identity["nearest_subject"] == identity["identity"][4:13]
    files = report.write(tmp_path / "out")
    written = json.loads(files["json"].read_text())
    assert "_plot" not in json.dumps(written) and written["identity_privacy"]["reidentification"]["rate"] >= 0
    assert files["identity_distances"].name == "identity_distances.png" and files["identity_distances"].stat().st_size
    markdown = files["markdown"].read_text()
    assert "## New people?" in markdown and "| identity_distance_median |" in markdown


def test_other_real_people_labelled_new_pass_the_identity_checks(faces, model, tmp_path):
    corpus = _corpus(tmp_path / "others", model, faces["other"], lambda sid, k: np.char.add("new-", sid))
    report = _audit(model, corpus, faces["train"], faces["holdout"])
    block = (result := report.result)["identity_privacy"]
    _check_reference_intervals(report, faces, model, tmp_path)
    assert block["n_identities"] == {"new": 4, "leak": 0, "labelled": 0, "sequence": 0, "total": 4,
                                     "excluded_few_frames": 0}
    for name in IDENTITY_CHECKS:
        assert result["checks"][name]["passed"] is True, (name, result["checks"][name])
    assert block["distance_test"]["synthetic_median"] > block["distance_test"]["holdout_median_lower_bound"]["value"]
    assert block["holdout"]["distance"]["n"] == 4 and block["group_size"] == 60  # one identity = all 60 frames


def _check_reference_intervals(report, faces, model, tmp_path) -> None:
    """The "with other held-out people" intervals of an audit against the 4 held-out faces."""
    from synth.privacy.nearest import nearest_neighbours

    result = report.result
    ref = result["reference_interval"]
    assert (ref["unit"], ref["n_units"], ref["advised_units"]) == ("subject", 4, 8)
    # A resample's median pools whole people, so it lies between the lowest and highest person's median.
    holdout = _frames(model, faces["holdout"])
    distance = nearest_neighbours(holdout.rgbd, report.closest_pairs[1]).distance
    medians = [np.median(distance[holdout.subject_ids == s]) for s in np.unique(holdout.subject_ids)]
    low, high = result["nearest_neighbour"]["holdout_interval"]["median"]
    assert min(medians) - 1e-9 <= low < high <= max(medians) + 1e-9
    tol = 1 - result["thresholds"]["tolerance"]
    for space, block in (("pixel", result["nearest_neighbour"]), ("embedding", result["nearest_neighbour_embedding"])):
        for stat in ("p01", "median"):
            check = result["checks"][f"nn_{space}_{stat}"]
            assert check["bound_interval"] == pytest.approx([tol * x for x in block["holdout_interval"][stat]])
            flips = check["bound_interval"][0] <= check["value"] < check["bound_interval"][1]
            assert check["stable"] is (not flips)
    mem = result["memorization"]["interval"]
    assert mem["threshold"][0] <= result["memorization"]["threshold"] * (1 + 1e-9)
    assert result["checks"]["memorized_fraction"]["value_interval"] == mem["memorized_fraction"]
    markdown = report.write(tmp_path / "intervals")["markdown"].read_text()
    assert "| with other held-out people |" in markdown and "Only 4 held-out subject(s)" in markdown
    assert ("holds" in markdown or "borderline" in markdown) and ("bound " in markdown)


def test_leaking_control_names_the_training_subject(faces, model, tmp_path):
    corpus = _corpus(tmp_path / "leak", model, faces["train"], lambda sid, k: np.char.add("train:", sid))
    block = _audit(model, corpus, faces["train"], faces["holdout"]).result["identity_privacy"]
    leak = block["reidentification"]["leak_control"]
    assert block["n_identities"]["leak"] == 4 and leak["n"] == 4 and leak["chance"] == 0.25
    assert leak["accuracy"] == 1.0 and leak["p_value"] == pytest.approx(0.25 ** 4)
    assert block["distance_test"]["synthetic_median"] < 0.01


def test_corpus_without_identities_counts_each_sequence_as_an_identity(faces, model, tmp_path):
    corpus = _corpus(tmp_path / "old", model, faces["train"], None)  # an AU-only generator's corpus
    result = _audit(model, corpus, faces["train"], faces["holdout"]).result
    block = result["identity_privacy"]
    assert block["identity_source"].startswith("per-sequence fallback")
    assert block["n_identities"]["sequence"] == 16 == result["n_frames"]["synthetic_sequences"]
    assert result["checks"]["identity_distance_median"]["passed"] is False  # still training faces


def test_few_or_no_new_people_among_held_out_subjects(faces, model, tmp_path):
    corpus = _corpus(tmp_path / "few", model, faces["other"], lambda sid, k: np.char.add("new-", sid))
    one = _audit(model, corpus, faces["train"], faces["holdout"][:1]).result
    block = one["identity_privacy"]
    assert block["mode"].startswith("degraded: 1 held-out subject")
    assert block["distance_test"]["holdout_median_lower_bound"]["confidence"] == 0.5
    # 4 identities against 1 person: the rank test cannot reach p < 0.05 (smallest p 1/5), so it does not decide.
    rank = one["checks"]["identity_distance_rank"]
    assert rank["passed"] is None and "cannot reach" in rank["rule"]
    assert one["checks"]["identity_distance_median"]["passed"] is not None
    same_people = _audit(model, corpus, faces["train"], faces["train_again"]).result
    assert "no held-out subject is a new person" in same_people["identity_privacy"]["skipped"]
    assert all(same_people["checks"][name]["passed"] is None for name in IDENTITY_CHECKS)


def test_cli_audit_prints_the_identity_summary(faces, model, tmp_path):
    import typer
    from typer.testing import CliRunner

    from synth.cli.audit import audit

    corpus = _corpus(tmp_path / "c", model, faces["train"], lambda sid, k: np.char.add("train:", sid))
    app = typer.Typer()
    app.command("audit")(audit)
    app.command("other")(lambda: None)  # two commands, so typer keeps "audit" as a sub-command name
    args = ["audit", str(model), str(corpus), *sum((["--train", str(p)] for p in faces["train"]), []),
            *sum((["--holdout", str(p)] for p in faces["holdout"]), []), *sum((["--set", s] for s in FAST), []),
            "--strict"]
    run = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert run.exit_code == 2, run.output  # --strict: the audit fails
    assert "identity_distance_median" in run.output and "re-identified:" in run.output
    assert "leak control: 1.00 named right vs chance 0.25" in run.output
    saved = json.loads((corpus / "audit.json").read_text())
    assert saved["checks"]["identity_distance_median"]["passed"] is False
    assert saved["thresholds"]["identity_privacy"]["alpha"] == 0.05
    assert (corpus / "identity_distances.png").is_file()


def test_corpus_and_session_identities_must_agree(model, tmp_path):
    from synth.privacy.corpus_frames import load_corpus_frames, write_reference_corpus

    rgbd = np.random.default_rng(0).uniform(-1, 1, (6, 4, 32, 32)).astype(np.float32)
    corpus = write_reference_corpus(tmp_path / "c", rgbd, np.zeros((6, 17)), model_dir=model, note="noise",
                                    identities=np.array(["new-0000"] * 4 + ["new-0001"] * 2), frames_per_sequence=3)
    frames = load_corpus_frames(corpus, 32)
    # A sequence never spans two identities: cut at 3 frames and where the identity changes.
    assert list(frames.identities) == ["new-0000"] * 4 + ["new-0001"] * 2
    assert list(frames.sequence_ids) == ["seq-00000"] * 3 + ["seq-00001", "seq-00002", "seq-00002"]
    manifest = json.loads((corpus / "corpus.json").read_text())
    manifest["sequences"][0]["identity"] = "new-0042"
    (corpus / "corpus.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="'new-0042' but the session's root metadata says 'new-0000'"):
        load_corpus_frames(corpus, 32)


# -- the statistics ------------------------------------------------------------------------------------

def test_identity_labels_kinds_and_fallback():
    from synth.privacy.identity_privacy import identity_labels

    labels = identity_labels(np.array(["s0", "s0", "s1", "s2", "s3"]),
                             np.array(["new-0001", "new-0001", "train:sub-id003", "", "None"]))
    assert list(labels.labels) == ["new-0001", "new-0001", "train:sub-id003", "sequence:s2", "sequence:s3"]
    assert labels.kinds == {"new-0001": "new", "train:sub-id003": "leak", "sequence:s2": "sequence",
                            "sequence:s3": "sequence"}
    assert labels.leaked_subjects == {"train:sub-id003": "sub-id003"}
    assert "2 sequence(s) without an identity" in labels.source
    assert identity_labels(np.array(["a", "b"]), np.array(["", ""])).source.startswith("per-sequence fallback")


def test_robust_centroid_ignores_the_least_typical_frames():
    from synth.privacy.identity_privacy import nearest_centroid, robust_centroid

    x = np.array([[1.0, 0.0, 0.0]] * 9 + [[0.0, 1.0, 0.0]])  # nine frames of one direction, one odd frame
    np.testing.assert_allclose(robust_centroid(x, trim_fraction=0.1), [1.0, 0.0, 0.0])
    plain = robust_centroid(x, trim_fraction=0.0)
    np.testing.assert_allclose(plain, np.array([9.0, 1.0, 0.0]) / math.hypot(9, 1))
    distance, index = nearest_centroid(np.array([[0.0, 1.0, 0.0]]), np.eye(3)[[0, 2]])
    assert index[0] == 0 and distance[0] == pytest.approx(math.sqrt(2))  # orthogonal: chord sqrt(2)
    with pytest.raises(ValueError, match="cancel out"):
        robust_centroid(np.array([[1.0, 0.0], [-1.0, 0.0]]), trim_fraction=0.0)


@pytest.mark.parametrize(("k", "order", "confidence"), [
    (1, 1, 0.5), (4, 1, 1 - 0.5 ** 4), (5, 1, 1 - 0.5 ** 5),
    # k = 10: P(Bin(10, 1/2) >= 2) = 1 - 11/1024 >= 0.95 but P(>= 3) = 1 - 56/1024 < 0.95.
    (10, 2, 1 - 11 / 1024)])
def test_median_lower_bound_is_the_binomial_order_statistic(k, order, confidence):
    from synth.privacy.identity_privacy import median_lower_bound

    values = np.arange(k, 0, -1) / 10.0  # unsorted on purpose
    bound = median_lower_bound(values, alpha=0.05)
    assert bound["order"] == order and bound["confidence"] == pytest.approx(confidence)
    assert bound["value"] == pytest.approx(order / 10.0)


def test_rank_test_hand_values():
    from synth.privacy.identity_privacy import rank_test_smaller

    below = rank_test_smaller([0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8])
    assert below["p_value"] == pytest.approx(1 / 70) == below["min_attainable_p"]  # 1 / C(8, 4)
    assert below["auc"] == 1.0 and below["u"] == 16
    above = rank_test_smaller([0.5, 0.6, 0.7, 0.8], [0.1, 0.2, 0.3, 0.4])
    assert above["p_value"] == pytest.approx(1.0) and above["auc"] == 0.0


@pytest.mark.parametrize(("n", "k", "quantile"), [(3, 4, 0.95), (4, 4, 0.5), (5, 3, 0.3), (2, 6, 0.9)])
def test_exceedance_test_matches_every_arrangement(n, k, quantile):
    from synth.privacy.identity_privacy import exceedance_test

    # Enumerate every placement of the k held-out values among the n + k ranks (all equally likely).
    counts = []
    for holdout_ranks in itertools.combinations(range(n + k), k):
        synthetic = np.array([r for r in range(n + k) if r not in holdout_ranks], float)
        holdout = np.array(holdout_ranks, float)
        counts.append(exceedance_test(synthetic, holdout, quantile=quantile)["count"])
    counts = np.array(counts)
    y = np.arange(k, dtype=float)
    for observed in range(n + 1):
        x = np.concatenate([np.full(observed, 100.0), np.full(n - observed, -100.0)])
        test = exceedance_test(x, y, quantile=quantile)
        assert test["count"] == observed
        assert test["p_value"] == pytest.approx(np.mean(counts >= observed))
    assert test["expected_rate"] == pytest.approx(np.mean(counts) / n)


def test_identity_checks_decide_on_distances_and_skip_without_reference():
    from synth.privacy import load_audit_config
    from synth.privacy.identity_privacy import identity_checks, identity_labels, identity_privacy

    config = load_audit_config().identity_privacy
    rng = np.random.default_rng(0)
    dim = 8
    axes = np.eye(dim)

    def person(direction: np.ndarray, n: int = 20) -> np.ndarray:
        x = direction + rng.normal(0, 0.02, (n, dim))
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def mix(a: int, b: int, w: float) -> np.ndarray:
        v = w * axes[a] + (1 - w) * axes[b]
        return v / np.linalg.norm(v)

    train = np.concatenate([person(axes[i]) for i in range(3)])
    train_subjects = np.repeat(["t0", "t1", "t2"], 20)
    # New people: halfway between a training subject and an unused axis.
    holdout = np.concatenate([person(mix(i % 3, 3 + i, 0.5)) for i in range(5)])
    holdout_subjects = np.repeat([f"h{i}" for i in range(5)], 20)

    def probabilities(c: np.ndarray) -> np.ndarray:
        z = 16 * c @ axes[:3].T
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def run(synthetic: np.ndarray, n_ids: int) -> dict:
        labels = identity_labels(np.repeat([f"s{i}" for i in range(n_ids)], 20),
                                 np.repeat([f"new-{i:04d}" for i in range(n_ids)], 20))
        block = identity_privacy(train_emb=train, train_subjects=train_subjects, holdout_emb=holdout,
                                 holdout_subjects=holdout_subjects, synthetic_emb=synthetic, labels=labels,
                                 probabilities=probabilities, config=config)
        return identity_checks(block, config)

    close = run(np.concatenate([person(mix(i % 3, 3 + i, 0.95)) for i in range(5)]), 5)
    assert close["identity_distance_median"]["passed"] is False and close["identity_distance_rank"]["passed"] is False
    far = run(np.concatenate([person(mix(i % 3, 3 + i, 0.4)) for i in range(5)]), 5)
    assert all(far[name]["passed"] is True for name in IDENTITY_CHECKS), far
    skipped = identity_checks({"skipped": "no reference"}, config)
    assert all(c["passed"] is None and "no reference" in c["rule"] for c in skipped.values())
