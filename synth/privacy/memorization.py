"""Memorization: synthetic frames within a calibrated distance of a training frame, and their picture.

"Close" is calibrated on real data the generator never saw: the threshold is a low quantile of the
held-out-to-train nearest-neighbour distances (by default the 1st percentile), i.e. closer to a
training frame than 99 % of genuinely new real frames are. A generator that copies training frames
puts many synthetic frames under it; one that makes new frames puts about as many as the quantile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


#: Distances under one 8-bit grey level (RMS over all values in [-1, 1]) are copies whatever the data:
#: the floor of every copy threshold, so data with pixel-identical frames (a still neutral face) still
#: gets a threshold that catches exact and near-exact copies.
COPY_FLOOR = 2.0 / 255.0


def calibrate_threshold(holdout_distance: np.ndarray, *, quantile: float = 0.01, scale: float = 1.0,
                        floor: float = COPY_FLOOR) -> float:
    """``scale`` times the ``quantile`` of held-out-to-train NN distances, at least ``floor``.

    Parameters
    ----------
    holdout_distance : ndarray, shape (n_holdout,)
        Nearest-training-frame distance of each held-out frame.
    quantile : float
        In (0, 1).
    scale : float
        Multiplier (< 1 makes the test stricter about what counts as a copy).
    floor : float
        Smallest threshold returned (see :data:`COPY_FLOOR`).

    Returns
    -------
    threshold : float
        In the units of the distances.
    """
    d = np.asarray(holdout_distance, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        raise ValueError("no held-out distances to calibrate the memorization threshold on")
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    return float(max(scale * np.quantile(d, quantile), floor))


def count_memorized(synthetic_distance: np.ndarray, threshold: float) -> dict[str, Any]:
    """Synthetic frames strictly closer than ``threshold`` to their nearest training frame.

    Returns
    -------
    result : dict
        ``threshold``, ``memorized_frames`` (count), ``memorized_fraction`` and ``n``.
    """
    d = np.asarray(synthetic_distance, dtype=np.float64)
    n = int(np.sum(d < threshold))
    return {"threshold": float(threshold), "memorized_frames": n,
            "memorized_fraction": float(n / d.size) if d.size else 0.0, "n": int(d.size)}


def _to_rgb_uint8(rgbd: np.ndarray) -> np.ndarray:
    """(4, H, W) in [-1, 1] -> (H, 2W, 3) uint8: RGB beside the depth channel shown in grey."""
    x = np.clip((np.asarray(rgbd, dtype=np.float32) + 1.0) * 127.5, 0, 255).astype(np.uint8)
    rgb = np.transpose(x[:3], (1, 2, 0))
    depth = np.repeat(x[3][:, :, None], 3, axis=2) if x.shape[0] > 3 else np.zeros_like(rgb)
    return np.concatenate([rgb, depth], axis=1)


def save_closest_pairs(fname: str | Path, synthetic: np.ndarray, training: np.ndarray, distance: np.ndarray,
                       index: np.ndarray, *, threshold: float | None = None, n_pairs: int = 12,
                       cell_px: int = 96) -> list[dict[str, Any]]:
    """Draw the ``n_pairs`` synthetic frames closest to a training frame, each beside that frame.

    Parameters
    ----------
    fname : path-like
        The PNG to write.
    synthetic, training : ndarray of float32, shape (n, 4, H, W)
        Frames in [-1, 1] (RGB + depth).
    distance, index : ndarray, shape (n_synthetic,)
        Nearest-training distance and row of each synthetic frame.
    threshold : float | None
        The memorization threshold; pairs under it are labelled "MEMORIZED".
    n_pairs : int
        Rows drawn.
    cell_px : int
        Height in pixels of each drawn frame.

    Returns
    -------
    pairs : list of dict
        ``synthetic_index``, ``training_index`` and ``distance`` of each drawn row, closest first.
    """
    from PIL import Image, ImageDraw

    order = np.argsort(distance, kind="stable")[:n_pairs]
    order = order[np.isfinite(distance[order])]
    if order.size == 0:
        raise ValueError("no synthetic frame has a finite nearest-training distance to draw")
    height, width = synthetic.shape[2], synthetic.shape[3]
    cell_w = int(round(cell_px * width / height))
    label_h = 16
    canvas = Image.new("RGB", (4 * cell_w + 8, label_h + len(order) * (cell_px + label_h)), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), "synthetic (RGB | depth)            nearest training frame (RGB | depth)", fill="black")
    pairs = []
    for row, k in enumerate(order):
        top = label_h + row * (cell_px + label_h)
        left = Image.fromarray(_to_rgb_uint8(synthetic[k])).resize((2 * cell_w, cell_px), Image.NEAREST)
        right = Image.fromarray(_to_rgb_uint8(training[index[k]])).resize((2 * cell_w, cell_px), Image.NEAREST)
        canvas.paste(left, (0, top + label_h))
        canvas.paste(right, (2 * cell_w + 8, top + label_h))
        flag = "  MEMORIZED" if threshold is not None and distance[k] < threshold else ""
        draw.text((4, top + 2), f"synthetic #{k} <-> training #{index[k]}: RMS distance {distance[k]:.4f}{flag}",
                  fill="red" if flag else "black")
        pairs.append({"synthetic_index": int(k), "training_index": int(index[k]), "distance": float(distance[k])})
    canvas.save(fname)
    return pairs
