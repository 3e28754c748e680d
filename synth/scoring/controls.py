"""The sets the scorer measures, besides the corpus itself, so its r means something.

- ceiling (:func:`ceiling_predictions`): the estimator trained on some reference subjects and run
  on the real frames of the others (k-fold by subject). It is the r the estimator reaches on real
  people it never saw, so a generator cannot be expected to beat it, and a score near it means
  the generated faces are as readable as real ones.
- memorization (:func:`retrieve_by_aus`): for each requested frame, the training frame whose
  AUs are nearest (each sequence from the one training subject that fits it best), measured by the
  same estimator: what a generator that only copies its
  training data would score.
- floor (:func:`shuffled_requests`): the synthetic measurements against requests permuted over
  all frames of the corpus: r near 0 by construction, the value of a generator that ignores
  its condition.

:func:`score_set` turns any (requested, measured, sequences) triple into the same numbers, so the
four sets are scored by one code path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from acquisition.annotate.action_units import AU_LABELS
from synth.scoring.coherence import frame_flicker
from synth.scoring.estimator import AUEstimator
from synth.scoring.metrics import mae_per_au, pearson_per_au, summarize_timing, timing_errors


def fit_estimator(rgbd: np.ndarray, aus: np.ndarray, config, *, seed: int,
                  groups: np.ndarray | None = None) -> AUEstimator:
    """A new :class:`AUEstimator` trained as ``config`` (an ``EstimatorConfig``) says (``groups``: recording of each
    frame, for the median normalization)."""
    c = config
    return AUEstimator(channels=c.channels, width=c.width, normalize=c.normalize, seed=seed).fit(
        rgbd, aus, groups=groups, steps=c.steps, batch_size=c.batch_size, lr=c.lr, augment_shift_px=c.augment_shift_px,
        augment_gain=c.augment_gain)


def subject_folds(subjects: np.ndarray, n_folds: int) -> list[np.ndarray]:
    """Subjects dealt round-robin (sorted order) into ``min(n_folds, n_subjects)`` folds; each fold's subject ids."""
    unique = np.unique(np.asarray(subjects))
    k = min(n_folds, len(unique))
    return [unique[i::k] for i in range(k)]


def sequence_groups(bounds: Sequence[tuple[int, int]], n_frames: int) -> np.ndarray:
    """Sequence number of each of ``n_frames`` rows (-1 outside every sequence), for the median normalization."""
    groups = np.full(n_frames, -1, np.int64)
    for i, (a, b) in enumerate(bounds):
        groups[a:b] = i
    return groups


def ceiling_predictions(rgbd: np.ndarray, aus: np.ndarray, subjects: np.ndarray, config, *, n_folds: int,
                        seed: int, train_groups: np.ndarray | None = None,
                        predict_groups: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Each reference frame measured by an estimator that never saw its subject (k-fold by subject).

    Parameters
    ----------
    rgbd : array of float32, shape (n_frames, 4, H, W)
        Reference frames.
    aus : array of float, shape (n_frames, 17)
        Their true AUs.
    subjects : array of str, shape (n_frames,)
        Subject of each frame.
    config : EstimatorConfig
        How each fold's estimator is trained.
    n_folds : int
        Folds (capped at the number of subjects).
    seed : int
        Seed of the first fold's estimator (fold ``i`` uses ``seed + i``).
    train_groups, predict_groups : array, shape (n_frames,) | None
        Group of each frame for the median normalization when training (e.g. session files) and when
        measuring (e.g. expression episodes, to match how corpus sequences are measured).

    Returns
    -------
    measured : array of float32, shape (n_frames, 17)
    n_folds : int
        Folds actually used.

    Raises
    ------
    ValueError
        With fewer than 2 reference subjects: there is no unseen subject to measure on.
    """
    subjects = np.asarray(subjects)
    folds = subject_folds(subjects, n_folds)
    if len(folds) < 2:
        raise ValueError(f"The ceiling needs at least 2 reference subjects (k-fold by subject), got "
                         f"{len(np.unique(subjects))}.")
    measured = np.zeros(np.shape(aus), np.float32)
    for i, fold in enumerate(folds):
        held = np.isin(subjects, fold)
        tg = None if train_groups is None else np.asarray(train_groups)[~held]
        pg = None if predict_groups is None else np.asarray(predict_groups)[held]
        estimator = fit_estimator(rgbd[~held], aus[~held], config, seed=seed + i, groups=tg)
        measured[held] = estimator.predict(rgbd[held], groups=pg)
    return measured, len(folds)


def retrieve_by_aus(requested: np.ndarray, pool_aus: np.ndarray, *, bounds: Sequence[tuple[int, int]] | None = None,
                    pool_groups: np.ndarray | None = None, chunk_size: int = 2048) -> np.ndarray:
    """Row of the pool frame whose AU vector is nearest (Euclidean, all 17 AUs) to each request.

    With ``bounds`` and ``pool_groups`` every sequence is retrieved from one group (one training
    subject): the group whose nearest frames are nearest in sum over the sequence. A generator that
    memorized its data replays one person per sequence, and the estimator normalizes each sequence by
    its median frame, which only means something within one person; frame by frame retrieval across
    people would make the baseline flicker between faces and score worse than memorization would.

    Parameters
    ----------
    requested : array of float, shape (n_requests, 17)
    pool_aus : array of float, shape (n_pool, 17)
    bounds : sequence of (start, stop) | None
        Rows of ``requested`` per sequence; None retrieves every frame on its own.
    pool_groups : array, shape (n_pool,) | None
        Group (subject) of each pool frame; needed with ``bounds``.
    chunk_size : int
        Requests per distance block (memory ~ ``chunk_size * n_pool`` floats).

    Returns
    -------
    index : array of int64, shape (n_requests,)
        Ties go to the lowest pool row (and, between groups, to the first group in sorted order).
    """
    pool = torch.as_tensor(np.asarray(pool_aus, dtype=np.float64))
    req = np.asarray(requested, dtype=np.float64)
    if len(pool) == 0:
        raise ValueError("The training pool holds no frames to retrieve from.")
    if bounds is None:
        out = [torch.cdist(torch.as_tensor(req[i:i + chunk_size]), pool).argmin(1).numpy()
               for i in range(0, len(req), chunk_size)]
        return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)
    if pool_groups is None or len(pool_groups) != len(pool):
        raise ValueError("Retrieval by sequence needs pool_groups: one group (subject) per pool frame.")
    groups = np.asarray(pool_groups)
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    index = np.zeros(len(req), np.int64)
    for a, b in bounds:
        dist = torch.cdist(torch.as_tensor(req[a:b]), pool).numpy()
        best = min(members, key=lambda rows: dist[:, rows].min(1).sum())
        index[a:b] = best[dist[:, best].argmin(1)]
    return index


def shuffled_requests(requested: np.ndarray, *, seed: int) -> np.ndarray:
    """The requests with their rows permuted over all frames (the floor's requests)."""
    rng = np.random.default_rng(seed)
    return np.asarray(requested)[rng.permutation(len(requested))]


def score_set(requested: np.ndarray, measured: np.ndarray, bounds: Sequence[tuple[int, int]], scored: np.ndarray, *,
              rgbd: np.ndarray | None = None, timing: bool = True) -> dict:
    """Per-AU r and MAE, their means over the scored AUs, timing and flicker of one set.

    Parameters
    ----------
    requested, measured : array of float, shape (n_frames, 17)
        What was asked for (or true, for real frames) and what the estimator measured.
    bounds : sequence of (int, int)
        Rows of each sequence (for timing and flicker).
    scored : array of bool, shape (17,)
        The AUs whose r and MAE enter the means, and whose sum is the timing course.
    rgbd : array of float32, shape (n_frames, 4, H, W) | None
        The frames, for flicker (None: not reported).
    timing : bool
        Report onset/apex/offset errors (meaningless for the floor's shuffled requests).

    Returns
    -------
    result : dict
        ``r`` and ``mae`` ({AU label: value}, None where undefined), ``mean_r``, ``mean_mae`` (over scored AUs
        with a defined r), ``timing`` (see :func:`synth.scoring.metrics.summarize_timing`) or None, ``flicker``
        (mean :func:`frame_flicker` over sequences) or None, ``n_frames``, ``n_sequences``.
    """
    r = pearson_per_au(requested, measured)
    mae = mae_per_au(requested, measured)
    use = scored & np.isfinite(r)
    result = {
        "n_frames": int(len(requested)), "n_sequences": len(bounds),
        "r": {label: (None if not np.isfinite(v) else round(float(v), 4)) for label, v in zip(AU_LABELS, r)},
        "mae": {label: round(float(v), 4) for label, v in zip(AU_LABELS, mae)},
        "mean_r": float(np.mean(r[use])) if use.any() else None,
        "mean_mae": float(np.mean(mae[use])) if use.any() else None,
        "timing": None, "flicker": None,
    }
    if timing:
        errors = [timing_errors(requested[a:b][:, scored].sum(1), measured[a:b][:, scored].sum(1))
                  for a, b in bounds if b - a >= 2]
        result["timing"] = summarize_timing(errors)
    if rgbd is not None:
        flicker = [frame_flicker(rgbd[a:b]) for a, b in bounds if b - a >= 2]
        result["flicker"] = float(np.mean(flicker)) if flicker else None
    return result
