"""The privacy audit's building blocks on plain arrays: NN distances, MIA statistics, memorization, the filter."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from synth.privacy.membership import membership_inference, per_sample_losses, roc_auc, tpr_at_fpr
from synth.privacy.memorization import calibrate_threshold, count_memorized, save_closest_pairs
from synth.privacy.nearest import distance_summary, nearest_neighbours
from synth.privacy.rejection import NearestNeighbourFilter, leave_moment_out_distances, leave_subject_out_distances


def _brute_nn(q: np.ndarray, r: np.ndarray, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    q, r = q.reshape(len(q), -1).astype(np.float64), r.reshape(len(r), -1).astype(np.float64)
    d = np.sqrt(((q[:, None, :] - r[None, :, :]) ** 2).mean(-1))
    if exclude is not None:
        d = np.where(exclude, np.inf, d)
    return d.min(1), d.argmin(1)


# -- nearest neighbours ---------------------------------------------------------------------------

@pytest.mark.parametrize("chunk_size", [1, 3, 7, 1000])
def test_nearest_matches_brute_force_for_any_chunking(chunk_size):
    rng = np.random.default_rng(0)
    queries, references = rng.normal(size=(11, 2, 3, 3)), rng.normal(size=(17, 2, 3, 3))
    result = nearest_neighbours(queries, references, chunk_size=chunk_size)
    distance, index = _brute_nn(queries, references)
    np.testing.assert_allclose(result.distance, distance, rtol=1e-6)
    np.testing.assert_array_equal(result.index, index)


def test_nearest_gives_exactly_zero_for_copies_and_respects_exclusions():
    rng = np.random.default_rng(1)
    references = rng.uniform(-1, 1, size=(20, 4, 8, 8)).astype(np.float32) * 50  # large norms: cancellation-prone
    copies = references[[3, 7, 11]].copy()
    result = nearest_neighbours(copies, references, chunk_size=4)
    np.testing.assert_array_equal(result.distance, 0.0)
    np.testing.assert_array_equal(result.index, [3, 7, 11])
    exclude = np.zeros((3, 20), bool)
    exclude[np.arange(3), [3, 7, 11]] = True
    excluded = nearest_neighbours(copies, references, chunk_size=4, exclude_same=exclude)
    distance, index = _brute_nn(copies, references, exclude)
    np.testing.assert_allclose(excluded.distance, distance, rtol=1e-6)
    np.testing.assert_array_equal(excluded.index, index)
    assert (excluded.distance > 0).all()


def test_nearest_rejects_mismatched_features():
    with pytest.raises(ValueError, match="features per row"):
        nearest_neighbours(np.zeros((2, 4, 8, 8)), np.zeros((3, 4, 16, 16)))


def test_distance_summary_quantiles():
    summary = distance_summary(np.r_[np.arange(101.0), np.inf])
    assert summary == {"median": 50.0, "p01": 1.0, "p05": 5.0, "min": 0.0, "mean": 50.0, "n": 101}


# -- membership inference -------------------------------------------------------------------------

def _auc_by_pairs(pos, neg) -> float:
    """The definition: P(member scores higher) + 0.5 P(tie), over all member/non-member pairs."""
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def _tpr_by_thresholds(pos, neg, fpr) -> float:
    """The definition: the best TPR over every threshold whose FPR (score > t) is at most fpr."""
    candidates = np.r_[-np.inf, np.unique(np.r_[pos, neg])]
    return max(np.mean(np.asarray(pos) > t) for t in candidates if np.mean(np.asarray(neg) > t) <= fpr)


def test_auc_on_hand_derived_cases():
    assert roc_auc([3, 4, 5], [0, 1, 2]) == 1.0  # perfectly separated
    assert roc_auc([0, 1, 2], [3, 4, 5]) == 0.0
    assert roc_auc([1, 2, 3], [1, 2, 3]) == 0.5  # identical: every win matched by a loss, ties count 1/2
    # 0.2 beats 0.1 (1); 0.6 beats 0.1 and 0.3 and ties 0.6 (2.5); 0.9 beats all four (4): 7.5 / 12.
    assert roc_auc([0.2, 0.6, 0.9], [0.1, 0.6, 0.7, 0.3]) == pytest.approx(7.5 / 12)


def test_auc_and_tpr_match_their_definitions_with_ties():
    rng = np.random.default_rng(2)
    for trial in range(5):
        pos = np.round(rng.normal(0.5, 1, size=37), 1)  # rounding makes ties
        neg = np.round(rng.normal(0.0, 1, size=150 + trial), 1)
        assert roc_auc(pos, neg) == pytest.approx(_auc_by_pairs(pos, neg), abs=1e-12)
        assert roc_auc(pos, neg) + roc_auc(neg, pos) == pytest.approx(1.0)
        for fpr in (0.0, 0.01, 0.05, 0.2):
            assert tpr_at_fpr(pos, neg, fpr) == pytest.approx(_tpr_by_thresholds(pos, neg, fpr))


def test_tpr_at_1pct_fpr_hand_case():
    # 100 non-members 0..99: one false positive allowed, so the threshold is 98; members above it: 99.5, 98.5.
    assert tpr_at_fpr([99.5, 98.5, 50.0], np.arange(100.0), 0.01) == pytest.approx(2 / 3)
    # 50 non-members: no false positive allowed, the threshold is the largest one (49).
    assert tpr_at_fpr([49.5, 49.0, 10.0], np.arange(50.0), 0.01) == pytest.approx(1 / 3)


def test_membership_attack_is_chance_on_identical_distributions_and_perfect_on_separated():
    rng = np.random.default_rng(3)
    same = membership_inference(rng.normal(size=4000), rng.normal(size=4000))
    assert abs(same["auc"] - 0.5) < 0.03 and same["tpr_at_1pct_fpr"] < 0.03
    # Lower loss means member: training losses far below held-out ones are fully exposed.
    separated = membership_inference(rng.uniform(0, 1, 200), rng.uniform(2, 3, 200))
    assert separated["auc"] == 1.0 and separated["tpr_at_1pct_fpr"] == 1.0


def test_per_sample_losses_do_not_depend_on_batching():
    rng = np.random.default_rng(4)
    rgbd, aus = rng.normal(size=(10, 4, 4, 4)).astype(np.float32), rng.normal(size=(10, 17)).astype(np.float32)

    def loss(x, a, *, seed=0):  # deterministic per frame: batching and repeats must not change it
        return x.square().mean((1, 2, 3)) + a[:, 0]

    expected = np.square(rgbd).mean((1, 2, 3)) + aus[:, 0]
    for batch_size in (1, 3, 64):
        np.testing.assert_allclose(per_sample_losses(loss, rgbd, aus, batch_size=batch_size, repeats=2), expected,
                                   rtol=1e-5)
    with pytest.raises(ValueError, match="finite"):
        membership_inference(np.array([np.nan, 1.0]), np.array([1.0, 2.0]))


# -- memorization ---------------------------------------------------------------------------------

def test_memorization_threshold_and_count():
    holdout = np.linspace(1.0, 2.0, 101)
    threshold = calibrate_threshold(holdout, quantile=0.01)
    assert threshold == pytest.approx(1.01)
    assert calibrate_threshold(holdout, quantile=0.01, scale=0.5) == pytest.approx(0.505)
    counted = count_memorized(np.array([0.0, 0.5, 1.0, 1.5, 3.0]), threshold)
    assert counted["memorized_frames"] == 3 and counted["memorized_fraction"] == pytest.approx(0.6)


def test_closest_pairs_png(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(5)
    synthetic = rng.uniform(-1, 1, (6, 4, 16, 16)).astype(np.float32)
    training = rng.uniform(-1, 1, (9, 4, 16, 16)).astype(np.float32)
    nn = nearest_neighbours(synthetic, training)
    pairs = save_closest_pairs(tmp_path / "pairs.png", synthetic, training, nn.distance, nn.index,
                               threshold=0.1, n_pairs=4, cell_px=32)
    assert [p["synthetic_index"] for p in pairs] == list(np.argsort(nn.distance)[:4])
    with Image.open(tmp_path / "pairs.png") as image:
        assert image.size[1] == 16 + 4 * (32 + 16)


# -- rejection filter -----------------------------------------------------------------------------

def test_filter_drops_copies_and_keeps_distant_frames():
    rng = np.random.default_rng(6)
    train = rng.uniform(-1, 1, (30, 4, 8, 8)).astype(np.float32)
    copies = train[[0, 5, 9]] + rng.normal(0, 0.001, (3, 4, 8, 8)).astype(np.float32)
    distant = rng.uniform(-1, 1, (4, 4, 8, 8)).astype(np.float32)  # independent draws: RMS ~0.8 away
    nn_filter = NearestNeighbourFilter(train, threshold=0.05, chunk_size=7)
    np.testing.assert_array_equal(nn_filter(np.concatenate([copies, distant])), [True] * 3 + [False] * 4)
    with pytest.raises(ValueError, match="threshold"):
        NearestNeighbourFilter(train, threshold=-1.0)
    with pytest.raises(ValueError, match="image size"):
        nn_filter(np.zeros((1, 4, 16, 16), np.float32))


def test_leave_moment_out_distances_skip_the_same_moment():
    # Two sessions; each frame has an exact duplicate 0.1 s later in its session and a neighbour in the other
    # session at distance 0.5: excluding the same moment must find the other session.
    base = np.zeros((4, 1, 2, 2), np.float32)
    base[:, 0, 0, 0] = [0.0, 0.0, 1.0, 1.0]
    other = base.copy()
    other[:, 0, 0, 1] = 1.0  # RMS distance sqrt(1 / 4) = 0.5 from its counterpart
    rgbd = np.concatenate([base, other])
    sessions = np.array(["a"] * 4 + ["b"] * 4)
    times = np.array([0.0, 0.1, 5.0, 5.1] * 2)
    d = leave_moment_out_distances(rgbd, sessions, times, min_gap_s=1.0)
    np.testing.assert_allclose(d, 0.5)
    assert np.isinf(leave_moment_out_distances(rgbd[:2], sessions[:2], times[:2], min_gap_s=1.0)).all()


def test_leave_subject_out_distances_skip_the_same_subject():
    # Subject a's frames are 0 and 0.2 everywhere, b's 1.0, c's 0.6: excluding the same subject, a's nearest
    # frames are c's (0.6 and 0.4 away), b's and c's are each other's (0.4 away).
    values = {"a": [0.0, 0.2], "b": [1.0, 1.0], "c": [0.6, 0.6]}
    rgbd = np.stack([np.full((4, 2, 2), v, np.float32) for s in "abc" for v in values[s]])
    subjects = np.repeat(list("abc"), 2)
    np.testing.assert_allclose(leave_subject_out_distances(rgbd, subjects), [0.6, 0.4, 0.4, 0.4, 0.4, 0.4], atol=1e-6)
    np.testing.assert_allclose(leave_subject_out_distances(rgbd, subjects, max_queries=3), [0.6, 0.4, 0.4], atol=1e-6)
    assert np.isinf(leave_subject_out_distances(rgbd[:2], subjects[:2])).all()


@pytest.fixture
def one_torch_thread():
    """One torch thread: on a shared 2-core machine, two threads can be many times slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_identity_encoder_separates_two_synthetic_subjects(one_torch_thread):
    from synth.privacy.identity import embed, train_identity_encoder

    torch.manual_seed(0)
    rng = np.random.default_rng(7)
    # Two "subjects": different colour layouts, plus per-frame noise (their "expressions").
    a = np.tile(np.array([0.8, -0.5, 0.2, 0.0], np.float32)[None, :, None, None], (40, 1, 16, 16))
    b = np.tile(np.array([-0.6, 0.4, -0.2, 0.3], np.float32)[None, :, None, None], (40, 1, 16, 16))
    frames = np.concatenate([a, b]) + rng.normal(0, 0.2, (80, 4, 16, 16)).astype(np.float32)
    labels = np.array(["a"] * 40 + ["b"] * 40)
    validation = np.zeros(80, bool)
    validation[[30, 31, 70, 71]] = True
    encoder, info = train_identity_encoder(frames, labels, steps=40, batch_size=16, width=4, embed_dim=8,
                                           validation=validation)
    assert info["validation_accuracy"] == 1.0 and info["subjects"] == ["a", "b"]
    emb = embed(encoder, frames)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    distance = np.linalg.norm(emb[:, None] - emb[None, :], axis=-1)
    np.fill_diagonal(distance, np.inf)
    np.testing.assert_array_equal(labels[distance.argmin(1)], labels)  # nearest other frame: same subject
    assert distance[:40, 40:].mean() > 2 * distance[:40, :40][np.isfinite(distance[:40, :40])].mean()
    with pytest.raises(ValueError, match="at least two subjects"):
        train_identity_encoder(frames[:40], labels[:40], steps=1)


# -- the pass rule --------------------------------------------------------------------------------

def _result(syn_p01: float, auc: float | None, memorized_fraction: float, embedding: bool = True) -> dict:
    block = {"synthetic_to_train": {"p01": syn_p01, "median": 1.0}, "holdout_to_train": {"p01": 0.5, "median": 1.0}}
    return {"nearest_neighbour": block, "nearest_neighbour_embedding": block if embedding else {"skipped": "off"},
            "memorization": {"memorized_fraction": memorized_fraction},
            "membership_inference": {"auc": auc} if auc is not None else {"auc": None, "skipped": "off"}}


def test_rule_bounds_are_applied_as_documented():
    from synth.privacy import apply_rule, load_audit_config

    config = load_audit_config()  # tolerance 0.05, max memorized 0.02, max AUC 0.6
    ok = apply_rule(_result(0.5 * 0.951, 0.59, 0.02), config)
    frame_checks = {"nn_pixel_p01", "nn_pixel_median", "nn_embedding_p01", "nn_embedding_median",
                    "memorized_fraction", "membership_inference_auc"}
    identity = {"identity_distance_median", "identity_distance_rank", "reidentification_rate"}
    assert all(ok[name]["passed"] for name in frame_checks) and set(ok) == frame_checks | identity
    # No identity block in this result: the identity checks are listed, not run, and do not decide.
    assert all(ok[name]["passed"] is None and ok[name]["rule"].startswith("not run") for name in identity)
    bad = apply_rule(_result(0.5 * 0.949, 0.6, 0.021), config)
    assert [k for k, c in bad.items() if c["passed"] is False] == [
        "nn_pixel_p01", "nn_embedding_p01", "memorized_fraction", "membership_inference_auc"]
    assert set(apply_rule(_result(0.5, 0.5, 0.0), load_audit_config("audit", ["identity_privacy.enabled=false"]))
               ) == frame_checks
    skipped = apply_rule(_result(0.5, None, 0.0, embedding=False), config)
    assert skipped["nn_embedding_p01"]["passed"] is None and skipped["membership_inference_auc"]["passed"] is None
    only_pixel = apply_rule(_result(0.5, 0.5, 0.0), load_audit_config("audit", ["rule.spaces=[pixel]"]))
    assert "nn_embedding_p01" not in only_pixel


@pytest.mark.parametrize(("record", "rate"), [
    (None, None), ({"n_generated": 4, "n_rejected": 1, "rate": 0.25, "threshold": 0.1}, 0.25),
    ({"n_generated": 0, "n_rejected": 0, "rate": 0.0, "threshold": 0.1}, 0.0)])
def test_rejection_rate_from_corpus_record(record, rate):
    from synth.privacy.audit import _rejection_rate

    assert _rejection_rate({"rejection": record})[0] == rate


@pytest.mark.parametrize("record", [0.3, {"rejection_rate": 0.2}, {"n_rejected": 1, "n_generated": 4}])
def test_rejection_rate_refuses_formats_the_sampler_does_not_write(record):
    from synth.privacy.audit import _rejection_rate

    with pytest.raises(ValueError, match="n_generated"):
        _rejection_rate({"rejection": record})
