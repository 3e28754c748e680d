"""Command-line front end of EMG-based AU coding: ``emg-code``.

A thin wrapper around :func:`acquisition.annotate.emg_coding.emg_code_session`: load the config with
its ``--set`` overrides, code, write the ``<EMG>-AU`` stream, and say which muscles and AUs were
used. The ``emosync`` entry point registers it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from acquisition.cli.common import console, fail


def emg_code(
    session: Path = typer.Argument(..., help="A closed session file (.h5); the AU stream is added to it."),
    stream: Optional[str] = typer.Option(None, "--stream", help="EMG stream (default: the only stream of type EMG)."),
    config: str = typer.Option("default", "--config", help="Config name under configs/emg_code/ or a YAML path."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="Config override key=value, repeatable, e.g. "
                                                  "--set channels.EXG1=corrugator or --set baseline.range_s=[0,5]."),
    out_stream: Optional[str] = typer.Option(None, "--out-stream", help="AU stream to write (default: <EMG>-AU)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an AU stream an earlier emg-code wrote."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Code and print, write nothing."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """AU intensities (FACS 0-5) from facial EMG alone, written as the derived stream <EMG>-AU.

    Example: emosync emg-code session.h5 --set baseline.range_s=[0,5] --json
    """
    from acquisition.annotate.emg_coding import emg_code_session, load_emg_coding_config

    try:
        cfg = load_emg_coding_config(config, overrides or [])
        result = emg_code_session(session, stream=stream, config=cfg, out_stream=out_stream, overwrite=overwrite,
                                  write=not dry_run, verbose="WARNING")
    except (FileNotFoundError, FileExistsError, ValueError, OSError) as err:
        raise fail(str(err)) from None
    summary = result.to_dict()
    if json_out:
        typer.echo(json.dumps(summary, indent=2))
        return
    console.print(f"Source: [bold]{result.source}[/], baseline {result.baseline_s[0]:.2f}-{result.baseline_s[1]:.2f} s "
                  "from its first sample")
    muscles = Table(title="Electrodes")
    for column in ("channel", "muscle", "side", "rest uV", "range uV"):
        muscles.add_column(column, justify="right" if column.endswith("uV") else "left")
    for label, muscle in result.channel_muscles.items():
        muscles.add_row(label, muscle, summary["sides"][label] or "-", f"{summary['rest_uv'][label]:.2f}",
                        f"{summary['range_uv'][label]:.2f}")
    console.print(muscles)
    aus = Table(title=f"{len(result.au_ids)} AUs at {summary['srate_hz']:g} Hz")
    for column in ("AU", "mean", "max"):
        aus.add_column(column, justify="left" if column == "AU" else "right")
    for label in result.au_labels:
        aus.add_row(label, f"{summary['mean'][label]:.2f}", f"{summary['max'][label]:.2f}")
    console.print(aus)
    if result.out_stream:
        console.print(f"Wrote AU stream [bold]{result.out_stream}[/] to {session}")
