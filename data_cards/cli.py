"""Command-line front end of data cards: ``card`` (write one) and ``card --check`` (is it complete and current?).

A thin wrapper around :mod:`data_cards`: parse options, show progress, say what was
written or what is wrong. The ``emosync`` entry point registers it.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from acquisition.cli.common import console, err_console, fail


def card(
    paths: list[Path] = typer.Argument(..., help="A folder of sessions (searched recursively), a synthetic corpus "
                                                 "folder (with corpus.json), or session files (.h5)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Card folder (default: data_cards/<folder name>)."),
    check: bool = typer.Option(False, "--check", help="Write nothing; exit 1 if card.yaml lacks a required field, "
                                                      "the data changed since the card was written, or the card "
                                                      "was edited by hand."),
    card_yaml: Optional[Path] = typer.Option(None, "--card-yaml", help="The human-written part (default: card.yaml "
                                                                       "beside the data)."),
    min_cell_count: Optional[int] = typer.Option(None, "--min-cell-count", min=1,
                                                 help="Show demographic counts below this as '<k' (default: "
                                                      "card.yaml's min_cell_count, 5)."),
) -> None:
    """Write a data card (README.md, croissant.json, sessions.csv) computed from session files and card.yaml.

    Numbers (streams, rates, durations, counts, AU and expression statistics, subjects, hashes,
    a synthetic corpus's generator and privacy audit) come from the data; consent, legal basis,
    uses and limitations from card.yaml (template: configs/card/card.yaml). Missing required
    fields are written as TODO and make --check fail.

    Example: emosync card recordings/ --out data_cards/my-lab   (then the same with --check, in CI)
    """
    from data_cards import check_card, write_card

    if check:
        try:
            problems = check_card(paths, out, card_yaml=card_yaml)
        except (FileNotFoundError, ValueError, OSError) as err:
            raise fail(str(err)) from None
        if problems:
            for problem in problems:
                err_console.print(f"[bold red]card check failed:[/] {escape(problem)}")
            raise typer.Exit(1)
        console.print("[green]Card is complete and up to date.[/]")
        return
    command = "emosync card " + " ".join(shlex.quote(str(p)) for p in paths)
    if card_yaml is not None:
        command += f" --card-yaml {shlex.quote(str(card_yaml))}"
    if out is not None:
        command += f" --out {shlex.quote(str(out))}"
    if min_cell_count is not None:
        command += f" --min-cell-count {min_cell_count}"
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("Reading sessions", total=None)
        try:
            result = write_card(paths, out, card_yaml=card_yaml, min_cell_count=min_cell_count,
                                source_command=command, progress=lambda: bar.advance(task),
                                on_inputs=lambda inputs: bar.update(task, total=len(inputs.sessions)))
        except (FileNotFoundError, FileExistsError, ValueError, OSError) as err:
            raise fail(str(err)) from None
    console.print(f"Wrote the card of {result.n_sessions} session(s) to {result.out}: "
                  + ", ".join(p.name for p in result.files))
    if result.missing:
        err_console.print(f"[bold yellow]The card is incomplete:[/] required field(s) {', '.join(result.missing)} "
                          "are missing from card.yaml (TODO markers written; --check fails until they are filled).")
