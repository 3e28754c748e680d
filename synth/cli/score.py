"""Command-line front end of the AU-fidelity scorer: ``emosync synth score`` (registered by ``emosync``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from acquisition.cli.common import console, fail


def score(
    corpus: Path = typer.Argument(..., help="The corpus folder (emosync synth sample --out)."),
    reference: list[Path] = typer.Option([], "--reference", "-r", help="A real session (.h5) with AU truth, of "
                                         "a subject the generator never saw; repeatable (2+ subjects for the "
                                         "ceiling)."),
    train: list[Path] = typer.Option([], "--train", help="A generator training session (.h5), repeatable: adds "
                                     "the memorization baseline (nearest training frame by AUs)."),
    config: str = typer.Option("score", "--config", "-c", help="configs/synth name or a .yaml path."),
    overrides: list[str] = typer.Option([], "--set", help="Config override KEY=VALUE, repeatable: "
                                        "--set estimator.steps=400."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for score.json and score.png (per-AU r "
                                       "of every set); never overwritten, a second score writes score-2.*."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object (the score.json content)."),
) -> None:
    """AU fidelity of a synthetic corpus, by an estimator trained only on subjects the generator never saw.

    Reports per-AU r and MAE, onset/apex/offset timing error and flicker, beside the ceiling (real unseen
    subjects), the memorization baseline (with --train) and the floor (shuffled requests).

    Example: emosync synth score corpora/c1 --reference heldout/*.h5 --json
    """
    from acquisition.utils.config import ConfigError

    from synth.scoring.config import load_score_config
    from synth.scoring.score import score_corpus

    if not reference:
        raise fail("Pass --reference sessions: real recordings with AU truth of subjects the generator never saw "
                   "(e.g. --reference heldout/h1.h5 --reference heldout/h2.h5). A corpus cannot be scored "
                   "without a reference.")
    try:
        cfg = load_score_config(config, overrides)
        report = score_corpus(corpus, list(reference), train=list(train) or None, config=cfg)
        files = report.write(out) if out is not None else {}
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError, KeyError) as err:
        raise fail(str(err)) from None
    result = report.to_dict()
    if as_json:
        typer.echo(json.dumps(result))
        return
    _print_summary(result)
    if files:
        console.print(f"Wrote {', '.join(str(p) for p in files.values())}")


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _print_summary(result: dict) -> None:
    from rich.table import Table

    table = Table(title=f"AU fidelity of {result['corpus']} ({result['n_sequences']} sequences; scored AUs: "
                        f"{', '.join(result['scored_aus'])})")
    for column in ("set", "mean r", "mean MAE", "onset", "apex", "offset (frames)", "flicker"):
        table.add_column(column)
    for name, s in result["sets"].items():
        if s is None:
            table.add_row(name, "-", "-", "-", "-", "-", "-", end_section=False)
            continue
        t = s["timing"] or {}
        table.add_row(name, _fmt(s["mean_r"]), _fmt(s["mean_mae"]), _fmt(t.get("onset_mean_abs_frames"), ".2f"),
                      _fmt(t.get("apex_mean_abs_frames"), ".2f"), _fmt(t.get("offset_mean_abs_frames"), ".2f"),
                      _fmt(s["flicker"], ".4f"))
    console.print(table)
    for name, note in result["notes"].items():
        console.print(f"{name}: not measured ({note})")
    goals = ", ".join(f"{k} {'-' if g['passed'] is None else ('pass' if g['passed'] else 'FAIL')}"
                      for k, g in result["goals"].items())
    console.print(f"goals: {goals}")
