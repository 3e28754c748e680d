"""Sessions as BIDS datasets (mne-bids): one recording per EEG or EMG stream, at its own rate.

BIDS stores devices with different rates or start times separately, so each stream becomes
its own recording (``acq-<stream name>`` tells two of one datatype apart): EEG in ``eeg/``
(BrainVision or EDF), EMG in ``emg/`` (EDF or BDF; BIDS 1.11 / mne-bids >= 0.18, with the
``EMGPlacementScheme`` and, from the streams' ``desc/muscles`` metadata, each channel's target
muscle). Markers become ``events.tsv``, paired as :func:`acquisition.session.to_mne.to_mne`
pairs them. ``docs/mne-export.md`` has the details.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mne

from acquisition.io.mne_raw import pad_for_edf, to_mne, warnings_to_log
from acquisition.session.reader import Session, Stream, opened_session
from acquisition.session.to_mne import DEFAULT_MODALITIES, describe_streams, signal_streams
from acquisition.sync import SyncOptions
from acquisition.utils.docs import fill_doc
from acquisition.utils.logs import logger, verbose

@dataclass(frozen=True)
class _BidsOptions:
    """What every stream of one :func:`write_bids` call is written with."""

    markers: str | Sequence[str] | bool | None
    line_freq: float
    eeg_format: str
    emg_format: str
    emg_placement: str
    emg_placement_description: str | None
    emg_reference: str | None
    eeg_reference: str | None
    sync_options: SyncOptions | None
    overwrite: bool

    def check(self) -> None:
        if self.eeg_format not in ("BrainVision", "EDF"):
            raise ValueError(f"eeg_format must be 'BrainVision' or 'EDF', got {self.eeg_format!r}.")
        if self.emg_format not in ("EDF", "BDF"):
            raise ValueError("emg_format must be 'EDF' or 'BDF' (the formats BIDS allows for EMG), "
                             f"got {self.emg_format!r}.")
        if self.emg_placement not in ("Measured", "ChannelSpecific", "Other"):
            raise ValueError("emg_placement must be 'Measured', 'ChannelSpecific' or 'Other', "
                             f"got {self.emg_placement!r}.")


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


def _bids_streams(session: Session, streams: str | Sequence[str] | None) -> list[Stream]:
    """The non-empty EEG and EMG streams to write; any other modality is refused."""
    selected = [s for s in signal_streams(session, streams) if s.n_samples > 0]
    for stream in selected:
        if stream.modality not in DEFAULT_MODALITIES:
            raise ValueError(f"BIDS export writes EEG and EMG streams; {stream.name!r} is {stream.modality!r}. "
                             "Leave it out of streams=[...] (CSV and FIF exports take any numeric stream).")
    if not selected:
        raise ValueError(f"No non-empty EEG or EMG stream to write. Streams: {describe_streams(session)}.")
    return selected


def _sidecar_entries(stream: Stream, raw: mne.io.BaseRaw, muscles: dict[str, dict[str, str]],
                     options: _BidsOptions) -> dict[str, Any]:
    """Sidecar JSON fields mne-bids cannot know: EMG placement and reference, EEG reference."""
    if stream.modality == "emg":
        return _emg_sidecar(stream, muscles, raw, options.emg_placement, options.emg_placement_description,
                            options.emg_reference)
    reference = options.eeg_reference or _reference_from_xml(stream)
    if reference:
        return {"EEGReference": reference}
    logger.warning("Stream %s: the EEG reference is not in its metadata; EEGReference stays 'n/a'. "
                   "Pass eeg_reference=... (CLI: --eeg-reference) to record it.", stream.name)
    return {}


def _complete_channels_tsv(channels: Path, stream: Stream, raw: mne.io.BaseRaw,
                           muscles: dict[str, dict[str, str]]) -> None:
    """Add each EMG channel's target muscle, and the stored unit of misc channels, to ``channels.tsv``."""
    if muscles:
        _set_tsv_column(channels, "target_muscle",
                        {ch: _muscle_text(muscles[ch]) for ch in raw.ch_names if ch in muscles})
    # MNE writes misc channels unscaled and mne-bids lists their unit as n/a: give the unit they are stored in.
    declared = dict(zip(stream.info.get("channel_labels") or [], stream.info.get("channel_units") or []))
    misc_units = {ch: declared[ch] for ch, kind in zip(raw.ch_names, raw.get_channel_types())
                  if kind == "misc" and declared.get(ch)}
    if misc_units:
        _set_tsv_column(channels, "units", misc_units)


def _write_stream(session: Session, stream: Stream, bids_path: Any, options: _BidsOptions) -> Path:
    """One stream as one BIDS recording, with its sidecar and channels.tsv completed; returns the data file."""
    from mne_bids import update_sidecar_json, write_raw_bids

    datatype = stream.modality
    raw = to_mne(session, [stream.name], markers=options.markers, sync_options=options.sync_options,
                 line_freq=options.line_freq)
    data_format = options.emg_format if datatype == "emg" else options.eeg_format
    if data_format in ("EDF", "BDF"):
        raw = pad_for_edf(raw)
    muscles = stream_muscles(stream) if datatype == "emg" else {}
    entries = _sidecar_entries(stream, raw, muscles, options)
    with warnings_to_log(f"mne-bids ({stream.name})"), warnings.catch_warnings():
        # No electrode positions are stored in a session; mne-bids says so for every EMG file.
        warnings.filterwarnings("ignore", message="No electrode location info found")
        bids_path = write_raw_bids(raw, bids_path, format=data_format, allow_preload=True,
                                   overwrite=options.overwrite, verbose=False,
                                   emg_placement=options.emg_placement if datatype == "emg" else None,
                                   physical_range="channelwise")
    if entries:
        update_sidecar_json(bids_path.copy().update(suffix=datatype, extension=".json"), entries, verbose=False)
    _complete_channels_tsv(bids_path.copy().update(suffix="channels", extension=".tsv").fpath, stream, raw, muscles)
    logger.info("Wrote %s (%s, %d channels, %.6g Hz)", bids_path.fpath, datatype, len(raw.ch_names),
                raw.info["sfreq"])
    return bids_path.fpath


@verbose
@fill_doc
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
    %(session_or_path)s
    root : path-like
        BIDS root folder (created if missing).
    streams : str | list of str | None
        EEG/EMG streams to write (name, type or modality); None: all of them.
    %(markers)s
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
    %(sync_options)s
    overwrite : bool
        Replace existing recordings.
    %(verbose)s

    Returns
    -------
    files : list of Path
        The data files written.
    """
    try:
        from mne_bids import BIDSPath
    except ImportError:
        raise ImportError("BIDS export needs mne-bids >= 0.18 (pip install 'mne-bids>=0.18' edfio pybv).") from None
    options = _BidsOptions(markers, line_freq, eeg_format, emg_format, emg_placement, emg_placement_description,
                           emg_reference, eeg_reference, sync_options, overwrite)
    options.check()
    with opened_session(session) as opened:
        selected = _bids_streams(opened, streams)
        task = _bids_label(task or str(opened.info.get("task", "")) or "emosync")
        subject = _bids_label((subject or str(opened.info.get("subject_id", ""))).removeprefix("sub-")) or "unknown"
        per_datatype = {m: sum(s.modality == m for s in selected) for m in DEFAULT_MODALITIES}
        written = []
        for stream in selected:
            acq = _bids_label(stream.name) if per_datatype[stream.modality] > 1 else None
            bids_path = BIDSPath(subject=subject, session=bids_session, task=task, acquisition=acq, run=run,
                                 datatype=stream.modality, root=Path(root))
            written.append(_write_stream(opened, stream, bids_path, options))
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


