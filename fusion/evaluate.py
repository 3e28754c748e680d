"""Evaluate pretrained encoders on held-out sessions: cross-modal retrieval, AU linear probe, missing modalities.

Retrieval: for every ordered pair ``A->B``, each window's ``A`` embedding queries the ``B``
embeddings of all windows (cosine similarity); R@k is the fraction whose own window ranks in
the top k. Chance R@1 is ``1 / N``. Linear probe: ridge regression from frozen embeddings to
the window's mean AU intensities, R^2 with contiguous k-fold cross-validation.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader

from .config import PretrainConfig
from .model import MultiModalEncoder


def load_run(run: str | os.PathLike) -> tuple[MultiModalEncoder, PretrainConfig]:
    """The model and config of a pretraining output folder."""
    run = Path(run)
    if not (run / "config.yaml").is_file():
        raise FileNotFoundError(f"{run} is not a pretraining run (no config.yaml); pass the --out folder of pretrain.")
    config = PretrainConfig.model_validate(yaml.safe_load((run / "config.yaml").read_text()))
    return MultiModalEncoder.from_pretrained(run / "model"), config


@torch.no_grad()
def embed_sessions(model: MultiModalEncoder, config: PretrainConfig, sessions: Sequence[str | os.PathLike], *,
                   stride_s: float | None = None, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Embeddings of every window of ``sessions`` (eval mode).

    Returns
    -------
    result : dict
        ``<modality>`` (N, D) embeddings, ``available/<modality>`` (N,) bool, ``au`` (N, n_aus),
        ``session_index`` (N,), ``time_s`` (N,) window centres (seconds, recorder clock).
    """
    from .train import make_dataset

    # Non-overlapping windows by default: overlapping ones are near-duplicates and blur retrieval.
    dataset = make_dataset(sessions, config, stride_s=stride_s or config.data.window_s)
    missing = [m for m in model.modalities if m not in dataset.modalities]
    if missing:
        raise ValueError(f"The model has encoders for {model.modalities} but the sessions have no {missing}.")
    model.eval()
    parts: dict[str, list] = {}
    for batch in DataLoader(dataset, batch_size=batch_size):
        z = model({m: batch[m] for m in model.modalities})
        for m in model.modalities:
            parts.setdefault(m, []).append(z[m].numpy())
            parts.setdefault(f"available/{m}", []).append(batch["available"][m].numpy())
        for key in ("au", "session_index", "time_s"):
            parts.setdefault(key, []).append(np.asarray(batch[key]))
    return {k: np.concatenate(v) for k, v in parts.items()}


def retrieval(za: np.ndarray, zb: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """R@k of retrieving row i of ``zb`` with row i of ``za`` (both (N, D), unit norm); ``chance`` = 1/N."""
    sim = za @ zb.T
    rank = (sim > np.diag(sim)[:, None]).sum(1)  # how many candidates beat the true match
    out = {f"R@{k}": float(np.mean(rank < k)) for k in ks}
    out["chance"] = 1.0 / len(za)
    return out


def ridge_probe(x: np.ndarray, y: np.ndarray, *, alpha: float = 1.0, folds: int = 5) -> float:
    """Cross-validated R^2 of ridge regression ``y ~ x`` (contiguous folds, so neighbours do not leak)."""
    n = len(x)
    pred = np.zeros_like(y)
    for idx in np.array_split(np.arange(n), folds):
        train = np.setdiff1d(np.arange(n), idx)
        xm, ym = x[train].mean(0), y[train].mean(0)
        a, b = x[train] - xm, y[train] - ym
        w = np.linalg.solve(a.T @ a + alpha * np.eye(a.shape[1]), a.T @ b)
        pred[idx] = (x[idx] - xm) @ w + ym
    ss_res = ((y - pred) ** 2).sum()
    ss_tot = ((y - y.mean(0)) ** 2).sum()
    return float(1 - ss_res / ss_tot) if ss_tot > 0 else float("nan")


def evaluate(run: str | os.PathLike, sessions: Sequence[str | os.PathLike], *,
             stride_s: float | None = None) -> dict:
    """Retrieval for every ordered pair, AU linear probe per modality and with each modality dropped.

    Returns
    -------
    report : dict
        ``{"retrieval": {"RGB->EMG": {"R@1", "R@5", "R@10", "chance"}, ...}, "linear_probe": {...},
        "missing_modality": {...}, "n_windows": N}``.
    """
    model, config = load_run(run)
    emb = embed_sessions(model, config, sessions, stride_s=stride_s)
    mods = model.modalities
    report: dict = {"retrieval": {}, "linear_probe": {}, "missing_modality": {}, "n_windows": int(len(emb["time_s"]))}
    for a, b in itertools.permutations(mods, 2):
        both = emb[f"available/{a}"] & emb[f"available/{b}"]
        if both.sum() >= 2:
            report["retrieval"][f"{a.upper()}->{b.upper()}"] = retrieval(emb[a][both], emb[b][both])
    au = emb["au"]
    labelled = np.isfinite(au).all(1) if au.ndim == 2 and au.shape[1] else np.zeros(len(au), bool)
    if labelled.sum() >= 10:
        y = au[labelled]
        for m in mods:
            report["linear_probe"][m.upper()] = {"au_r2": ridge_probe(emb[m][labelled], y)}
        fused = _fuse(emb, mods)
        report["linear_probe"]["ALL"] = {"au_r2": ridge_probe(fused[labelled], y)}
        for drop in [[m] for m in mods] + ([["emg", "eeg"]] if {"emg", "eeg"} <= set(mods) else []):
            keep = [m for m in mods if m not in drop]
            name = "-" + "+".join(d.upper() for d in drop)
            report["missing_modality"][name] = {"au_r2": ridge_probe(_fuse(emb, keep)[labelled], y)}
    return report


def _fuse(emb: dict[str, np.ndarray], mods: Sequence[str]) -> np.ndarray:
    """Mean of the available modalities' embeddings (a moment embedding robust to missing views)."""
    total = sum(emb[m] * emb[f"available/{m}"][:, None] for m in mods)
    count = sum(emb[f"available/{m}"][:, None].astype(float) for m in mods)
    return total / np.maximum(count, 1)
