"""Import physiological recordings exported as text tables (Acqknowledge, LabChart, BIDS-physio-like TSV).

Much existing facial-EMG data lives in text exports: one row per sample, one column per
signal, and stimulus pulses recorded as analog channels. A small YAML spec
(``configs/import/*.yaml``, validated by :class:`TableSpec`, unknown keys rejected) says
which column holds what, in which unit, and which pulse columns mark which stimuli;
:func:`import_table` writes an ordinary session through :class:`~acquisition.SessionWriter`,
so every emosync path (sync, MNE export, fusion datasets) reads it.

A table has one clock, so time stamps are ``sample index / sampling_rate_hz`` seconds and
no clock offsets are stored (synchronization leaves them unchanged). The session's
``start_lsl_time`` is 0, so MNE's ``meas_date`` is the session ``start_time`` (the
spec's ``start_time``, else the time of import).
"""

from __future__ import annotations

import datetime as _dt
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from acquisition.utils.config import StrictModel, load_config
from acquisition.utils.docs import fill_doc
from acquisition.utils.logs import logger, verbose
from acquisition.session.format import StreamSpec
from acquisition.io.importing import new_session_file, source_metadata
from acquisition.session.writer import SessionWriter


class ChannelColumn(StrictModel):
    """One signal column of the table."""

    column: int | str = Field(description="0-based column index, or the column name in the header row.")
    label: str = Field(min_length=1, description="Channel label in the session.")
    type: str | None = Field(None, description="Channel type (EMG, EEG, MISC...); default: the stream type.")
    unit: str | None = Field(None, description="Unit after scaling; default: the stream's unit.")
    scale: float | None = Field(None, description="Factor from file values to `unit`; default: the stream's.")
    muscle: str | None = Field(None, description="Muscle under the electrode (EMG), e.g. zygomaticus_major.")
    side: Literal["L", "R"] | None = None


class StreamColumns(StrictModel):
    """A stream of the session, made of table columns that share a rate and a clock."""

    name: str = Field(min_length=1)
    type: str = Field(min_length=1, description="LSL content type: EMG, EEG, GSR...")
    unit: str = Field("", description="Default unit of the channels after scaling (EMG/EEG: V).")
    scale: float = Field(1.0, description="Default factor from file values to `unit` (mV -> V: 0.001).")
    channels: list[ChannelColumn] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_labels(self) -> StreamColumns:
        labels = [c.label for c in self.channels]
        if len(set(labels)) != len(labels):
            raise ValueError(f"stream {self.name!r}: channel labels must be unique, got {labels}")
        return self


class PulseColumn(StrictModel):
    """An analog pulse (trigger) column; each crossing of ``threshold`` becomes a marker."""

    column: int | str
    label: str = Field(min_length=1, description="Marker text, e.g. the stimulus condition.")
    threshold: float = Field(description="Level in file units that separates pulse from rest.")
    edge: Literal["rising", "falling"] = Field(
        "rising", description="Marker at the first sample above (rising) or back below (falling) the threshold.")


class MarkerColumns(StrictModel):
    """The marker stream built from pulse columns."""

    name: str = "Markers"
    pulses: list[PulseColumn] = Field(min_length=1)


class TableSpec(StrictModel):
    """How to read one kind of text table (``configs/import/<name>.yaml``)."""

    description: str = ""
    source: str = Field("", description="Where such files come from (provenance, stored in the session).")
    delimiter: str = Field("\t", description="Column separator; 'whitespace' for runs of spaces/tabs.")
    skip_rows: int = Field(0, ge=0, description="Lines to skip at the top (before any header row).")
    header_row: bool = Field(False, description="After skip_rows, one line of column names.")
    comment: str | None = Field(None, description="Lines starting with this are ignored.")
    sampling_rate_hz: float = Field(gt=0)
    start_time: _dt.datetime | None = Field(None, description="Wall-clock start (ISO 8601); default: import time.")
    task: str | None = None
    streams: list[StreamColumns] = Field(min_length=1)
    markers: MarkerColumns | None = None

    @model_validator(mode="after")
    def _check(self) -> TableSpec:
        names = [s.name for s in self.streams] + ([self.markers.name] if self.markers else [])
        if len(set(names)) != len(names):
            raise ValueError(f"stream names must be unique, got {names}")
        columns = [c.column for s in self.streams for c in s.channels] + (
            [p.column for p in self.markers.pulses] if self.markers else [])
        if not self.header_row and any(isinstance(c, str) for c in columns):
            raise ValueError("columns are named (strings) but header_row is false; use 0-based column numbers "
                             "or set header_row: true")
        return self


def load_table_spec(name_or_path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> TableSpec:
    """Load ``configs/import/<name>.yaml`` (or a YAML path) with OmegaConf dotlist overrides."""
    return load_config(TableSpec, str(name_or_path), "import", overrides)


def read_table(fname: str | os.PathLike, spec: TableSpec) -> tuple[np.ndarray, list[str]]:
    """Read the numeric columns a spec uses.

    Returns
    -------
    values : array of float, shape (n_rows, n_used_columns)
        The used columns, in order of ``names``.
    names : list of str
        ``str(column)`` of each returned column as the spec names it.
    """
    fname = Path(fname)
    if not fname.is_file():
        raise FileNotFoundError(f"No table at {fname}.")
    delimiter = None if spec.delimiter == "whitespace" else spec.delimiter
    wanted = list(dict.fromkeys(
        [c.column for s in spec.streams for c in s.channels] + (
            [p.column for p in spec.markers.pulses] if spec.markers else [])))
    _check_text_table(fname)
    with open(fname, encoding="utf-8", errors="replace") as f:
        lines = [next(f, "") for _ in range(spec.skip_rows + 2)]
    first = lines[spec.skip_rows + (1 if spec.header_row else 0)]
    n_columns = len(first.rstrip("\r\n").split(delimiter))
    _check_last_row(fname, delimiter, n_columns, spec.comment)
    header: list[str] = []
    if spec.header_row:
        header = [h.strip() for h in lines[spec.skip_rows].rstrip("\r\n").split(delimiter)]
    index = []
    for column in wanted:
        if isinstance(column, str):
            if column not in header:
                raise ValueError(f"{fname.name}: no column named {column!r}; the header has {header}.")
            index.append(header.index(column))
        elif not 0 <= column < n_columns:
            raise ValueError(f"{fname.name}: column {column} does not exist; the first data row has "
                             f"{n_columns} columns (numbered 0 to {n_columns - 1}).")
        else:
            index.append(column)
    try:
        values = np.loadtxt(fname, delimiter=delimiter, skiprows=spec.skip_rows + int(spec.header_row),
                            usecols=index, comments=spec.comment, ndmin=2, dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{fname.name} does not parse as a numeric table with the spec's delimiter "
                         f"{spec.delimiter!r} and skip_rows={spec.skip_rows}: {err}") from None
    if values.shape[0] == 0:
        raise ValueError(f"{fname.name} has no data rows after skipping {spec.skip_rows} line(s).")
    if not np.all(np.isfinite(values)):
        bad = sorted({str(wanted[j]) for j in np.argwhere(~np.isfinite(values))[:, 1]})
        raise ValueError(f"{fname.name}: columns {bad} hold missing or non-finite values.")
    return values, [str(c) for c in wanted]


def _check_text_table(fname: Path) -> None:
    """Refuse a binary file (an image, an HDF5 session...) before parsing it as text."""
    with open(fname, "rb") as f:
        head = f.read(4096)
    if b"\x00" in head:
        raise ValueError(f"{fname.name} is not a text table: it holds binary data (it starts with {head[:8]!r}). "
                         "Export the recording as text (CSV/TSV) first.")


def _check_last_row(fname: Path, delimiter: str | None, n_columns: int, comment: str | None) -> None:
    """Refuse a table whose last row has fewer columns than its first: the file was cut off mid-row.

    ``np.loadtxt`` with ``usecols`` would otherwise read such a row, and a number cut in half with it.
    """
    with open(fname, "rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - 65536))
        tail = f.read().decode("utf-8", errors="replace").splitlines()
    rows = [line for line in tail if line.strip() and not (comment and line.lstrip().startswith(comment))]
    if not rows:
        return
    found = len(rows[-1].split(delimiter))
    if found < n_columns:
        raise ValueError(f"{fname.name}: the last row has {found} of the {n_columns} columns of the first data row; "
                         "the file ends mid-row (truncated?). Copy or export it again, in full.")


def find_pulses(values: np.ndarray, threshold: float, edge: str = "rising") -> np.ndarray:
    """Sample indices where a pulse signal crosses ``threshold``.

    Parameters
    ----------
    values : array of float, shape (n_samples,)
        The pulse channel.
    threshold : float
        Level in the channel's units.
    edge : ``"rising"`` | ``"falling"``
        First sample above the threshold after one at or below it, or the first sample at
        or below it after one above. A pulse already high at sample 0 has no rising edge.

    Returns
    -------
    indices : array of int, shape (n_pulses,)
    """
    above = np.asarray(values) > threshold
    if edge == "rising":
        return np.flatnonzero(~above[:-1] & above[1:]) + 1
    if edge == "falling":
        return np.flatnonzero(above[:-1] & ~above[1:]) + 1
    raise ValueError(f"edge must be 'rising' or 'falling', got {edge!r}.")


def _info_xml(stream: StreamColumns, spec: TableSpec, source_id: str, units: list[str], types: list[str]) -> str:
    """A stream description in LSL's info XML layout, so metadata readers treat imports like recordings."""
    info = ET.Element("info")
    for tag, text in (("name", stream.name), ("type", stream.type), ("channel_count", str(len(stream.channels))),
                      ("nominal_srate", repr(spec.sampling_rate_hz)), ("channel_format", "double64"),
                      ("source_id", source_id)):
        ET.SubElement(info, tag).text = text
    desc = ET.SubElement(info, "desc")
    ET.SubElement(desc, "manufacturer").text = "emosync table import"
    channels = ET.SubElement(desc, "channels")
    for channel, unit, ch_type in zip(stream.channels, units, types):
        element = ET.SubElement(channels, "channel")
        ET.SubElement(element, "label").text = channel.label
        ET.SubElement(element, "unit").text = unit
        ET.SubElement(element, "type").text = ch_type
    with_muscle = [c for c in stream.channels if c.muscle]
    if with_muscle:
        muscles = ET.SubElement(desc, "muscles")
        for channel in with_muscle:
            muscle = ET.SubElement(muscles, "muscle")
            ET.SubElement(muscle, "label").text = channel.label
            ET.SubElement(muscle, "name").text = channel.muscle
            ET.SubElement(muscle, "side").text = channel.side or ""
    return ET.tostring(info, encoding="unicode")


@verbose
@fill_doc
def import_table(fname: str | os.PathLike, out: str | os.PathLike, spec: TableSpec | str | os.PathLike, *,
                 subject_id: str = "sub-unknown", overrides: list[str] | tuple[str, ...] = (),
                 verbose: bool | str | int | None = None) -> Path:
    """Import a text table as a session file.

    Parameters
    ----------
    fname : path-like
        The text table.
    out : path-like
        The session file to create (``.h5``); never overwritten (nothing is written on an error).
    spec : TableSpec | str | path-like
        The spec, a YAML path, or a name under ``configs/import/`` (e.g. ``"nilsonne"``).
    subject_id : str
        Pseudonymous subject id stored in the session.
    overrides : sequence of str
        Dotlist overrides of a spec loaded by name (e.g. ``["sampling_rate_hz=1000"]``).
    %(verbose)s

    Returns
    -------
    out : Path
        The session file written.
    """
    if not isinstance(spec, TableSpec):
        spec = load_table_spec(spec, overrides)
    elif overrides:
        raise ValueError("overrides apply to a spec loaded by name or path; edit the TableSpec object instead.")
    fname = Path(fname)
    values, names = read_table(fname, spec)
    column_of = {name: values[:, j] for j, name in enumerate(names)}
    rate = spec.sampling_rate_hz
    n = values.shape[0]
    stamps = np.arange(n, dtype=np.float64) / rate
    metadata = {
        **source_metadata(fname, "table"),
        "imported_from": fname.name,
        "import_spec": spec.model_dump(mode="json"),
        "start_lsl_time": 0.0,  # time stamps count from the first row
    }
    if spec.start_time is not None:
        start = spec.start_time if spec.start_time.tzinfo else spec.start_time.replace(tzinfo=_dt.timezone.utc)
        metadata["start_time"] = start.isoformat()
        metadata["start_unix_time"] = start.timestamp()
    if spec.task:
        metadata["task"] = spec.task
    notes = f"Imported from {fname.name} ({n} rows at {rate:g} Hz). {spec.source}".strip()
    with new_session_file(out) as tmp, SessionWriter(tmp, subject_id=subject_id, notes=notes,
                                                     metadata=metadata) as writer:
        for stream in spec.streams:
            units = [c.unit if c.unit is not None else stream.unit for c in stream.channels]
            types = [c.type or stream.type for c in stream.channels]
            scales = np.array([c.scale if c.scale is not None else stream.scale for c in stream.channels])
            source_id = f"import:{fname.name}:{stream.name}"
            data = np.column_stack([column_of[str(c.column)] for c in stream.channels]) * scales
            w = writer.add_stream(StreamSpec(
                stream.name, stream.type, len(stream.channels), "double64", rate, source_id,
                channel_labels=[c.label for c in stream.channels], channel_units=units, channel_types=types,
                info_xml=_info_xml(stream, spec, source_id, units, types)))
            w.append(data, stamps)
        if spec.markers is not None:
            onsets: list[tuple[int, str]] = []
            for pulse in spec.markers.pulses:
                signal = column_of[str(pulse.column)]
                found = find_pulses(signal, pulse.threshold, pulse.edge)
                if signal[0] > pulse.threshold:
                    logger.warning("%s: pulse column %s (%s) is already high at the first row; that pulse has no "
                                   "rising edge and is not a marker.", fname.name, pulse.column, pulse.label)
                logger.info("%s: %d %s pulse(s) in column %s", fname.name, found.size, pulse.label, pulse.column)
                onsets += [(int(k), pulse.label) for k in found]
            onsets.sort()
            source_id = f"import:{fname.name}:{spec.markers.name}"
            w = writer.add_stream(StreamSpec(spec.markers.name, "Markers", 1, "string", 0.0, source_id,
                                             channel_labels=["stimulus"], can_drop_samples=False))
            w.append([[label] for _, label in onsets], [k / rate for k, _ in onsets])
    logger.info("Imported %s: %d samples at %g Hz into %s", fname.name, n, rate, out)
    return Path(out)
