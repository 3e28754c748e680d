"""An HTML quality-control report of a session, built on :class:`mne.Report`.

One self-contained file to look at after a recording (or to attach to a data card):
the ``emosync info`` summary as a table with its warnings spelled out, the timeline and
clock-sync figures of :mod:`acquisition.viz.plot`, the markers, and, when EEG/EMG can be
converted to MNE, MNE's own raw-data sections (PSD). Built on ``mne.Report`` so it looks
and behaves like the QC reports EEG users already know (MNE-BIDS-Pipeline).
"""

from __future__ import annotations

import html
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from acquisition.session.markers import marker_texts, read_expression_markers
from acquisition.session.reader import Session, opened_session
from acquisition.utils.docs import fill_doc
from acquisition.utils.logs import logger, verbose
from acquisition.viz.plot import _panel_kind, _select_streams, plot_sync, plot_timeline, session_time_span
from acquisition.session.summary import summarize_session

#: Rows of the marker table at most (a long session's markers belong in an export, not a report).
MAX_MARKER_ROWS = 500
#: Effective rates this far (relative) from the nominal rate are flagged.
RATE_TOLERANCE = 0.01

_CSS = """
<style>
table.emosync {border-collapse: collapse; font-size: 0.85em; margin-bottom: 1em;}
table.emosync th, table.emosync td {border: 1px solid #ccc; padding: 2px 6px; text-align: right;}
table.emosync th {background: #f2f2f2;}
table.emosync td.l, table.emosync th.l {text-align: left;}
table.emosync td.bad {background: #fde2e1;}
ul.emosync-warnings li {color: #a4262c;}
</style>
"""


def _fmt(value: Any, spec: str = "", none: str = "-") -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return none
    return format(value, spec)


def _stream_warnings(name: str, s: dict[str, Any]) -> list[str]:
    """What in one stream's summary deserves a look, in words."""
    found = []
    if s["n_samples"] == 0:
        found.append(f"{name}: no samples.")
    if s["gaps"]:
        total = sum(g["duration_s"] for g in s["gaps"])
        found.append(f"{name}: {len(s['gaps'])} gap(s), {total:.2f} s in all (first at "
                     f"{s['gaps'][0]['start_s']:.2f} s recorder time).")
    if s.get("dropped_samples_estimate"):
        found.append(f"{name}: about {s['dropped_samples_estimate']} samples dropped.")
    resets = max(len(s["clock_segments"]) - 1, 0)
    if resets:
        found.append(f"{name}: {resets} clock reset(s) at the source; see the sync plot.")
    if s["clock_offsets"]["n"] == 0 and s["n_samples"]:
        found.append(f"{name}: no clock offsets recorded, so its times are uncorrected source time stamps.")
    nominal, effective = s["nominal_srate"], s.get("effective_srate")
    if nominal and effective and abs(effective - nominal) / nominal > RATE_TOLERANCE:
        found.append(f"{name}: effective rate {effective:.3f} Hz vs nominal {nominal:g} Hz.")
    return found


def summary_html(summary: dict[str, Any]) -> str:
    """HTML tables of a session summary (as returned by :func:`acquisition.session.summary.summarize_session`).

    Parameters
    ----------
    summary : dict
        The summary.

    Returns
    -------
    html : str
        A metadata table, a per-stream table with the columns of ``emosync info`` (cells
        that deserve a look shaded red), and the list of those findings in words.
    """
    esc = html.escape
    meta_rows = [("file", summary["file"]), ("size", f"{summary['file_size_bytes'] / 1e6:.1f} MB"),
                 ("subject", summary["subject_id"]), ("session id", summary["session_id"]),
                 ("start (UTC)", summary["start_time"]), ("stop (UTC)", summary["stop_time"] or "not closed cleanly"),
                 ("schema version", summary["schema_version"]), ("synthetic", "yes" if summary["synthetic"] else "no")]
    parts = [_CSS, '<table class="emosync">']
    parts += [f'<tr><th class="l">{esc(k)}</th><td class="l">{esc(str(v))}</td></tr>' for k, v in meta_rows]
    parts.append("</table>")
    columns = ("stream", "type", "modality", "samples", "nominal Hz", "effective Hz", "duration s", "gaps",
               "dropped", "offsets", "offset ms (sd)", "drift ppm", "resets", "jitter µs (after)", "stored MB")
    parts.append('<table class="emosync"><tr>' + "".join(
        f'<th class="{"l" if c in ("stream", "type", "modality") else ""}">{esc(c)}</th>' for c in columns) + "</tr>")
    warnings: list[str] = []
    for name, s in summary["streams"].items():
        co = s["clock_offsets"]
        offset = f"{co['mean_offset_s'] * 1e3:.3f} ({co['std_offset_s'] * 1e3:.3f})" if co["n"] else "-"
        drift = ", ".join(f"{seg['drift_ppm']:+.2f}" for seg in s["clock_segments"]) or "-"
        before, after = s["jitter_before_s"], s["jitter_after_s"]
        jitter = "-" if before is None else (f"{before * 1e6:.1f} ({_fmt(after and after * 1e6, '.1f')})"
                                             if s["dejittered"] else f"{before * 1e6:.1f}")
        resets = max(len(s["clock_segments"]) - 1, 0)
        dropped = s["dropped_samples_estimate"]
        cells = [(name, "l", False), (s["type"], "l", False), (s["modality"], "l", False),
                 (s["n_samples"], "", s["n_samples"] == 0), (f"{s['nominal_srate']:g}", "", False),
                 (_fmt(s.get("effective_srate"), ".3f"), "", False), (_fmt(s.get("duration_s"), ".2f"), "", False),
                 (len(s["gaps"]), "", bool(s["gaps"])), (_fmt(dropped), "", bool(dropped)),
                 (co["n"], "", co["n"] == 0 and s["n_samples"] > 0), (offset, "", False), (drift, "", False),
                 (resets, "", resets > 0), (jitter, "", False), (f"{s['stored_bytes'] / 1e6:.1f}", "", False)]
        parts.append("<tr>" + "".join(
            f'<td class="{align}{" bad" if bad else ""}">{esc(str(v))}</td>' for v, align, bad in cells) + "</tr>")
        warnings += _stream_warnings(name, s)
    parts.append("</table>")
    if warnings:
        parts.append("<p><b>Worth a look:</b></p><ul class=\"emosync-warnings\">"
                     + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul>")
    else:
        parts.append("<p>No gaps, drops, clock resets or rate mismatches found.</p>")
    parts.append("<p>Times in seconds; <i>offset</i> = recorder clock − source clock; <i>jitter</i> = SD of "
                 "sample intervals around their median, before (after) dejitter.</p>")
    return "\n".join(parts)


def _markers_html(session: Session, streams: list[Any], t_ref: float) -> str | None:
    esc = html.escape
    rows: list[tuple[float, str, str]] = []
    spans = []
    for stream in streams:
        if stream.modality != "markers" or not stream.n_samples:
            continue
        texts = marker_texts(stream.data[:])
        rows += [(float(t) - t_ref, stream.name, text) for t, text in zip(stream.times, texts)]
        spans += read_expression_markers(stream).expressions
    if not rows:
        return None
    rows.sort()
    closed = [s for s in spans if s.complete]
    head = f"<p>{len(rows)} markers"
    if spans:
        kinds = sorted({s.kind for s in spans})
        head += (f"; {len(spans)} expression spans ({', '.join(kinds)})" + (
            f", median duration {np.median([s.duration_s for s in closed]):.2f} s" if closed else ""))
    parts = [_CSS, head + ". Times in seconds since the session's first sample.</p>",
             '<table class="emosync"><tr><th>time s</th><th class="l">stream</th><th class="l">marker</th></tr>']
    parts += [f'<tr><td>{t:.3f}</td><td class="l">{esc(name)}</td><td class="l">{esc(text)}</td></tr>'
              for t, name, text in rows[:MAX_MARKER_ROWS]]
    parts.append("</table>")
    if len(rows) > MAX_MARKER_ROWS:
        parts.append(f"<p>... and {len(rows) - MAX_MARKER_ROWS} more (export the session to see them all).</p>")
    return "\n".join(parts)


def _add_emg_psd(report: Any, raw: Any, name: str) -> None:
    import matplotlib.pyplot as plt  # MNE's plots go through pyplot; close what they open

    spectrum = raw.compute_psd(picks="emg", fmax=min(raw.info["sfreq"] / 2, 1000.0), verbose="error")
    fig = spectrum.plot(picks="emg", show=False, amplitude=False, spatial_colors=False)
    try:
        report.add_figure(fig, title=f"EMG power spectrum · {name}", tags=("raw",), caption=(
            "Welch PSD per channel: surface EMG should sit in 20-500 Hz; a narrow peak at 50/60 Hz is mains hum."))
    finally:
        plt.close(fig)


def _add_raw_sections(report: Any, session: Session, streams: list[Any]) -> None:
    """One MNE raw section (info, PSD) per EEG/EMG stream, markers as annotations.

    One stream at a time, so each keeps its own rate (combining would resample EEG to the
    EMG's 2 kHz) and a stream that fails to convert costs only its own section.
    """
    import mne

    markers = [s.name for s in streams if s.modality == "markers" and s.n_samples] or None
    for stream in streams:
        if stream.modality not in ("eeg", "emg") or not stream.n_samples:
            continue
        try:
            raw = session.to_mne(streams=[stream.name], markers=markers, verbose="error")
            if not isinstance(raw, mne.io.BaseRaw):
                raise TypeError(f"Session.to_mne returned {type(raw).__name__}, not an mne Raw")
            if stream.modality == "eeg":
                report.add_raw(raw, title=f"MNE raw · {stream.name}", psd=True, butterfly=False, tags=("raw",))
            else:
                # MNE counts EMG as a non-data channel type, so add_raw draws no PSD for it: add one here.
                report.add_raw(raw, title=f"MNE raw · {stream.name}", psd=False, butterfly=False, tags=("raw",))
                _add_emg_psd(report, raw, stream.name)
        except Exception as err:  # the exporter is optional here: any failure costs only this section
            logger.info("Report: MNE raw section of %s skipped (%s: %s).", stream.name, type(err).__name__, err)


@verbose
@fill_doc
def make_report(session: Session | str | os.PathLike, fname: str | os.PathLike | None = None, *,
                start: float = 0.0, duration: float | None = None, streams: Sequence[str] | None = None,
                raw: bool = True, title: str | None = None, dpi: float = 100.0,
                verbose: bool | str | int | None = None) -> Any:
    """Build an HTML quality-control report of a session.

    Sections: the ``emosync info`` summary (metadata, per-stream table, findings in words),
    the timeline (:func:`~acquisition.viz.plot.plot_timeline`), clock synchronization
    (:func:`~acquisition.viz.plot.plot_sync`), the markers, and MNE's raw sections for
    EEG/EMG (PSD) when :meth:`Session.to_mne` can convert them. A section that cannot be
    made is left out with a logged note; the report is still written.

    Parameters
    ----------
    %(session_or_path)s
    fname : path-like | None
        The ``.html`` file to write (overwritten if it exists); None only returns the report.
    start, duration : float, float | None
        Window of the timeline, seconds from the session's first sample (default: all).
    streams : list of str | None
        Streams to include in the figures and MNE sections (the summary lists all).
    raw : bool
        Add MNE's raw sections (PSD of EEG/EMG). Costs a few seconds on long sessions.
    title : str | None
        Report title (default: the file name).
    dpi : float
        Resolution of the figures (the report embeds them; lower makes a smaller file).
    %(verbose)s

    Returns
    -------
    report : mne.Report
        The report (already saved when ``fname`` was given).
    """
    import mne

    if fname is not None:
        fname = Path(fname)
        if fname.suffix.lower() not in (".html", ".htm"):
            raise ValueError(f"A report is an HTML file; got {fname.name!r}. Give a name ending in .html.")
        if not fname.resolve().parent.is_dir():
            raise FileNotFoundError(f"Cannot write {fname}: directory {fname.resolve().parent} does not exist. "
                                    "Create it first.")
    tic = time.perf_counter()
    # MNE narrates each section at INFO; emosync's own logger says what matters.
    with opened_session(session) as sess, mne.utils.use_log_level("warning"):
        selected = _select_streams(sess, streams)
        report = mne.Report(title=title or f"emosync session {sess.fname.name}", verbose="error")
        summary = summarize_session(sess)
        report.add_html(summary_html(summary), title="Summary", tags=("summary",))
        if not any(s.n_samples and _panel_kind(s) for s in selected):
            logger.info("Report: no selected stream has samples to draw; the timeline is left out.")
        else:  # a bad start or duration raises here, as in `emosync plot`
            fig = plot_timeline(sess, start=start, duration=duration, streams=[s.name for s in selected], dpi=dpi)
            report.add_figure(fig, title="Timeline", tags=("timeline",), caption=(
                "All streams on the recorder's clock, in seconds since the session's first sample. Thumbnails: "
                "one frame per tile; markers: expression onset → offset; AUs: ground-truth intensity; EMG: RMS "
                "envelope per muscle; EEG: each channel minus its mean."))
        if selected:
            report.add_figure(plot_sync(sess, streams=[s.name for s in selected], dpi=dpi),
                              title="Clock synchronization",
                              tags=("sync",), caption=(
                                  "Per stream: measured clock offsets with the robust per-segment fit, residuals, "
                                  "drift, clock resets and jitter before → after dejitter."))
        try:
            t_ref = session_time_span(sess)[0]
        except ValueError:
            t_ref = 0.0
        markers = _markers_html(sess, selected, t_ref)
        if markers is not None:
            report.add_html(markers, title="Markers", tags=("markers",))
        if raw:
            _add_raw_sections(report, sess, selected)
        if fname is not None:
            report.save(fname, open_browser=False, overwrite=True, verbose="error")
            logger.info("Wrote %s in %.1f s", fname, time.perf_counter() - tic)
    return report
