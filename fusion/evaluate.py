"""Evaluate pretrained encoders on held-out sessions: retrieval, linear probe, kNN, missing modalities.

Retrieval: for every ordered pair ``A->B``, each window's ``A`` embedding queries the ``B``
embeddings of all windows (cosine similarity); R@k is the fraction whose own window ranks in
the top k. Chance R@1 is ``1 / N``. Pooled over several sessions (subjects), that chance
overstates the difficulty: an encoder that only recognises the person already narrows the
candidates to one session's windows. So retrieval is also reported *within* each session
(queries ranked only against windows of their own session, chance ``1 / N_session``), per
session and averaged over sessions (:func:`session_retrieval`).

Probes on frozen embeddings (per modality and ``ALL``, the concatenation of the modalities, see :func:`fuse`):
ridge regression to the window's mean AU intensities (R^2), multinomial logistic regression
and lightly's ``knn_predict`` (cosine, k=20, t=0.1) to the expression label (accuracy, UAR =
unweighted average recall, UF1 = macro F1, as in MEGC). Protocol: with ``probe_sessions`` the
probes are fitted on those sessions' windows and scored on the evaluated sessions; otherwise
cross-validated within the evaluated sessions: leave-one-subject-out when there are several
subjects, else leave-one-session-out, else contiguous folds (neighbouring windows are
near-duplicates; random folds would leak).

Missing modalities: every metric again with one modality (and EEG+EMG together) removed at
test time, i.e. retrieval over the remaining pairs and probes on the remaining modalities'
embeddings, as a deployment without that sensor would compute them.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import yaml
from pydantic import Field, model_validator
from torch.utils.data import DataLoader

from acquisition import logger
from acquisition.utils.config import StrictModel, load_config

from .config import PretrainConfig
from .data import NEUTRAL, UNKNOWN, SessionWindows
from .model import MultiModalEncoder, pair_embedding

RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)   # AU probe penalties, chosen by CV
KNN_K, KNN_T = 20, 0.1   # few labelled windows per class: k=200 (the ImageNet default) would vote with everything
LABEL_KEYS = ("au", "session_index", "time_s", "expression", "kind", "subject")


class EvaluationProtocol(StrictModel):
    """Who pretrains, who tunes, who is scored: the subjects of the pretraining benchmarks.

    ``configs/pretrain/evaluation.yaml``, read by ``benchmarks/pretrain_eval.py`` (final figures on
    ``scoring_subjects``; ``--tune`` scores on ``tuning_subjects`` instead) and
    ``benchmarks/pretrain_ablation.py`` (design decisions, always on ``tuning_subjects``). Subjects
    are the simulated rig's ``identity_seed``; subject ``i`` is recorded with rig seed ``i``.
    """

    rig_profile: str = "realistic"                 # configs/rig/<name>.yaml
    rig_overrides: list[str] = []                  # rig config overrides of every session
    duration_s: float = Field(60.0, gt=0)          # per session
    train_subjects: list[int] = Field(min_length=1)     # pretraining (unlabelled); probes and baseline fit (labels)
    tuning_subjects: list[int] = Field(min_length=1)    # every design decision is scored here ...
    scoring_subjects: list[int] = Field(min_length=1)   # ... and the final figures only here
    seeds: list[int] = Field(min_length=3)         # training seeds: pretraining, random init, baseline, label subset
    label_fraction: float = Field(0.1, gt=0, le=1)  # the few-label rows (probes and supervised baseline)

    @model_validator(mode="after")
    def _check_disjoint(self) -> EvaluationProtocol:
        sets = {"train_subjects": self.train_subjects, "tuning_subjects": self.tuning_subjects,
                "scoring_subjects": self.scoring_subjects}
        for (name_a, a), (name_b, b) in itertools.combinations(sets.items(), 2):
            shared = sorted(set(a) & set(b))
            if shared:
                raise ValueError(f"{name_a} and {name_b} share subjects {shared}: a subject used for training or "
                                 "tuning must never be scored; choose disjoint lists.")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds {self.seeds} repeat a seed: every learned figure needs >= 3 distinct seeds.")
        return self


def load_evaluation_protocol(name_or_path: str | os.PathLike = "evaluation", overrides: Sequence[str] = ()
                             ) -> EvaluationProtocol:
    """Load ``configs/pretrain/<name>.yaml`` (default ``evaluation``) or a path, with ``key=value`` overrides."""
    return load_config(EvaluationProtocol, name_or_path, "pretrain", overrides)


def load_run(run: str | os.PathLike) -> tuple[MultiModalEncoder, PretrainConfig]:
    """The model and config of a pretraining output folder."""
    run = Path(run)
    if not (run / "config.yaml").is_file():
        raise FileNotFoundError(f"{run} is not a pretraining run (no config.yaml); pass the --out folder of pretrain.")
    config = PretrainConfig.model_validate(yaml.safe_load((run / "config.yaml").read_text()))
    model = MultiModalEncoder.from_pretrained(run / "model")
    # The model's own config.json says which heads it has (a run written before a head option existed
    # has no such key in config.yaml, and the code default may differ).
    config.model = config.model.model_copy(update={"pair_heads": model.config.get("pair_heads", False)})
    return model, config


@torch.no_grad()
def embed_sessions(model: MultiModalEncoder, config: PretrainConfig, sessions: Sequence[str | os.PathLike], *,
                   stride_s: float | None = None, batch_size: int = 64, with_labels: bool = False
                   ) -> dict[str, np.ndarray]:
    """Embeddings of every window of ``sessions`` (eval mode); see :func:`embed_dataset` for the keys.

    ``with_labels=False`` leaves out the str arrays ``expression``, ``kind``, ``subject`` (object
    arrays that ``emosync embed`` could not write to HDF5 as they are).
    """
    from .train import make_dataset

    # Non-overlapping windows by default: overlapping ones are near-duplicates and blur retrieval.
    dataset = make_dataset(sessions, config, stride_s=stride_s or config.data.window_s)
    emb = embed_dataset(model, dataset, batch_size=batch_size)
    if not with_labels:
        for key in ("expression", "kind", "subject"):
            emb.pop(key)
    return emb


@torch.no_grad()
def embed_dataset(model: MultiModalEncoder, dataset: SessionWindows, *, batch_size: int = 64
                  ) -> dict[str, np.ndarray]:
    """Embeddings of every window of a dataset (eval mode; the model's train/eval state is restored).

    Returns
    -------
    result : dict
        ``<modality>`` (N, D) embeddings (with pair heads also ``<a>-><b>``, see
        :func:`fusion.model.pair_embedding`), ``available/<modality>`` (N,) bool, ``au`` (N, n_aus),
        ``session_index`` (N,), ``time_s`` (N,) window centres (seconds, recorder clock),
        ``expression``, ``kind``, ``subject`` (N,) str.
    """
    missing = [m for m in model.modalities if m not in dataset.modalities]
    if missing:
        raise ValueError(f"The model has encoders for {model.modalities} but the sessions have no {missing}.")
    was_training = model.training
    model.eval()
    parts: dict[str, list] = {}
    for batch in DataLoader(dataset, batch_size=batch_size):
        z = model({m: batch[m] for m in model.modalities})
        for key, value in z.items():
            parts.setdefault(key, []).append(value.numpy())
        for m in model.modalities:
            parts.setdefault(f"available/{m}", []).append(batch["available"][m].numpy())
        for key in LABEL_KEYS:
            parts.setdefault(key, []).append(np.asarray(batch[key], dtype=object if key in
                                                        ("expression", "kind", "subject") else None))
    model.train(was_training)
    return {k: np.concatenate(v) for k, v in parts.items()}


def retrieval(za: np.ndarray, zb: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """R@k of retrieving row i of ``zb`` with row i of ``za`` (both (N, D), unit norm); ``chance`` = 1/N.

    A query's rank is the number of *other* candidates that score at least as high as its true
    match: ties count against it, so collapsed (constant) embeddings score chance, not a perfect R@k.
    """
    sim = za @ zb.T
    rank = (sim >= np.diag(sim)[:, None]).sum(1) - 1
    out = {f"R@{k}": float(np.mean(rank < k)) for k in ks}
    out["chance"] = 1.0 / len(za)
    return out


def session_retrieval(za: np.ndarray, zb: np.ndarray, sessions: np.ndarray, ks: Sequence[int] = (1, 5, 10)
                      ) -> dict:
    """Retrieval within sessions: each query is ranked only against the windows of its own session.

    Parameters
    ----------
    za, zb : (N, D) unit-norm embeddings, row i of both from the same window.
    sessions : (N,) session labels (e.g. ``session_index``).
    ks : the k of R@k.

    Returns
    -------
    result : dict
        ``R@k`` and ``chance`` (``1 / N_session``) averaged over the sessions, each session counting
        once, and ``per_session``: one dict per session (``session`` label as str, ``n_windows``,
        ``R@k``, ``chance``), in label order. Sessions with fewer than 2 windows are left out (nothing
        to rank); with none left every figure is NaN.
    """
    sessions = np.asarray(sessions)
    per = []
    for value in np.unique(sessions):
        rows = np.flatnonzero(sessions == value)
        if len(rows) >= 2:
            per.append({"session": str(value), "n_windows": int(len(rows)), **retrieval(za[rows], zb[rows], ks)})
    keys = [*(f"R@{k}" for k in ks), "chance"]
    out = {key: float(np.mean([p[key] for p in per])) if per else float("nan") for key in keys}
    out["per_session"] = per
    return out


def ridge_fit_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, *,
                      alphas: Sequence[float] = RIDGE_ALPHAS, folds: int = 5) -> np.ndarray:
    """Ridge regression on standardised inputs, the penalty chosen by cross-validation on the training rows.

    Parameters
    ----------
    x_train : (n_train, D); y_train : (n_train, K); x_test : (n_test, D).
    alphas : sequence of float
        Candidate penalties; with more than one, the one with the lowest squared error over
        ``folds`` contiguous folds of the training rows is used (contiguous: neighbouring windows
        are near-duplicates and would leak). A fixed penalty is wrong by orders of magnitude for
        some embeddings (a 128-d embedding of 100 windows needs far more shrinkage than of 5000).

    Returns
    -------
    pred : (n_test, K)
    """
    xm, xs = x_train.mean(0), x_train.std(0) + 1e-8
    xt, xq = (x_train - xm) / xs, (x_test - xm) / xs
    alpha = alphas[0]
    if len(alphas) > 1 and len(xt) >= 2 * folds:
        errors = np.zeros(len(alphas))
        for idx in np.array_split(np.arange(len(xt)), folds):
            keep = np.setdiff1d(np.arange(len(xt)), idx)
            for i, pred in enumerate(_ridge_path(xt[keep], y_train[keep], xt[idx], alphas)):
                errors[i] += ((pred - y_train[idx]) ** 2).sum()
        alpha = alphas[int(np.argmin(errors))]
    return _ridge_path(xt, y_train, xq, [alpha])[0]


def _ridge_path(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, alphas: Sequence[float]
                ) -> list[np.ndarray]:
    """Ridge predictions (intercept unpenalised) for every penalty, from one SVD of the centred training inputs.

    ``w = V diag(s / (s^2 + alpha)) U^T y`` equals ``(X^T X + alpha I)^-1 X^T y``; one thin SVD serves every
    penalty, where solving the D x D system per penalty and fold cost minutes for a 512-d fused embedding.
    """
    xm, ym = x_train.mean(0), y_train.mean(0)
    u, sv, vt = np.linalg.svd(x_train - xm, full_matrices=False)
    uty, q = u.T @ (y_train - ym), (x_test - xm) @ vt.T
    return [q @ ((sv / (sv ** 2 + a))[:, None] * uty) + ym for a in alphas]


def r2_score(y: np.ndarray, pred: np.ndarray) -> float:
    """Pooled R^2 over all outputs (NaN when ``y`` is constant)."""
    ss_res = ((y - pred) ** 2).sum()
    ss_tot = ((y - y.mean(0)) ** 2).sum()
    return float(1 - ss_res / ss_tot) if ss_tot > 0 else float("nan")


def classification_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy, UAR (mean per-class recall) and UF1 (macro F1) over the classes present in ``y_true``.

    Parameters
    ----------
    y_true, y_pred : arrays of int or str, shape (n,)
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes = np.unique(y_true)
    recall, f1 = [], []
    for c in classes:
        tp = np.sum((y_true == c) & (y_pred == c))
        fn, fp = np.sum((y_true == c) & (y_pred != c)), np.sum((y_true != c) & (y_pred == c))
        recall.append(tp / max(tp + fn, 1))
        f1.append(2 * tp / max(2 * tp + fp + fn, 1))
    return {"acc": float(np.mean(y_true == y_pred)), "uar": float(np.mean(recall)), "uf1": float(np.mean(f1))}


def knn_classify(train_z: np.ndarray, train_y: np.ndarray, test_z: np.ndarray, *, k: int = KNN_K,
                 t: float = KNN_T) -> np.ndarray:
    """Weighted kNN (lightly ``knn_predict``, cosine similarity) labels of ``test_z``.

    Parameters
    ----------
    train_z : (n_train, D) embeddings; train_y : (n_train,) int class indices; test_z : (n_test, D).

    Returns
    -------
    pred : (n_test,) int class indices.
    """
    from lightly.utils.benchmarking import knn_predict

    bank = torch.nn.functional.normalize(torch.as_tensor(train_z, dtype=torch.float32), dim=1)
    query = torch.nn.functional.normalize(torch.as_tensor(test_z, dtype=torch.float32), dim=1)
    labels = torch.as_tensor(train_y, dtype=torch.long)
    pred = knn_predict(query, bank.T.contiguous(), labels, int(labels.max()) + 1, knn_k=min(k, len(bank)), knn_t=t)
    return pred[:, 0].numpy()


def logistic_fit_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, *,
                         weight_decay: float = 1e-3, max_iter: int = 200) -> np.ndarray:
    """Multinomial logistic regression (standardised inputs, L2, class-balanced, full-batch L-BFGS), predicted classes.

    Classes are weighted by ``n / (n_classes * n_c)``: the probes are scored by UAR (MEGC), and most
    windows are neutral, so an unweighted probe learns to answer "neutral".

    Parameters
    ----------
    train_x : (n_train, D); train_y : (n_train,) int class indices; test_x : (n_test, D).

    Returns
    -------
    pred : (n_test,) int class indices (only classes seen in training can be predicted).
    """
    x = torch.as_tensor(train_x, dtype=torch.float64)
    mean, std = x.mean(0), x.std(0).clamp_min(1e-8)
    x = (x - mean) / std
    y = torch.as_tensor(train_y, dtype=torch.long)
    n_classes = int(y.max()) + 1
    class_weight = balanced_class_weights(y, n_classes).double()
    linear = torch.nn.Linear(x.shape[1], n_classes).double()
    torch.nn.init.zeros_(linear.weight)
    torch.nn.init.zeros_(linear.bias)
    optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(x), y, weight=class_weight) \
            + weight_decay * linear.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)  # convex: zero init + L-BFGS is deterministic, no seed needed
    with torch.no_grad():
        test = (torch.as_tensor(test_x, dtype=torch.float64) - mean) / std
        return linear(test).argmax(1).numpy()


def balanced_class_weights(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``n / (n_classes_present * n_c)`` per class (0 for absent classes), for a UAR-minded cross-entropy."""
    counts = torch.bincount(y, minlength=n_classes).double()
    present = counts > 0
    weight = torch.zeros(n_classes, dtype=torch.float64)
    weight[present] = len(y) / (present.sum() * counts[present])
    return weight.float()


def fuse(emb: dict[str, np.ndarray], mods: Sequence[str], fill: dict[str, np.ndarray] | None = None
         ) -> np.ndarray:
    """Concatenation of the modalities' embeddings, shape (N, len(mods) * D), for the fused probes.

    A concatenation, not a mean: the probe can then weight each modality by what it says about the
    label, where a mean lets weak modalities dilute a strong one (measured: benchmarks/RESULTS.md).
    A missing modality's block is ``fill[m]`` (the probe passes its training mean, which standardises
    to zero, i.e. "no evidence"), zeros if not given.
    """
    blocks = []
    for m in mods:
        x = np.array(emb[m], dtype=float, copy=True)
        missing = ~emb[f"available/{m}"].astype(bool)
        x[missing] = fill[m] if fill is not None and m in fill else 0.0
        blocks.append(x)
    return np.concatenate(blocks, axis=1)


def _block_means(emb: dict[str, np.ndarray], mods: Sequence[str]) -> dict[str, np.ndarray]:
    """Per modality, the mean embedding over the windows where it exists (zeros if none)."""
    out = {}
    for m in mods:
        ok = emb[f"available/{m}"].astype(bool)
        out[m] = emb[m][ok].mean(0) if ok.any() else np.zeros(emb[m].shape[1])
    return out


def _available(emb: dict[str, np.ndarray], mods: Sequence[str]) -> np.ndarray:
    return np.any([emb[f"available/{m}"] for m in mods], axis=0)


def cv_folds(emb: dict[str, np.ndarray], n_folds: int = 5) -> tuple[str, list[np.ndarray]]:
    """Test-index folds over the windows of ``emb``: by subject, else by session, else contiguous.

    Returns
    -------
    protocol : str
        ``"leave-one-subject-out"``, ``"leave-one-session-out"`` or ``"contiguous-<k>-fold"``.
    folds : list of (n_test,) int arrays covering every window once.
    """
    n = len(emb["time_s"])
    for key, name in (("subject", "leave-one-subject-out"), ("session_index", "leave-one-session-out")):
        groups = np.asarray(emb[key]).astype(str)
        values = np.unique(groups)
        if len(values) > 1:
            return name, [np.flatnonzero(groups == v) for v in values]
    return f"contiguous-{n_folds}-fold", [f for f in np.array_split(np.arange(n), n_folds) if len(f)]


def probe_scores(train: dict[str, np.ndarray], test: dict[str, np.ndarray], mods: Sequence[str], *,
                 label_fraction: float = 1.0, seed: int = 0) -> tuple[dict, dict]:
    """Linear probe and kNN of one train/test split, on the fused (concatenated) embeddings of ``mods``.

    Parameters
    ----------
    train, test : dict
        :func:`embed_dataset` outputs.
    mods : sequence of str
        Modalities to fuse (one modality = a per-modality probe).
    label_fraction : float
        Fraction of the labelled training windows the probes may use (random, seeded).

    Returns
    -------
    linear, knn : dict
        ``linear``: ``au_r2``, ``expr_acc``, ``expr_uar``, ``expr_uf1`` (NaN where not computable);
        ``knn``: ``expr_acc``, ``expr_uar``, ``expr_uf1``. Test windows without any of ``mods``
        count as wrong (expression) / are predicted as the training mean (AU): a missing sensor costs.
    """
    nan = float("nan")
    linear = {"au_r2": nan, "expr_acc": nan, "expr_uar": nan, "expr_uf1": nan}
    knn = {"expr_acc": nan, "expr_uar": nan, "expr_uf1": nan}
    fill = _block_means(train, mods)
    x_train, x_test = fuse(train, mods, fill), fuse(test, mods, fill)
    ok_train, ok_test = _available(train, mods), _available(test, mods)

    def subsample(mask: np.ndarray) -> np.ndarray:
        # A fresh generator per label type: the expression subset of a seed is then the one
        # fusion.baselines.train_supervised draws with that seed from the same labelled windows.
        idx = np.flatnonzero(mask)
        if label_fraction < 1.0 and len(idx) > 2:
            rng = np.random.default_rng(seed)
            idx = np.sort(rng.choice(idx, max(2, int(round(label_fraction * len(idx)))), replace=False))
        return idx

    au_train, au_test = train["au"], test["au"]
    if au_train.ndim == 2 and au_train.shape[1] and au_test.shape[1] == au_train.shape[1]:
        has_train = np.isfinite(au_train).all(1) & ok_train
        has_test = np.isfinite(au_test).all(1)
        idx = subsample(has_train)
        if len(idx) >= 10 and has_test.sum() >= 2:
            pred = np.tile(au_train[idx].mean(0), (len(au_test), 1))
            use = has_test & ok_test
            if use.any():
                pred[use] = ridge_fit_predict(x_train[idx], au_train[idx], x_test[use])
            linear["au_r2"] = r2_score(au_test[has_test], pred[has_test])
    expr_train, expr_test = train["expression"].astype(str), test["expression"].astype(str)
    idx = subsample((expr_train != UNKNOWN) & ok_train)
    labelled_test = expr_test != UNKNOWN
    if len(idx) >= 2 and labelled_test.any():
        classes = np.unique(expr_train[idx])
        y_train = np.searchsorted(classes, expr_train[idx])
        use = labelled_test & ok_test
        truth = expr_test[labelled_test]
        for scores, predict in ((linear, logistic_fit_predict), (knn, knn_classify)):
            pred = np.full(len(test["time_s"]), "<missing>", dtype=object)
            if use.any():
                pred[use] = classes[predict(x_train[idx], y_train, x_test[use])] if len(classes) > 1 \
                    else classes[0]
            scores.update({f"expr_{k}": v for k, v in
                           classification_scores(truth, pred[labelled_test].astype(str)).items()})
    return linear, knn


def _subset(emb: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in emb.items()}


def _splits(emb: dict[str, np.ndarray], probe_emb: dict[str, np.ndarray] | None
            ) -> tuple[str, Iterator[tuple[dict, dict]]]:
    if probe_emb is not None:
        return "fit on probe sessions, scored on evaluated sessions", iter([(probe_emb, emb)])
    protocol, folds = cv_folds(emb)
    everything = np.arange(len(emb["time_s"]))
    return protocol, ((_subset(emb, np.setdiff1d(everything, f)), _subset(emb, f)) for f in folds)


def probe_report(emb: dict[str, np.ndarray], mods: Sequence[str], *, probe_emb: dict[str, np.ndarray] | None = None,
                 label_fraction: float = 1.0, seed: int = 0) -> tuple[dict, dict, str]:
    """Linear-probe and kNN scores per modality and ``ALL`` (fused), averaged over the protocol's folds.

    Returns
    -------
    linear, knn : dict of ``MODALITY`` -> scores (see :func:`probe_scores`)
    protocol : str
    """
    groups = {m.upper(): [m] for m in mods}
    groups["ALL"] = list(mods)
    protocol, splits = _splits(emb, probe_emb)
    per: dict[str, list] = {name: [] for name in groups}
    for train, test in splits:
        for name, ms in groups.items():
            per[name].append(probe_scores(train, test, ms, label_fraction=label_fraction, seed=seed))
    linear = {name: mean_dicts([r[0] for r in rows]) for name, rows in per.items()}
    knn = {name: mean_dicts([r[1] for r in rows]) for name, rows in per.items()}
    return linear, knn, protocol


def mean_dicts(rows: list[dict[str, float]]) -> dict[str, float]:
    """Key-wise mean of score dicts (e.g. over folds or label subsets), NaN where no row has a finite value."""
    out = {}
    for key in rows[0]:
        values = np.array([r[key] for r in rows], dtype=float)
        out[key] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    return out


def retrieval_report(emb: dict[str, np.ndarray], mods: Sequence[str]) -> dict[str, dict[str, float]]:
    """Pooled retrieval (:func:`retrieval`) for every ordered pair of ``mods`` over the windows where both exist."""
    out = {}
    for a, b in itertools.permutations(mods, 2):
        both = emb[f"available/{a}"] & emb[f"available/{b}"]
        if both.sum() >= 2:
            out[f"{a.upper()}->{b.upper()}"] = retrieval(pair_embedding(emb, a, b)[both],
                                                         pair_embedding(emb, b, a)[both])
    return out


def session_retrieval_report(emb: dict[str, np.ndarray], mods: Sequence[str]) -> dict[str, dict]:
    """Within-session retrieval (:func:`session_retrieval`) for every ordered pair, sessions by ``session_index``."""
    out = {}
    for a, b in itertools.permutations(mods, 2):
        both = emb[f"available/{a}"] & emb[f"available/{b}"]
        if both.sum() >= 2:
            out[f"{a.upper()}->{b.upper()}"] = session_retrieval(
                pair_embedding(emb, a, b)[both], pair_embedding(emb, b, a)[both], emb["session_index"][both])
    return out


def drop_sets(mods: Sequence[str]) -> list[list[str]]:
    """Modality sets removed in the missing-modality evaluation: each one, and EEG+EMG together."""
    return [[m] for m in mods] + ([["emg", "eeg"]] if {"emg", "eeg"} <= set(mods) else [])


def missing_modality_report(emb: dict[str, np.ndarray], mods: Sequence[str], *,
                            probe_emb: dict[str, np.ndarray] | None = None) -> dict[str, dict[str, float]]:
    """Every metric with each drop set of :func:`drop_sets` removed at test time.

    Returns
    -------
    report : dict
        ``"-RGB"``, ..., ``"-EMG+EEG"`` -> ``mean_R@1`` (over the remaining pairs; NaN with one
        modality left), ``chance``, ``au_r2``, ``expr_acc``, ``expr_uar``, ``knn_acc``, ``knn_uar``
        (probes on the remaining modalities; the probe is fitted without them too).
    """
    report = {}
    for drop in drop_sets(mods):
        keep = [m for m in mods if m not in drop]
        pairs = retrieval_report(emb, keep)
        protocol, splits = _splits(emb, probe_emb)
        rows = [probe_scores(train, test, keep) for train, test in splits]
        linear, knn = mean_dicts([r[0] for r in rows]), mean_dicts([r[1] for r in rows])
        report["-" + "+".join(d.upper() for d in drop)] = {
            "kept": "+".join(m.upper() for m in keep),
            "mean_R@1": float(np.mean([p["R@1"] for p in pairs.values()])) if pairs else float("nan"),
            "chance": 1.0 / len(emb["time_s"]),
            "au_r2": linear["au_r2"], "expr_acc": linear["expr_acc"], "expr_uar": linear["expr_uar"],
            "knn_acc": knn["expr_acc"], "knn_uar": knn["expr_uar"]}
    return report


def evaluate_embeddings(emb: dict[str, np.ndarray], mods: Sequence[str], *,
                        probe_emb: dict[str, np.ndarray] | None = None) -> dict:
    """The full report of :func:`evaluate` from embeddings (see there)."""
    labelled = int(np.sum(emb["expression"].astype(str) != UNKNOWN))
    if not labelled:
        logger.warning("No expression labels (no Markers stream in the evaluated sessions): expression probes "
                       "are NaN.")
    linear, knn, protocol = probe_report(emb, mods, probe_emb=probe_emb)
    expr = emb["expression"].astype(str)
    return {"retrieval": retrieval_report(emb, mods),
            "retrieval_within_session": session_retrieval_report(emb, mods), "linear_probe": linear, "knn": knn,
            "missing_modality": missing_modality_report(emb, mods, probe_emb=probe_emb),
            "n_windows": int(len(emb["time_s"])),
            "labels": {"protocol": protocol, "n_expression_labelled": labelled,
                       "neutral_fraction": float(np.mean(expr[expr != UNKNOWN] == NEUTRAL)) if labelled
                       else float("nan")}}


def evaluate(run: str | os.PathLike, sessions: Sequence[str | os.PathLike], *, stride_s: float | None = None,
             probe_sessions: Sequence[str | os.PathLike] | None = None) -> dict:
    """Retrieval for every ordered pair, linear probe and kNN per modality, and each modality dropped.

    Parameters
    ----------
    run : path-like
        A pretraining output folder.
    sessions : sequence of path-like
        Held-out sessions to evaluate on.
    stride_s : float, optional
        Window stride (default: the window length, non-overlapping).
    probe_sessions : sequence of path-like, optional
        Labelled sessions to fit the probes on (e.g. the training sessions; labels are never used
        by pretraining). Without them the probes are cross-validated within ``sessions``.

    Returns
    -------
    report : dict
        ``{"retrieval": {"RGB->EMG": {"R@1", "R@5", "R@10", "chance"}, ...every ordered pair},
        "retrieval_within_session": {"RGB->EMG": {"R@1", "R@5", "R@10", "chance", "per_session": [{"session",
        "n_windows", "R@1", "R@5", "R@10", "chance"}, ...]}, ...}, "sessions": [file names; "session"
        above is the index into this list],
        "linear_probe": {"RGB": {"au_r2", "expr_acc", "expr_uar", "expr_uf1"}, ..., "ALL": {...}},
        "knn": {"RGB": {"expr_acc", "expr_uar", "expr_uf1"}, ...},
        "missing_modality": {"-RGB": {...}, ..., "-EMG+EEG": {...}}, "n_windows": N,
        "labels": {"protocol", "n_expression_labelled", "neutral_fraction"}}``. Metrics that
        cannot be computed (no AU stream, no markers) are NaN, never missing keys.
    """
    model, config = load_run(run)
    emb = embed_sessions(model, config, sessions, stride_s=stride_s, with_labels=True)
    probe_emb = (embed_sessions(model, config, probe_sessions, stride_s=stride_s, with_labels=True)
                 if probe_sessions else None)
    report = evaluate_embeddings(emb, model.modalities, probe_emb=probe_emb)
    report["sessions"] = [str(s) for s in sessions]   # session_index i is sessions[i] (the dataset keeps the order)
    return report
