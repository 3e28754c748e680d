"""The scorer's outputs: the JSON dict, the goal verdicts and the per-AU r figure.

Kept apart from :mod:`synth.scoring.score` so the numbers and how they are shown change
independently; the CLI prints the rich table from :meth:`ScoreReport.to_dict` alone.
Files are never overwritten: a second score into the same folder writes ``score-2.*``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acquisition.annotate.action_units import AU_LABELS
from synth.scoring.grid import GridInputs, plot_score_grid

#: The sets in the order they are shown, with the colour of each in the figure.
SET_COLOURS = {"synthetic": "tab:blue", "ceiling": "tab:green", "memorization": "tab:orange", "floor": "tab:grey"}


@dataclass
class ScoreReport:
    """Everything one scoring run measured (see :func:`synth.scoring.score.score_corpus`).

    Attributes
    ----------
    corpus : str
        The corpus folder.
    sequence_ids : list of str
        The scored sequences.
    sets : dict
        ``synthetic``, ``ceiling``, ``memorization``, ``floor``: the dict of
        :func:`synth.scoring.controls.score_set` each, or None when not measured (see ``notes``).
    notes : dict
        Why a set is None.
    scored_aus, rendered_aus : list of str
        AU labels entering the means, and those that vary in the reference data.
    reference, train : dict
        Files, subjects and frame counts.
    generator_subjects : list of str | None
        The generator's training subjects (None: unknown).
    subject_check : str
        Where ``generator_subjects`` came from, or why the check was skipped.
    config : ScoreConfig
    """

    corpus: str
    sequence_ids: list[str]
    sets: dict[str, dict | None]
    notes: dict[str, str]
    scored_aus: list[str]
    rendered_aus: list[str]
    reference: dict[str, Any]
    train: dict[str, Any]
    generator_subjects: list[str] | None
    subject_check: str
    config: Any
    files: dict[str, str] = field(default_factory=dict)
    grid: GridInputs | None = field(default=None, repr=False)

    def goals(self) -> dict[str, Any]:
        """Issue 15's goals against this run (None where a needed set is missing)."""
        g = self.config.goals
        syn, ceil, floor = self.sets["synthetic"], self.sets.get("ceiling"), self.sets["floor"]
        r = syn["mean_r"]
        timing = (syn["timing"] or {}).get("mean_abs_frames")
        gap = None if ceil is None or ceil["mean_r"] is None or r is None else ceil["mean_r"] - r
        margin = None if r is None or floor["mean_r"] is None else r - floor["mean_r"]
        return {
            "mean_r": {"value": r, "bound": g.min_mean_r, "passed": None if r is None else r >= g.min_mean_r},
            "gap_to_ceiling": {"value": gap, "bound": g.max_gap_to_ceiling,
                               "passed": None if gap is None else gap <= g.max_gap_to_ceiling},
            "margin_over_floor": {"value": margin, "bound": g.min_margin_over_floor,
                                  "passed": None if margin is None else margin >= g.min_margin_over_floor},
            "timing_error_frames": {"value": timing, "bound": g.max_timing_error_frames,
                                    "passed": None if timing is None else timing <= g.max_timing_error_frames},
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready report (what ``--json`` prints and ``score.json`` holds)."""
        syn, ceil = self.sets["synthetic"], self.sets.get("ceiling")
        real_flicker = None if ceil is None else ceil.get("flicker")
        ratio = None if real_flicker in (None, 0) or syn["flicker"] is None else syn["flicker"] / real_flicker
        return {
            "corpus": self.corpus, "n_sequences": len(self.sequence_ids),
            "estimator": {"kind": "CNN regressor of 17 AU intensities", "channels": self.config.estimator.channels,
                          "image_size": self.config.image_size, "trained_on": "reference sessions only",
                          "steps": self.config.estimator.steps},
            "reference": self.reference, "train": self.train,
            "generator_training_subjects": self.generator_subjects, "subject_check": self.subject_check,
            "rendered_aus": self.rendered_aus, "scored_aus": self.scored_aus,
            "rendered_rule": f"std of the reference AU truth >= {self.config.rendered.min_std} FACS units, and "
                             "varying in the corpus requests",
            "sets": self.sets, "notes": self.notes,
            "flicker": {"synthetic": syn["flicker"], "real_reference": real_flicker, "ratio": ratio},
            "goals": self.goals(),
            "config": self.config.model_dump(),
        }

    def write(self, out: str | os.PathLike) -> dict[str, Path]:
        """Write ``score.json``, ``score.png`` (per-AU r of each set) and ``score_grid.png`` (people x
        expressions, requested vs measured AUs; :mod:`synth.scoring.grid`) into ``out`` (created), never
        overwriting.

        Returns
        -------
        files : dict
            ``{"json": path, "figure": path, "grid": path}`` (no ``grid`` when the report holds no frames).
        """
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        stem, k = "score", 1
        while (out / f"{stem}.json").exists() or (out / f"{stem}.png").exists():
            k += 1
            stem = f"score-{k}"
        files = {"json": out / f"{stem}.json", "figure": out / f"{stem}.png"}
        files["json"].write_text(json.dumps(self.to_dict(), indent=2))
        plot_per_au_r(self.to_dict(), files["figure"])
        if self.grid is not None:
            files["grid"] = plot_score_grid(self.grid, out / f"{stem}_grid.png")
        self.files = {k: str(v) for k, v in files.items()}
        return files


def plot_per_au_r(result: dict[str, Any], fname: str | os.PathLike) -> Path:
    """Grouped bars of per-AU r for every measured set; scored AUs only, their means in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = result["scored_aus"] or list(AU_LABELS)
    sets = [(name, s) for name, s in result["sets"].items() if s is not None]
    width = 0.8 / max(1, len(sets))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(labels) + 2), 3.6), constrained_layout=True)
    x = np.arange(len(labels))
    for i, (name, s) in enumerate(sets):
        values = [np.nan if s["r"][lab] is None else s["r"][lab] for lab in labels]
        mean = "n/a" if s["mean_r"] is None else f"{s['mean_r']:.2f}"
        ax.bar(x + (i - (len(sets) - 1) / 2) * width, values, width, color=SET_COLOURS.get(name),
               label=f"{name} (mean r {mean})")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(x, labels, rotation=45)
    ax.set_ylim(-1, 1)
    ax.set_ylabel("Pearson r (requested vs measured)")
    ax.set_title("AU fidelity by an estimator trained on reference subjects only")
    ax.legend(fontsize=8, loc="lower left")
    fig.savefig(fname, dpi=100)
    plt.close(fig)
    return Path(fname)
