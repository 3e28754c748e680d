"""Command-line front ends of the plots: ``plot`` (timeline or ``--sync``) and ``report`` (HTML QC).

Thin wrappers around :mod:`acquisition.viz.plot` and :mod:`acquisition.viz.report`: parse options,
call the library, say what was written. The ``emosync`` entry point registers them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from acquisition.cli.common import fail, console


def _stream_names(values: list[str]) -> list[str] | None:
    """``--streams A --streams B`` or ``--streams A,B``; empty means all streams."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    return names or None


def plot(
    session: Path = typer.Argument(..., help="A session file (.h5)."),
    out: Path = typer.Argument(..., help="Image to write (.png, .svg, .pdf); overwritten if it exists."),
    start: float = typer.Option(0.0, help="Start of the window, seconds from the session's first sample."),
    duration: Optional[float] = typer.Option(None, help="Seconds to show (default: to the end of the session)."),
    streams: list[str] = typer.Option([], "--streams", "-s",
                                      help="Streams to plot, repeatable or comma-separated (default: all)."),
    sync: bool = typer.Option(False, "--sync", help="Plot clock-synchronization quality instead of the timeline."),
    n_frames: Optional[int] = typer.Option(None, help="Video thumbnails per strip (default: as many as fit)."),
    width: float = typer.Option(14.0, help="Figure width in inches (the height follows the panels)."),
    dpi: float = typer.Option(100.0, help="Pixels per inch of the image."),
) -> None:
    """Plot a session: every stream on one time axis, or (--sync) its clock synchronization.

    Example: emosync plot session.h5 timeline.png --start 10 --duration 20
    """
    from acquisition.viz.plot import plot_sync, plot_timeline

    tic = time.perf_counter()
    names = _stream_names(streams)
    try:
        if sync:
            fig = plot_sync(session, out, streams=names, width=width, dpi=dpi)
        else:
            fig = plot_timeline(session, out, start=start, duration=duration, streams=names, n_frames=n_frames,
                                width=width, dpi=dpi)
    except (FileNotFoundError, ValueError, OSError) as err:
        raise fail(str(err)) from None
    w, h = fig.get_size_inches() * dpi
    console.print(f"Wrote {out} ({w:.0f}x{h:.0f} px) in {time.perf_counter() - tic:.1f} s")


def report(
    session: Path = typer.Argument(..., help="A session file (.h5)."),
    out: Path = typer.Argument(..., help="HTML file to write; overwritten if it exists."),
    start: float = typer.Option(0.0, help="Start of the timeline, seconds from the session's first sample."),
    duration: Optional[float] = typer.Option(None, help="Seconds of timeline (default: the whole session)."),
    streams: list[str] = typer.Option([], "--streams", "-s",
                                      help="Streams in the figures, repeatable or comma-separated (default: all)."),
    raw: bool = typer.Option(True, "--raw/--no-raw", help="Add MNE's raw sections (PSD) for EEG/EMG."),
    dpi: float = typer.Option(100.0, help="Resolution of the figures (lower: a smaller file)."),
) -> None:
    """Write an HTML quality-control report: summary, timeline, clock sync, markers, PSDs.

    Example: emosync report session.h5 session-report.html
    """
    from acquisition.viz.report import make_report

    tic = time.perf_counter()
    try:
        make_report(session, out, start=start, duration=duration, streams=_stream_names(streams), raw=raw, dpi=dpi)
    except (FileNotFoundError, ValueError, OSError) as err:
        raise fail(str(err)) from None
    console.print(f"Wrote {out} in {time.perf_counter() - tic:.1f} s")
