"""Command-line front end of the privacy audit: ``emosync synth audit`` (registered by ``emosync``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from acquisition.cli.common import fail, console


def audit(
    model: Path = typer.Argument(..., help="The generator's model folder (emosync synth train --out)."),
    corpus: Path = typer.Argument(..., help="The corpus folder (emosync synth sample --out)."),
    train: list[Path] = typer.Option([], "--train", help="A training session (.h5), repeatable; default: the "
                                     "sessions recorded in the model folder."),
    holdout: list[Path] = typer.Option([], "--holdout", help="A held-out real session (.h5) the model never saw, "
                                       "repeatable (at least one; sessions of 8 or more people make the verdict "
                                       "firmer)."),
    config: str = typer.Option("audit", "--config", "-c", help="configs/synth name or a .yaml path."),
    overrides: list[str] = typer.Option([], "--set", help="Config override KEY=VALUE, repeatable: "
                                        "--set rule.max_mia_auc=0.55."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for audit.json, audit.md, "
                                       "closest_pairs.png and identity_distances.png (default: the corpus folder; "
                                       "never overwritten, a second audit writes audit-2.*)."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object (the audit.json content)."),
    strict: bool = typer.Option(False, "--strict", help="Exit with status 2 when the audit fails."),
) -> None:
    """Privacy audit of a synthetic corpus: NN distances vs held-out data, new identities, memorization, MIA.

    Identity checks need --holdout sessions of people who are not training subjects.

    Example: emosync synth audit models/s1 corpora/c1 --train sessions/*.h5 --holdout heldout/*.h5 --json
    """
    from acquisition import logger
    from acquisition.utils.config import ConfigError

    from synth.privacy import audit_corpus, load_audit_config

    if not holdout:
        raise fail("Pass at least one --holdout session: real frames of the same kind the model never saw "
                    "(other subjects, or other recordings of the training subjects).")
    try:
        cfg = load_audit_config(config, overrides)
        report = audit_corpus(model, corpus, list(train) or None, list(holdout), cfg, progress=not as_json)
        files = report.write(out if out is not None else corpus, n_pairs=cfg.report.n_pairs)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError, KeyError) as err:
        raise fail(str(err)) from None
    result = report.to_dict()
    if as_json:
        typer.echo(json.dumps(result))
    else:
        _print_summary(result)
        console.print(f"Wrote {', '.join(str(p) for p in files.values())}")
    if not result["passed"]:
        logger.warning("The privacy audit FAILED; see %s", files["markdown"])
        if strict:
            raise typer.Exit(2)


def _print_summary(result: dict) -> None:
    from rich.table import Table

    from synth.privacy.summary import firmness_text

    table = Table(title=f"Privacy audit: {'PASS' if result['passed'] else 'FAIL'}")
    for column in ("check", "value", "bound", "result", "with other held-out people"):
        table.add_column(column)
    for name, check in result["checks"].items():
        verdict = "-" if check["passed"] is None else ("pass" if check["passed"] else "[red]FAIL[/]")
        value = "-" if check["value"] is None else f"{check['value']:.4g}"
        bound = "-" if check["bound"] is None else f"{check['bound']:.4g}"
        table.add_row(name, value, bound, verdict, firmness_text(check))
    console.print(table)
    mia = result["membership_inference"]
    if mia.get("auc") is not None:
        console.print(f"membership inference: AUC {mia['auc']:.3f}, TPR at 1 % FPR {mia['tpr_at_1pct_fpr']:.3f}")
    _print_identity(result.get("identity_privacy"))
    rate = result["rejection_rate"]
    console.print(f"memorized frames: {result['memorized_frames']} of {result['n_frames']['synthetic']}; "
                  f"rejection rate: {'no filter' if rate is None else f'{rate:.3f}'}")


def _print_identity(block: dict | None) -> None:
    """One or two lines on the identity checks: distances and re-identification, or why they did not run."""
    if block is None:
        return
    if block.get("skipped"):
        console.print(f"identity checks not run: {block['skipped']}")
        return
    test, reid = block["distance_test"], block["reidentification"]
    console.print(f"identities ({block['identity_source']}): median distance to the nearest training subject "
                  f"{test['synthetic_median']:.3f} vs held-out subjects {test['holdout_median']:.3f} "
                  f"(lower bound {test['holdout_median_lower_bound']['value']:.3f}); rank test p "
                  f"{test['rank_test']['p_value']:.3g}; mode {block['mode'].split(':')[0]}")
    leak = reid.get("leak_control")
    leak_text = (f"; leak control: {leak['accuracy']:.2f} named right vs chance {leak['chance']:.2f}"
                 if leak and leak.get("accuracy") is not None else "")
    console.print(f"re-identified: {reid['n_reidentified']} of {block['n_identities']['total']} identities "
                  f"({reid['rate']:.2f}; new people {reid['expected_rate_new_people']:.2f}, p {reid['p_value']:.3g})"
                  f"{leak_text}")
