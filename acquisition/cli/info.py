"""Command-line front end of the session summary: ``info`` (and the table ``record`` prints at its end).

A thin wrapper around :func:`acquisition.session.summary.summarize_session`: open the file, summarize,
print a table or JSON. The ``emosync`` entry point (``emosync.py``) registers it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from acquisition.cli.common import console, fail


def session_summary(fname: Path) -> dict[str, Any]:
    """Summary of the session in ``fname``, with the streams that failed to open (``failed_streams``).

    Raises
    ------
    FileNotFoundError, OSError, ValueError
        If ``fname`` is missing, damaged or not a session (see :func:`acquisition.session.reader.open_session`).
    """
    from acquisition.session.reader import open_session
    from acquisition.session.summary import summarize_session

    with open_session(fname) as session:
        summary = summarize_session(session)
        # The recorder lists streams it found but could not record in this root attribute.
        summary.setdefault("failed_streams", session.info.get("failed_streams") or {})
    return summary


def _jitter_text(stream_summary: dict[str, Any]) -> str:
    before, after = stream_summary["jitter_before_s"], stream_summary["jitter_after_s"]
    if before is None:
        return "-"
    return f"{before * 1e6:.1f} ({after * 1e6:.1f})" if stream_summary["dejittered"] else f"{before * 1e6:.1f}"


def print_summary(summary: dict[str, Any]) -> None:
    """Print a session summary (as returned by :func:`session_summary`) as a table, then any failed streams."""
    table = Table(title=f"{escape(summary['file'])}  ({summary['file_size_bytes'] / 1e6:.1f} MB, "
                        f"subject {escape(str(summary['subject_id']))})")
    for column in ("stream", "type", "samples", "nominal Hz", "effective Hz", "duration s", "gaps",
                   "dropped", "offsets", "offset ms (sd)", "resets", "jitter us (after)"):
        table.add_column(column, justify="left" if column in ("stream", "type") else "right")
    for name, s in summary["streams"].items():
        co = s["clock_offsets"]
        offset = f"{co['mean_offset_s'] * 1e3:.3f} ({co['std_offset_s'] * 1e3:.3f})" if co["n"] else "-"
        eff = s.get("effective_srate")
        table.add_row(escape(name), escape(str(s["type"])), str(s["n_samples"]), f"{s['nominal_srate']:g}",
                      f"{eff:.3f}" if eff is not None else "-", f"{s.get('duration_s', 0):.2f}",
                      str(len(s["gaps"])), "-" if s["dropped_samples_estimate"] is None else
                      str(s["dropped_samples_estimate"]), str(co["n"]), offset,
                      str(max(len(s["clock_segments"]) - 1, 0)), _jitter_text(s))
    console.print(table)
    for name, s in summary["streams"].items():
        stamps = s.get("frame_stamps")
        if stamps and stamps.get("checked"):
            console.print(f"{escape(name)}: {stamps['dropped_frames']} frame(s) dropped by the stamped frame indices "
                          f"({stamps['first_index']}..{stamps['last_index']}, {stamps['unreadable']} unreadable)")
    for name, failure in summary.get("failed_streams", {}).items():
        console.print(f"[bold red]not recorded:[/] stream {escape(name)} (type {escape(str(failure.get('type')))}, "
                      f"source_id {escape(str(failure.get('source_id')))}): {escape(str(failure.get('error')))}")


def info(
    fname: Path = typer.Argument(..., help="A session file (.h5)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Show a session's streams: counts, rates, gaps, clock offsets, file size, streams that failed to open.

    Example: emosync info session.h5 --json
    """
    try:
        summary = session_summary(fname)
    except (FileNotFoundError, ValueError, OSError) as err:
        raise fail(str(err)) from None
    if json_out:
        typer.echo(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
