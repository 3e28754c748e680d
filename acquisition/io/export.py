"""Sessions to the MNE ecosystem: :func:`to_mne` builds a ``Raw``; the ``write_*`` functions export it.

A session stores what LSL delivered (raw stamps, clock offsets, volts). Scientists
analyse in MNE and share in BIDS, so this module is the one place where session
conventions meet MNE's (``docs/mne-export.md`` has the details and the reasons):

- **Channels.** Numeric streams become channels. Their MNE type comes from the
  per-channel LSL type (``desc/channels/channel/type``), else the stream type:
  ``eeg``, ``emg``, ``ecg``, ``eog``, ``stim``, ``gsr``, ``resp``, ``misc``...;
  unknown types become ``misc`` with a warning naming the channels. Voltage channels
  are scaled to volts from their declared unit (``V``, ``mV``, ``uV``).
- **Time.** The rate is the *effective* rate of the synchronized time stamps
  (:attr:`acquisition.sync.synchronize.SyncResult.effective_srate`); ``meas_date`` is the wall
  clock of the first sample when the session stores the recorder's LSL clock at its
  start (``start_lsl_time``), else the session's ``start_time``.
- **Markers.** String streams become :class:`mne.Annotations` with onsets relative to
  the first sample, both sides in synchronized time. ``onset/<what>`` ... ``offset/<what>``
  pairs (the simulated rig's expression markers) become one annotation ``<what>``
  with a duration.
- **Several rates.** EMG (2 kHz) and EEG (500 Hz) put into one ``Raw`` are resampled by
  MNE onto one rate (default: the highest, so no band is lost) and cut to the
  interval all of them cover; :func:`write_bids` instead writes one file per stream
  at its own rate, as BIDS asks (``acq-<label>``).

Exports use MNE's and mne-bids' writers: ``Raw.save`` (FIF), :func:`mne.export.export_raw`
(EDF, BDF, BrainVision), :func:`mne_bids.write_raw_bids` (BIDS); CSV is written here
(one file per stream, with a time column).
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import mne
import numpy as np

from acquisition.utils.logs import logger, verbose
from acquisition.session.reader import Session, Stream, open_session
from acquisition.session.to_mne import (DEFAULT_MODALITIES, describe_streams, is_marker_stream, is_video_stream,
                                         marker_text, select_streams, signal_streams)
from acquisition.sync import SyncOptions

#: Formats :func:`export_session` writes.
EXPORT_FORMATS = ("fif", "edf", "bdf", "brainvision", "bids", "csv")

def to_mne(session: Session | str | os.PathLike, streams: str | Sequence[str] | None = None,
           **kwargs: Any) -> mne.io.RawArray:
    """Convert a session, open or by path, to one :class:`mne.io.RawArray`.

    The same as :meth:`Session.to_mne <acquisition.session.reader.Session.to_mne>`, which
    documents the options (``streams``, ``markers``, ``sync_options``, ``sfreq``,
    ``pair_expression_markers``, ``line_freq``, ``verbose``); a path is opened and closed here.
    """
    if isinstance(session, Session):
        return session.to_mne(streams, **kwargs)
    with open_session(session) as opened:
        return opened.to_mne(streams, **kwargs)


# -- exporting ----------------------------------------------------------------------------------

@contextlib.contextmanager
def _warnings_to_log(what: str) -> Iterator[None]:
    """Route warnings of MNE / mne-bids / edfio to the emosync logger (the CLI shows them once)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        logger.warning("%s: %s", what, warning.message)


def _check_out(path: Path, overwrite: bool) -> Path:
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True (CLI: --overwrite) to replace it.")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"Cannot write {path}: directory {path.parent} does not exist. Create it first.")
    return path


def _pad_for_edf(raw: mne.io.BaseRaw) -> mne.io.BaseRaw:
    """Pad a Raw of non-integer rate to whole EDF data records, as MNE itself does for integer rates.

    EDF/BDF rates are integers per data record; for a rate like 1999.99 Hz MNE writes records of
    ``floor(sfreq)`` samples but does not pad the last one (edfio then refuses the file). The
    appended edge values are annotated ``BAD_ACQ_SKIP``, exactly as MNE marks its own padding.
    """
    sfreq = raw.info["sfreq"]
    per_record = int(np.floor(sfreq))
    pad = (-raw.n_times) % per_record
    if float(sfreq).is_integer() or pad == 0:
        return raw
    data = np.pad(raw.get_data(), ((0, 0), (0, pad)), mode="edge")
    padded = mne.io.RawArray(data, raw.info.copy(), verbose=False)
    padded.set_annotations(raw.annotations.copy())
    # Cover the padded samples but end half a sample early: EDF rounds the record duration, and a
    # reader whose rate comes out a few ppm higher would otherwise see the annotation overrun the data.
    padded.annotations.append(raw.n_times / sfreq, (pad - 0.5) / sfreq, "BAD_ACQ_SKIP")
    logger.warning("EDF/BDF need whole data records: %.3g s of edge values were appended (annotated BAD_ACQ_SKIP).",
                   pad / sfreq)
    return padded


@verbose
def export_raw_file(session: Session | str | os.PathLike, fname: str | os.PathLike, fmt: str, *,
                    overwrite: bool = False, physical_range: str = "channelwise",
                    verbose: bool | str | int | None = None, **to_mne_kwargs: Any) -> list[Path]:
    """Write one FIF, EDF, BDF or BrainVision file with MNE's writers.

    Parameters
    ----------
    session : Session | path-like
        The session.
    fname : path-like
        Output file: ``*_raw.fif``, ``*.edf``, ``*.bdf`` or ``*.vhdr`` (BrainVision writes
        ``.vhdr``, ``.vmrk`` and ``.eeg`` side by side).
    fmt : ``"fif"`` | ``"edf"`` | ``"bdf"`` | ``"brainvision"``
        The format.
    overwrite : bool
        Replace existing files.
    physical_range : str
        EDF/BDF physical range (see :func:`mne.export.export_raw`); ``"channelwise"`` gives
        every channel the full 16-bit (EDF) or 24-bit (BDF) resolution of its own range.
    verbose : bool | str | int | None
        Log level for this call.
    **to_mne_kwargs
        Passed to :func:`to_mne` (``streams``, ``markers``, ``sfreq``, ``sync_options``...).

    Returns
    -------
    files : list of Path
        The files written (the header file for BrainVision).
    """
    fname = _check_out(Path(fname), overwrite)
    raw = to_mne(session, **to_mne_kwargs)
    with _warnings_to_log(f"{fmt} export"), warnings.catch_warnings():
        # pybv stores float32 (7 significant digits, far below EMG/EEG noise); MNE hands it float64.
        warnings.filterwarnings("ignore", message="Encountered data in 'double' format")
        if fmt == "fif":
            raw.save(fname, overwrite=overwrite, verbose=False)
        elif fmt in ("edf", "bdf"):
            mne.export.export_raw(fname, _pad_for_edf(raw), fmt=fmt, overwrite=overwrite, verbose=False,
                                  physical_range=physical_range)
        elif fmt == "brainvision":
            mne.export.export_raw(fname, raw, fmt=fmt, overwrite=overwrite, verbose=False)
        else:
            raise ValueError(f"fmt must be one of 'fif', 'edf', 'bdf', 'brainvision', got {fmt!r}.")
    return [fname]


@verbose
def write_csv(session: Session | str | os.PathLike, folder: str | os.PathLike, *,
              streams: str | Sequence[str] | None = None, sync_options: SyncOptions | None = None,
              overwrite: bool = False, verbose: bool | str | int | None = None) -> list[Path]:
    """Write one CSV file per stream, with time columns, as stored (no resampling).

    Parameters
    ----------
    session : Session | path-like
        The session.
    folder : path-like
        Output folder (created if missing); files are named ``<session stem>_<stream>.csv``.
    streams : str | list of str | None
        Streams by name, type or modality; None: every numeric and marker stream
        (video frames are never written to CSV).
    sync_options : SyncOptions | None
        Synchronization options.
    overwrite : bool
        Replace existing files.
    verbose : bool | str | int | None
        Log level for this call.

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
    if not isinstance(session, Session):
        with open_session(session) as opened:
            return write_csv(opened, folder, streams=streams, sync_options=sync_options, overwrite=overwrite)
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
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    origin = min(times[0] for _, times in loaded)
    written = []
    for stream, times in loaded:
        path = _check_out(folder / f"{session.fname.stem}_{_safe_name(stream.name)}.csv", overwrite)
        values = stream.data[:]
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            if is_marker_stream(stream):
                writer.writerow(["time_s", "lsl_time_s", "marker"])
                for t, row in zip(times, values):
                    writer.writerow([repr(float(t - origin)), repr(float(t)),
                                     "|".join(marker_text(v) for v in np.atleast_1d(row))])
            else:
                labels = list(stream.info.get("channel_labels") or []) or [
                    f"ch{i}" for i in range(values.shape[1])]
                writer.writerow(["time_s", "lsl_time_s", *labels])
                # %.9g round-trips float32 exactly; float64 needs 17 digits.
                digits = 9 if values.dtype.itemsize <= 4 else 17
                block = np.column_stack([times - origin, times, values.astype(np.float64)])
                np.savetxt(f, block, delimiter=",", fmt=["%.17g", "%.17g"] + [f"%.{digits}g"] * values.shape[1])
        written.append(path)
    return written


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _bids_label(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", text)


def stream_muscles(stream: Stream) -> dict[str, dict[str, str]]:
    """Muscle under each EMG channel, from the stream's LSL description ``desc/muscles/muscle``.

    Returns
    -------
    muscles : dict of str to dict
        ``{channel label: {"name": muscle, "side": "L" | "R" | ""}}`` (empty when unknown).
    """
    xml = str(stream.info.get("info_xml", ""))
    if not xml:
        return {}
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        logger.warning("Stream %s: its info XML does not parse; muscle metadata ignored.", stream.name)
        return {}
    muscles = {}
    for muscle in root.iterfind("desc/muscles/muscle"):
        label = (muscle.findtext("label") or "").strip()
        if label:
            muscles[label] = {"name": (muscle.findtext("name") or "").strip(),
                              "side": (muscle.findtext("side") or "").strip()}
    return muscles


def _reference_from_xml(stream: Stream) -> str | None:
    xml = str(stream.info.get("info_xml", ""))
    if not xml:
        return None
    with contextlib.suppress(ET.ParseError):
        reference = ET.fromstring(xml).find("desc/reference")
        if reference is not None:
            text = (reference.findtext("label") or reference.text or "").strip()
            return text or None
    return None


def _muscle_text(muscle: dict[str, str]) -> str:
    side = {"L": "left", "R": "right"}.get(muscle.get("side", ""), muscle.get("side", ""))
    name = muscle.get("name", "").replace("_", " ")
    return f"{name} ({side})" if side else name


def _set_tsv_column(path: Path, column: str, values: dict[str, str]) -> None:
    """Set ``column`` of the rows named in ``values`` (first column = name) of a BIDS TSV; add it if missing."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    header, body = rows[0], rows[1:]
    if column not in header:
        header.append(column)
        body = [row + ["n/a"] for row in body]
    j = header.index(column)
    for row in body:
        if row[0] in values:
            row[j] = values[row[0]]
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, delimiter="\t", lineterminator="\n").writerows([header, *body])


@verbose
def write_bids(session: Session | str | os.PathLike, root: str | os.PathLike, *,
               streams: str | Sequence[str] | None = None, markers: str | Sequence[str] | bool | None = "all",
               task: str | None = None, subject: str | None = None, bids_session: str | None = None,
               run: int | None = None, line_freq: float = 50.0, eeg_format: str = "BrainVision",
               emg_format: str = "EDF", emg_placement: str = "Other", emg_placement_description: str | None = None,
               emg_reference: str | None = None, eeg_reference: str | None = None,
               sync_options: SyncOptions | None = None, overwrite: bool = False,
               verbose: bool | str | int | None = None) -> list[Path]:
    """Write the EEG and EMG streams of a session as a BIDS dataset with mne-bids.

    Each stream becomes its own recording at its own rate (BIDS stores devices with
    different rates or start times separately): EEG in ``eeg/`` (BrainVision or EDF),
    EMG in ``emg/`` (EDF or BDF, BIDS 1.11 / mne-bids >= 0.18). Markers become
    ``events.tsv``. When several streams share a datatype, ``acq-<stream name>`` tells
    them apart.

    Parameters
    ----------
    session : Session | path-like
        The session.
    root : path-like
        BIDS root folder (created if missing).
    streams : str | list of str | None
        EEG/EMG streams to write (name, type or modality); None: all of them.
    markers : "all" | str | list of str | bool | None
        Marker streams that become events (see :func:`to_mne`).
    task : str | None
        BIDS task label; default: the session's ``task`` attribute, else ``"emosync"``.
    subject : str | None
        BIDS subject label; default: the session's pseudonymous ``subject_id`` without
        ``sub-`` (non-alphanumeric characters are removed).
    bids_session, run : str | int | None
        Optional BIDS ``ses`` and ``run`` entities.
    line_freq : float
        Mains frequency in Hz (``PowerLineFrequency``).
    eeg_format : ``"BrainVision"`` | ``"EDF"``
        File format of EEG recordings.
    emg_format : ``"EDF"`` | ``"BDF"``
        File format of EMG recordings (BIDS allows only these two).
    emg_placement : ``"Other"`` | ``"Measured"`` | ``"ChannelSpecific"``
        BIDS ``EMGPlacementScheme``.
    emg_placement_description : str | None
        ``EMGPlacementSchemeDescription``; default: built from the muscle of each channel
        in the stream metadata (``desc/muscles``). Required when that metadata is absent.
    emg_reference, eeg_reference : str | None
        ``EMGReference`` / ``EEGReference``; default: the stream's ``desc/reference``,
        else ``"n/a"`` with a warning.
    sync_options : SyncOptions | None
        Synchronization options.
    overwrite : bool
        Replace existing recordings.
    verbose : bool | str | int | None
        Log level for this call.

    Returns
    -------
    files : list of Path
        The data files written.
    """
    try:
        from mne_bids import BIDSPath, update_sidecar_json, write_raw_bids
    except ImportError:
        raise ImportError("BIDS export needs mne-bids >= 0.18 (pip install 'mne-bids>=0.18' edfio pybv).") from None
    if not isinstance(session, Session):
        with open_session(session) as opened:
            return write_bids(opened, root, streams=streams, markers=markers, task=task, subject=subject,
                              bids_session=bids_session, run=run, line_freq=line_freq, eeg_format=eeg_format,
                              emg_format=emg_format, emg_placement=emg_placement,
                              emg_placement_description=emg_placement_description, emg_reference=emg_reference,
                              eeg_reference=eeg_reference, sync_options=sync_options, overwrite=overwrite)
    if eeg_format not in ("BrainVision", "EDF"):
        raise ValueError(f"eeg_format must be 'BrainVision' or 'EDF', got {eeg_format!r}.")
    if emg_format not in ("EDF", "BDF"):
        raise ValueError(f"emg_format must be 'EDF' or 'BDF' (the formats BIDS allows for EMG), got {emg_format!r}.")
    if emg_placement not in ("Measured", "ChannelSpecific", "Other"):
        raise ValueError(f"emg_placement must be 'Measured', 'ChannelSpecific' or 'Other', got {emg_placement!r}.")
    selected = [s for s in signal_streams(session, streams) if s.n_samples > 0]
    for stream in selected:
        if stream.modality not in DEFAULT_MODALITIES:
            raise ValueError(f"BIDS export writes EEG and EMG streams; {stream.name!r} is {stream.modality!r}. "
                             "Leave it out of streams=[...] (CSV and FIF exports take any numeric stream).")
    if not selected:
        raise ValueError(f"No non-empty EEG or EMG stream to write. Streams: {describe_streams(session)}.")
    task = _bids_label(task or str(session.info.get("task", "")) or "emosync")
    subject = _bids_label((subject or str(session.info.get("subject_id", ""))).removeprefix("sub-")) or "unknown"
    per_datatype: dict[str, int] = {}
    for stream in selected:
        per_datatype[stream.modality] = per_datatype.get(stream.modality, 0) + 1
    written = []
    for stream in selected:
        datatype = stream.modality
        raw = to_mne(session, [stream.name], markers=markers, sync_options=sync_options, line_freq=line_freq)
        data_format = emg_format if datatype == "emg" else eeg_format
        if data_format in ("EDF", "BDF"):
            raw = _pad_for_edf(raw)
        acq = _bids_label(stream.name) if per_datatype[datatype] > 1 else None
        bids_path = BIDSPath(subject=subject, session=bids_session, task=task, acquisition=acq, run=run,
                             datatype=datatype, root=Path(root))
        entries: dict[str, Any] = {}
        muscles = stream_muscles(stream) if datatype == "emg" else {}
        if datatype == "emg":
            entries = _emg_sidecar(stream, muscles, raw, emg_placement, emg_placement_description, emg_reference)
        else:
            reference = eeg_reference or _reference_from_xml(stream)
            if reference:
                entries["EEGReference"] = reference
            else:
                logger.warning("Stream %s: the EEG reference is not in its metadata; EEGReference stays 'n/a'. "
                               "Pass eeg_reference=... (CLI: --eeg-reference) to record it.", stream.name)
        with _warnings_to_log(f"mne-bids ({stream.name})"), warnings.catch_warnings():
            # No electrode positions are stored in a session; mne-bids says so for every EMG file.
            warnings.filterwarnings("ignore", message="No electrode location info found")
            bids_path = write_raw_bids(raw, bids_path, format=data_format,
                                       allow_preload=True, overwrite=overwrite, verbose=False,
                                       emg_placement=emg_placement if datatype == "emg" else None,
                                       physical_range="channelwise")
        sidecar = bids_path.copy().update(suffix=datatype, extension=".json")
        if entries:
            update_sidecar_json(sidecar, entries, verbose=False)
        channels = bids_path.copy().update(suffix="channels", extension=".tsv").fpath
        if muscles:
            _set_tsv_column(channels, "target_muscle",
                            {ch: _muscle_text(muscles[ch]) for ch in raw.ch_names if ch in muscles})
        # MNE writes misc channels unscaled and mne-bids lists their unit as n/a: give the unit they are stored in.
        declared = dict(zip(stream.info.get("channel_labels") or [], stream.info.get("channel_units") or []))
        misc_units = {ch: declared[ch] for ch, kind in zip(raw.ch_names, raw.get_channel_types())
                      if kind == "misc" and declared.get(ch)}
        if misc_units:
            _set_tsv_column(channels, "units", misc_units)
        written.append(bids_path.fpath)
        logger.info("Wrote %s (%s, %d channels, %.6g Hz)", bids_path.fpath, datatype, len(raw.ch_names),
                    raw.info["sfreq"])
    return written


def _emg_sidecar(stream: Stream, muscles: dict[str, dict[str, str]], raw: mne.io.BaseRaw, placement: str,
                 description: str | None, reference: str | None) -> dict[str, Any]:
    entries: dict[str, Any] = {}
    if placement == "Other":
        if description is None:
            if not muscles:
                raise ValueError(
                    f"Stream {stream.name!r} has no muscle metadata (desc/muscles in its LSL info XML), so the "
                    "BIDS EMGPlacementSchemeDescription cannot be filled in. Describe the electrode placement "
                    "with emg_placement_description='...' (CLI: --emg-placement-description)."
                )
            described = "; ".join(f"{ch}: {_muscle_text(muscles[ch])}" for ch in raw.ch_names if ch in muscles)
            description = ("Surface EMG over the muscles named per channel in channels.tsv (target_muscle), "
                           f"from the recording's stream metadata: {described}. "
                           "No electrode coordinates are stored with the recording.")
        entries["EMGPlacementSchemeDescription"] = description
    reference = reference or _reference_from_xml(stream)
    if reference:
        entries["EMGReference"] = reference
    else:
        logger.warning("Stream %s: the EMG reference is not in its metadata (desc/reference); EMGReference stays "
                       "'n/a'. Pass emg_reference=... (CLI: --emg-reference), e.g. 'bipolar pairs'.", stream.name)
    return entries


@verbose
def export_session(session: Session | str | os.PathLike, out: str | os.PathLike, fmt: str, *,
                   verbose: bool | str | int | None = None, **kwargs: Any) -> list[Path]:
    """Export a session: ``fif``, ``edf``, ``bdf``, ``brainvision`` (one file), ``bids`` or ``csv`` (a folder).

    Parameters
    ----------
    session : Session | path-like
        The session.
    out : path-like
        The output file (fif, edf, bdf, brainvision) or folder (bids, csv).
    fmt : str
        One of :data:`EXPORT_FORMATS`.
    verbose : bool | str | int | None
        Log level for this call.
    **kwargs
        Passed to :func:`export_raw_file`, :func:`write_bids` or :func:`write_csv`.

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
    if fmt in ("fif", "edf", "bdf", "brainvision"):
        return export_raw_file(session, out, fmt, **kwargs)
    raise ValueError(f"Unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}.")
