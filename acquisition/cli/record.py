"""Command-line front end of the recorder: ``record``.

A thin wrapper around :class:`acquisition.live.recorder.SessionRecorder`: parse options, record
with a live status table, then print the session summary. The ``emosync`` entry point
(``emosync.py``) registers it. The library is imported inside the command, so ``emosync --help``
does not pay for it.

Exit status: 0 when every stream found was recorded (or ``--allow-missing`` was given); 1 for a
usage error or no matching stream; 2 when the file could not be written (disk full...);
:data:`EXIT_STREAM_FAILED` when a stream was found but could not be recorded (what was
recorded up to then is kept, and the file names the stream in its ``failed_streams`` attribute).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from acquisition.cli.common import console, fail, install_stop_handlers

#: Exit status of ``record`` when a stream that was found could not be opened or recorded.
EXIT_STREAM_FAILED = 3


def _status_table(recorder: Any, started: float) -> Table:
    """The live view: samples and idle seconds per stream (idle over 2 s in red), failed streams last."""
    table = Table(title=f"Recording {escape(str(recorder.fname))} ({time.monotonic() - started:.0f} s)  "
                        "Ctrl-C to stop")
    table.add_column("stream")
    table.add_column("samples", justify="right")
    table.add_column("idle (s)", justify="right")
    for name, s in sorted(recorder.status().items()):
        idle = s["idle_s"]
        style = "red" if idle == idle and idle > 2.0 else ""
        table.add_row(escape(name), str(int(s["received"])), f"{idle:.1f}" if idle == idle else "-", style=style)
    for name in sorted(recorder.failed_streams):
        table.add_row(escape(name), "FAILED", "-", style="bold red")
    return table


def _record_until_stopped(recorder: Any, duration: float | None, *, show_live: bool) -> None:
    """Wait for ``duration`` seconds, Ctrl-C/SIGTERM, or the recorder stopping on its own (a failure)."""
    stop = threading.Event()
    install_stop_handlers(stop)
    started = time.monotonic()
    deadline = None if duration is None else started + duration
    live = Live(get_renderable=lambda: _status_table(recorder, started), console=console,
                refresh_per_second=2, transient=True) if show_live else contextlib.nullcontext()
    with live:
        while not stop.is_set() and not recorder.failed and (deadline is None or time.monotonic() < deadline):
            recorder.wait(0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic())))


def _exit_unwritable(err: Exception) -> None:
    """Report a write failure and leave at once (exit 2), without HDF5's exit-time finalizers."""
    fail(str(err), code=2)
    sys.stderr.flush()
    sys.stdout.flush()
    # HDF5 may be in an undefined state after an I/O error and can crash at interpreter
    # exit; the file as of the last flush is valid, so leave without running finalizers.
    os._exit(2)


def record(
    fname: Path = typer.Argument(..., help="Session file to create (.h5). Never overwritten."),
    stream: list[str] = typer.Option([], "--stream", "-s",
                                     help="LSL query, repeatable: \"type='EMG'\", \"name='EEG'\"."),
    all_streams: bool = typer.Option(False, "--all", help="Record every visible stream (and later ones)."),
    duration: Optional[float] = typer.Option(None, help="Stop after this many seconds (default: Ctrl-C)."),
    camera: Optional[str] = typer.Option(None, help="Also capture this OpenCV camera (index or video file)."),
    video_compression: str = typer.Option(
        "none", help="Per-frame video compression: none, png, jpeg, or per stream: 'RGB=jpeg,Depth=png'."),
    subject: str = typer.Option("sub-unknown", help="Pseudonymous subject id (never a name)."),
    notes: str = typer.Option("", help="Free-text notes stored in the file."),
    wait: float = typer.Option(10.0, help="Seconds to wait for the requested streams."),
    allow_missing: bool = typer.Option(
        False, "--allow-missing",
        help="Keep recording when a stream that was found cannot be opened or recorded (it is named in the "
             f"file's failed_streams attribute). Default: stop, keep what was recorded, exit {EXIT_STREAM_FAILED}."),
    rename_existing: bool = typer.Option(False, help="Move an existing FNAME to <name>_oldN.h5 first."),
    json_out: bool = typer.Option(False, "--json", help="Print the final summary as JSON."),
) -> None:
    """Record LSL streams into a session file.

    A stream that is found but cannot be opened (it does not answer, or its metadata cannot be
    recorded) stops the recording with exit status 3, unless --allow-missing is given.

    Example: emosync record session.h5 --all --duration 60
    """
    from acquisition.cli.info import print_summary, session_summary
    from acquisition.live.recorder import (RecorderSettings, RecordingError, SessionRecorder, StreamNotFoundError,
                                           StreamOpenError)

    try:
        recorder = SessionRecorder(fname, streams=stream, all_streams=all_streams, camera=camera,
                                   video_compression=video_compression, subject_id=subject, notes=notes,
                                   if_exists="rename" if rename_existing else "error", allow_missing=allow_missing,
                                   settings=RecorderSettings(wait_timeout_s=wait))
        recorder.start()
    except (ValueError, FileExistsError, FileNotFoundError, PermissionError, StreamNotFoundError, RuntimeError,
            OSError) as err:
        raise fail(str(err)) from None
    _record_until_stopped(recorder, duration, show_live=console.is_terminal and not json_out)
    failure = None
    try:
        counts = recorder.stop()
    except StreamOpenError as err:  # the file was closed properly: summarize it, then say what is missing
        counts, failure = err.counts, err
    except RecordingError as err:
        _exit_unwritable(err)
    summary = session_summary(fname)
    if json_out:
        typer.echo(json.dumps(summary, indent=2))
    else:
        console.print(f"Wrote {escape(str(fname))}: "
                      + ", ".join(f"{escape(name)} {n} samples" for name, n in counts.items()))
        print_summary(summary)
    if failure is not None:
        raise fail(str(failure), code=EXIT_STREAM_FAILED)
