"""Command-line front end of the recorder: ``record``.

A thin wrapper around :class:`acquisition.live.recorder.SessionRecorder`: parse options, record
with a live status table, then print the session summary. The ``emosync`` entry point
(``emosync.py``) registers it. The library is imported inside the command, so ``emosync --help``
does not pay for it.

With ``--remote [HOST:]PORT`` the command instead serves LabRecorder's remote-control protocol
(:mod:`acquisition.live.remote_control`) until Ctrl-C: experiment software starts and stops each
recording and names its file.

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


def _serve_remote(address: str, *, root: Path, template: Optional[str], streams: list[str], camera: Optional[str],
                  video_compression: str, subject: str, notes: str, wait: float, allow_missing: bool) -> None:
    """Serve LabRecorder's remote-control protocol until Ctrl-C/SIGTERM; a recording in progress is closed properly."""
    from acquisition.live.recorder import RecorderSettings
    from acquisition.live.remote_control import RemoteControlServer, RemoteController
    from acquisition.live.remote_protocol import RemoteCommandError, parse_address

    try:
        host, port = parse_address(address)
        controller = RemoteController(root, template=template, streams=streams, camera=camera,
                                      video_compression=video_compression, subject_id=subject, notes=notes,
                                      allow_missing=allow_missing, settings=RecorderSettings(wait_timeout_s=wait))
        server = RemoteControlServer(controller, host=host, port=port)
    except (ValueError, RemoteCommandError, OSError) as err:
        raise fail(str(err)) from None
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[yellow]Listening on {escape(host)}: any machine that can reach port {server.port} can start "
                      "and stop recordings.[/]")
    stop = threading.Event()
    install_stop_handlers(stop)
    server.start()
    console.print(f"Waiting for LabRecorder remote-control commands on {escape(host)}:{server.port} "
                  f"(root {escape(str(root))}). Ctrl-C to quit.")
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.close()  # closes a recording in progress properly
    if controller.recorded:
        console.print("Sessions written: " + ", ".join(escape(str(path)) for path in controller.recorded),
                      soft_wrap=True)


def record(
    fname: Optional[Path] = typer.Argument(None, help="Session file to create (.h5). Never overwritten. "
                                                      "Not used with --remote (the client names the files)."),
    stream: list[str] = typer.Option([], "--stream", "-s",
                                     help="LSL query, repeatable: \"type='EMG'\", \"name='EEG'\"."),
    all_streams: bool = typer.Option(False, "--all", help="Record every visible stream (and later ones)."),
    duration: Optional[float] = typer.Option(None, help="Stop after this many seconds (default: Ctrl-C)."),
    camera: Optional[str] = typer.Option(None, help="Also capture this OpenCV camera (index or video file)."),
    fps: Optional[float] = typer.Option(
        None, help="With --camera: frame rate to ask of the camera (Hz; a video file is paced at it). The rate "
                   "delivered is measured and stored as the stream attribute delivered_fps."),
    exposure: Optional[float] = typer.Option(
        None, help="With --camera: manual exposure in the driver's units (OpenCV CAP_PROP_EXPOSURE; V4L2: "
                   "100 us steps). Default: auto exposure."),
    video_compression: str = typer.Option(
        "none", help="How video frames are stored: none (raw), png, jpeg (per frame), lz4, blosc2 (lossless HDF5 "
                     "filters, need hdf5plugin), or auto (the most compact lossless form that keeps up, measured "
                     "on the first frames); per stream: 'RGB=auto,Depth=png'."),
    subject: str = typer.Option("sub-unknown", help="Pseudonymous subject id (never a name)."),
    notes: str = typer.Option("", help="Free-text notes stored in the file."),
    wait: float = typer.Option(10.0, help="Seconds to wait for the requested streams."),
    allow_missing: bool = typer.Option(
        False, "--allow-missing",
        help="Keep recording when a stream that was found cannot be opened or recorded (it is named in the "
             f"file's failed_streams attribute). Default: stop, keep what was recorded, exit {EXIT_STREAM_FAILED}."),
    rename_existing: bool = typer.Option(False, help="Move an existing FNAME to <name>_oldN.h5 first."),
    json_out: bool = typer.Option(False, "--json", help="Print the final summary as JSON."),
    remote: Optional[str] = typer.Option(
        None, "--remote", metavar="[HOST:]PORT",
        help="Be driven like LabRecorder: serve its remote-control protocol (select all|none, filename {...}, "
             "start, stop, update) on this address, e.g. 22345 (loopback) or 0.0.0.0:22345. Records every stream "
             "unless --stream is given. See docs/remote-control.md."),
    root: Path = typer.Option(Path("."), help="With --remote: the study root folder ({root:...} changes it)."),
    template: Optional[str] = typer.Option(
        None, help="With --remote: file template inside the root, with %p %s %b %n %r %a %m (default: "
                   "LabRecorder's BIDS layout; {template:...} changes it)."),
) -> None:
    """Record LSL streams into a session file.

    A stream that is found but cannot be opened (it does not answer, or its metadata cannot be
    recorded) stops the recording with exit status 3, unless --allow-missing is given.

    With --remote, experiment software drives the recorder over LabRecorder's TCP protocol instead:
    each start/stop is a new session file named by the template.

    Example: emosync record session.h5 --all --duration 60

    Example: emosync record s.h5 --all --duration 60 --video-compression RGB=auto

    Example: emosync record s.h5 --stream "type='EMG'" --camera 0 --fps 120 --exposure 50

    Example: emosync record --remote 22345 --root /data/study
    """
    if (fps is not None or exposure is not None) and camera is None:
        raise fail("--fps and --exposure set the camera captured with --camera; add --camera INDEX (an LSL camera "
                   "is set where it is published, e.g. emosync stream-camera --fps 120).")
    if remote is not None:
        if fname is not None or duration is not None or rename_existing or json_out:
            raise fail("With --remote the client names the files and starts and stops each recording: drop FNAME, "
                       "--duration, --rename-existing and --json (set the folder with --root and the names with "
                       "--template or the client's 'filename' command).")
        if all_streams and stream:
            raise fail("Pass either --stream queries or --all, not both.")
        if fps is not None or exposure is not None:
            raise fail("--fps and --exposure are not available with --remote yet; publish the camera with "
                       "emosync stream-camera --fps ... --exposure ... and record it as an LSL stream.")
        _serve_remote(remote, root=root, template=template, streams=stream, camera=camera,
                      video_compression=video_compression, subject=subject, notes=notes, wait=wait,
                      allow_missing=allow_missing)
        return
    if template is not None or root != Path("."):
        raise fail("--root and --template name the files of remote-controlled recordings; add --remote [HOST:]PORT, "
                   "or give the session file as FNAME instead.")
    if fname is None:
        raise fail("Missing FNAME: give the session file to create (e.g. emosync record session.h5 --all), "
                   "or --remote [HOST:]PORT to be driven like LabRecorder.")
    from acquisition.cli.info import print_summary, session_summary
    from acquisition.live.recorder import (RecorderSettings, RecordingError, SessionRecorder, StreamNotFoundError,
                                           StreamOpenError)

    try:
        recorder = SessionRecorder(fname, streams=stream, all_streams=all_streams, camera=camera, camera_fps=fps,
                                   camera_exposure=exposure, video_compression=video_compression, subject_id=subject,
                                   notes=notes,
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
