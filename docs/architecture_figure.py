"""Draw docs/img/architecture.png: the layers of the house, their modules, and the imports between them.

The layers and the import graph (each box lists the boxes it imports) come from ``tests/test_house.py``
(which enforces them), and the module names from the files on disk, so the picture cannot drift from the
code: rerun after moving a module.

Usage (from the repository root): ``python docs/architecture_figure.py [OUT.png]``
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from tests.test_house import ACQUISITION_LAYERS, import_graph  # noqa: E402

#: Rows of the picture, bottom first: (label, boxes); a box is a top-level package or an acquisition layer.
ROWS = [
    ("acquisition layer 0", ["utils"]),
    ("layer 1", ["sync"]),
    ("layer 2", ["session"]),
    ("layer 3", ["lsl"]),
    ("layer 4", ["devices", "io"]),
    ("layer 5", ["annotate", "viz"]),
    ("layer 6", ["live"]),
    ("layer 7", ["cli"]),
    ("above acquisition", ["fusion", "synth"]),
    ("above both", ["data_cards"]),
]
COLORS = {"acquisition": "#dbe9f6", "fusion": "#fde2c8", "synth": "#e3f1d8", "data_cards": "#efe0f3"}


def box_of(module: str) -> str:
    """The box a module is drawn in: its acquisition layer, or its top-level package."""
    parts = module.split(".")
    if parts[0] == "acquisition" and len(parts) > 1 and parts[1] in ACQUISITION_LAYERS:
        return parts[1]
    return parts[0]


def box_contents(box: str) -> str:
    """The modules of a box, as a short wrapped list."""
    folder = REPO_ROOT / ("acquisition/" + box if box in ACQUISITION_LAYERS else box)
    names = sorted({p.relative_to(folder).with_suffix("").as_posix().split("/")[0] for p in folder.rglob("*.py")
                    if p.name != "__init__.py"})
    lines, line = [], ""
    for name in names:
        if len(line) + len(name) > 44:
            lines.append(line.rstrip(", "))
            line = ""
        line += name + ", "
    lines.append(line.rstrip(", "))
    return "\n".join(lines)


def draw(out: Path) -> None:
    graph, _ = import_graph(REPO_ROOT)
    uses: dict[str, set[str]] = {}
    for module, targets in graph.items():
        for target in targets:
            # `from acquisition import logger` goes through the package's lazy names: drawn as no edge.
            if box_of(module) != box_of(target) and box_of(target) != "acquisition":
                uses.setdefault(box_of(module), set()).add(box_of(target))
    order = [box for _, boxes in ROWS for box in boxes]
    width, height, gap = 5.6, 1.15, 0.35
    fig, ax = plt.subplots(figsize=(13.5, 1.5 * len(ROWS)))
    for row, (label, boxes) in enumerate(ROWS):
        y = row * (height + gap)
        ax.text(-0.3, y + height / 2, label, ha="right", va="center", fontsize=10, color="#555555")
        for k, box in enumerate(boxes):
            x = k * (width + 0.5) + (0 if len(boxes) == 2 else (width + 0.5) / 2)
            package = "acquisition" if box in ACQUISITION_LAYERS else box
            ax.add_patch(FancyBboxPatch((x, y), width, height, boxstyle="round,pad=0.02,rounding_size=0.08",
                                        facecolor=COLORS[package], edgecolor="#333333", linewidth=1))
            title = f"acquisition/{box}/" if box in ACQUISITION_LAYERS else f"{box}/"
            ax.text(x + 0.12, y + height - 0.1, title, ha="left", va="top", fontsize=11, fontweight="bold",
                    family="monospace")
            ax.text(x + 0.12, y + height - 0.38, box_contents(box), ha="left", va="top", fontsize=8,
                    family="monospace", color="#222222")
            imported = sorted(uses.get(box, ()), key=order.index)
            ax.text(x + 0.12, y + 0.08, "imports: " + (", ".join(imported) or "nothing of ours"), ha="left",
                    va="bottom", fontsize=8, color="#8a3b12", style="italic")
    top = len(ROWS) * (height + gap) - gap
    ax.add_patch(FancyArrowPatch((2 * width + 0.9, top), (2 * width + 0.9, 0), arrowstyle="-|>",
                                 mutation_scale=18, color="#8a3b12", linewidth=2))
    ax.text(2 * width + 1.1, top / 2, "imports point down only", rotation=90, va="center", fontsize=10,
            color="#8a3b12")
    ax.set_xlim(-2.6, 2 * width + 1.6)
    ax.set_ylim(-0.2, top + 0.2)
    ax.axis("off")
    ax.set_title("The house: each layer imports only the layers below it (checked by tests/test_house.py)",
                 fontsize=11)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    draw(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO_ROOT / "docs" / "img" / "architecture.png")
