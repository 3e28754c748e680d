"""Nearest-neighbour distances between two sets of vectors, in bounded memory.

The audit asks one question many times: how far is each query (a synthetic or held-out frame,
flattened, or its embedding) from the closest reference (a training frame)? The search runs in
blocks of ``chunk_size x chunk_size`` so memory stays bounded however many frames there are, and
the distance to the winning neighbour is recomputed directly from the difference, because the
``|a|^2 + |b|^2 - 2ab`` expansion used to rank candidates loses precision exactly where the audit
cares most: near-copies at distance ~0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from acquisition.utils.docs import add_doc, fill_doc

add_doc("nn_chunk_size", """
chunk_size : int
    Rows of each distance block; peak extra memory is about ``chunk_size**2`` floats plus one block
    of each input.
""")


@dataclass
class NeighbourResult:
    """Nearest reference of every query.

    Attributes
    ----------
    distance : ndarray of float64, shape (n_queries,)
        RMS distance to the nearest reference: ``||q - r||_2 / sqrt(n_features)``, in the units
        of the inputs (for frames in [-1, 1], 0 is an exact copy and 2 the largest possible).
    index : ndarray of int64, shape (n_queries,)
        Row of the nearest reference.
    """

    distance: np.ndarray
    index: np.ndarray


def flatten_frames(frames: np.ndarray) -> np.ndarray:
    """Frames ``(n, ...)`` as rows ``(n, n_features)`` of float32 (a view when possible)."""
    frames = np.asarray(frames)
    if frames.ndim < 2:
        raise ValueError(f"frames must have shape (n_frames, ...), got shape {frames.shape}")
    return np.ascontiguousarray(frames.reshape(len(frames), -1), dtype=np.float32)


@fill_doc
def nearest_neighbours(queries: np.ndarray, references: np.ndarray, *, chunk_size: int = 1024,
                       exclude_same: np.ndarray | None = None) -> NeighbourResult:
    """Nearest reference of each query under the RMS (per-feature) Euclidean distance.

    Parameters
    ----------
    queries : array, shape (n_queries, ...)
        E.g. frames ``(n, 4, H, W)`` in [-1, 1], or embeddings ``(n, dim)``; flattened per row.
    references : array, shape (n_references, ...)
        Same features per row as ``queries``.
    %(nn_chunk_size)s
    exclude_same : ndarray of bool, shape (n_queries, n_references) | None
        Pairs that may not be neighbours (e.g. same subject, for leave-one-subject-out
        distances). Memory ``n_queries * n_references`` bytes; None allows every pair.

    Returns
    -------
    result : NeighbourResult
        ``distance`` and ``index`` per query; ``inf`` and ``-1`` where every reference is excluded.
    """
    q = flatten_frames(queries)
    r = flatten_frames(references)
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} features per row but references have {r.shape[1]}; "
                         "both must come from the same image size / encoder.")
    if len(r) == 0:
        raise ValueError("references is empty: there is nothing to measure a distance to.")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if exclude_same is not None and exclude_same.shape != (len(q), len(r)):
        raise ValueError(f"exclude_same must have shape {(len(q), len(r))}, got {exclude_same.shape}")
    best_d2 = np.full(len(q), np.inf)
    best_i = np.full(len(q), -1, dtype=np.int64)
    r_norms = [torch.from_numpy(r[j:j + chunk_size]).double().square().sum(1)
               for j in range(0, len(r), chunk_size)]
    with torch.no_grad():
        for i in range(0, len(q), chunk_size):
            qb = torch.from_numpy(q[i:i + chunk_size])
            q_norm = qb.double().square().sum(1)
            block_best = torch.full((len(qb),), float("inf"), dtype=torch.float64)
            block_arg = torch.full((len(qb),), -1, dtype=torch.int64)
            for jb, j in enumerate(range(0, len(r), chunk_size)):
                rb = torch.from_numpy(r[j:j + chunk_size])
                d2 = q_norm[:, None] + r_norms[jb][None, :] - 2.0 * (qb @ rb.T).double()
                if exclude_same is not None:
                    mask = torch.from_numpy(np.ascontiguousarray(exclude_same[i:i + chunk_size, j:j + chunk_size]))
                    d2 = d2.masked_fill(mask, float("inf"))
                value, arg = d2.min(1)
                better = value < block_best
                block_best = torch.where(better, value, block_best)
                block_arg = torch.where(better, arg + j, block_arg)
            best_i[i:i + len(qb)] = block_arg.numpy()
            best_d2[i:i + len(qb)] = block_best.numpy()
    # Exact distance of the winner, per block: the expansion above cancels badly for near-copies.
    distance = np.full(len(q), np.inf)
    for i in range(0, len(q), chunk_size):
        rows = np.arange(i, min(i + chunk_size, len(q)))
        rows = rows[best_i[rows] >= 0]
        diff = q[rows].astype(np.float64) - r[best_i[rows]].astype(np.float64)
        distance[rows] = np.sqrt(np.square(diff).sum(1) / q.shape[1])
    return NeighbourResult(distance=distance, index=best_i)


def distance_summary(distance: np.ndarray) -> dict[str, float | int]:
    """Median, 1st and 5th percentile, minimum, mean and count of finite distances."""
    d = np.asarray(distance, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        raise ValueError("no finite distances to summarize")
    return {"median": float(np.median(d)), "p01": float(np.quantile(d, 0.01)), "p05": float(np.quantile(d, 0.05)),
            "min": float(d.min()), "mean": float(d.mean()), "n": int(d.size)}
