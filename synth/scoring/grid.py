"""The picture of a scored corpus: new people by requested expression, requested vs measured AUs.

One figure a reader looks at instead of the JSON: rows are the corpus's identities, columns its
requested expressions, each tile the apex frame of one sequence with its strongest requested AUs
and what the independent estimator measured on that frame; below, the frames of one
micro-expression from onset through apex to offset. ``emosync synth score --out`` writes it as
``grid.png``; the README's sample figure is this picture.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from acquisition.annotate.action_units import AU_LABELS


@dataclass
class GridInputs:
    """What the grid needs from a scoring run (kept apart from the JSON: it holds frames).

    Attributes
    ----------
    rgbd : array of float32, shape (n_frames, 4, H, W)
        The corpus frames in [-1, 1].
    requested, measured : array of float, shape (n_frames, 17)
        Requested and independently measured AU intensities (FACS 0-5).
    bounds : list of (int, int)
        Rows of each sequence.
    records : list of dict
        The sequences' ``corpus.json`` records (``emotion``, ``kind``, ``identity``, ``id``).
    scored : array of bool, shape (17,)
        The AUs the score is computed on; captions name only these.
    """

    rgbd: np.ndarray
    requested: np.ndarray
    measured: np.ndarray
    bounds: list[tuple[int, int]]
    records: list[dict[str, Any]]
    scored: np.ndarray


def plot_score_grid(inputs: GridInputs, fname: str | os.PathLike, *, max_identities: int = 4,
                    max_expressions: int = 7, n_aus_shown: int = 2, strip_frames: int = 7) -> Path:
    """Write the identities x expressions grid and one micro-expression strip as a PNG.

    Parameters
    ----------
    inputs : GridInputs
    fname : path-like
        The PNG to write.
    max_identities, max_expressions : int
        Rows and columns at most (the first ones in corpus order).
    n_aus_shown : int
        Strongest requested AUs named under each tile, as ``AU12 3.0/2.1`` (requested/measured).
    strip_frames : int
        Frames in the onset-apex-offset strip (evenly spaced over the sequence).

    Returns
    -------
    fname : Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = inputs.records
    identities = list(dict.fromkeys(str(r.get("identity") or "-") for r in records))[:max_identities]
    emotions = list(dict.fromkeys(str(r.get("emotion") or "explicit") for r in records))[:max_expressions]
    n_rows, n_cols = len(identities), len(emotions)
    fig = plt.figure(figsize=(1.6 * max(n_cols, strip_frames * 0.8), 1.9 * n_rows + 2.1), constrained_layout=True)
    grid = fig.add_gridspec(n_rows + 1, 1, height_ratios=[1.9] * n_rows + [2.1])
    for row, identity in enumerate(identities):
        axes = grid[row].subgridspec(1, n_cols).subplots(squeeze=False)[0]
        for col, emotion in enumerate(emotions):
            ax = axes[col]
            ax.axis("off")
            k = next((i for i, r in enumerate(records) if str(r.get("identity") or "-") == identity
                      and str(r.get("emotion") or "explicit") == emotion), None)
            if row == 0:
                ax.set_title(emotion, fontsize=9)
            if col == 0:
                ax.text(-0.08, 0.5, identity, transform=ax.transAxes, rotation=90, va="center", ha="right",
                        fontsize=8)
            if k is None:
                continue
            a, b = inputs.bounds[k]
            apex = a + int(np.argmax(inputs.requested[a:b][:, inputs.scored].sum(1)))
            ax.imshow(_rgb(inputs.rgbd[apex]))
            ax.text(0.5, -0.02, au_caption(inputs.requested[apex], inputs.measured[apex], inputs.scored, n_aus_shown),
                    transform=ax.transAxes, ha="center", va="top", fontsize=6.5)
    _strip(fig, grid[n_rows], inputs, strip_frames)
    fig.suptitle("Synthetic people x requested expressions; under each apex frame: requested/measured AU "
                 "(independent estimator)", fontsize=9)
    fig.savefig(fname, dpi=110)
    plt.close(fig)
    return Path(fname)


def _rgb(frame: np.ndarray) -> np.ndarray:
    return np.clip((np.transpose(frame[:3], (1, 2, 0)) + 1.0) / 2.0, 0.0, 1.0)


def au_caption(requested: np.ndarray, measured: np.ndarray, scored: np.ndarray, n: int) -> str:
    """The ``n`` strongest requested scored AUs of one frame as lines ``AU12 3.0/2.1`` (requested/measured)."""
    order = [i for i in np.argsort(-requested, kind="stable") if scored[i] and requested[i] > 0][:n]
    return "\n".join(f"{AU_LABELS[i]} {requested[i]:.1f}/{measured[i]:.1f}" for i in order) or "neutral"


def _strip(fig: Any, cell: Any, inputs: GridInputs, n_frames: int) -> None:
    """Frames of the longest micro-expression (or of the longest sequence) from onset to offset."""
    micro = [i for i, r in enumerate(inputs.records) if r.get("kind") == "micro"]
    candidates = micro or list(range(len(inputs.bounds)))
    k = max(candidates, key=lambda i: inputs.bounds[i][1] - inputs.bounds[i][0])
    a, b = inputs.bounds[k]
    rows = np.unique(np.linspace(a, b - 1, n_frames).round().astype(int))
    course = inputs.requested[a:b][:, inputs.scored].sum(1)
    measured = inputs.measured[a:b][:, inputs.scored].sum(1)
    axes = cell.subgridspec(1, len(rows)).subplots(squeeze=False)[0]
    record = inputs.records[k]
    for ax, row in zip(axes, rows):
        ax.imshow(_rgb(inputs.rgbd[row]))
        ax.axis("off")
        ax.set_title(f"frame {row - a}\nreq {course[row - a]:.1f} / meas {measured[row - a]:.1f}", fontsize=6.5)
    axes[0].text(-0.08, 0.5, f"{record.get('kind', '')} {record.get('emotion', '')}\n{record.get('id', '')}",
                 transform=axes[0].transAxes, rotation=90, va="center", ha="right", fontsize=7)
