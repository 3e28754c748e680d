"""Loss-threshold membership inference on a generator (Yeom et al. 2018; reported as Carlini et al. 2022 ask).

The attacker sees one number per real frame, the generator's loss on it, and guesses "was in the
training set" when the loss is low. Its power is summarized by the ROC AUC (0.5: no better than a
coin) and by the true-positive rate at a 1 % false-positive rate, which says whether *some* members
are exposed with confidence even when the average case looks safe.

The statistics are written out here (ranks, thresholds) instead of borrowed from scikit-learn, which
emosync does not depend on; tests check them against hand-derived values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from acquisition import logger


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties sharing the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Start of each run of equal values, and the average rank of the run.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    run_rank = (starts + 1 + ends) / 2.0
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def _check_scores(member_scores: Any, nonmember_scores: Any) -> tuple[np.ndarray, np.ndarray]:
    pos = np.asarray(member_scores, dtype=np.float64).ravel()
    neg = np.asarray(nonmember_scores, dtype=np.float64).ravel()
    if pos.size == 0 or neg.size == 0:
        raise ValueError(f"membership inference needs members and non-members, got {pos.size} and {neg.size} scores")
    if not (np.isfinite(pos).all() and np.isfinite(neg).all()):
        raise ValueError("membership scores must be finite (a NaN loss means the generator diverged)")
    return pos, neg


def roc_auc(member_scores: Any, nonmember_scores: Any) -> float:
    """Area under the ROC curve of "higher score means member".

    Equals the probability that a random member scores higher than a random non-member, ties
    counting one half (the Mann-Whitney U statistic divided by ``n_members * n_nonmembers``).

    Parameters
    ----------
    member_scores : array of float, shape (n_members,)
    nonmember_scores : array of float, shape (n_nonmembers,)

    Returns
    -------
    auc : float
        In [0, 1]; 0.5 for an attack no better than chance.
    """
    pos, neg = _check_scores(member_scores, nonmember_scores)
    ranks = _average_ranks(np.concatenate([pos, neg]))
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2.0
    return float(u / (pos.size * neg.size))


def tpr_at_fpr(member_scores: Any, nonmember_scores: Any, fpr: float = 0.01) -> float:
    """Largest true-positive rate of a threshold attack whose false-positive rate is at most ``fpr``.

    The attack says "member" when ``score > t``. With ``k = floor(fpr * n_nonmembers)`` false
    positives allowed, the best threshold is the ``(k+1)``-th largest non-member score; ties at
    that score are counted as non-member, so the false-positive rate never exceeds ``fpr``.

    Parameters
    ----------
    member_scores : array of float, shape (n_members,)
    nonmember_scores : array of float, shape (n_nonmembers,)
    fpr : float
        Allowed false-positive rate in [0, 1).

    Returns
    -------
    tpr : float
        Fraction of members flagged at that threshold. With fewer than ``1 / fpr`` non-members no
        false positive is allowed, so this is the fraction of members above every non-member.
    """
    if not 0 <= fpr < 1:
        raise ValueError(f"fpr must be in [0, 1), got {fpr}")
    pos, neg = _check_scores(member_scores, nonmember_scores)
    k = int(np.floor(fpr * neg.size + 1e-9))
    threshold = np.sort(neg)[::-1][k]
    return float(np.mean(pos > threshold))


def per_sample_losses(loss_fn: Callable[..., torch.Tensor], rgbd: np.ndarray, aus: np.ndarray, *,
                      repeats: int = 2, batch_size: int = 64, seed: int = 0) -> np.ndarray:
    """The generator's loss on each frame, averaged over ``repeats`` noise seeds.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(rgbd, aus, seed=...) -> Tensor (n,)``, e.g. a generator's ``per_sample_loss``.
    rgbd : ndarray of float32, shape (n, 4, H, W)
        Frames in [-1, 1].
    aus : ndarray of float32, shape (n, n_aus)
        The AU conditioning of each frame.
    repeats : int
        Seeds ``seed .. seed + repeats - 1``; averaging reduces the noise of stochastic losses
        (a diffusion loss depends on the drawn noise and time step).
    batch_size : int
        Frames per call.

    Returns
    -------
    losses : ndarray of float64, shape (n,)
    """
    if len(rgbd) != len(aus):
        raise ValueError(f"rgbd has {len(rgbd)} frames but aus has {len(aus)} rows")
    total = np.zeros(len(rgbd))
    with torch.no_grad():
        for r in range(repeats):
            for i in range(0, len(rgbd), batch_size):
                x = torch.from_numpy(np.ascontiguousarray(rgbd[i:i + batch_size], dtype=np.float32))
                a = torch.from_numpy(np.ascontiguousarray(aus[i:i + batch_size], dtype=np.float32))
                # Seeds differ per batch so equal frames in different batches get independent draws.
                loss = loss_fn(x, a, seed=seed + r * 100_003 + i)
                total[i:i + len(x)] += loss.detach().double().cpu().numpy().reshape(-1)
    return total / repeats


def membership_inference(member_losses: np.ndarray, nonmember_losses: np.ndarray) -> dict[str, Any]:
    """AUC and TPR at 1 % FPR of the loss-threshold attack (lower loss means member).

    Parameters
    ----------
    member_losses : ndarray, shape (n_members,)
        Per-frame losses on training frames.
    nonmember_losses : ndarray, shape (n_nonmembers,)
        Per-frame losses on held-out frames.

    Returns
    -------
    result : dict
        ``auc``, ``tpr_at_1pct_fpr``, ``n_members``, ``n_nonmembers``, the median losses and the
        attack's name.
    """
    member_scores, nonmember_scores = -np.asarray(member_losses), -np.asarray(nonmember_losses)
    result = {
        "attack": "loss threshold (lower generator loss -> member)",
        "auc": roc_auc(member_scores, nonmember_scores),
        "tpr_at_1pct_fpr": tpr_at_fpr(member_scores, nonmember_scores, 0.01),
        "n_members": int(np.size(member_losses)),
        "n_nonmembers": int(np.size(nonmember_losses)),
        "member_loss_median": float(np.median(member_losses)),
        "nonmember_loss_median": float(np.median(nonmember_losses)),
    }
    if result["n_nonmembers"] < 100:
        logger.warning("Only %d held-out frames: TPR at 1 %% FPR allows no false positive and is coarse.",
                       result["n_nonmembers"])
    return result
