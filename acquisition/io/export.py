"""Sessions out: one entry point for every export format, and CSV.

:func:`export_session` writes ``fif``, ``edf``, ``bdf``, ``brainvision`` (one file, through
:mod:`acquisition.io.mne_raw`), ``bids`` (a folder, :mod:`acquisition.io.bids`), ``csv`` (one
file per stream, with time columns, written here) or ``xdf`` (one file, raw, through
:mod:`acquisition.io.xdf_export`). :func:`to_mne` (a session or a path to one
MNE ``Raw``), :func:`export_raw_file` and :func:`write_bids` are importable from here too.
``docs/mne-export.md`` has the conventions and the reasons.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from acquisition.io.bids import write_bids
from acquisition.io.mne_raw import check_export_path, export_raw_file, to_mne
from acquisition.io.xdf_export import write_xdf
from acquisition.session.markers import marker_text
from acquisition.session.reader import Session, Stream, opened_session
from acquisition.session.to_mne import describe_streams, is_marker_stream, is_video_stream, select_streams
from acquisition.sync import SyncOptions
from acquisition.utils.docs import fill_doc
from acquisition.utils.logs import logger, verbose

#: Formats :func:`export_session` writes.
EXPORT_FORMATS = ("fif", "edf", "bdf", "brainvision", "bids", "csv", "xdf")

__all__ = ["EXPORT_FORMATS", "export_raw_file", "export_session", "to_mne", "write_bids", "write_csv", "write_xdf"]


def _csv_streams(session: Session, streams: str | Sequence[str] | None,
                 sync_options: SyncOptions | None) -> list[tuple[Stream, np.ndarray]]:
    """The selected non-empty streams with their synchronized times; video is refused."""
    if streams is None:
        selected = [s for s in session.streams.values() if not is_video_stream(s)]
    else:
        selected = select_streams(session, streams, what="streams=[...] (CLI: --stream)")
    for stream in selected:
        if is_video_stream(stream):
            raise ValueError(f"Stream {stream.name!r} holds video frames, which CSV cannot hold; leave it out.")
    loaded = []
    for stream in selected:
        if stream.n_samples == 0:
            logger.warning("Stream %s has no samples; no CSV written for it.", stream.name)
            continue
        sync = stream.sync if sync_options is None else stream.synchronize(sync_options)
        loaded.append((stream, np.asarray(sync.times)))
    if not loaded:
        raise ValueError(f"Nothing to write: the selected streams are empty. Streams: {describe_streams(session)}.")
    return loaded


def _write_stream_csv(path: Path, stream: Stream, times: np.ndarray, origin: float) -> None:
    values = stream.data[:]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        if is_marker_stream(stream):
            writer.writerow(["time_s", "lsl_time_s", "marker"])
            for t, row in zip(times, values):
                # every value, empty ones too, so multi-channel markers keep their positions
                writer.writerow([repr(float(t - origin)), repr(float(t)),
                                 "|".join(marker_text(v) for v in np.atleast_1d(row))])
            return
        labels = list(stream.info.get("channel_labels") or []) or [f"ch{i}" for i in range(values.shape[1])]
        writer.writerow(["time_s", "lsl_time_s", *labels])
        # %.9g round-trips float32 exactly; float64 needs 17 digits.
        digits = 9 if values.dtype.itemsize <= 4 else 17
        block = np.column_stack([times - origin, times, values.astype(np.float64)])
        np.savetxt(f, block, delimiter=",", fmt=["%.17g", "%.17g"] + [f"%.{digits}g"] * values.shape[1])


@verbose
@fill_doc
def write_csv(session: Session | str | os.PathLike, folder: str | os.PathLike, *,
              streams: str | Sequence[str] | None = None, sync_options: SyncOptions | None = None,
              overwrite: bool = False, verbose: bool | str | int | None = None) -> list[Path]:
    """Write one CSV file per stream, with time columns, as stored (no resampling).

    Parameters
    ----------
    %(session_or_path)s
    folder : path-like
        Output folder (created if missing); files are named ``<session stem>_<stream>.csv``.
    streams : str | list of str | None
        Streams by name, type or modality; None: every numeric and marker stream
        (video frames are never written to CSV).
    %(sync_options)s
    %(overwrite)s
    %(verbose)s

    Returns
    -------
    files : list of Path
        The files written.

    Notes
    -----
    Columns: ``time_s`` (synchronized time in seconds from the earliest first sample of the
    written streams, so files line up), ``lsl_time_s`` (synchronized LSL clock of the
    recorder, seconds), then one column per channel, named by its label, in the stored
    unit (volts for EEG and EMG), or ``marker`` for marker streams.
    """
    with opened_session(session) as opened:
        loaded = _csv_streams(opened, streams, sync_options)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        origin = min(times[0] for _, times in loaded)
        written = []
        for stream, times in loaded:
            path = check_export_path(folder / f"{opened.fname.stem}_{_safe_name(stream.name)}.csv", overwrite)
            _write_stream_csv(path, stream, times, origin)
            written.append(path)
    return written


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)




@verbose
@fill_doc
def export_session(session: Session | str | os.PathLike, out: str | os.PathLike, fmt: str, *,
                   verbose: bool | str | int | None = None, **kwargs: Any) -> list[Path]:
    """Export a session: ``fif``, ``edf``, ``bdf``, ``brainvision``, ``xdf`` (one file), ``bids`` or ``csv`` (a folder).

    Parameters
    ----------
    %(session_or_path)s
    out : path-like
        The output file (fif, edf, bdf, brainvision, xdf) or folder (bids, csv).
    fmt : str
        One of :data:`EXPORT_FORMATS`.
    %(verbose)s
    **kwargs
        Passed to :func:`export_raw_file`, :func:`write_bids`, :func:`write_csv` or :func:`write_xdf`.

    Returns
    -------
    files : list of Path
        The files written.
    """
    fmt = fmt.lower()
    if fmt == "bids":
        return write_bids(session, out, **kwargs)
    if fmt == "csv":
        return write_csv(session, out, **kwargs)
    if fmt == "xdf":
        return write_xdf(session, out, **kwargs)
    if fmt in ("fif", "edf", "bdf", "brainvision"):
        return export_raw_file(session, out, fmt, **kwargs)
    raise ValueError(f"Unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}.")
