"""Evaluation labels, probes, missing-modality robustness and baselines (fusion.evaluate, fusion.baselines)."""

from __future__ import annotations

import numpy as np
import pytest

from acquisition import SessionWriter, StreamSpec
from fusion.data import (NEUTRAL, UNKNOWN, SessionWindows, expression_intervals, label_windows, split_by_subject,
                         split_sessions)
from fusion.evaluate import (classification_scores, evaluate_embeddings, fuse, knn_classify, load_evaluation_protocol,
                             logistic_fit_predict, probe_scores, r2_score, retrieval, retrieval_report,
                             ridge_fit_predict, session_retrieval, session_retrieval_report)

from .conftest import write_small_session

MARKERS = [(0.4, "onset/happiness/macro"), (1.0, "apex/happiness/macro"), (2.5, "offset/happiness/macro"),
           (4.1, "onset/surprise/micro"), (4.4, "offset/surprise/micro"), (5.0, "blink"),
           (5.5, "onset/anger/macro")]  # no offset: dropped


def _add_markers(fname, markers, subject="sub-a"):
    import h5py

    writer = SessionWriter.append_to(fname)
    writer.add_stream(StreamSpec("Markers", "Markers", 1, "string", 0.0, "m")).append(
        [[text] for _, text in markers], [t for t, _ in markers])
    writer.close()
    with h5py.File(fname, "r+") as f:
        f.attrs["subject_id"] = subject
    return fname


def test_intervals_and_window_labels():
    intervals = expression_intervals([m for _, m in MARKERS], np.array([t for t, _ in MARKERS]))
    assert intervals == [(0.4, 2.5, "happiness", "macro"), (4.1, 4.4, "surprise", "micro")]
    expression, kind = label_windows(np.array([0.3, 0.4, 2.0, 3.0, 4.25, 5.0]), intervals)
    assert list(expression) == [NEUTRAL, "happiness", "happiness", NEUTRAL, "surprise", NEUTRAL]
    assert list(kind) == ["none", "macro", "macro", "none", "micro", "none"]


def test_dataset_labels_from_markers_and_splits(tmp_path):
    a = _add_markers(write_small_session(tmp_path / "a.h5", duration_s=6.0), MARKERS, "sub-a")
    b = write_small_session(tmp_path / "b.h5", duration_s=3.0)  # no markers: unknown labels
    ds = SessionWindows([a, b], window_s=1.0, stride_s=0.5, clip_frames=2, image_size=16)
    labels = ds.labels()
    from_a = labels["session_index"] == 0
    # Window starts 0, 0.5, ... -> centres 0.5, 1.0, ...: 0.4-2.5 happiness, 4.25 is no centre (4.0, 4.5 are).
    assert list(labels["expression"][from_a][:6]) == ["happiness"] * 5 + [NEUTRAL]
    assert set(labels["expression"][~from_a]) == {UNKNOWN}
    assert list(labels["subject"][[0, -1]]) == ["sub-a", "sub-unknown"]
    item = ds[1]
    assert (item["expression"], item["kind"], item["subject"]) == ("happiness", "macro", "sub-a")
    train, held = split_by_subject([a, b], ["sub-a"])
    assert (train, held) == ([b], [a])
    train, held = split_sessions([a, b, a], held_out=1, seed=0)
    assert len(train) == 2 and len(held) == 1
    with pytest.raises(ValueError, match="sub-zzz"):
        split_by_subject([a, b], ["sub-zzz"])
    with pytest.raises(ValueError, match="both sides"):
        split_sessions([a], held_out=1)


def _separable(n, seed, dim=16, n_classes=3, noise=0.3):
    """Samples around fixed class centres (the same for every ``seed``)."""
    centres = np.random.default_rng(123).normal(size=(n_classes, dim)) * 3
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    return centres[y] + noise * rng.normal(size=(n, dim)), y


def test_knn_and_logistic_on_separable_embeddings():
    x, y = _separable(120, seed=0)
    xt, yt = _separable(60, seed=1)
    assert np.mean(knn_classify(x, y, xt) == yt) == 1.0
    assert np.mean(logistic_fit_predict(x, y, xt) == yt) == 1.0
    # Random labels: chance level, not 1.0 (the probe cannot memorise the test set).
    shuffled = np.random.default_rng(2).permutation(yt)
    assert np.mean(logistic_fit_predict(x, y, xt) == shuffled) < 0.6
    scores = classification_scores(np.array(["a", "a", "b", "b"]), np.array(["a", "b", "b", "b"]))
    assert scores == pytest.approx({"acc": 0.75, "uar": 0.75, "uf1": (2 / 3 + 0.8) / 2})


def _fake_embeddings(n=90, seed=0):
    """Two informative modalities (rgb, emg) and one pure-noise one (eeg), 3 expressions, AUs from the class."""
    rng = np.random.default_rng(seed)
    names = np.array(["happiness", "neutral", "surprise"])
    y = rng.integers(0, 3, n)
    centres = np.random.default_rng(99).normal(size=(3, 8)) * 2
    emb = {"rgb": centres[y] + 0.5 * rng.normal(size=(n, 8)), "emg": centres[y] + 0.5 * rng.normal(size=(n, 8)),
           "eeg": rng.normal(size=(n, 8)), "expression": names[y].astype(object),
           "au": np.eye(3)[y] + 0.05 * rng.normal(size=(n, 3)), "time_s": np.arange(n) * 1.0,
           "session_index": np.zeros(n, int), "subject": np.full(n, "sub-x", dtype=object)}
    for m in ("rgb", "emg", "eeg"):
        emb[f"available/{m}"] = np.ones(n, bool)
    return emb


def test_missing_modality_evaluation_degrades_gracefully():
    train, test = _fake_embeddings(seed=0), _fake_embeddings(seed=1)
    mods = ["rgb", "emg", "eeg"]
    full, _ = probe_scores(train, test, mods)
    assert full["expr_acc"] > 0.9 and full["au_r2"] > 0.8
    noise_only, knn = probe_scores(train, test, ["eeg"])
    assert noise_only["expr_acc"] < 0.6 and knn["expr_acc"] < 0.6
    test["available/rgb"][::2] = False  # half the test windows lost RGB: the others still carry the class
    report = evaluate_embeddings(test, mods, probe_emb=train)
    assert set(report) >= {"retrieval", "retrieval_within_session", "linear_probe", "knn", "missing_modality",
                           "n_windows"}
    assert len(report["retrieval"]) == 6 and report["n_windows"] == 90
    missing = report["missing_modality"]
    assert set(missing) == {"-RGB", "-EMG", "-EEG", "-EMG+EEG"}
    assert missing["-EEG"]["expr_acc"] > 0.9            # the noise modality is not needed
    assert missing["-EMG+EEG"]["expr_acc"] < missing["-EEG"]["expr_acc"]   # only half-available RGB left
    assert np.isnan(missing["-EMG+EEG"]["mean_R@1"])    # one modality left: no pair to retrieve
    # Cross-validated protocol when no probe sessions are given (one session -> contiguous folds).
    assert evaluate_embeddings(_fake_embeddings(), mods)["labels"]["protocol"] == "contiguous-5-fold"


def test_fused_probe_is_not_diluted_by_noise_modalities():
    """ALL concatenates the modalities: three pure-noise ones beside one informative one cost little."""
    def with_noise(seed):
        emb = _fake_embeddings(seed=seed)
        rng = np.random.default_rng(seed + 10)
        for m in ("depth", "eeg2"):
            emb[m], emb[f"available/{m}"] = rng.normal(size=(90, 8)), np.ones(90, bool)
        return emb

    train, test = with_noise(0), with_noise(1)
    mods = ["emg", "eeg", "depth", "eeg2"]
    fused, _ = probe_scores(train, test, mods)
    alone, _ = probe_scores(train, test, ["emg"])
    assert fused["expr_acc"] > 0.9 and fused["au_r2"] > 0.8 * alone["au_r2"] > 0.6
    # The old fusion (mean of the embeddings) drowns the class in three modalities' noise.
    mean = {**train, "mean": sum(train[m] for m in mods) / 4, "available/mean": np.ones(90, bool)}
    mean_test = {**test, "mean": sum(test[m] for m in mods) / 4, "available/mean": np.ones(90, bool)}
    assert probe_scores(mean, mean_test, ["mean"])[0]["au_r2"] < fused["au_r2"] - 0.1
    # A missing block is filled (the probe passes the training mean: "no evidence" once standardised).
    test["available/eeg"][:5] = False
    x = fuse(test, mods, {"eeg": np.full(8, 7.0)})
    assert x.shape == (90, 32) and (x[:5, 8:16] == 7.0).all() and (x[5:, 8:16] == test["eeg"][5:]).all()


def test_ridge_penalty_is_chosen_by_cross_validation():
    """Noise features, few rows: a fixed small penalty overfits (R^2 far below 0), the CV choice does not."""
    rng = np.random.default_rng(0)
    x, x_test = rng.normal(size=(60, 50)), rng.normal(size=(200, 50))
    w = np.zeros((50, 2))
    w[:2] = [[1.0, 0.0], [0.0, -1.0]]
    y, y_test = x @ w + 0.5 * rng.normal(size=(60, 2)), x_test @ w + 0.5 * rng.normal(size=(200, 2))
    fixed = r2_score(y_test, ridge_fit_predict(x, y, x_test, alphas=[1e-3]))
    chosen = r2_score(y_test, ridge_fit_predict(x, y, x_test))
    assert chosen > fixed + 0.05 and chosen > 0.5
    noise = rng.normal(size=(60, 2))   # nothing to learn: the CV choice shrinks towards the mean
    assert r2_score(rng.normal(size=(200, 2)), ridge_fit_predict(x, noise, x_test)) > -0.2
    assert r2_score(rng.normal(size=(200, 2)), ridge_fit_predict(x, noise, x_test, alphas=[1e-3])) < -0.3


def test_logistic_probe_is_class_balanced():
    """90 % of the training windows are class 0 and the classes overlap: the rare class is still predicted."""
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(270, int), np.ones(30, int)]
    x = rng.normal(size=(300, 4)) + y[:, None] * 1.0
    yt = np.r_[np.zeros(100, int), np.ones(100, int)]
    xt = rng.normal(size=(200, 4)) + yt[:, None] * 1.0
    scores = classification_scores(yt, logistic_fit_predict(x, y, xt))
    assert scores["uar"] > 0.75   # an unweighted fit predicts class 0 almost always: UAR near 0.6


def test_load_run_takes_the_heads_from_the_saved_model(tmp_path):
    """A run written before ``model.pair_heads`` existed has no such key; the code default (true) must not win."""
    import yaml

    from fusion.config import PretrainConfig
    from fusion.evaluate import load_run
    from fusion.model import MultiModalEncoder

    specs = {"emg": {"encoder": "conv1d", "encoder_kwargs": {"n_chans": 2, "n_times": 50, "width": 4}},
             "eeg": {"encoder": "conv1d", "encoder_kwargs": {"n_chans": 2, "n_times": 50, "width": 4}}}
    MultiModalEncoder(specs, hidden_dim=8, embed_dim=4).save_pretrained(tmp_path / "run" / "model")
    old = PretrainConfig().model_dump(mode="json")
    del old["model"]["pair_heads"]
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(old))
    model, config = load_run(tmp_path / "run")
    assert PretrainConfig().model.pair_heads and not config.model.pair_heads and not model.config["pair_heads"]


def test_load_run_reads_a_run_written_before_the_shared_model_folder(tmp_path):
    """runs/<run>/model of the earlier layout (config.json + model.safetensors side by side) still evaluates."""
    import json

    import torch
    import yaml
    from safetensors.torch import save_file

    from fusion.config import PretrainConfig
    from fusion.evaluate import load_run
    from fusion.model import MultiModalEncoder

    specs = {"emg": {"encoder": "conv1d", "encoder_kwargs": {"n_chans": 2, "n_times": 50, "width": 4}},
             "eeg": {"encoder": "conv1d", "encoder_kwargs": {"n_chans": 2, "n_times": 50, "width": 4}}}
    torch.manual_seed(0)
    model = MultiModalEncoder(specs, hidden_dim=8, embed_dim=4, pair_heads=True).eval()
    (tmp_path / "run" / "model").mkdir(parents=True)
    (tmp_path / "run" / "model" / "config.json").write_text(json.dumps(model.config, indent=2))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              tmp_path / "run" / "model" / "model.safetensors")
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(PretrainConfig().model_dump(mode="json")))
    loaded, config = load_run(tmp_path / "run")
    assert config.model.pair_heads and loaded.config == model.config
    x = {"emg": torch.randn(2, 2, 50), "eeg": torch.randn(2, 2, 50)}
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x)["emg->eeg"], model(x)["emg->eeg"], rtol=0, atol=0)
    # a folder of another model is refused with what it holds
    (tmp_path / "run" / "model" / "config.json").write_text(json.dumps(
        {"format": "emosync-model", "format_version": 2, "kind": "gan", "image_size": 32}))
    with pytest.raises(ValueError, match="holds a 'gan' model, not 'multimodal-encoder'"):
        load_run(tmp_path / "run")


# --- known answers -------------------------------------------------------------------------------------------


def _unit(degrees):
    rad = np.deg2rad(np.asarray(degrees, dtype=float))
    return np.stack([np.cos(rad), np.sin(rad)], axis=1)


def test_retrieval_known_ranks_and_ties():
    za = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    zb = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    # similarities of query 2 ([1, 0]) with zb: 1.0, 0.0, 0.6 -> its own (0.6) ranks second
    r = retrieval(za, zb, ks=(1, 2))
    assert r == {"R@1": pytest.approx(2 / 3), "R@2": 1.0, "chance": pytest.approx(1 / 3)}
    # a tie with another candidate counts against the query: collapsed embeddings are at chance, not perfect
    constant = np.tile([[0.0, 1.0]], (4, 1))
    assert retrieval(constant, constant, ks=(1, 3, 4)) == {"R@1": 0.0, "R@3": 0.0, "R@4": 1.0, "chance": 0.25}


def test_session_retrieval_known_answer():
    """A near-duplicate in another session fools pooled retrieval, not retrieval within the session."""
    z = _unit([0, 90, 0, 45, 180])          # windows 0 and 2 (different sessions) are identical
    sessions = np.array([0, 0, 1, 1, 1])
    pooled = retrieval(z, z, ks=(1, 2))
    assert pooled["R@1"] == pytest.approx(3 / 5) and pooled["R@2"] == 1.0 and pooled["chance"] == 0.2
    within = session_retrieval(z, z, sessions, ks=(1, 2))
    assert within["R@1"] == 1.0 and within["chance"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert [(p["session"], p["n_windows"], p["chance"]) for p in within["per_session"]] == \
        [("0", 2, 0.5), ("1", 3, pytest.approx(1 / 3))]
    # per session: session 1's query 4 (180 deg) retrieves its own window; a wrong one in session 0 only
    zb = _unit([90, 0, 0, 45, 180])        # session 0's two windows swapped: both its queries miss
    within = session_retrieval(z, zb, sessions, ks=(1,))
    assert [p["R@1"] for p in within["per_session"]] == [0.0, 1.0] and within["R@1"] == 0.5
    # a one-window session has nothing to rank: left out; none left -> NaN, not a crash
    assert [p["session"] for p in session_retrieval(z, z, np.array([0, 0, 1, 1, 2]))["per_session"]] == ["0", "1"]
    lonely = session_retrieval(z[:2], z[:2], np.array([0, 1]))
    assert np.isnan(lonely["R@1"]) and np.isnan(lonely["chance"]) and lonely["per_session"] == []


def test_within_session_retrieval_of_every_pair_beside_pooled():
    emb = _fake_embeddings(seed=0)
    emb["session_index"] = np.repeat([0, 1, 2], 30)
    emb["available/emg"][:30] = False        # session 0 lost EMG: only sessions 1 and 2 for pairs with EMG
    mods = ["rgb", "emg", "eeg"]
    within, pooled = session_retrieval_report(emb, mods), retrieval_report(emb, mods)
    assert set(within) == set(pooled) and len(within) == 6
    assert [p["session"] for p in within["RGB->EMG"]["per_session"]] == ["1", "2"]
    assert [p["session"] for p in within["RGB->EEG"]["per_session"]] == ["0", "1", "2"]
    assert within["RGB->EEG"]["chance"] == pytest.approx(1 / 30) and pooled["RGB->EEG"]["chance"] == \
        pytest.approx(1 / 90)
    expected = session_retrieval(emb["rgb"][30:], emb["emg"][30:], emb["session_index"][30:])
    assert within["RGB->EMG"] == expected


def test_classification_scores_known_answer():
    """MEGC: per class TP/FP/FN; UF1 = mean of 2TP / (2TP + FP + FN), UAR = mean of TP / (TP + FN)."""
    y_true = np.array(["a", "a", "a", "b", "b", "c"])
    y_pred = np.array(["a", "a", "b", "b", "c", "c"])
    # a: TP 2, FN 1, FP 0 -> recall 2/3, F1 4/5; b: TP 1, FN 1, FP 1 -> 1/2, 2/4; c: TP 1, FN 0, FP 1 -> 1, 2/3
    s = classification_scores(y_true, y_pred)
    assert s["acc"] == pytest.approx(4 / 6)
    assert s["uar"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert s["uf1"] == pytest.approx((4 / 5 + 2 / 4 + 2 / 3) / 3)
    # a predicted class absent from the truth (a missing modality's "<missing>") is a miss, never a class
    s = classification_scores(np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1]))
    assert s["uar"] == pytest.approx((1 / 2 + 1) / 2) and s["uf1"] == pytest.approx((2 / 3 + 1) / 2)
    # integer and string labels alike; a perfect prediction is 1 everywhere
    assert classification_scores(y_true, y_true) == {"acc": 1.0, "uar": 1.0, "uf1": 1.0}


def test_evaluation_protocol_keeps_tuning_and_scoring_apart():
    from acquisition.utils.config import ConfigError

    protocol = load_evaluation_protocol()
    assert protocol.tuning_subjects == list(range(10)) and protocol.scoring_subjects == list(range(400, 410))
    assert len(protocol.seeds) >= 3 and not set(protocol.train_subjects) & {*range(10), *range(400, 410)}
    with pytest.raises(ConfigError, match=r"tuning_subjects and scoring_subjects share subjects \[3\]"):
        load_evaluation_protocol(overrides=["scoring_subjects=[3,400]"])
    with pytest.raises(ConfigError, match="train_subjects and scoring_subjects"):
        load_evaluation_protocol(overrides=["train_subjects=[400]"])
    with pytest.raises(ConfigError, match="at least 3"):
        load_evaluation_protocol(overrides=["seeds=[0,1]"])
    with pytest.raises(ConfigError, match="repeat"):
        load_evaluation_protocol(overrides=["seeds=[0,1,1]"])
    with pytest.raises(ConfigError, match="scoring_subjectz"):
        load_evaluation_protocol(overrides=["scoring_subjectz=[1]"])


@pytest.mark.slow
def test_evaluate_cli_reports_within_session_retrieval(tmp_path):
    """`emosync evaluate --json` on two sessions: pooled and within-session retrieval, sessions by index."""
    import json

    import typer
    import yaml
    from typer.testing import CliRunner

    from fusion import cli
    from fusion.baselines import random_init_model
    from fusion.config import load_pretrain_config
    from fusion.train import make_dataset

    sessions = [_add_markers(write_small_session(tmp_path / f"{name}.h5", duration_s=4.0), MARKERS, f"sub-{name}")
                for name in ("a", "b")]
    config = load_pretrain_config("tiny", ["data.clip_frames=2", "data.image_size=16", "model.hidden_dim=16",
                                           "model.embed_dim=8", "model.encoders.rgb.kwargs.width=4",
                                           "model.encoders.depth.kwargs.width=4"])
    random_init_model(config, make_dataset(sessions, config)).save_pretrained(tmp_path / "run" / "model")
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json")))
    app = typer.Typer()
    app.command("evaluate")(cli.evaluate)
    app.command("embed")(cli.embed)
    res = CliRunner().invoke(app, ["evaluate", str(tmp_path / "run"), *map(str, sessions), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["sessions"] == [str(s) for s in sessions] and report["n_windows"] == 6
    within = report["retrieval_within_session"]["RGB->EMG"]
    assert report["retrieval"]["RGB->EMG"]["chance"] == 1 / 6 and within["chance"] == 1 / 3
    assert [(p["session"], p["n_windows"]) for p in within["per_session"]] == [("0", 3), ("1", 3)]
    assert within["R@1"] == pytest.approx(np.mean([p["R@1"] for p in within["per_session"]]))
    res = CliRunner().invoke(app, ["evaluate", str(tmp_path / "run"), *map(str, sessions)])
    assert res.exit_code == 0 and "within session" in res.output
    res = CliRunner().invoke(app, ["evaluate", str(tmp_path), str(sessions[0])])
    assert res.exit_code == 1 and "no config.yaml" in res.output
