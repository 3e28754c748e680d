"""Command-line front end of expression spotting: ``spot``.

A thin wrapper around :func:`acquisition.annotate.spotting.spot_session`: load the spotting
config (``configs/spot/``, ``--set`` overrides), spot, write the marker stream, optionally score
against a reference marker stream, and say which streams were used and what was found. The
``emosync`` entry point registers it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from acquisition.cli.common import fail, console


def spot(
    session: Path = typer.Argument(..., help="A closed session file (.h5); the marker stream is added to it."),
    stream: Optional[str] = typer.Option(None, "--stream", help="Source stream (ActionUnits or *-Landmarks). "
                                         "Default: an estimated *-AU stream, else *-Landmarks."),
    config: str = typer.Option("default", "--config", help="Spotting config in configs/spot/ (default: tuned, "
                               "every interference module on; baseline: before them) or a YAML path."),
    set_: list[str] = typer.Option([], "--set", help="Config override, repeatable: --set high=5 "
                                   "--set talking.enabled=false --set emg.enabled=true."),
    out_stream: Optional[str] = typer.Option(None, "--out-stream", help="Marker stream to write "
                                             "(default: <source>-Spotted)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a marker stream an earlier spot wrote."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Spot and print, write nothing."),
    truth: Optional[str] = typer.Option(None, "--truth", help="Also score against this marker stream's "
                                        "onset/offset pairs (IoU >= 0.5), e.g. the rig's Markers."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Spot micro- and macro-expressions (onset, apex, offset) and write them as a marker stream.

    Example: emosync spot session.h5 --truth Markers --json
    """
    from acquisition.session.reader import open_session
    from acquisition.utils.config import ConfigError

    from acquisition.annotate.spotting import load_spot_config, score_session, spot_session, truth_intervals

    try:
        spot_config = load_spot_config(config, list(set_))
        if truth is not None:
            # Check the reference before writing anything: a typo must not leave a new marker stream behind.
            with open_session(session) as s:
                truth_intervals(s, truth)
        result = spot_session(session, stream=stream, out_stream=out_stream, overwrite=overwrite,
                              write=not dry_run, config=spot_config, verbose="WARNING")
        scores = score_session(session, result, truth) if truth is not None else None
    except (FileNotFoundError, FileExistsError, ValueError, OSError, ConfigError) as err:
        raise fail(str(err)) from None
    if json_out:
        out = {**({k: v for k, v in scores.items() if k != "matches"} if scores is not None else {}),
               **result.to_dict(), "config": config, "overrides": list(set_),
               "tuning": spot_config.tuning.model_dump()}
        typer.echo(json.dumps(out, indent=2))
        return
    console.print(f"Source: [bold]{result.source}[/] ({result.reason}); inputs: "
                  + ", ".join(f"{role}={name}" for role, name in result.inputs.items()))
    table = Table(title=f"{len(result.intervals)} expressions spotted (config {config})")
    for column in ("onset s", "apex s", "offset s", "duration s", "kind", "label", "AUs", "peak (SD)"):
        table.add_column(column, justify="left" if column in ("kind", "label", "AUs") else "right")
    t0 = result.intervals[0].onset_s if result.intervals else 0.0
    for i in result.intervals:
        table.add_row(f"{i.onset_s - t0:.2f}", f"{i.apex_s - t0:.2f}", f"{i.offset_s - t0:.2f}", f"{i.duration_s:.2f}",
                      i.kind, i.label, ",".join(map(str, i.aus)) or "-", f"{i.peak:.1f}")
    console.print(table)
    if result.intervals:
        console.print("(times relative to the first onset; markers carry the source's raw time stamps)")
    if scores is not None:
        for key in ("micro", "macro", "overall"):
            v = scores[key]
            console.print(f"{key:8s} P={v['precision']:.3f} R={v['recall']:.3f} F1={v['f1']:.3f} "
                          f"(TP {v['tp']}, FP {v['fp']}, FN {v['fn']})")
        console.print(f"class mismatches among TPs: {scores['class_mismatches']}; spots where the reference "
                      f"is unknown (cut off by the recording): {scores['ignored']}")
    if result.out_stream:
        console.print(f"Wrote marker stream [bold]{result.out_stream}[/] to {session}")
