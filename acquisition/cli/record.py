"""Command-line front ends of acquisition: ``record``, ``info``, ``stream-device``.

Thin wrappers: parse options, call the library, print results with rich. The
``emosync`` entry point (``emosync.py``) registers them.
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
from rich.table import Table

from acquisition.cli.common import console, fail, install_stop_handlers


def _status_table(recorder: Any, started: float) -> Table:
    table = Table(title=f"Recording {recorder.fname} ({time.monotonic() - started:.0f} s)  Ctrl-C to stop")
    table.add_column("stream")
    table.add_column("samples", justify="right")
    table.add_column("idle (s)", justify="right")
    for name, s in sorted(recorder.status().items()):
        idle = s["idle_s"]
        style = "red" if idle == idle and idle > 2.0 else ""
        table.add_row(name, str(int(s["received"])), f"{idle:.1f}" if idle == idle else "-", style=style)
    return table


def _jitter_text(stream_summary: dict[str, Any]) -> str:
    before, after = stream_summary["jitter_before_s"], stream_summary["jitter_after_s"]
    if before is None:
        return "-"
    return f"{before * 1e6:.1f} ({after * 1e6:.1f})" if stream_summary["dejittered"] else f"{before * 1e6:.1f}"


def print_summary(summary: dict[str, Any]) -> None:
    """Print a session summary (as returned by :func:`acquisition.session.summary.summarize_session`)."""
    table = Table(title=f"{summary['file']}  ({summary['file_size_bytes'] / 1e6:.1f} MB, "
                        f"subject {summary['subject_id']})")
    for column in ("stream", "type", "samples", "nominal Hz", "effective Hz", "duration s", "gaps",
                   "dropped", "offsets", "offset ms (sd)", "resets", "jitter us (after)"):
        table.add_column(column, justify="left" if column in ("stream", "type") else "right")
    for name, s in summary["streams"].items():
        co = s["clock_offsets"]
        offset = f"{co['mean_offset_s'] * 1e3:.3f} ({co['std_offset_s'] * 1e3:.3f})" if co["n"] else "-"
        eff = s.get("effective_srate")
        table.add_row(name, str(s["type"]), str(s["n_samples"]), f"{s['nominal_srate']:g}",
                      f"{eff:.3f}" if eff is not None else "-", f"{s.get('duration_s', 0):.2f}",
                      str(len(s["gaps"])), "-" if s["dropped_samples_estimate"] is None else
                      str(s["dropped_samples_estimate"]), str(co["n"]), offset,
                      str(max(len(s["clock_segments"]) - 1, 0)), _jitter_text(s))
    console.print(table)


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
    rename_existing: bool = typer.Option(False, help="Move an existing FNAME to <name>_oldN.h5 first."),
    json_out: bool = typer.Option(False, "--json", help="Print the final summary as JSON."),
) -> None:
    """Record LSL streams into a session file.

    Example: emosync record session.h5 --all --duration 60
    """
    from acquisition.session.reader import open_session
    from acquisition.live.recorder import RecorderSettings, RecordingError, SessionRecorder, StreamNotFoundError
    from acquisition.session.summary import summarize_session

    stop = threading.Event()
    install_stop_handlers(stop)
    try:
        recorder = SessionRecorder(fname, streams=stream, all_streams=all_streams, camera=camera,
                                   video_compression=video_compression, subject_id=subject, notes=notes,
                                   if_exists="rename" if rename_existing else "error",
                                   settings=RecorderSettings(wait_timeout_s=wait))
        recorder.start()
    except (ValueError, FileExistsError, FileNotFoundError, PermissionError, StreamNotFoundError, RuntimeError,
            OSError) as err:
        raise fail(str(err)) from None
    started = time.monotonic()
    deadline = None if duration is None else started + duration
    show_live = console.is_terminal and not json_out
    live = Live(get_renderable=lambda: _status_table(recorder, started), console=console,
                refresh_per_second=2, transient=True) if show_live else contextlib.nullcontext()
    with live:
        while not stop.is_set() and not recorder.failed and (deadline is None or time.monotonic() < deadline):
            recorder.wait(0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic())))
    try:
        counts = recorder.stop()
    except RecordingError as err:
        fail(str(err), code=2)
        sys.stderr.flush()
        sys.stdout.flush()
        # HDF5 may be in an undefined state after an I/O error and can crash at interpreter
        # exit; the file as of the last flush is valid, so leave without running finalizers.
        os._exit(2)
    with open_session(fname) as session:
        summary = summarize_session(session)
    if json_out:
        typer.echo(json.dumps(summary, indent=2))
    else:
        console.print(f"Wrote {fname}: " + ", ".join(f"{name} {n} samples" for name, n in counts.items()))
        print_summary(summary)


def info(
    fname: Path = typer.Argument(..., help="A session file (.h5)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Show a session's streams: counts, rates, gaps, clock offsets, file size.

    Example: emosync info session.h5 --json
    """
    from acquisition.session.reader import open_session
    from acquisition.session.summary import summarize_session

    try:
        with open_session(fname) as session:
            summary = summarize_session(session)
    except (FileNotFoundError, ValueError, OSError) as err:
        raise fail(str(err)) from None
    if json_out:
        typer.echo(json.dumps(summary, indent=2))
    else:
        print_summary(summary)


def stream_device(
    board: str = typer.Option(..., help="BrainFlow board name (synthetic, cyton, ganglion, ...) or id."),
    serial_port: str = typer.Option("", help="Serial port of the board (e.g. /dev/ttyUSB0)."),
    duration: Optional[float] = typer.Option(None, help="Seconds to stream (default: until Ctrl-C)."),
    name_prefix: str = typer.Option("", help="Prefix for the LSL stream names."),
    shared_rows: str = typer.Option("eeg", help="Rows a board reports as both EEG and EMG go to: eeg, emg, both."),
) -> None:
    """Publish a BrainFlow board's EEG/EMG as LSL streams (needs the brainflow extra: pip install emosync[brainflow]).

    Example: emosync stream-device --board synthetic --duration 60
    """
    try:
        from acquisition.devices.brainflow_bridge import BrainFlowBridge

        bridge = BrainFlowBridge(board, serial_port=serial_port, name_prefix=name_prefix, shared_rows=shared_rows)  # type: ignore[arg-type]
        bridge.start()
    except (ImportError, ValueError, RuntimeError) as err:
        raise fail(str(err)) from None
    console.print("Publishing " + ", ".join(bridge.stream_names) + (" (Ctrl-C to stop)" if duration is None else ""))
    stop = threading.Event()
    install_stop_handlers(stop)
    try:
        bridge.run(duration, stop_event=stop)  # stops the board on return; raises if the board goes silent
    except RuntimeError as err:
        raise fail(str(err)) from None
    console.print("Pushed " + ", ".join(f"{k}: {v}" for k, v in bridge.stats().items()))
