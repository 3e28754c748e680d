"""Import XDF recordings (LabRecorder's format) into emosync sessions, raw, with a loss report.

An XDF file becomes a session exactly as if emosync had recorded it: raw time stamps,
the recorded clock offsets (with NaN uncertainty: XDF stores none, except in the footers
of files that :mod:`acquisition.io.xdf_export` wrote), the full stream
header XML, the footer XML, and the file header in the root metadata. Synchronization
happens on read (:mod:`acquisition.sync.synchronize`), so ``open_session(out).streams[name].times``
matches pyxdf's synchronized, dejittered stamps for the same file.

How the file is read, and why:

1. :func:`scan_xdf` walks the chunk headers (seeking over the sample data) to collect
   the raw header and footer XML (pyxdf only exposes them parsed), count the samples
   each chunk declares, find where a truncated file stops, and note damaged regions.
   It also refuses files that are not XDF with a message that says so.
2. ``pyxdf.load_xdf`` reads the samples (the reference parser, so our samples are
   pyxdf's) with ``synchronize_clocks=False, dejitter_timestamps=False`` and an
   ``on_chunk`` hook that hands every chunk to the writer and returns it emptied, so
   pyxdf accumulates nothing: memory stays bounded by one block per stream
   (``block_bytes``), whatever the file size, and all streams are read in **one** pass.
   The alternative, ``load_xdf(select_streams=[id])`` once per stream, still holds a
   whole stream in memory and costs one full pass over the file per stream (XDF has
   no index).
3. pyxdf is shown only the complete chunks (the scan knows where a truncated file's
   last whole chunk ends): it never trips over a chunk cut in half, and what was cut
   off is reported from the scan instead.

Nothing half-written is left behind: the session is written to a hidden temporary
file next to ``out`` and linked into place only when complete; an existing ``out`` is
never overwritten.
"""

from __future__ import annotations

import datetime as _dt
import io
import logging
import os
import struct
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from acquisition.utils.docs import fill_doc
from acquisition.utils.logs import logger, verbose
from acquisition.lsl.streaminfo import read_channels, xml_text
from acquisition.session.format import FRAME_ENCODINGS, LSL_DTYPES, StreamSpec
from acquisition.io.importing import new_session_file, source_metadata
from acquisition.session.writer import SessionWriter, StreamWriter, check_output_path

XDF_MAGIC = b"XDF:"
#: The 16 bytes of every Boundary chunk; readers resynchronize on them after damage.
BOUNDARY_UUID = bytes([0x43, 0xA5, 0x46, 0xDC, 0xCB, 0xF5, 0x41, 0x0F,
                       0xB3, 0x0E, 0xD5, 0x46, 0x73, 0x83, 0xCB, 0xE4])
_TAG_NAMES = {1: "FileHeader", 2: "StreamHeader", 3: "Samples", 4: "ClockOffset", 5: "Boundary",
              6: "StreamFooter"}

#: Voltage units and their factor to volts (lower-case; both micro signs).
VOLT_FACTORS = {
    "v": 1.0, "volt": 1.0, "volts": 1.0,
    "mv": 1e-3, "millivolt": 1e-3, "millivolts": 1e-3,
    "µv": 1e-6, "μv": 1e-6, "uv": 1e-6, "microvolt": 1e-6, "microvolts": 1e-6,
    "nv": 1e-9, "nanovolt": 1e-9, "nanovolts": 1e-9,
}
#: Channel types MNE stores in volts: their data are converted to V when the unit is known.
VOLTAGE_CHANNEL_TYPES = ("eeg", "emg", "eog", "ecg")


class XdfFormatError(ValueError):
    """The file is not an XDF file, or holds nothing that can be imported."""


# -- 1. the chunk scan ---------------------------------------------------------------------
@dataclass
class XdfStreamIndex:
    """What the chunk scan found for one stream.

    Attributes
    ----------
    stream_id : int
        The XDF stream id.
    header_xml, footer_xml : str | None
        The StreamHeader / StreamFooter XML, verbatim (None when absent).
    header_offset : int
        Byte offset of the StreamHeader chunk (-1 without one).
    n_chunks : int
        Samples chunks whose stream id and sample count could be read (incl. incomplete ones).
    n_samples : int
        Samples those chunks declare.
    unreadable_chunks : int
        Samples chunks of this stream whose sample count is unreadable (content damaged).
    incomplete_chunks : list of (int, int)
        ``(byte offset, declared samples)`` of chunks cut off by the end of the file.
    clock_offsets : list of (float, float)
        ``(collection time, offset)`` in seconds from the ClockOffset chunks.
    """

    stream_id: int
    header_xml: str | None = None
    footer_xml: str | None = None
    header_offset: int = -1
    n_chunks: int = 0
    n_samples: int = 0
    unreadable_chunks: int = 0
    incomplete_chunks: list[tuple[int, int]] = field(default_factory=list)
    clock_offsets: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class XdfIndex:
    """The result of :func:`scan_xdf`.

    Attributes
    ----------
    path : Path
        The file.
    size : int
        File size in bytes.
    file_header_xml : str
        The FileHeader XML ('' when missing).
    streams : dict of int to XdfStreamIndex
        Per stream id, in order of first appearance.
    damaged_regions : list of dict
        ``{"byte", "problem", "bytes_skipped"}`` for each damaged chunk (skipped by its
        length) or each place the chunk structure broke (the scan resumed after the
        next Boundary chunk, or stopped).
    complete_bytes : int
        Where the last complete chunk ends: the bytes a reader may parse.
    truncated_at : int | None
        Byte offset of the chunk the end of the file cuts through (None if none is).
    """

    path: Path
    size: int
    file_header_xml: str = ""
    streams: dict[int, XdfStreamIndex] = field(default_factory=dict)
    damaged_regions: list[dict[str, Any]] = field(default_factory=list)
    complete_bytes: int = 0
    truncated_at: int | None = None


def _read_varlen(f: io.BufferedReader) -> int | None:
    """A variable-length integer, or None if the bytes are not one (or the file ends)."""
    size = f.read(1)
    if len(size) != 1 or size[0] not in (1, 4, 8):
        return None
    raw = f.read(size[0])
    if len(raw) != size[0]:
        return None
    return int.from_bytes(raw, "little")


def _find_boundary(f: io.BufferedReader, start: int) -> int | None:
    """Offset just after the next Boundary signature at or after ``start`` (None: none left)."""
    block = 1 << 20
    f.seek(start)
    carry = b""
    base = start
    while True:
        data = f.read(block)
        if not data:
            return None
        haystack = carry + data
        hit = haystack.find(BOUNDARY_UUID)
        if hit != -1:
            return base - len(carry) + hit + len(BOUNDARY_UUID)
        carry = haystack[-(len(BOUNDARY_UUID) - 1):]
        base += len(data)


def scan_xdf(path: str | os.PathLike) -> XdfIndex:
    """Walk an XDF file's chunk headers without reading the samples.

    Parameters
    ----------
    path : path-like
        The ``.xdf`` file.

    Returns
    -------
    index : XdfIndex
        Headers and footers verbatim, declared sample counts, clock offsets, damage.

    Raises
    ------
    XdfFormatError
        If the file does not start with the XDF magic bytes ``XDF:``.
    """
    path = Path(path)
    size = path.stat().st_size
    index = XdfIndex(path=path, size=size)
    with open(path, "rb") as f:
        magic = f.read(4)
        if magic != XDF_MAGIC:
            hint = " (it is gzip-compressed: gunzip it first)" if magic[:2] == b"\x1f\x8b" else ""
            raise XdfFormatError(
                f"{path} is not an XDF file (magic 'XDF:' missing; it starts with {magic!r}){hint}. "
                "Pass a file recorded by LabRecorder or another XDF writer.")
        pos = index.complete_bytes = 4
        while pos < size:
            f.seek(pos)
            length = _read_varlen(f)
            header_end = f.tell()
            if length is not None and length >= 2 and header_end + length > size:
                resume = _find_boundary(f, pos + 1)
                if resume is None:  # nothing readable follows: the recording was cut off here
                    index.truncated_at = pos
                    _note_incomplete(f, index, pos, header_end)
                    break
                problem: str | None = f"chunk length {length} runs past the end of the file"
            elif length is None:
                problem = "invalid chunk length"
            elif length < 2:
                problem = f"chunk length {length} is too short"
            else:
                problem = _scan_chunk(f, index, pos, length)
                if problem is None or problem.startswith("content:"):
                    # The framing is intact: a damaged chunk is skipped by its length, as pyxdf does.
                    if problem is not None:
                        index.damaged_regions.append({"byte": pos, "problem": problem[len("content: "):],
                                                      "bytes_skipped": header_end + length - pos})
                    pos = index.complete_bytes = header_end + length
                    continue
            resume = _find_boundary(f, pos + 1)
            index.damaged_regions.append({"byte": pos, "problem": problem,
                                          "bytes_skipped": (resume if resume is not None else size) - pos})
            if resume is None:
                break
            pos = index.complete_bytes = resume
    return index


def _scan_chunk(f: io.BufferedReader, index: XdfIndex, pos: int, length: int) -> str | None:
    """Record one chunk whose bytes are all in the file.

    Returns None when it is fine, ``"content: ..."`` when its framing is intact but its
    content is damaged (skip it by its length), or another description when its
    framing is broken (resynchronize at the next Boundary chunk).
    """
    tag = struct.unpack("<H", f.read(2))[0]
    if tag not in _TAG_NAMES:
        # pyxdf skips unknown chunk types by their length; so do we (a newer XDF version may add some).
        logger.debug("%s: skipping chunk with unknown tag %d at byte %d", index.path.name, tag, pos)
        return None
    content = length - 2
    if tag == 1:
        if index.file_header_xml:
            return "content: a second FileHeader chunk (an XDF file has one; this one is ignored)"
        index.file_header_xml = f.read(content).decode("utf-8", "replace")
        return None
    if tag == 5:
        return None if f.read(16) == BOUNDARY_UUID else "content: Boundary chunk without the boundary signature"
    if content < 4:
        return f"{_TAG_NAMES[tag]} chunk of {length} bytes has no room for a stream id"
    stream_id = struct.unpack("<I", f.read(4))[0]
    content -= 4
    entry = index.streams.get(stream_id)
    if entry is None:
        entry = index.streams[stream_id] = XdfStreamIndex(stream_id)
    if tag == 2:
        entry.header_xml = f.read(content).decode("utf-8", "replace")
        entry.header_offset = pos
    elif tag == 6:
        entry.footer_xml = f.read(content).decode("utf-8", "replace")
    elif tag == 4:
        if content != 16:
            return f"content: ClockOffset chunk of stream {stream_id} holds {content} bytes, not 16"
        entry.clock_offsets.append(struct.unpack("<dd", f.read(16)))
    elif tag == 3:
        n = _read_varlen(f)
        if n is None:
            entry.unreadable_chunks += 1
            return f"content: Samples chunk of stream {stream_id} has an unreadable sample count"
        entry.n_chunks += 1
        entry.n_samples += n
    return None


def _note_incomplete(f: io.BufferedReader, index: XdfIndex, pos: int, header_end: int) -> None:
    """Record what a chunk cut off by the end of the file would have held, if its header is readable."""
    f.seek(header_end)
    head = f.read(6)
    if len(head) < 6:
        return
    tag, stream_id = struct.unpack("<HI", head)
    if tag != 3 or stream_id not in index.streams:
        return
    n = _read_varlen(f)
    if n is not None:
        entry = index.streams[stream_id]
        entry.n_chunks += 1
        entry.n_samples += n
        entry.incomplete_chunks.append((pos, n))


# -- 2. stream headers -> StreamSpec ------------------------------------------------------
@dataclass
class _StreamPlan:
    """How one XDF stream is stored: its spec and the per-channel unit factors."""

    stream_id: int
    spec: StreamSpec
    factors: np.ndarray | None = None  # per channel, to volts; None: values stored as they are
    unit_note: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)  # for the import report (logged once, at the end)


def _plan_stream(stream_id: int, header_xml: str, footer_xml: str | None, name: str) -> _StreamPlan:
    """Turn a StreamHeader XML into the :class:`StreamSpec` it is stored with.

    Channel labels, units and types come from ``desc/channels``; voltage channels
    (EEG, EMG, EOG, ECG) with a known voltage unit are converted to volts
    (:data:`VOLT_FACTORS`); unknown units are kept as they are and flagged.

    Parameters
    ----------
    stream_id : int
        The XDF stream id.
    header_xml, footer_xml : str
        The StreamHeader and StreamFooter XML (footer None when missing).
    name : str
        The (unique) name to store the stream under.

    Returns
    -------
    plan : _StreamPlan
        The spec, the per-channel factors to volts (or None) and warnings for the report.

    Raises
    ------
    ValueError
        If the XML cannot be parsed or declares an impossible format.
    """
    root = ET.fromstring(header_xml)
    desc = root.find("desc")
    lsl_name = xml_text(root, "name") or f"stream{stream_id}"
    warnings: list[str] = []
    stream_type = xml_text(root, "type")
    channel_count = int(xml_text(root, "channel_count", "0"))
    channel_format = xml_text(root, "channel_format")
    nominal_srate = float(xml_text(root, "nominal_srate", "0") or 0)
    labels, units, types = read_channels(desc)
    if len(labels) != channel_count:
        if labels:
            warnings.append(f"Stream {name}: desc/channels describes {len(labels)} channels, the stream has "
                            f"{channel_count}; channel metadata dropped (it is still in info_xml).")
        labels, units, types = [], [], []
    encoding = xml_text(desc, "encoding") or None
    frame_shape = None
    if encoding is not None:
        frame = desc.find("frame") if desc is not None else None
        height, width = int(xml_text(frame, "height", "0")), int(xml_text(frame, "width", "0"))
        shape = (height, width, 3) if encoding in FRAME_ENCODINGS and FRAME_ENCODINGS[encoding]["channels"] == 3 \
            else (height, width)
        if (encoding not in FRAME_ENCODINGS or channel_format != FRAME_ENCODINGS[encoding]["lsl_format"]
                or int(np.prod(shape)) != channel_count):
            known = ", ".join(f"{k} as {v['lsl_format']}" for k, v in FRAME_ENCODINGS.items())
            warnings.append(f"Stream {name}: video encoding {encoding!r} with {channel_count} {channel_format} "
                            f"channels is not one emosync decodes ({known}); stored as plain numbers.")
            encoding = None
        else:
            frame_shape = shape
    sync = desc.find("synchronization") if desc is not None else None
    # pyxdf skips dejitter only when desc says so; follow it so our times match pyxdf's.
    can_drop = xml_text(sync, "can_drop_samples").lower() == "true" or encoding is not None
    extra: dict[str, Any] = {
        "xdf_stream_id": stream_id,
        "lsl_uid": xml_text(root, "uid"),
        "lsl_created_at": float(xml_text(root, "created_at", "nan") or "nan"),
        "lsl_version": xml_text(root, "version"),
        "lsl_session_id": xml_text(root, "session_id"),
    }
    if name != lsl_name:
        extra["lsl_name"] = lsl_name
    if footer_xml is not None:
        extra["xdf_footer_xml"] = footer_xml
    plan = _StreamPlan(stream_id, StreamSpec(
        name=name, type=stream_type, channel_count=channel_count, channel_format=channel_format,
        nominal_srate=nominal_srate, source_id=xml_text(root, "source_id"), hostname=xml_text(root, "hostname"),
        channel_labels=labels, channel_units=units, channel_types=types, frame_shape=frame_shape,
        encoding=encoding, compression="none", can_drop_samples=can_drop, info_xml=header_xml, extra=extra),
        warnings=warnings)
    if channel_format != "string" and encoding is None:
        _plan_units(plan)
    return plan


def _plan_units(plan: _StreamPlan) -> None:
    spec = plan.spec
    n = spec.channel_count
    units = spec.channel_units or [""] * n
    types = [t or spec.type for t in spec.channel_types] if spec.channel_types else [spec.type] * n
    voltage = [t.strip().lower() in VOLTAGE_CHANNEL_TYPES for t in types]
    if not any(voltage):
        return
    factors = np.ones(n)
    unknown = []
    for i in range(n):
        if voltage[i]:
            factor = VOLT_FACTORS.get(units[i].strip().lower())
            if factor is None:
                unknown.append(i)
            else:
                factors[i] = factor
    converted = [i for i in range(n) if voltage[i] and factors[i] != 1.0]
    note: dict[str, Any] = {"converted_channels": len(converted), "unknown_unit_channels": len(unknown)}
    if converted:
        plan.factors = factors
        spec.extra["xdf_original_units"] = list(units)
        spec.extra["xdf_unit_factors"] = factors.tolist()
        spec.channel_units = ["V" if i in converted else u for i, u in enumerate(units)]
        if spec.channel_format not in ("float32", "double64"):
            # Integer counts scaled to volts need a float type; double keeps every int exactly.
            spec.extra["xdf_channel_format"] = spec.channel_format
            spec.channel_format = "double64"
        note["original_units"] = sorted({units[i] for i in converted})
    if unknown:
        shown = ", ".join(f"{spec.channel_labels[i] if spec.channel_labels else f'#{i}'}={units[i]!r}"
                          for i in unknown[:6]) + (" ..." if len(unknown) > 6 else "")
        kinds = "/".join(sorted({types[i] for i in unknown}))
        plan.warnings.append(f"Stream {spec.name}: {len(unknown)} {kinds} channel(s) have no known voltage unit "
                             f"({shown}); their values are stored as they are and may not be volts. Check the "
                             "device's documentation and scale them before analysis.")
        spec.extra["unit"] = "unknown"
        spec.extra.setdefault("xdf_original_units", list(units))
    else:
        spec.extra["unit"] = "V"
    plan.unit_note = note


# -- 3. reading samples through pyxdf -------------------------------------------------------
class _LimitedReader(io.RawIOBase):
    """A read-only file view that ends at ``limit`` bytes (hides a truncated last chunk from pyxdf)."""

    def __init__(self, path: Path, limit: int) -> None:
        super().__init__()
        self._f = open(path, "rb", buffering=0)  # closed in close()
        self._limit = limit
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._limit - self._pos)
        if n <= 0:
            return 0
        got = self._f.readinto(memoryview(buffer)[:n]) or 0
        self._pos += got
        return got

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._limit}[whence]
        self._pos = max(0, base + offset)
        self._f.seek(self._pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()


class _StreamSink:
    """Buffers one stream's chunks from pyxdf and appends them to the session in blocks."""

    def __init__(self, writer: StreamWriter, plan: _StreamPlan, block_bytes: int) -> None:
        self.writer = writer
        self.plan = plan
        spec = plan.spec
        self.strings = spec.channel_format == "string"
        row_bytes = 64 * spec.channel_count if self.strings else \
            spec.channel_count * np.dtype(LSL_DTYPES[spec.channel_format]).itemsize
        self.block_rows = max(1, block_bytes // (row_bytes + 8))
        self.values: list[Any] = []
        self.stamps: list[np.ndarray] = []
        self.buffered = 0
        self.chunks = 0
        self.samples = 0

    def add(self, values: Any, stamps: np.ndarray) -> None:
        n = len(stamps)
        self.chunks += 1
        if n == 0:
            return
        self.samples += n
        self.values.append(values)
        self.stamps.append(np.asarray(stamps, dtype=np.float64))
        self.buffered += n
        if self.buffered >= self.block_rows:
            self.flush()

    def flush(self) -> None:
        if not self.buffered:
            return
        stamps = np.concatenate(self.stamps)
        spec = self.plan.spec
        if self.strings:
            data: Any = [row for chunk in self.values for row in chunk]
        else:
            data = np.concatenate(self.values)
            if spec.encoding is not None:
                # LSL has no unsigned types: RGB8 travels as int8, DEPTH16 as int16; reinterpret, not convert.
                data = data.view(spec.stored_dtype).reshape(len(stamps), *spec.sample_shape)
            elif self.plan.factors is not None:
                dtype = spec.stored_dtype
                data = data.astype(dtype) * self.plan.factors.astype(dtype)
        self.writer.append(data, stamps)
        self.values, self.stamps, self.buffered = [], [], 0


class _CaptureHandler(logging.Handler):
    def __init__(self, position: Any) -> None:
        super().__init__(logging.WARNING)
        self.position = position
        self.records: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            byte = int(self.position())
        except (ValueError, OSError):
            byte = -1
        self.records.append({"byte": byte, "level": record.levelname, "message": record.getMessage()})


@contextmanager
def _captured_pyxdf_log(position: Any) -> Iterator[_CaptureHandler]:
    """Collect pyxdf's warnings and errors (they go into the import report, not to stderr)."""
    log = logging.getLogger("pyxdf.pyxdf")
    handler = _CaptureHandler(position)
    saved_propagate, saved_level = log.propagate, log.level
    log.addHandler(handler)
    log.propagate = False
    if log.level == logging.NOTSET or log.level > logging.WARNING:
        log.setLevel(logging.WARNING)
    try:
        yield handler
    finally:
        log.removeHandler(handler)
        log.propagate = saved_propagate
        log.setLevel(saved_level)


def _append_offsets(writer: StreamWriter, times: Sequence[float], values: Sequence[float],
                    footer_xml: str | None = None) -> int:
    """Store clock offsets; returns how many non-finite ones were dropped.

    The uncertainty is NaN (XDF has none) unless the footer carries one per offset, as
    emosync's XDF export writes it (``clock_offsets/offset/uncertainty``) for exactly these offsets.
    """
    rows = np.column_stack([np.asarray(times, float), np.asarray(values, float)]) if len(times) else \
        np.zeros((0, 2))
    uncertainties = _footer_uncertainties(footer_xml, rows)
    finite = np.all(np.isfinite(rows), axis=1)
    rows, uncertainties = rows[finite], uncertainties[finite]
    if len(rows):
        writer.append_clock_offsets(rows[:, 0], rows[:, 1], uncertainties)
    return int(np.sum(~finite))


def _footer_uncertainties(footer_xml: str | None, rows: np.ndarray) -> np.ndarray:
    """Per-offset uncertainties from a footer whose offsets equal ``rows`` exactly; else NaN."""
    unknown = np.full(len(rows), np.nan)
    if not footer_xml or not len(rows):
        return unknown
    try:
        offsets = ET.fromstring(footer_xml).findall("clock_offsets/offset")
        listed = np.array([[float(xml_text(o, "time", "nan")), float(xml_text(o, "value", "nan")),
                            float(xml_text(o, "uncertainty", "nan"))] for o in offsets]).reshape(-1, 3)
    except (ET.ParseError, ValueError):
        return unknown
    # Only when the footer lists these very offsets (same count, bit-equal values) do its uncertainties belong to them.
    if listed.shape[0] != len(rows) or not np.array_equal(listed[:, :2], rows, equal_nan=True):
        return unknown
    return listed[:, 2]




def _header_metadata(index: XdfIndex, report: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {"xdf_file_header_xml": index.file_header_xml}
    fields: dict[str, str] = {}
    try:
        root = ET.fromstring(index.file_header_xml) if index.file_header_xml else None
    except ET.ParseError:
        root = None
        report["warnings"].append(f"{index.path.name}: the XDF file header is not valid XML; kept verbatim in "
                                  "xdf_file_header_xml.")
    if root is not None:
        fields = {child.tag: (child.text or "").strip() for child in root if len(child) == 0}
    meta["xdf_version"] = fields.get("version", "")
    for key, value in fields.items():
        if key != "version":
            meta[f"xdf_header_{key}"] = value
    start = None
    if fields.get("datetime"):
        for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S"):
            try:
                start = _dt.datetime.strptime(fields["datetime"], fmt)
                break
            except ValueError:
                continue
    if start is not None:
        if start.tzinfo is None:
            start = start.replace(tzinfo=_dt.timezone.utc)
        meta["start_time"] = start.astimezone(_dt.timezone.utc).isoformat()
        meta["start_unix_time"] = start.timestamp()
    else:
        # XDF files rarely record when they started; an import time here would be a false start time.
        meta["start_time"] = ""
        meta["start_unix_time"] = float("nan")
    return meta


def _unique_name(name: str, taken: set[str]) -> str:
    base = name.replace("/", "_")
    candidate, n = base, 2
    while candidate in taken:
        candidate = f"{base}_{n}"
        n += 1
    taken.add(candidate)
    return candidate


@verbose
@fill_doc
def import_xdf(xdf_path: str | os.PathLike, out_path: str | os.PathLike, *, subject_id: str = "sub-unknown",
               session_id: str | None = None, notes: str = "", streams: Sequence[str] | None = None,
               if_exists: str = "error", block_bytes: int = 4 * 1024 * 1024, checksum: bool = True,
               verbose: bool | str | None = None) -> dict[str, Any]:
    """Import an XDF file into a new session file, raw, and report what could not be imported.

    Parameters
    ----------
    xdf_path : path-like
        The ``.xdf`` file (uncompressed).
    out_path : path-like
        The session (``.h5``) to create. Never overwritten (see ``if_exists``).
    %(subject_notes)s
    session_id : str | None
        Session id stored in the session (random when None).
    streams : sequence of str | None
        Import only the streams with these XDF names (default: all).
    %(if_exists)s
    block_bytes : int
        Samples buffered per stream before each append, in bytes: bounds memory use.
    checksum : bool
        Store the SHA-256 of the XDF file in the root metadata (one extra read of the file).
    %(verbose)s

    Returns
    -------
    report : dict
        JSON-able import report, also stored in the root attribute ``xdf_import_report``:
        ``complete`` (bool: nothing lost, nothing damaged, every footer present),
        ``truncated`` and ``truncated_at_byte``, ``damaged_regions`` (from the chunk
        scan), ``reader_errors`` (pyxdf's), ``empty_streams``, ``skipped_streams``,
        ``missing_footers``, ``warnings``, and per stream (by stored name) ``streams``:
        ``samples_imported``, ``samples_in_file`` (declared by readable chunk headers),
        ``samples_lost``, ``chunks_imported``, ``chunks_in_file``, ``chunks_skipped``,
        ``unreadable_chunks`` (damaged chunks whose samples cannot even be counted),
        ``footer_sample_count``, ``clock_offsets``, ``units`` and more.

    Raises
    ------
    XdfFormatError
        Not an XDF file, or no stream can be imported.
    FileExistsError
        ``out_path`` exists and ``if_exists="error"``.
    """
    try:
        import pyxdf
    except ImportError:  # pragma: no cover - pyxdf is a dependency of the xdf features
        raise ImportError("Importing XDF needs pyxdf: pip install 'pyxdf>=1.17'.") from None
    xdf_path, out_path = Path(xdf_path), Path(out_path)
    if not xdf_path.is_file():
        raise FileNotFoundError(f"No XDF file at {xdf_path}.")
    if xdf_path.suffix.lower() == ".xdfz" or xdf_path.name.lower().endswith(".xdf.gz"):
        raise XdfFormatError(f"{xdf_path} is a compressed XDF file; decompress it first (gunzip) and import the "
                             ".xdf (the importer seeks through the file, which gzip cannot do cheaply).")
    check_output_path(out_path, if_exists=if_exists)  # refuse before scanning a large file
    index = scan_xdf(xdf_path)
    report = _new_report(xdf_path, out_path, index)
    plans = _plan_streams(index, streams, report)
    metadata = {**source_metadata(xdf_path, "xdf", checksum=checksum), "source_file_size_bytes": index.size,
                **_header_metadata(index, report)}
    with new_session_file(out_path, if_exists=if_exists) as tmp:
        with SessionWriter(tmp, subject_id=subject_id, session_id=session_id, notes=notes,
                           metadata=metadata) as writer:
            sinks = {plan.stream_id: _StreamSink(writer.add_stream(plan.spec), plan, block_bytes) for plan in plans}
            offsets = _read_samples(pyxdf, index, sinks, report)
            for stream_id, sink in sinks.items():
                sink.flush()
                times, values = offsets.get(stream_id, ([], []))
                dropped = _append_offsets(sink.writer, times, values, index.streams[stream_id].footer_xml)
                _stream_report(report, index, sink, len(times) - dropped, dropped)
            _finish_report(report, index)
            writer.close(xdf_import_report=report)
    _log_report(report)
    return report


def _plan_streams(index: XdfIndex, wanted: Sequence[str] | None, report: dict[str, Any]) -> list[_StreamPlan]:
    if not index.streams:
        raise XdfFormatError(f"{index.path} holds no streams (no StreamHeader chunk was found); nothing to import.")
    plans, taken = [], set()
    found_names = []
    for stream_id, entry in index.streams.items():
        if entry.header_xml is None:
            reason = (f"chunks of stream id {stream_id} but no StreamHeader ({entry.n_samples} samples declared); "
                      "without a header the samples cannot be decoded")
            report["skipped_streams"].append({"xdf_stream_id": stream_id, "reason": reason})
            continue
        try:
            root = ET.fromstring(entry.header_xml)
            lsl_name = xml_text(root, "name") or f"stream{stream_id}"
        except ET.ParseError as err:
            report["skipped_streams"].append({"xdf_stream_id": stream_id,
                                              "reason": f"StreamHeader XML is not readable ({err})"})
            continue
        found_names.append(lsl_name)
        if wanted is not None and lsl_name not in wanted:
            continue
        try:
            plan = _plan_stream(stream_id, entry.header_xml, entry.footer_xml, _unique_name(lsl_name, taken))
        except (ValueError, ET.ParseError) as err:
            report["skipped_streams"].append({"xdf_stream_id": stream_id, "name": lsl_name,
                                              "reason": f"StreamHeader does not describe a valid stream ({err})"})
            continue
        if plan.spec.name != lsl_name:
            report["warnings"].append(f"Two streams are named {lsl_name!r}: stream id {stream_id} is stored as "
                                      f"{plan.spec.name!r}.")
        plans.append(plan)
    if wanted is not None:
        missing = sorted(set(wanted) - set(found_names))
        if missing:
            raise XdfFormatError(f"{index.path} has no stream named {missing}; its streams are {found_names}.")
    if not plans:
        reasons = "; ".join(s["reason"] for s in report["skipped_streams"]) or "no stream was selected"
        raise XdfFormatError(f"No stream of {index.path} can be imported: {reasons}.")
    return plans


def _read_samples(pyxdf: Any, index: XdfIndex, sinks: dict[int, _StreamSink],
                  report: dict[str, Any]) -> dict[int, tuple[list[float], list[float]]]:
    """One pyxdf pass over the complete chunks; samples go to ``sinks``; returns the clock offsets per stream."""
    raw = _LimitedReader(index.path, index.complete_bytes)
    reader = io.BufferedReader(raw, buffer_size=1 << 20)

    def on_chunk(values: Any, stamps: np.ndarray, header: dict, stream_id: int) -> tuple[Any, np.ndarray, dict]:
        sinks[stream_id].add(values, stamps)
        # Hand pyxdf back a new empty chunk (not a view, which would keep the chunk's buffer alive):
        # it keeps nothing, so memory does not grow with the file.
        empty = np.empty((0, *values.shape[1:]), values.dtype) if isinstance(values, np.ndarray) else []
        return empty, np.empty(0), header

    def position() -> int:
        return reader.tell()

    with _captured_pyxdf_log(position) as log:
        try:
            result, _ = pyxdf.load_xdf(reader, select_streams=sorted(sinks), on_chunk=on_chunk,
                                       synchronize_clocks=False, dejitter_timestamps=False)
        except Exception as err:  # noqa: BLE001 -- keep what was read; say where and why reading stopped
            message = (f"pyxdf stopped reading {index.path.name} ({type(err).__name__}: {err}); samples read up to "
                       "that point are kept, clock offsets come from the chunk scan")
            report["reader_errors"].append({"byte": -1, "level": "ERROR", "message": message})
            report["warnings"].append(message)
            result = None
        finally:
            reader.close()
    report["reader_errors"].extend(log.records)
    if result is None:
        scanned = {sid: index.streams[sid].clock_offsets for sid in sinks}
        return {sid: ([t for t, _ in rows], [v for _, v in rows]) for sid, rows in scanned.items()}
    return {int(s["info"]["stream_id"]): (list(s["clock_times"]), list(s["clock_values"])) for s in result}


# -- 4. the report --------------------------------------------------------------------------
def _new_report(xdf_path: Path, out_path: Path, index: XdfIndex) -> dict[str, Any]:
    return {"source": str(xdf_path), "output": str(out_path), "file_size_bytes": index.size,
            "complete": True, "truncated": index.truncated_at is not None, "truncated_at_byte": index.truncated_at,
            "damaged_regions": list(index.damaged_regions), "reader_errors": [], "streams": {},
            "empty_streams": [], "skipped_streams": [], "missing_footers": [], "warnings": []}


def _footer_count(footer_xml: str | None) -> int | None:
    if not footer_xml:
        return None
    try:
        text = xml_text(ET.fromstring(footer_xml), "sample_count")
        return int(text) if text else None
    except (ET.ParseError, ValueError):
        return None


def _stream_report(report: dict[str, Any], index: XdfIndex, sink: _StreamSink, n_offsets: int,
                   dropped_offsets: int) -> None:
    plan, entry = sink.plan, index.streams[sink.plan.stream_id]
    spec = plan.spec
    footer_count = _footer_count(entry.footer_xml)
    lost = max(0, entry.n_samples - sink.samples)
    if footer_count is not None and footer_count > sink.samples:
        lost = max(lost, footer_count - sink.samples)
    info = {
        "xdf_stream_id": plan.stream_id, "type": spec.type, "channel_format": spec.channel_format,
        "channel_count": spec.channel_count, "nominal_srate": spec.nominal_srate,
        "samples_imported": sink.samples, "samples_in_file": entry.n_samples, "samples_lost": lost,
        "chunks_imported": sink.chunks, "chunks_in_file": entry.n_chunks,
        "chunks_skipped": max(0, entry.n_chunks + entry.unreadable_chunks - sink.chunks),
        "unreadable_chunks": entry.unreadable_chunks,
        "incomplete_chunks": [{"byte": b, "samples": n} for b, n in entry.incomplete_chunks],
        "footer": entry.footer_xml is not None, "footer_sample_count": footer_count,
        "clock_offsets": n_offsets, "clock_offsets_dropped": dropped_offsets,
        "empty": sink.samples == 0, "units": plan.unit_note,
    }
    report["streams"][spec.name] = info
    report["warnings"].extend(plan.warnings)
    if info["empty"]:
        report["empty_streams"].append(spec.name)
    if entry.footer_xml is None:
        report["missing_footers"].append(spec.name)
    if lost or entry.unreadable_chunks:
        where = ""
        if entry.incomplete_chunks:
            where = f" (the file ends inside a chunk at byte {entry.incomplete_chunks[-1][0]})"
        if entry.unreadable_chunks:
            where += (f"; {entry.unreadable_chunks} of these chunks are unreadable, their samples are not counted, "
                      "so more may be lost")
        report["warnings"].append(
            f"Stream {spec.name}: {lost} sample(s) in {info['chunks_skipped']} chunk(s) could not be imported{where}.")
    if footer_count is not None and sink.samples > footer_count:
        report["warnings"].append(
            f"Stream {spec.name}: {sink.samples} samples but the footer says {footer_count}; all are kept "
            "(a late sample, or pylsl#67's garbage last sample: check the end of the stream).")
    if dropped_offsets:
        report["warnings"].append(f"Stream {spec.name}: {dropped_offsets} non-finite clock offset(s) dropped.")


def _finish_report(report: dict[str, Any], index: XdfIndex) -> None:
    if report["truncated"]:
        report["warnings"].insert(0, f"{index.path.name} ends inside a chunk at byte {index.truncated_at} of "
                                     f"{index.size}: the recording was cut off; everything before is imported.")
    for region in index.damaged_regions:
        report["warnings"].append(f"Damaged chunk structure at byte {region['byte']} ({region['problem']}); "
                                  f"{region['bytes_skipped']} bytes up to the next boundary chunk were skipped.")
    errors = [e for e in report["reader_errors"] if e["level"] == "ERROR"]
    for error in errors:
        if error["message"] not in report["warnings"]:
            report["warnings"].append(f"pyxdf near byte {error['byte']}: {error['message']}")
    if report["missing_footers"]:
        report["warnings"].append("No footer for " + ", ".join(report["missing_footers"]) +
                                  " (the recorder did not finish cleanly); the data do not need it.")
    if report["empty_streams"]:
        report["warnings"].append("Empty streams (kept with zero samples): " + ", ".join(report["empty_streams"]))
    lost = any(s["samples_lost"] or s["unreadable_chunks"] for s in report["streams"].values())
    report["complete"] = not (report["truncated"] or index.damaged_regions or errors or lost
                              or report["skipped_streams"] or report["missing_footers"])


def _log_report(report: dict[str, Any]) -> None:
    imported = ", ".join(f"{name} {s['samples_imported']}" for name, s in report["streams"].items())
    logger.info("Imported %s -> %s: %s", Path(report["source"]).name, report["output"], imported)
    for message in report["warnings"]:
        logger.warning(message)


__all__ = ["VOLT_FACTORS", "VOLTAGE_CHANNEL_TYPES", "XdfFormatError", "XdfIndex", "XdfStreamIndex", "import_xdf",
           "scan_xdf"]
