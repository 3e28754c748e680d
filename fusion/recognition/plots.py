"""The confusion matrix of a recognition evaluation, as a PNG."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def plot_confusion(confusion: Sequence[Sequence[float]], classes: Sequence[str], fname: str | os.PathLike, *,
                   title: str = "Expression recognition (LOSO)") -> Path:
    """Write the confusion matrix: cells coloured by row-normalised recall, annotated with counts.

    Parameters
    ----------
    confusion : array-like, shape (n_classes, n_classes)
        ``confusion[i][j]``: clips of true class ``i`` predicted as ``j``.
    classes : sequence of str
        Class names, matrix order.
    fname : path-like
        The PNG to write.
    title : str
        Figure title.

    Returns
    -------
    fname : Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(confusion, dtype=np.float64)
    rows = counts.sum(1, keepdims=True)
    recall = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.2 * n + 2.5, 1.1 * n + 1.8))
    image = ax.imshow(recall, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{int(counts[i, j])}\n{recall[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if recall[i, j] > 0.6 else "black")
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), [f"{c} ({int(r)})" for c, r in zip(classes, rows[:, 0])])
    ax.set(xlabel="predicted", ylabel="true (clips)", title=title)
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    fig.tight_layout()
    fname = Path(fname)
    fname.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(fname, dpi=100)
    plt.close(fig)
    return fname
