"""Command-line front ends for XDF interop and replay: ``import-xdf`` and ``replay``.

Thin wrappers, as in :mod:`acquisition.cli.record`: parse options, call
:func:`acquisition.io.xdf.import_xdf` or :class:`acquisition.live.replay.SessionPlayer`,
print the result with rich. The ``emosync`` entry point (``emosync.py``) registers them
as ``emosync import-xdf`` and ``emosync replay``.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from acquisition.cli.common import fail, console, install_stop_handlers

#: Exit code of ``import-xdf --strict`` when the session was written but something was lost.
EXIT_INCOMPLETE = 3


def print_import_report(report: dict[str, Any]) -> None:
    """Print an import report (as returned by :func:`acquisition.io.xdf.import_xdf`)."""
    table = Table(title=f"{Path(report['source']).name} -> {report['output']}  "
                        f"({'complete' if report['complete'] else 'INCOMPLETE: see below'})")
    for column in ("stream", "type", "samples", "lost", "chunks skipped", "offsets", "footer", "notes"):
        table.add_column(column, justify="left" if column in ("stream", "type", "notes") else "right")
    for name, s in report["streams"].items():
        notes = []
        if s["empty"]:
            notes.append("empty")
        units = s.get("units") or {}
        if units.get("converted_channels"):
            notes.append(f"{units['converted_channels']} ch {'/'.join(units['original_units'])} -> V")
        if units.get("unknown_unit_channels"):
            notes.append(f"{units['unknown_unit_channels']} ch unit unknown")
        style = "red" if s["samples_lost"] else ""
        table.add_row(name, str(s["type"]), str(s["samples_imported"]), str(s["samples_lost"]),
                      str(s["chunks_skipped"]), str(s["clock_offsets"]), "yes" if s["footer"] else "no",
                      ", ".join(notes), style=style)
    console.print(table)
    for skipped in report["skipped_streams"]:
        console.print(f"[yellow]skipped[/] stream id {skipped['xdf_stream_id']}: {skipped['reason']}")
    for message in report["warnings"]:
        console.print(f"[yellow]warning:[/] {message}")


def import_xdf(
    xdf_file: Path = typer.Argument(..., help="The XDF recording to import (.xdf)."),
    out: Path = typer.Argument(..., help="Session file to create (.h5). Never overwritten."),
    stream: list[str] = typer.Option([], "--stream", "-s", help="Import only this stream (XDF name); repeatable."),
    subject: str = typer.Option("sub-unknown", help="Pseudonymous subject id (never a name)."),
    notes: str = typer.Option("", help="Free-text notes stored in the session."),
    rename_existing: bool = typer.Option(False, help="Move an existing OUT to <name>_oldN.h5 first."),
    strict: bool = typer.Option(False, help=f"Exit with code {EXIT_INCOMPLETE} if anything could not be imported."),
    json_out: bool = typer.Option(False, "--json", help="Print the import report as JSON."),
) -> None:
    """Import an XDF file (LabRecorder) into a session: raw stamps, clock offsets, metadata, loss report.

    Example: emosync import-xdf recording.xdf session.h5
    """
    from acquisition.io.xdf import XdfFormatError
    from acquisition.io.xdf import import_xdf as run_import

    try:
        report = run_import(xdf_file, out, subject_id=subject, notes=notes, streams=stream or None,
                            if_exists="rename" if rename_existing else "error",
                            verbose="ERROR")  # the report below says everything the log would
    except (XdfFormatError, FileExistsError, FileNotFoundError, PermissionError, ImportError, OSError) as err:
        raise fail(str(err)) from None
    if json_out:
        typer.echo(json.dumps(report, indent=2))
    else:
        print_import_report(report)
    if strict and not report["complete"]:
        raise typer.Exit(EXIT_INCOMPLETE)


def replay(
    source: Path = typer.Argument(..., help="A session (.h5) or an XDF file (.xdf) to replay."),
    speed: float = typer.Option(1.0, help="Playback speed (2 = twice as fast; time stamps follow)."),
    loop: bool = typer.Option(False, "--loop", help="Start over at the end, until Ctrl-C."),
    name_prefix: str = typer.Option("", help="Prefix for the LSL stream names."),
    stream: list[str] = typer.Option([], "--stream", "-s", help="Replay only this stream; repeatable."),
    start: float = typer.Option(0.0, help="Start this many seconds into the recording."),
    duration: Optional[float] = typer.Option(None, help="Replay this many seconds of the recording."),
    source_id_suffix: str = typer.Option("", help="Append this to every source_id (two replays side by side)."),
    wait_consumers: float = typer.Option(
        0.0, help="Wait up to this many seconds for a consumer (e.g. a recorder) on every stream before starting."),
) -> None:
    """Replay recorded streams as live LSL outlets with their original timing and metadata.

    Example: emosync replay session.h5 --speed 2 --name-prefix replay_
    """
    from acquisition.live.replay import SessionPlayer

    try:
        player = SessionPlayer(source, speed=speed, loop=loop, name_prefix=name_prefix, streams=stream or None,
                               start_s=start, duration_s=duration, source_id_suffix=source_id_suffix,
                               wait_for_consumers_s=wait_consumers)
    except (ValueError, FileNotFoundError, FileExistsError, OSError, ImportError) as err:
        raise fail(str(err)) from None
    stop = threading.Event()
    install_stop_handlers(stop)
    length = "looping" if loop else f"{player.duration_s:.1f} s"
    console.print(f"Replaying {', '.join(player.stream_names)} ({length}; Ctrl-C to stop)")
    started = time.monotonic()
    try:
        player.run(stop_event=stop)
    finally:
        player.close()
    table = Table(title=f"Replayed {source.name} in {time.monotonic() - started:.1f} s")
    for column in ("stream", "samples", "pushed", "loops", "max lag ms"):
        table.add_column(column, justify="left" if column == "stream" else "right")
    for name, s in player.stats().items():
        table.add_row(name, str(s["samples"]), str(s["pushed"]), str(s["loops"]), f"{s['max_lag_s'] * 1e3:.1f}")
    console.print(table)
