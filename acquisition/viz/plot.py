"""Plots of a session: every stream on one time axis, and the quality of clock synchronization.

:func:`plot_timeline` draws what a newcomer needs to see at a glance: video thumbnails,
depth, expression markers, AU ground truth, EMG envelopes and EEG, on one time axis in
seconds from the session's first sample (recorder clock, :attr:`Stream.times`). A smile
in the video, its markers, its AUs and the zygomaticus burst therefore line up, and a
stream that does not line up points at a synchronization problem. :func:`plot_sync`
shows that side directly: per stream, the clock offsets measured while recording, the
per-segment fit :mod:`acquisition.sync.synchronize` made of them, the residuals and the jitter.

Both read only what they draw (the few frames shown; signals in blocks of the window,
reduced to one value per pixel column) so an hour of 640x480 video or 2 kHz EMG costs
little. Figures are built with :class:`matplotlib.figure.Figure`, not pyplot: they render
with Agg without touching the caller's backend or pyplot's list of open figures.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from acquisition.utils.docs import add_doc, fill_doc
from acquisition.utils.logs import logger, verbose
from acquisition.session.alignment import sample_range
from acquisition.session.markers import ExpressionMarker, read_expression_markers
from acquisition.session.reader import Session, Stream, opened_session

#: Colours of the basic emotions (CARTO "Bold"); other marker labels cycle through ``_EXTRA_COLORS``.
EMOTION_COLORS: dict[str, str] = {
    "happiness": "#F2B701",
    "surprise": "#E68310",
    "anger": "#E73F74",
    "fear": "#7F3C8D",
    "sadness": "#3969AC",
    "disgust": "#11A579",
    "contempt": "#008695",
}
_EXTRA_COLORS = ("#80BA5A", "#CF1C90", "#f97b72", "#4b4b8f", "#A5AA99")
#: Panel modalities in drawing order, top to bottom (video first, the fast signals last).
_PANEL_ORDER = ("rgb", "depth", "markers", "au", "emg", "eeg", "misc")
#: Values (samples x channels) read at once when reducing a signal to pixel bins: bounds memory.
_BLOCK_VALUES = 4_000_000
#: Height (inches) of the figure title and of the x axis decorations.
_HEADER_IN, _FOOTER_IN = 0.6, 0.55

add_doc("plot_fname", """
fname : path-like | None
    Where to save the figure (format from the extension, e.g. ``.png``, ``.svg``); None only
    returns it. An existing image is overwritten; a session-file name (``.h5``) is refused.
""")
add_doc("plot_width", """
width : float
    Figure width in inches; the height follows from the rows or panels.
""")


# --------------------------------------------------------------------------------------------
# helpers shared by both plots
# --------------------------------------------------------------------------------------------
def _check_output(fname: str | os.PathLike | None, session: Session) -> Path | None:
    """Refuse, before any work, outputs that would clobber a session or that matplotlib cannot write."""
    if fname is None:
        return None
    out = Path(fname)
    if out.suffix.lower() in (".h5", ".hdf5", ".hdf"):
        raise ValueError(f"Refusing to write a plot to {out}: that looks like a session file. "
                         "Give an image name such as timeline.png.")
    if out.exists() and out.resolve() == session.fname.resolve():
        raise ValueError(f"Refusing to overwrite the session {out} with a plot; choose another output name.")
    formats = FigureCanvasAgg.get_supported_filetypes()
    if out.suffix.lower().lstrip(".") not in formats:
        raise ValueError(f"Cannot save a plot as {out.name!r}: use one of the extensions "
                         f"{', '.join('.' + f for f in sorted(formats))} (e.g. .png).")
    if not out.resolve().parent.is_dir():
        raise FileNotFoundError(f"Cannot write {out}: directory {out.resolve().parent} does not exist. "
                                "Create it first.")
    return out


def _save(fig: Figure, out: Path | None, dpi: float) -> None:
    if out is not None:
        fig.savefig(out, dpi=dpi)
        logger.info("Wrote %s", out)


def _select_streams(session: Session, streams: Sequence[str] | None) -> list[Stream]:
    if streams is None:
        return list(session.streams.values())
    missing = [name for name in streams if name not in session.streams]
    if missing:
        raise ValueError(f"No stream {missing} in {session.fname.name}; its streams are {sorted(session.streams)}.")
    return [session.streams[name] for name in streams]


def session_time_span(session: Session) -> tuple[float, float]:
    """First and last sample time of a session, seconds of the recorder clock.

    The first sample is the time origin of :func:`plot_timeline` and :func:`plot_sync`
    (every stream counts, whichever streams are plotted, so axes agree between plots).

    Parameters
    ----------
    session : Session
        An open session.

    Returns
    -------
    first, last : float
        Recorder-clock times (s) of the earliest and latest sample over all streams.
    """
    nonempty = [s for s in session.streams.values() if s.n_samples]
    if not nonempty:
        raise ValueError(f"{session.fname.name} has no samples in any stream "
                         f"({', '.join(session.streams) or 'no streams'}); nothing to plot.")
    return min(float(s.times[0]) for s in nonempty), max(float(s.times[-1]) for s in nonempty)


def _nice(value: float) -> float:
    """The 1-2-5 number nearest to ``value`` on a log scale (scale bars, channel spacing)."""
    if not np.isfinite(value) or value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    mantissa = value / 10**exponent
    best = min((1.0, 2.0, 5.0, 10.0), key=lambda m: abs(math.log(mantissa / m)))
    return best * 10**exponent


def _to_microvolts(stream: Stream) -> float:
    """Factor from stored units to µV (EMG/EEG are stored in volts; imports may say otherwise)."""
    units = stream.info.get("channel_units") or [stream.info.get("unit", "V")]
    unit = str(units[0] if units else "V").strip().lower()
    factors = {"v": 1e6, "volt": 1e6, "volts": 1e6, "mv": 1e3, "millivolts": 1e3, "uv": 1.0, "µv": 1.0,
               "microvolts": 1.0}
    if unit not in factors:
        logger.debug("Stream %s: unknown unit %r, assuming volts", stream.name, unit)
    return factors.get(unit, 1e6)


def _labels(stream: Stream, n_channels: int) -> list[str]:
    labels = [str(v) for v in (stream.info.get("channel_labels") or [])]
    return labels if len(labels) == n_channels else [f"ch{i + 1}" for i in range(n_channels)]


@dataclass
class _Bins:
    """A signal reduced to uniform time bins: per bin and channel, sum, sum of squares, min, max."""

    edges: np.ndarray
    counts: np.ndarray
    stats: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def centers(self) -> np.ndarray:
        return 0.5 * (self.edges[:-1] + self.edges[1:])


def _bin_signal(stream: Stream, lo: float, hi: float, n_bins: int, stats: Sequence[str]) -> _Bins:
    """Reduce the samples of ``stream`` in ``[lo, hi)`` to ``n_bins`` uniform time bins.

    Bins are in time, not in samples, so recording gaps stay visible (empty bins are NaN).
    Samples are read in blocks of whole bins, never the whole window at once.
    """
    edges = np.linspace(lo, hi, n_bins + 1)
    first, last = sample_range(stream, lo, hi)
    times = stream.times[first:last]
    starts = np.searchsorted(times, edges[:-1], "left")
    counts = np.diff(np.append(starts, times.shape[0]))
    n_channels = int(np.prod(stream.data.shape[1:])) or 1
    out = {name: np.full((n_bins, n_channels), np.nan) for name in stats}
    nonempty = np.flatnonzero(counts)
    if nonempty.size:
        block_rows = max(1, _BLOCK_VALUES // n_channels)
        block_of_bin = starts[nonempty] // block_rows
        for block in np.unique(block_of_bin):
            bins = nonempty[block_of_bin == block]
            a, b = int(starts[bins[0]]), int(starts[bins[-1]] + counts[bins[-1]])
            values = np.asarray(stream.data[first + a : first + b], dtype=np.float64).reshape(b - a, -1)
            idx = starts[bins] - a  # strictly increasing: empty bins were dropped
            for name in stats:
                if name == "sum":
                    out[name][bins] = np.add.reduceat(values, idx, axis=0)
                elif name == "sumsq":
                    out[name][bins] = np.add.reduceat(values * values, idx, axis=0)
                elif name == "min":
                    out[name][bins] = np.minimum.reduceat(values, idx, axis=0)
                elif name == "max":
                    out[name][bins] = np.maximum.reduceat(values, idx, axis=0)
                else:
                    raise ValueError(f"unknown statistic {name!r}")
    return _Bins(edges, counts, out)


# --------------------------------------------------------------------------------------------
# markers
# --------------------------------------------------------------------------------------------
def _label_color(label: str, assigned: dict[str, str]) -> str:
    if label in EMOTION_COLORS:
        return EMOTION_COLORS[label]
    if label not in assigned:
        assigned[label] = _EXTRA_COLORS[len(assigned) % len(_EXTRA_COLORS)]
    return assigned[label]


# --------------------------------------------------------------------------------------------
# the timeline
# --------------------------------------------------------------------------------------------
@dataclass
class _Panel:
    kind: str  # the stream's modality, or "markers"/"misc" for other string/numeric streams
    stream: Stream
    height_in: float


def _panel_height(modality: str, stream: Stream) -> float:
    n_channels = int(stream.data.shape[1]) if stream.data.ndim == 2 else 1
    if modality in ("rgb", "depth"):
        return 1.25
    if modality == "markers":
        return 0.8
    if modality == "au":
        return max(1.2, 0.11 * n_channels)
    if modality == "emg":
        return max(1.2, 0.3 * n_channels)
    return min(7.0, max(1.5, 0.12 * n_channels))  # eeg and other numeric streams


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=9, color="0.4")


def _depth_range(frames: np.ndarray) -> tuple[float, float]:
    """Colour range (mm) of depth frames: 1st-99th percentile of what is neither missing nor background.

    In a face rig most pixels are one flat background (a wall at a fixed distance); spreading
    the colours over it would leave the face a single colour, so a value that covers more than
    30 % of the valid pixels is left out of the range (and drawn grey).
    """
    valid = frames[frames > 0]  # 0 mm means "no depth measured"
    if not valid.size:
        return 0.0, 1.0
    values, counts = np.unique(valid, return_counts=True)
    if counts.max() > 0.3 * valid.size and counts.max() < valid.size:
        valid = valid[valid != values[np.argmax(counts)]]
    vmin, vmax = (float(v) for v in np.percentile(valid, [1, 99]))
    return (vmin, vmax) if vmax > vmin else (vmin, vmin + 1.0)


def _frame_targets(lo: float, hi: float, n_frames: int, apexes: Sequence[float]) -> np.ndarray:
    """Time shown in each thumbnail tile: its centre, or the expression apex nearest to it inside the tile."""
    tile = (hi - lo) / n_frames
    targets = lo + (np.arange(n_frames) + 0.5) * tile
    apex = np.sort(np.asarray(apexes, dtype=float))
    for i, center in enumerate(targets):
        inside = apex[(apex >= center - tile / 2) & (apex < center + tile / 2)]
        if inside.size:
            targets[i] = inside[np.argmin(np.abs(inside - center))]
    return targets


def _draw_frames(ax: Axes, cax: Axes, stream: Stream, lo: float, hi: float, t_ref: float, n_frames: int,
                 target_px: int, apexes: Sequence[float]) -> None:
    depth = stream.modality == "depth"
    frame_shape = tuple(stream.data.shape[1:])
    height, width = (frame_shape + (0, 0))[:2]
    srate = stream.nominal_srate
    ax.set_title(f"{'Depth' if depth else 'RGB video'} · {stream.name} · {width}×{height}"
                 + (f", {srate:g} fps" if srate else "")
                 + " · one frame per tile" + (", at an expression apex when the tile holds one" if len(apexes) else "")
                 + " (its time in the corner)", loc="left", fontsize=10)
    ax.set_yticks([])
    ax.set_ylim(0, 1)
    cax.set_axis_off()
    first, last = sample_range(stream, lo, hi)
    if last <= first:
        _note(ax, "no frames in this window")
        return
    tile = (hi - lo) / n_frames
    centers = _frame_targets(lo, hi, n_frames, apexes)
    times = stream.times[first:last]
    right = np.clip(np.searchsorted(times, centers), 0, times.shape[0] - 1)
    left = np.maximum(right - 1, 0)
    nearest = np.where(np.abs(times[left] - centers) <= np.abs(times[right] - centers), left, right)
    keep = np.abs(times[nearest] - centers) <= tile / 2  # a gap in the video leaves its tiles empty
    if not keep.any():
        _note(ax, "no frames in this window")
        return
    tiles, picks = np.flatnonzero(keep), first + nearest[keep]
    step = max(1, int(round(height / max(target_px, 1))))
    # Only the frames drawn are read (and decoded), one by one: h5py's fancy indexing of a few
    # rows of a frame dataset is ~50x slower than reading each row.
    frames = np.stack([stream.data[int(i)][::step, ::step] for i in picks])
    image_kw: dict[str, Any] = {"aspect": "auto", "interpolation": "antialiased"}
    if depth:
        vmin, vmax = _depth_range(frames)
        cmap = colormaps["viridis_r"].with_extremes(  # near is bright
            bad="black", over="0.3", under="white")  # bad: 0 mm, nothing measured; over: the background
        image_kw.update(cmap=cmap, vmin=float(vmin), vmax=float(vmax))
        frames = np.ma.masked_equal(frames, 0)
    gap = 0.015 * tile
    image = None
    for tile_index, pick, frame in zip(tiles, picks, frames):
        x0 = lo + tile_index * tile - t_ref
        image = ax.imshow(frame, extent=(x0 + gap, x0 + tile - gap, 0, 1), **image_kw)
        ax.text(x0 + 2 * gap, 0.96, f"{stream.times[pick] - t_ref:.1f} s", fontsize=7, color="white", va="top",
                ha="left", bbox={"boxstyle": "square,pad=0.15", "fc": "black", "ec": "none", "alpha": 0.55})
    if depth and image is not None:
        cax.set_axis_on()
        colorbar = ax.figure.colorbar(image, cax=cax, extend="both")
        colorbar.set_label("depth (mm)", fontsize=8)
        colorbar.ax.tick_params(labelsize=7)


def _markers_in(stream: Stream, lo: float, hi: float) -> tuple[list[ExpressionMarker], list[tuple[float, str]]]:
    """Expressions that reach into ``[lo, hi)`` and other markers inside it (the whole stream is parsed,
    so an expression that began before the window still shows)."""
    parsed = read_expression_markers(stream)
    return ([e for e in parsed.expressions if e.offset_s >= lo and e.onset_s < hi],
            [(t, text) for t, text in parsed.others if lo <= t < hi])


def _draw_markers(ax: Axes, cax: Axes, stream: Stream, spans: list[ExpressionMarker], events: list[tuple[float, str]],
                  lo: float, hi: float, t_ref: float, colors: dict[str, str]) -> None:
    ax.set_title(f"Expression markers · {stream.name} · onset → offset spans coloured by emotion, "
                 "hatched = micro, ▼ = apex", loc="left", fontsize=10)
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    cax.set_axis_off()
    if not spans and not events:
        _note(ax, "no markers in this window")
        return
    label_text = len(spans) + len(events) <= 40  # beyond that, labels only overlap: the legend says enough
    handles: dict[str, Any] = {}
    for i, span in enumerate(spans):
        color = _label_color(span.label, colors)
        a, b = max(span.onset_s, lo) - t_ref, min(span.offset_s, hi) - t_ref
        micro = span.kind == "micro"
        ax.axvspan(a, b, ymin=0.05, ymax=0.95, facecolor=color, alpha=0.35 if micro else 0.6,
                   hatch="////" if micro else None, edgecolor=color, linewidth=0.8)
        if lo <= span.apex_s < hi:  # False for nan: no apex
            ax.plot(span.apex_s - t_ref, 0.88, marker="v", color="black", markersize=5, linestyle="none")
        if label_text:
            suffix = "" if span.kind in ("macro", "") else f" ({span.kind})"
            ax.text(a, 0.62 if i % 2 == 0 else 0.22, f" {span.label}{suffix}", fontsize=8, va="center",
                    ha="left", clip_on=True)
        handles.setdefault(span.label, Patch(facecolor=color, alpha=0.6, label=span.label))
    for t, text in events:
        ax.axvline(t - t_ref, color="0.3", linewidth=1)
        if label_text:
            ax.text(t - t_ref, 0.5, f" {text}", fontsize=7, rotation=90, va="center", ha="left", clip_on=True)
    kinds = {s.kind for s in spans}
    legend = list(handles.values())
    if "micro" in kinds:
        legend.append(Patch(facecolor="white", edgecolor="0.3", hatch="////", label="micro"))
    if kinds - {"micro"}:
        legend.append(Patch(facecolor="0.6", edgecolor="0.3", label="macro"))
    if legend:
        ax.legend(handles=legend, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=len(legend), fontsize=8,
                  frameon=False, handlelength=1.2, columnspacing=1.0, borderaxespad=0.1)


def _draw_au(ax: Axes, cax: Axes, stream: Stream, lo: float, hi: float, t_ref: float, n_px: int) -> None:
    n_channels = int(stream.data.shape[1])
    labels = _labels(stream, n_channels)
    ax.set_title(f"Action units (ground truth) · {stream.name} · FACS intensity 0-5, max per column, "
                 "grey = no samples",
                 loc="left", fontsize=10)
    srate = stream.nominal_srate
    n_bins = min(n_px, max(1, int(round((hi - lo) * srate)))) if srate > 0 else n_px
    bins = _bin_signal(stream, lo, hi, n_bins, ("max",))
    values = bins.stats["max"]
    cmap = colormaps["magma"].with_extremes(bad="0.85")  # bad: no samples (a gap, or outside the stream)
    image = ax.imshow(np.ma.masked_invalid(values.T), extent=(lo - t_ref, hi - t_ref, n_channels - 0.5, -0.5),
                      aspect="auto", cmap=cmap, vmin=0.0, vmax=5.0, interpolation="nearest")
    ax.set_yticks(np.arange(n_channels), labels, fontsize=6.5)
    colorbar = ax.figure.colorbar(image, cax=cax)
    colorbar.set_label("intensity", fontsize=8)
    colorbar.ax.tick_params(labelsize=7)
    if not np.isfinite(values).any():
        _note(ax, "no samples in this window")


def _scale_bar(cax: Axes, ax: Axes, length: float, text: str) -> None:
    """A vertical bar of ``length`` data units in the side axes, sharing ``ax``'s y scale."""
    cax.set_axis_off()
    cax.sharey(ax)
    y0 = ax.get_ylim()[0] + 0.02 * abs(np.diff(ax.get_ylim())[0])
    cax.plot([0.3, 0.3], [y0, y0 + length], color="black", linewidth=2.5, solid_capstyle="butt")
    cax.set_xlim(0, 1)
    cax.text(0.55, y0 + length / 2, text, rotation=90, va="center", ha="left", fontsize=8)


def _draw_emg(ax: Axes, cax: Axes, stream: Stream, lo: float, hi: float, t_ref: float, n_px: int,
              rms_window_s: float) -> None:
    n_channels = int(stream.data.shape[1])
    labels = _labels(stream, n_channels)
    n_bins = max(1, min(n_px, int(math.ceil((hi - lo) / rms_window_s))))
    bin_ms = (hi - lo) / n_bins * 1e3
    ax.set_title(f"Facial EMG · {stream.name} · RMS envelope per muscle, {bin_ms:.0f} ms windows (µV)",
                 loc="left", fontsize=10)
    bins = _bin_signal(stream, lo, hi, n_bins, ("sum", "sumsq"))
    counts = bins.counts[:, None].astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = bins.stats["sum"] / counts
        # RMS around each window's mean, so an electrode's DC offset does not read as activity.
        rms = np.sqrt(np.maximum(bins.stats["sumsq"] / counts - mean**2, 0.0)) * _to_microvolts(stream)
    finite = rms[np.isfinite(rms)]
    spacing = _nice(float(np.percentile(finite, 99.5)) * 0.9) if finite.size else 1.0
    palette = colormaps["tab10"]
    x = bins.centers - t_ref
    for i in range(n_channels):
        base = (n_channels - 1 - i) * spacing
        color = palette(i % 10)
        ax.fill_between(x, base, base + rms[:, i], color=color, alpha=0.75, linewidth=0)
        ax.plot(x, base + rms[:, i], color=color, linewidth=0.6)
        ax.axhline(base, color="0.85", linewidth=0.5, zorder=0)
    ax.set_yticks((n_channels - 1 - np.arange(n_channels)) * spacing, labels, fontsize=7)
    ax.set_ylim(-0.1 * spacing, n_channels * spacing)
    if not finite.size:
        _note(ax, "no samples in this window")
    _scale_bar(cax, ax, spacing, f"{spacing:g} µV")


def _draw_traces(ax: Axes, cax: Axes, stream: Stream, lo: float, hi: float, t_ref: float, n_px: int) -> None:
    """Stacked traces, each channel minus its mean: EEG in µV, other numeric streams in their own unit."""
    n_channels = int(stream.data.shape[1]) if stream.data.ndim == 2 else 1
    labels = _labels(stream, n_channels)
    first, last = sample_range(stream, lo, hi)
    n_samples = last - first
    envelope = n_samples > 2 * n_px
    if stream.modality == "eeg":
        kind, scale, unit = "EEG", _to_microvolts(stream), "µV"
    else:
        units = stream.info.get("channel_units") or [stream.info.get("unit", "")]
        kind, scale, unit = f"Signals ({stream.info.get('type') or 'misc'})", 1.0, str(units[0] or "a.u.")
    title = f"{kind} · {stream.name} · {n_channels} ch, each minus its mean"
    if envelope:
        bins = _bin_signal(stream, lo, hi, n_px, ("sum", "sumsq", "min", "max"))
        total = bins.counts.sum()
        mean = np.nansum(bins.stats["sum"], axis=0) / max(total, 1)
        sd = np.sqrt(np.maximum(np.nansum(bins.stats["sumsq"], axis=0) / max(total, 1) - mean**2, 0.0))
        low, high = (bins.stats["min"] - mean) * scale, (bins.stats["max"] - mean) * scale
        x = bins.centers - t_ref
        title += f", min-max per pixel column ({unit})"
    else:
        times = stream.times[first:last]
        values = np.asarray(stream.data[first:last], dtype=np.float64).reshape(n_samples, -1)
        mean = values.mean(axis=0) if n_samples else np.zeros(n_channels)
        sd = values.std(axis=0) if n_samples else np.zeros(n_channels)
        values = (values - mean) * scale
        x = times - t_ref
        title += f" ({unit})"
    ax.set_title(title, loc="left", fontsize=10)
    finite_sd = sd[np.isfinite(sd) & (sd > 0)] * scale
    spacing = _nice(5.0 * float(np.median(finite_sd))) if finite_sd.size else 1.0
    for i in range(n_channels):
        base = (n_channels - 1 - i) * spacing
        if envelope:
            # No antialiasing: at one column per pixel it only blurs, and it triples the PNG size.
            ax.fill_between(x, base + low[:, i], base + high[:, i], color="#1f2d4d", linewidth=0,
                            antialiased=False)
        else:
            ax.plot(x, base + values[:, i], color="#1f2d4d", linewidth=0.6)
    step = max(1, int(math.ceil(n_channels / 40)))  # keep tick labels legible on dense montages
    ticks = np.arange(0, n_channels, step)
    ax.set_yticks((n_channels - 1 - ticks) * spacing, [labels[i] for i in ticks], fontsize=6.5)
    ax.set_ylim(-1.0 * spacing, n_channels * spacing)
    if n_samples == 0:
        _note(ax, "no samples in this window")
    _scale_bar(cax, ax, spacing, f"{spacing:g} {unit}")


def _panel_kind(stream: Stream) -> str | None:
    """Which panel draws a stream: its modality, or for ``misc`` streams what their samples look like."""
    if stream.modality in _PANEL_ORDER[:-1]:
        return stream.modality
    if stream.modality == "frame_index":  # bookkeeping of a camera: its frames are the video panel
        return None
    if stream.data.dtype == object:
        return "markers"
    return "misc" if stream.data.ndim == 2 else None


def _shade_spans(ax: Axes, spans: list[ExpressionMarker], events: list[tuple[float, str]], lo: float, hi: float,
                 t_ref: float, colors: dict[str, str]) -> None:
    for span in spans:
        ax.axvspan(max(span.onset_s, lo) - t_ref, min(span.offset_s, hi) - t_ref,
                   color=_label_color(span.label, colors), alpha=0.13, linewidth=0, zorder=0)
    for t, _ in events:
        ax.axvline(t - t_ref, color="0.5", linewidth=0.8, linestyle=":", zorder=0)


@dataclass
class _Window:
    """The time window of a timeline, in recorder-clock seconds; ``t_ref`` is the session's first sample."""

    t_ref: float
    lo: float
    hi: float
    session_s: float


def _check_timeline_args(rms_window_s: float, duration: float | None, n_frames: int | None) -> None:
    if rms_window_s <= 0:
        raise ValueError(f"rms_window_s must be > 0 seconds, got {rms_window_s}")
    if duration is not None and duration <= 0:
        raise ValueError(f"duration must be > 0 seconds, got {duration}")
    if n_frames is not None and n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")


def _timeline_window(session: Session, start: float, duration: float | None) -> _Window:
    """The window ``[lo, hi)`` that ``start`` and ``duration`` (seconds from the first sample) select."""
    t_ref, t_end = session_time_span(session)
    session_s = t_end - t_ref
    if start < 0 or (start > 0 and start >= session_s):
        raise ValueError(f"start={start:g} s is outside the session, which lasts {session_s:.2f} s "
                         "from its first sample; choose 0 <= start < that.")
    lo = t_ref + start
    # The window is [lo, hi): nudge its end so the last sample is in it; a single sample gets 1 s.
    hi = max(t_end + 1e-6, lo + 1.0 if session_s == 0 else lo) if duration is None else lo + duration
    return _Window(t_ref, lo, hi, session_s)


def _timeline_panels(session: Session, streams: Sequence[str] | None) -> list[_Panel]:
    """One panel per selected stream that has samples and a panel kind, in drawing order."""
    panels: list[_Panel] = []
    for stream in _select_streams(session, streams):
        if stream.n_samples == 0:
            logger.warning("Stream %s has no samples: left out of the timeline.", stream.name)
            continue
        kind = _panel_kind(stream)
        if kind is None:
            logger.info("Stream %s (modality %s) has no timeline panel; left out.", stream.name, stream.modality)
            continue
        panels.append(_Panel(kind, stream, _panel_height(kind, stream)))
    if not panels:
        raise ValueError(f"Nothing to plot in {session.fname.name}: no selected stream with samples of a modality "
                         f"the timeline draws ({', '.join(_PANEL_ORDER)}).")
    panels.sort(key=lambda p: _PANEL_ORDER.index(p.kind))
    return panels


def _timeline_axes(panels: list[_Panel], width: float, dpi: float) -> tuple[Figure, list[Axes], list[Axes]]:
    """The figure, one wide axes per panel (sharing x) and a narrow side axes beside each (colour bars)."""
    heights = [p.height_in for p in panels]
    fig = Figure(figsize=(width, sum(heights) + _HEADER_IN + _FOOTER_IN + 0.35 * len(panels)), dpi=dpi,
                 layout="constrained")
    FigureCanvasAgg(fig)
    side_in = 0.22
    grid = fig.add_gridspec(len(panels), 2, height_ratios=heights, width_ratios=[width - side_in, side_in])
    axes: list[Axes] = []
    for row in range(len(panels)):
        axes.append(fig.add_subplot(grid[row, 0], sharex=axes[0] if axes else None))
    side = [fig.add_subplot(grid[row, 1]) for row in range(len(panels))]
    return fig, axes, side


def _thumbnail_count(panels: list[_Panel], axes_in: float, video_in: float) -> int:
    """Video tiles that keep the first video stream's aspect ratio across ``axes_in`` inches."""
    video = next((p.stream for p in panels if p.kind in ("rgb", "depth")), None)
    shape = video.data.shape[1:3] if video is not None else (3, 4)
    aspect = shape[1] / shape[0] if shape[0] else 4 / 3
    return max(1, int(round(axes_in / (video_in * aspect))))


def _draw_panels(panels: list[_Panel], axes: list[Axes], side: list[Axes], window: _Window, *,
                 n_frames: int | None, snap_to_apex: bool, rms_window_s: float, width: float, dpi: float) -> None:
    """Draw every panel, then shade the expressions behind the signal panels and share one time axis."""
    lo, hi, t_ref = window.lo, window.hi, window.t_ref
    axes_in = 0.86 * width  # the plotting area, before the layout engine knows exactly
    n_px = max(50, int(axes_in * dpi))
    video_in = next((p.height_in for p in panels if p.kind in ("rgb", "depth")), 1.0)
    n_frames = n_frames or _thumbnail_count(panels, axes_in, video_in)
    colors: dict[str, str] = {}
    markers = {p.stream.name: _markers_in(p.stream, lo, hi) for p in panels if p.kind == "markers"}
    spans = [span for found in markers.values() for span in found[0]]
    events = [event for found in markers.values() for event in found[1]]
    apexes = [span.apex_s for span in spans if not math.isnan(span.apex_s)] if snap_to_apex else []
    for panel, ax, cax in zip(panels, axes, side):
        stream, modality = panel.stream, panel.kind
        if modality in ("rgb", "depth"):
            _draw_frames(ax, cax, stream, lo, hi, t_ref, n_frames, int(video_in * dpi), apexes)
        elif modality == "markers":
            _draw_markers(ax, cax, stream, *markers[stream.name], lo, hi, t_ref, colors)
        elif modality == "au":
            _draw_au(ax, cax, stream, lo, hi, t_ref, n_px)
        elif modality == "emg":
            _draw_emg(ax, cax, stream, lo, hi, t_ref, n_px, rms_window_s)
        else:
            _draw_traces(ax, cax, stream, lo, hi, t_ref, n_px)
    for panel, ax in zip(panels, axes):
        if panel.kind in ("emg", "eeg", "misc"):
            _shade_spans(ax, spans, events, lo, hi, t_ref, colors)
        ax.set_xlim(lo - t_ref, hi - t_ref)
        ax.tick_params(axis="x", labelbottom=False)
        if panel.kind not in ("rgb", "depth"):
            ax.grid(axis="x", color="0.8", linewidth=0.5)
    axes[-1].tick_params(axis="x", labelbottom=True, labelsize=9)
    axes[-1].set_xlabel("time since the session's first sample (s, recorder clock)", fontsize=9)


def _timeline_title(session: Session, window: _Window) -> str:
    info = session.info
    synthetic = " · synthetic" if info.get("synthetic") else ""
    return (f"{session.fname.name} · subject {info.get('subject_id', '?')} · started "
            f"{str(info.get('start_time', '?'))[:19].replace('T', ' ')} UTC{synthetic} · showing "
            f"{window.lo - window.t_ref:.1f}-{window.hi - window.t_ref:.1f} s of {window.session_s:.1f} s")


@verbose
@fill_doc
def plot_timeline(session: Session | str | os.PathLike, fname: str | os.PathLike | None = None, *,
                  start: float = 0.0, duration: float | None = None, streams: Sequence[str] | None = None,
                  n_frames: int | None = None, snap_to_apex: bool = True, rms_window_s: float = 0.05,
                  width: float = 14.0, dpi: float = 100.0, verbose: bool | str | int | None = None) -> Figure:
    """Plot every stream of a session on one time axis.

    Panels, top to bottom, each only when such a stream exists: RGB thumbnails, depth
    thumbnails (mm colour bar), expression markers (onset-offset spans coloured by
    emotion, micro hatched, apexes; paired by :mod:`acquisition.session.markers`), AU
    ground truth as a heatmap (0-5), facial EMG as RMS envelopes per muscle (µV) and EEG
    stacked (µV scale bar; min/max envelopes per pixel column when there are more samples
    than pixels). Expression spans are also shaded behind EMG and EEG.

    Parameters
    ----------
    %(session_or_path)s
    %(plot_fname)s
    start : float
        Start of the window, seconds from the session's first sample (recorder clock).
    duration : float | None
        Length of the window in seconds; None plots to the end of the session.
    streams : list of str | None
        Names of the streams to plot (default: all). Other numeric streams get a
        ``Signals`` panel drawn like EEG in their own unit; camera frame-index streams
        are left out (their frames are the video panel).
    n_frames : int | None
        Video thumbnails per strip; None fits as many as keep the frames' aspect ratio.
        The strip is cut into ``n_frames`` equal tiles, each showing one frame.
    snap_to_apex : bool
        Show, in a tile that holds an expression apex marker, the frame at that apex
        instead of the one at the tile's centre (so the thumbnails show the expressions).
    rms_window_s : float
        EMG RMS window in seconds (longer when the window has more of them than pixels).
    %(plot_width)s
    dpi : float
        Resolution used for binning and for saving.
    %(verbose)s

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure. Each panel's axes title starts with its kind (``RGB video``,
        ``Depth``, ``Expression markers``, ``Action units``, ``Facial EMG``, ``EEG``,
        ``Signals`` for other numeric streams).
    """
    tic = time.perf_counter()
    _check_timeline_args(rms_window_s, duration, n_frames)
    with opened_session(session) as sess:
        out = _check_output(fname, sess)
        window = _timeline_window(sess, start, duration)
        panels = _timeline_panels(sess, streams)
        fig, axes, side = _timeline_axes(panels, width, dpi)
        _draw_panels(panels, axes, side, window, n_frames=n_frames, snap_to_apex=snap_to_apex,
                     rms_window_s=rms_window_s, width=width, dpi=dpi)
        fig.suptitle(_timeline_title(sess, window), fontsize=11, x=0.01, ha="left")
        _save(fig, out, dpi)
    logger.debug("Timeline of %d panels in %.2f s", len(panels), time.perf_counter() - tic)
    return fig


# --------------------------------------------------------------------------------------------
# synchronization quality
# --------------------------------------------------------------------------------------------
def _format_offset(seconds: float, sign: bool = False) -> str:
    """Seconds for offsets of a second or more (other machines), ms below (the same machine)."""
    spec = "+" if sign else ""
    return f"{seconds:{spec}.6f} s" if abs(seconds) >= 1 else f"{seconds * 1e3:{spec}.3f} ms"


def _sync_text(stream: Stream) -> str:
    sync = stream.sync
    table = stream.clock_offsets
    srate = stream.nominal_srate
    lines = [f"{stream.name}", f"{stream.info.get('type', '?')}, " + (f"{srate:g} Hz" if srate else "irregular")]
    if len(table):
        unc = table.uncertainties[np.isfinite(table.uncertainties)]
        span = float(np.ptp(table.collection_times + table.offsets))  # recorder clock: no jump at resets
        lines.append(f"{len(table)} offsets over {span:.0f} s")
        if unc.size:
            lines.append(f"median RTT {np.median(unc) * 1e6:.0f} µs")
        for i, seg in enumerate(sync.clock_segments):
            prefix = f"seg {i + 1}: " if len(sync.clock_segments) > 1 else ""
            lines.append(f"{prefix}offset {_format_offset(seg.offset_at(seg.start_time_s))}")
            lines.append(f"{prefix}drift {seg.slope * 1e6:+.2f} ppm")
            lines.append(f"{prefix}resid. SD {seg.residual_std_s * 1e6:.1f} µs")
        lines.append(f"clock resets: {max(len(sync.clock_segments) - 1, 0)}")
    else:
        lines.append("no clock offsets")
    before, after = sync.jitter_before_s, sync.jitter_after_s
    if np.isfinite(before):
        if sync.dejittered:
            lines.append(f"jitter {before * 1e6:.1f} → {after * 1e6:.1f} µs")
        else:
            lines.append(f"jitter {before * 1e6:.1f} µs (kept)")
    return "\n".join(lines)


def _sync_t_ref(session: Session, selected: list[Stream]) -> float:
    """Time origin of the sync plot: the session's first sample, else its first offset measurement."""
    try:
        return session_time_span(session)[0]
    except ValueError:
        starts = [float(s.clock_offsets.collection_times[0] + s.clock_offsets.offsets[0])
                  for s in selected if len(s.clock_offsets)]
        return min(starts) if starts else 0.0


def _draw_offset_fits(ax_off: Axes, ax_res: Axes, stream: Stream, t_ref: float) -> None:
    """Measured offsets (±RTT/2) with the per-segment fit, its residuals, and the clock resets between segments."""
    table = stream.clock_offsets
    segments = stream.sync.clock_segments
    x = table.collection_times + table.offsets - t_ref
    half_rtt = np.where(np.isfinite(table.uncertainties), table.uncertainties / 2, 0.0)
    if not segments:  # nothing fitted (clock sync switched off): raw offsets only
        ax_off.errorbar(x, (table.offsets - table.offsets[0]) * 1e3, yerr=half_rtt * 1e3, fmt="o", markersize=3)
    for i, seg in enumerate(segments):
        idx = slice(seg.first_offset, seg.last_offset + 1)
        # Each segment relative to its own start: a reset jumps by seconds and would flatten
        # the microsecond-scale drift on a common axis; the jump is written on the reset line.
        ref = seg.offset_at(seg.start_time_s)
        color = f"C{i % 10}"
        ax_off.errorbar(x[idx], (table.offsets[idx] - ref) * 1e3, yerr=half_rtt[idx] * 1e3, fmt="o",
                        markersize=3, color=color, elinewidth=0.8, capsize=1.5,
                        label="measured ±RTT/2" if i == 0 else None)
        ts = np.linspace(seg.start_time_s, seg.stop_time_s, 50)
        ax_off.plot(ts + seg.offset_at(ts) - t_ref, (seg.offset_at(ts) - ref) * 1e3, color=color,
                    linewidth=1.2, alpha=0.8, label="robust fit per segment" if i == 0 else None)
        resid = (table.offsets[idx] - seg.offset_at(table.collection_times[idx])) * 1e6
        ax_res.errorbar(x[idx], resid, yerr=half_rtt[idx] * 1e6, fmt="o", markersize=3, color=color,
                        elinewidth=0.8, capsize=1.5)
        if i > 0:
            previous = segments[i - 1]
            jump = ref - previous.offset_at(previous.stop_time_s)
            for ax in (ax_off, ax_res):
                ax.axvline(x[seg.first_offset], color="red", linestyle="--", linewidth=1.2,
                           label="clock reset" if ax is ax_off and i == 1 else None)
            ax_off.text(x[seg.first_offset], 0.97, f" reset: offset {_format_offset(jump, sign=True)}",
                        transform=ax_off.get_xaxis_transform(), color="red", fontsize=7, va="top")
    ax_res.axhline(0, color="0.3", linewidth=0.8)


def _sync_row_axes(fig: Figure, grid: Any, row: int, stream: Stream, text: str, first_ax: Axes | None,
                   last_row: bool) -> tuple[Axes, Axes]:
    """The offset and residual axes of one stream's row (titled, gridded), with its text box beside them."""
    ax_off = fig.add_subplot(grid[row, 0], sharex=first_ax)
    ax_res = fig.add_subplot(grid[row, 1], sharex=first_ax or ax_off)
    ax_txt = fig.add_subplot(grid[row, 2])
    ax_txt.set_axis_off()
    ax_off.set_title(f"{stream.name}: clock offset, change since its segment's start (ms)", loc="left", fontsize=9)
    ax_res.set_title(f"{stream.name}: residual around the fit (µs)", loc="left", fontsize=9)
    for ax in (ax_off, ax_res):
        ax.tick_params(labelsize=8, labelbottom=last_row)
        ax.grid(color="0.9", linewidth=0.5)
    ax_txt.text(0.02, 0.98, text, va="top", ha="left", fontsize=8, family="monospace", transform=ax_txt.transAxes,
                bbox={"boxstyle": "round,pad=0.4", "fc": "0.96", "ec": "0.7"})
    return ax_off, ax_res


@verbose
@fill_doc
def plot_sync(session: Session | str | os.PathLike, fname: str | os.PathLike | None = None, *,
              streams: Sequence[str] | None = None, width: float = 14.0, dpi: float = 100.0,
              verbose: bool | str | int | None = None) -> Figure:
    """Plot the clock synchronization of each stream.

    One row per stream: left, the clock offsets measured while recording (ms, error bars
    ±RTT/2, the bound LSL's probe gives) with the robust line fitted per clock segment
    and clock resets as red dashed lines; middle, the residuals around that fit (µs);
    right, drift (ppm), residual SD, the number of resets and the sample-interval jitter
    before → after dejitter. The x axis is the recorder time of each measurement, in
    seconds from the session's first sample (as in :func:`plot_timeline`).

    Parameters
    ----------
    %(session_or_path)s
    %(plot_fname)s
    streams : list of str | None
        Names of the streams to plot (default: all).
    %(plot_width)s
    dpi : float
        Resolution used for saving.
    %(verbose)s

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure; per stream, axes titled ``<stream>: clock offset, ...`` and
        ``<stream>: residual ...``, and a text box with the numbers.
    """
    with opened_session(session) as sess:
        out = _check_output(fname, sess)
        selected = _select_streams(sess, streams)
        if not selected:
            raise ValueError(f"{sess.fname.name} has no streams; nothing to plot.")
        t_ref = _sync_t_ref(sess, selected)
        texts = [_sync_text(stream) for stream in selected]
        # Rows grow with their text box (two lines more per clock reset).
        rows_in = [max(1.7, 0.135 * (text.count("\n") + 1) + 0.35) for text in texts]
        fig = Figure(figsize=(width, sum(rows_in) + 0.9), dpi=dpi, layout="constrained")
        FigureCanvasAgg(fig)
        grid = fig.add_gridspec(len(selected), 3, width_ratios=[1.0, 1.0, 0.42], height_ratios=rows_in)
        first_ax: Axes | None = None
        legend_done = False
        for row, (stream, text) in enumerate(zip(selected, texts)):
            ax_off, ax_res = _sync_row_axes(fig, grid, row, stream, text, first_ax, row == len(selected) - 1)
            first_ax = first_ax or ax_off
            if not len(stream.clock_offsets):
                for ax in (ax_off, ax_res):
                    _note(ax, "no clock offsets recorded: times are the raw stamps")
                continue
            _draw_offset_fits(ax_off, ax_res, stream, t_ref)
            if not legend_done:  # once, in the first row that has measurements
                ax_off.legend(fontsize=7, loc="best", frameon=False)
                legend_done = True
        for ax in fig.axes[-3:-1]:
            ax.set_xlabel("recorder time of the measurement, s since the session's first sample", fontsize=8)
        fig.suptitle(f"Clock synchronization · {sess.fname.name} · offset = recorder clock − source clock; "
                     "drift = its slope (+: the source clock runs slow)", fontsize=11, x=0.01, ha="left")
        _save(fig, out, dpi)
    return fig
