"""Command-line front ends of the importers: ``import-xdf``, ``import-video``, ``import-depth``, ``import-table``.

Thin wrappers around :mod:`acquisition.io` (:func:`~acquisition.io.xdf.import_xdf`,
:func:`~acquisition.io.video.import_video`, :func:`~acquisition.io.depth.import_depth`,
:func:`~acquisition.io.table.import_table`): parse options, import into a new session file, print
what was imported and what was lost. The library is imported inside each command, so
``emosync --help`` does not pay for it. The ``emosync`` entry point (``emosync.py``) registers them;
a new importer's command goes here too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from acquisition.cli.common import console, fail

#: Exit code of ``import-xdf --strict`` when the session was written but something was lost.
EXIT_INCOMPLETE = 3


def _print_warnings(report: dict[str, Any]) -> None:
    """Print an import report's warnings (literally: they may hold brackets)."""
    for message in report["warnings"]:
        console.print(f"[yellow]warning:[/] {escape(message)}")


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
        console.print(f"[yellow]skipped[/] stream id {skipped['xdf_stream_id']}: {escape(skipped['reason'])}")
    _print_warnings(report)


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


def import_video(
    video: Path = typer.Argument(..., help="The video file (mp4, avi, mov, mkv...)."),
    out: Path = typer.Argument(..., help="Session file to create (.h5). Never overwritten."),
    start_time: float = typer.Option(
        0.0, help="Seconds added to the container's frame times: the LSL time of the first frame, if known "
                  "(default 0: seconds from the start of the clip)."),
    name: str = typer.Option("RGB", help="Stream name in the session."),
    subject: str = typer.Option("sub-unknown", help="Pseudonymous subject id (never a name)."),
    notes: str = typer.Option("", help="Free-text notes stored in the session."),
    compression: str = typer.Option("none", help="Per-frame storage: none, png (lossless) or jpeg."),
    json_out: bool = typer.Option(False, "--json", help="Print the import report as JSON."),
) -> None:
    """Import a video file as an RGB8 stream with the container's per-frame time stamps.

    Example: emosync import-video clip.mp4 session.h5 --start-time 12345.678
    """
    from acquisition.io.video import VideoImportError
    from acquisition.io.video import import_video as run_import

    try:
        report = run_import(video, out, start_time=start_time, name=name, subject_id=subject, notes=notes,
                            compression=compression, verbose="WARNING")
    except (VideoImportError, ValueError, FileExistsError, FileNotFoundError, PermissionError, OSError) as err:
        raise fail(str(err)) from None
    if json_out:
        typer.echo(json.dumps(report, indent=2))
        return
    c, t = report["container"], report["timing"]
    rate = f"{t['effective_fps']:.3f} fps effective" if t["effective_fps"] else "1 frame"
    console.print(f"Wrote {out}: stream {name}, {report['n_frames']} frames {c['width']}x{c['height']} "
                  f"({c['fourcc'] or '?'}, container {c['fps']:.3f} fps, {rate}"
                  f"{', VARIABLE frame rate' if t['variable_frame_rate'] else ''}), "
                  f"t = {report['first_time_s']:.3f} .. {report['last_time_s']:.3f} s")
    _print_warnings(report)


def import_depth(
    folder: Path = typer.Argument(..., help="Folder of one camera's 16-bit depth PNGs (and colour images)."),
    out: Path = typer.Argument(..., help="Session file to create (.h5). Never overwritten."),
    rate: float = typer.Option(30.0, help="Frame rate in Hz (frame k at start_time + k / rate)."),
    depth_scale_mm: float = typer.Option(
        1.0, help="Millimetres per stored depth unit: 1.0 for mm (Redwood, RealSense dumps), 0.2 for TUM RGB-D."),
    depth_pattern: str = typer.Option("*.png", help="Depth file names (shell pattern)."),
    color_pattern: str = typer.Option("*_color*", help="Colour file names (shell pattern); matched 1:1 by order."),
    timestamps: Optional[Path] = typer.Option(
        None, help="Time-stamp file ('time[,file]' rows, e.g. TUM depth.txt) used instead of --rate."),
    start_time: float = typer.Option(0.0, help="Seconds added to every time stamp."),
    subject: str = typer.Option("sub-unknown", help="Pseudonymous subject id (never a name)."),
    notes: str = typer.Option("", help="Free-text notes stored in the session."),
    json_out: bool = typer.Option(False, "--json", help="Print the import report as JSON."),
) -> None:
    """Import a folder of 16-bit depth PNGs as a DEPTH16-mm stream (plus RGB8 if colour frames match).

    Example: emosync import-depth tum_frames/ session.h5 --rate 30 --depth-scale-mm 0.2
    """
    from acquisition.io.depth import import_depth as run_import
    from acquisition.io.video import VideoImportError

    try:
        report = run_import(folder, out, rate=rate, depth_scale_mm=depth_scale_mm, depth_pattern=depth_pattern,
                            color_pattern=color_pattern, timestamps=timestamps, start_time=start_time,
                            subject_id=subject, notes=notes, verbose="WARNING")
    except (VideoImportError, ValueError, FileExistsError, FileNotFoundError, PermissionError, OSError) as err:
        raise fail(str(err)) from None
    if json_out:
        typer.echo(json.dumps(report, indent=2))
        return
    median = report["median_depth_mm"]
    console.print(f"Wrote {out}: {report['n_depth_frames']} depth frames {report['frame_shape'][1]}x"
                  f"{report['frame_shape'][0]} (median {median:.0f} mm, {report['valid_fraction']:.0%} valid)"
                  if median is not None else f"Wrote {out}: {report['n_depth_frames']} depth frames (no valid pixel)")
    if report["n_color_frames"]:
        console.print(f"  and {report['n_color_frames']} colour frames")
    _print_warnings(report)


def import_table(
    fname: Path = typer.Argument(..., help="Text table: one row per sample (e.g. an Acqknowledge export)."),
    out: Path = typer.Argument(..., help="Session file to create (.h5). Never overwritten."),
    spec: str = typer.Option(..., help="Import spec: a YAML file, or a name under configs/import/ (e.g. nilsonne)."),
    subject: str = typer.Option("sub-unknown", help="Pseudonymous subject id (never a name)."),
    override: list[str] = typer.Option([], "--set", help="Spec override, repeatable: sampling_rate_hz=1000."),
) -> None:
    """Import a text table of physiological signals as a session (columns mapped by a YAML spec).

    Example: emosync import-table nilsonne_FMOV_09.txt s09.h5 --spec nilsonne --subject sub-09
    """
    from acquisition.io.table import import_table as run_import
    from acquisition.session.reader import open_session

    try:
        path = run_import(fname, out, spec, subject_id=subject, overrides=override)
    except (ValueError, FileExistsError, FileNotFoundError, OSError) as err:
        raise fail(str(err)) from None
    with open_session(path) as session:
        parts = []
        for name, s in session.streams.items():
            rate = f" at {s.nominal_srate:g} Hz" if s.nominal_srate else ""
            parts.append(f"{name}: {s.n_samples} samples{rate}")
    console.print(f"Wrote {path}: " + "; ".join(parts))


def import_brainflow(
    recording: Path = typer.Argument(..., help="A BrainFlow recording (DataFilter.write_file: tab-separated text)."),
    out: Path = typer.Argument(..., help="Session file to create (.h5). Never overwritten."),
    board: str = typer.Option(..., help="The board that recorded it: a BoardIds name (cyton, SYNTHETIC_BOARD) or id."),
    shared_rows: str = typer.Option("eeg", help="Rows a board lists as both EEG and EMG go to: eeg, emg or both."),
    subject: str = typer.Option("sub-unknown", help="Pseudonymous subject id (never a name)."),
    notes: str = typer.Option("", help="Free-text notes stored in the session."),
    json_out: bool = typer.Option(False, "--json", help="Print the import report as JSON."),
) -> None:
    """Import a BrainFlow recording (EEG/EMG in volts, BrainFlow's time stamps, markers) as a session.

    Needs the brainflow extra: pip install "emosync\\[brainflow]".

    Example: emosync import-brainflow cyton_run1.csv session.h5 --board cyton
    """
    from acquisition.io.brainflow import BrainFlowFileError
    from acquisition.io.brainflow import import_brainflow as run_import

    if shared_rows not in ("eeg", "emg", "both"):
        raise fail(f"--shared-rows must be eeg, emg or both, not {shared_rows!r}.")
    try:
        report = run_import(recording, out, board=board, shared_rows=shared_rows, subject_id=subject, notes=notes,
                            verbose="WARNING")
    except (BrainFlowFileError, ImportError, ValueError, FileExistsError, FileNotFoundError, OSError) as err:
        raise fail(str(err)) from None
    if json_out:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    streams = ", ".join(f"{name} ({n} ch)" for name, n in report["streams"].items())
    console.print(f"Wrote {out}: {report['n_samples']} samples of board {escape(str(report['board']))}: {streams}; "
                  f"{report['n_markers']} markers")
    _print_warnings(report)
