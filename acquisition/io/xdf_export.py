"""Export sessions to XDF 1.0 (LabRecorder's format): the inverse of :mod:`acquisition.io.xdf`.

:func:`write_xdf` writes what the session stores, raw: every sample with its raw LSL time
stamp, every clock offset, the stream's LSL header XML. So ``pyxdf.load_xdf`` of the file
gives back the session's samples and raw stamps (``synchronize_clocks=False,
dejitter_timestamps=False``), pyxdf's synchronized times (its defaults) agree with
``Stream.times``, and ``emosync import-xdf`` of the file gives back an equal session.

No maintained Python library writes XDF (pyxdf, mne-xdf, xdf4mne and liesl only read it or
drive LabRecorder; LabRecorder's C++ ``xdfwriter`` records live LSL streams only; the Python
writers that exist are private parts of device SDKs), so the chunks are written
here by hand, following the specification (https://github.com/sccn/xdf/wiki/Specifications):
``XDF:``, then ``[varlen length][u16 tag][u32 stream id (tags 2, 3, 4, 6)][content]``.

Layout, as LabRecorder writes it: FileHeader; every StreamHeader; then the data in
windows of ``chunk_duration_s`` of (approximate) recorder time, each window holding one
Samples chunk per stream (more for large video blocks) and the ClockOffset chunks measured
in it, with a Boundary chunk every ``boundary_interval_s`` (a reader that meets damage
resynchronizes there); last, one StreamFooter per stream. Every sample carries its own
time stamp: XDF's time-stamp compression (omit a stamp equal to ``previous + 1/srate``)
would not keep raw stamps bit for bit.

Memory: the raw and synchronized time stamps of the exported streams (16 bytes per sample)
and one block of samples (``block_bytes``); samples are read from the session block by block.
The file is written under a hidden temporary name beside ``out`` and renamed into place
only when complete: a failed export leaves no half file, and an existing ``out`` is
untouched unless ``overwrite``. The session is only read.

What XDF cannot hold, and what happens:

* **Clock-offset uncertainty** (round-trip time): ClockOffset chunks hold only
  ``(collection time, offset)``. The uncertainties go into the footer as a non-standard
  ``clock_offsets/offset/uncertainty`` element (readers ignore unknown elements);
  :func:`acquisition.io.xdf.import_xdf` restores them from there.
* **Root metadata** (session id, subject id, notes...): only ``datetime`` (the start time)
  has a FileHeader field; the rest go into ``<emosync>`` elements of the FileHeader, which
  pyxdf returns but the importer does not map back.
* **Header fields of sessions without an LSL header** (simulated and some imported
  sessions store no ``info_xml``): ``created_at``, ``uid``, ``session_id``, ``version`` and
  the network addresses are left out rather than invented; the header is built from the
  stored metadata (name, type, format, rate, source_id, hostname, channels, video frame).
* **Unsigned numbers**: XDF's formats are LSL's (float32, double64, int8/16/32/64,
  string). RGB8 and DEPTH16-mm frames travel as int8/int16 reinterpreted, as over LSL (the
  header's ``desc/encoding`` says so and the importer turns them back); other unsigned,
  boolean or half-float data are refused with :class:`XdfExportError`.
* **Compressed video** (PNG/JPEG per frame) is decoded: XDF has no compression, and a
  reader must get pixels it can use. The file holds the decoded pixels that every
  session reader sees (JPEG's losses included), so it is much larger than the session.
"""

from __future__ import annotations

import datetime as _dt
import os
import struct
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from acquisition.io.importing import publish_file
from acquisition.session.format import FRAME_ENCODINGS, LSL_DTYPES
from acquisition.session.reader import Session, Stream, opened_session
from acquisition.session.to_mne import describe_streams, is_video_stream, select_streams
from acquisition.utils.docs import fill_doc
from acquisition.utils.logs import logger, verbose
from acquisition.utils.version import software_version

#: The 16 bytes of every Boundary chunk (XDF specification).
BOUNDARY_UUID = bytes([0x43, 0xA5, 0x46, 0xDC, 0xCB, 0xF5, 0x41, 0x0F,
                       0xB3, 0x0E, 0xD5, 0x46, 0x73, 0x83, 0xCB, 0xE4])
_FILE_HEADER, _STREAM_HEADER, _SAMPLES, _CLOCK_OFFSET, _BOUNDARY, _STREAM_FOOTER = 1, 2, 3, 4, 5, 6

#: Stored numpy dtypes and the XDF (= LSL) channel format that holds them.
XDF_FORMATS = {np.dtype(np.float32): "float32", np.dtype(np.float64): "double64", np.dtype(np.int8): "int8",
               np.dtype(np.int16): "int16", np.dtype(np.int32): "int32", np.dtype(np.int64): "int64"}
_LITTLE_ENDIAN = {"float32": "<f4", "double64": "<f8", "int8": "<i1", "int16": "<i2", "int32": "<i4", "int64": "<i8"}
#: Bytes per marker value assumed when sizing blocks of a string stream.
_STRING_VALUE_BYTES = 64

__all__ = ["BOUNDARY_UUID", "XDF_FORMATS", "XdfExportError", "write_xdf"]


class XdfExportError(ValueError):
    """A selected stream holds data that XDF cannot represent; nothing was written."""


# -- 1. the chunk writer -----------------------------------------------------------------------
def varlen(n: int) -> bytes:
    """Encode ``n`` as an XDF variable-length integer: a size byte (1, 4 or 8), then ``n`` little-endian."""
    if n < 256:
        return bytes([1, n])
    if n < 2**32:
        return b"\x04" + struct.pack("<I", n)
    return b"\x08" + struct.pack("<Q", n)


def _write_chunk(f: BinaryIO, tag: int, content: bytes | memoryview, stream_id: int | None = None) -> None:
    """One chunk: ``[varlen length][u16 tag][u32 stream id][content]``; the length counts from the tag on."""
    prefix = struct.pack("<H", tag) if stream_id is None else struct.pack("<HI", tag, stream_id)
    f.write(varlen(len(prefix) + len(content)))
    f.write(prefix)
    f.write(content)


def _write_numeric_samples(f: BinaryIO, stream_id: int, values: np.ndarray, stamps: np.ndarray, fmt: str) -> None:
    """A Samples chunk of numeric values ``(n, n_channels)``: per sample ``[8][f64 stamp][values]``."""
    n, n_channels = values.shape
    # One packed record per sample, filled by numpy: no per-sample Python loop.
    record = np.dtype([("flag", "u1"), ("stamp", "<f8"), ("values", _LITTLE_ENDIAN[fmt], (n_channels,))])
    rows = np.empty(n, dtype=record)
    rows["flag"] = 8
    rows["stamp"] = stamps
    rows["values"] = values
    head = varlen(n)
    prefix = struct.pack("<HI", _SAMPLES, stream_id)
    f.write(varlen(len(prefix) + len(head) + rows.nbytes))
    f.write(prefix)
    f.write(head)
    f.write(memoryview(rows).cast("B"))


def _write_string_samples(f: BinaryIO, stream_id: int, values: Sequence[Sequence[str]], stamps: np.ndarray) -> None:
    """A Samples chunk of strings: per sample ``[8][f64 stamp]`` then per value ``[varlen length][UTF-8]``."""
    parts = [varlen(len(stamps))]
    for stamp, row in zip(stamps, values):
        parts.append(b"\x08" + struct.pack("<d", stamp))
        for value in row:
            raw = str(value).encode("utf-8")
            parts.append(varlen(len(raw)) + raw)
    _write_chunk(f, _SAMPLES, b"".join(parts), stream_id)


def _xml_bytes(root: ET.Element) -> bytes:
    return b'<?xml version="1.0"?>' + ET.tostring(root, encoding="utf-8", xml_declaration=False)


def _sub(parent: ET.Element, tag: str, text: Any = None) -> ET.Element:
    child = ET.SubElement(parent, tag)
    if text is not None:
        child.text = str(text)
    return child


# -- 2. what each stream becomes -------------------------------------------------------------
@dataclass
class _StreamPlan:
    """How one session stream is written: its XDF id, channel format, header and block size."""

    stream: Stream
    stream_id: int
    fmt: str
    n_channels: int
    header_xml: bytes
    block_rows: int
    stamps: np.ndarray | None = None
    edges: np.ndarray | None = None  # first sample index of each window, plus n_samples at the end
    offset_windows: np.ndarray | None = None  # window index of each clock offset


def _xdf_format(stream: Stream, session: Session) -> str:
    """The XDF channel format of a stream's stored values, or :class:`XdfExportError` if there is none."""
    info = stream.info
    if is_video_stream(stream):
        encoding = str(info.get("encoding", ""))
        if encoding not in FRAME_ENCODINGS:
            raise XdfExportError(
                f"Stream {stream.name!r} holds video frames with encoding {encoding!r}, which has no XDF/LSL "
                f"convention (known: {', '.join(FRAME_ENCODINGS)}). Leave it out of the export (name the other "
                f"streams with streams=[...], CLI --streams); {session.fname.name} is unchanged.")
        return str(FRAME_ENCODINGS[encoding]["lsl_format"])
    dtype = np.dtype(stream.data.dtype)
    if dtype.kind == "O":
        return "string"
    fmt = XDF_FORMATS.get(np.dtype(dtype))
    if fmt is None:
        others = [name for name in session.streams if name != stream.name]
        raise XdfExportError(
            f"Stream {stream.name!r} stores {np.dtype(dtype)} values, which XDF cannot hold: its channel formats "
            f"are {', '.join(XDF_FORMATS.values())} and string. Leave the stream out (streams=[...], "
            f"CLI --streams {','.join(others) or '...'}); nothing was written and {session.fname.name} is unchanged.")
    return fmt


def _stream_header(stream: Stream, fmt: str, n_channels: int) -> bytes:
    """The StreamHeader XML: the stored LSL header, verbatim when it describes what is written.

    Fields that no longer describe the stored data are corrected and logged: channel format
    and count (e.g. integer microvolts imported as double-precision volts), channel units
    (volts after an import in microvolts), ``type``, ``source_id`` and ``hostname`` where the
    stream attributes say otherwise, ``nominal_srate`` and ``can_drop_samples`` (pyxdf
    dejitters with the header's rate unless ``can_drop_samples`` is ``true``, and its
    synchronization must match ours).
    """
    info = stream.info
    xml = str(info.get("info_xml", "") or "")
    root = None
    if xml:
        try:
            root = ET.fromstring(xml)
        except ET.ParseError as err:
            logger.warning("Stream %s: its stored LSL header is not valid XML (%s); the XDF header is rebuilt from "
                           "the stream's metadata.", stream.name, err)
    if root is None:
        return _xml_bytes(_header_from_metadata(stream, fmt, n_channels))
    fixed = _fix_header(root, stream, fmt, n_channels)
    if not fixed:
        return xml.encode("utf-8")
    logger.info("Stream %s: XDF header corrected to match the stored data: %s.", stream.name, "; ".join(fixed))
    return _xml_bytes(root)


def _set_text(parent: ET.Element, tag: str, value: str) -> bool:
    """Set ``parent/tag`` to ``value`` (creating it); True if it changed."""
    node = parent.find(tag)
    if node is None:
        node = _sub(parent, tag)
    if (node.text or "").strip() == value:
        return False
    node.text = value
    return True


def _fix_header(root: ET.Element, stream: Stream, fmt: str, n_channels: int) -> list[str]:
    info, fixed = stream.info, []
    expected = {"channel_format": fmt, "channel_count": str(n_channels)}
    for tag in ("type", "source_id", "hostname"):  # the stored value wins where there is one
        if str(info.get(tag) or ""):
            expected[tag] = str(info[tag])
    srate = float(info.get("nominal_srate", 0.0))
    try:
        same_rate = float(root.findtext("nominal_srate") or "nan") == srate
    except ValueError:
        same_rate = False
    if not same_rate:  # pyxdf dejitters with the header's rate: it must be the one our sync uses
        expected["nominal_srate"] = repr(srate)
    for tag, value in expected.items():
        old = (root.findtext(tag) or "").strip()
        if _set_text(root, tag, value):
            fixed.append(f"{tag} {old or 'missing'} -> {value}")
    desc = root.find("desc")
    if desc is None:
        desc = _sub(root, "desc")
    units = list(info.get("channel_units") or [])
    channels = desc.find("channels")
    nodes = channels.findall("channel") if channels is not None else []
    if units and len(nodes) == len(units):
        changed = [i for i, (node, unit) in enumerate(zip(nodes, units)) if _set_text(node, "unit", unit)]
        if changed:
            fixed.append(f"unit of {len(changed)} channel(s) -> {sorted({units[i] for i in changed})} (stored values)")
    if info.get("can_drop_samples"):
        sync = desc.find("synchronization")
        if sync is None:
            sync = _sub(desc, "synchronization")
        if _set_text(sync, "can_drop_samples", "true"):
            fixed.append("synchronization/can_drop_samples -> true")
    return fixed


def _header_from_metadata(stream: Stream, fmt: str, n_channels: int) -> ET.Element:
    """An LSL-style header from the stored metadata, for streams stored without ``info_xml``."""
    info = stream.info
    root = ET.Element("info")
    _sub(root, "name", info.get("lsl_name") or info.get("name") or stream.name)
    _sub(root, "type", info.get("type", ""))
    _sub(root, "channel_count", n_channels)
    _sub(root, "channel_format", fmt)
    _sub(root, "source_id", info.get("source_id", ""))
    _sub(root, "nominal_srate", repr(float(info.get("nominal_srate", 0.0))))
    # Not invented when unknown (see the module docstring): version, created_at, uid, session_id.
    for tag, key in (("version", "lsl_version"), ("uid", "lsl_uid"), ("session_id", "lsl_session_id")):
        if info.get(key):
            _sub(root, tag, info[key])
    created = info.get("lsl_created_at")
    if created is not None and np.isfinite(float(created)):
        _sub(root, "created_at", repr(float(created)))
    _sub(root, "hostname", info.get("hostname", ""))
    desc = _sub(root, "desc")
    labels, units, types = (list(info.get(k) or []) for k in ("channel_labels", "channel_units", "channel_types"))
    if any(len(v) == n_channels for v in (labels, units, types)):
        channels = _sub(desc, "channels")
        for i in range(n_channels):
            channel = _sub(channels, "channel")
            for tag, values in (("label", labels), ("unit", units), ("type", types)):
                if len(values) == n_channels:
                    _sub(channel, tag, values[i])
    if is_video_stream(stream):
        shape = [int(v) for v in info.get("frame_shape", [])]
        _sub(desc, "encoding", info.get("encoding", ""))
        frame = _sub(desc, "frame")
        _sub(frame, "height", shape[0])
        _sub(frame, "width", shape[1])
        _sub(frame, "channels", shape[2] if len(shape) == 3 else 1)
    sync = _sub(desc, "synchronization")
    _sub(sync, "can_drop_samples", "true" if info.get("can_drop_samples") else "false")
    return root


def _plan_streams(session: Session, streams: str | Sequence[str] | None, block_bytes: int) -> list[_StreamPlan]:
    if streams is None:
        selected = [s for s in session.streams.values() if not is_video_stream(s)]
        skipped = [s.name for s in session.streams.values() if is_video_stream(s)]
        if skipped:
            logger.info("Video streams %s are left out of the XDF export (uncompressed in XDF, they would dominate "
                        "the file); name them in streams=[...] (CLI --streams) to include them.", skipped)
    else:
        selected = select_streams(session, streams, what="streams=[...] (CLI: --streams)")
    if not selected:
        raise ValueError(f"Nothing to export: {session.fname.name} has no stream to write. Its streams are: "
                         f"{describe_streams(session)}.")
    plans = []
    for stream_id, stream in enumerate(selected, start=1):
        fmt = _xdf_format(stream, session)  # raises before anything is written
        n_channels = int(np.prod(stream.data.shape[1:])) if stream.data.ndim > 1 else 1
        value_bytes = _STRING_VALUE_BYTES if fmt == "string" else np.dtype(_LITTLE_ENDIAN[fmt]).itemsize
        row_bytes = 9 + n_channels * value_bytes
        plans.append(_StreamPlan(stream, stream_id, fmt, n_channels, _stream_header(stream, fmt, n_channels),
                                 block_rows=max(1, block_bytes // row_bytes)))
        if is_video_stream(stream) and stream.n_samples:
            logger.warning("Stream %s: %d video frames go into the XDF uncompressed, as %d %s values each "
                           "(%.1f MB); XDF has no compression.", stream.name, stream.n_samples, n_channels, fmt,
                           stream.n_samples * row_bytes / 1e6)
    return plans


# -- 3. interleaving: which window each sample and offset goes to --------------------------------
def _recorder_time(stream: Stream) -> np.ndarray:
    """Synchronized time of each sample (``Stream.times``), made non-decreasing.

    Only the order of chunks in the file depends on it, never their content: it puts
    samples that happened together, on any host and across clock resets, in one window.
    """
    times = np.asarray(stream.times, dtype=np.float64)
    times = np.where(np.isfinite(times), times, -np.inf)
    return np.maximum.accumulate(times) if times.size else times


def _assign_windows(plans: list[_StreamPlan], chunk_duration_s: float) -> np.ndarray:
    """Fill each plan's ``edges`` and ``offset_windows``; return the window numbers (s // chunk) in file order."""
    times, offset_times = [], []
    for plan in plans:
        plan.stamps = np.asarray(plan.stream.timestamps, dtype=np.float64)
        table = plan.stream.clock_offsets
        times.append(_recorder_time(plan.stream))
        collected = table.collection_times + table.offsets  # recorder time of each measurement
        offset_times.append(np.maximum.accumulate(collected) if collected.size else collected)
    finite = [t[np.isfinite(t)] for t in times + offset_times]
    starts = [t[0] for t in finite if t.size]
    start = min(starts) if starts else 0.0

    def keys(t: np.ndarray) -> np.ndarray:
        return np.floor((np.maximum(t, start) - start) / chunk_duration_s).astype(np.int64)

    sample_keys, offset_keys = [keys(t) for t in times], [keys(t) for t in offset_times]
    windows = np.unique(np.concatenate([*sample_keys, *offset_keys, np.zeros(1, np.int64)]))
    for plan, skeys, okeys in zip(plans, sample_keys, offset_keys):
        plan.edges = np.append(np.searchsorted(skeys, windows, side="left"), skeys.size)
        plan.offset_windows = np.searchsorted(windows, okeys, side="left")
    return windows


# -- 4. the file --------------------------------------------------------------------------------
def _file_header(session: Session) -> bytes:
    info = session.info
    root = ET.Element("info")
    _sub(root, "version", "1.0")
    start = _start_datetime(info)
    if start is not None:
        # LabRecorder's field and format (with microseconds): the importer reads it as the start time.
        _sub(root, "datetime", start.strftime("%Y-%m-%dT%H:%M:%S.%f%z"))
    extra = _sub(root, "emosync")
    _sub(extra, "writer", f"emosync {software_version()}")
    for key in ("session_id", "subject_id", "notes", "start_lsl_time", "synthetic"):
        if info.get(key) not in (None, ""):
            _sub(extra, key, info[key])
    _sub(extra, "source_session", session.fname.name)
    return _xml_bytes(root)


def _start_datetime(info: dict[str, Any]) -> _dt.datetime | None:
    text = str(info.get("start_time") or "")
    if not text:
        return None
    try:
        start = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return start if start.tzinfo is not None else start.replace(tzinfo=_dt.timezone.utc)


def _footer(plan: _StreamPlan) -> bytes:
    stamps, table = plan.stamps, plan.stream.clock_offsets
    root = ET.Element("info")
    if stamps is not None and stamps.size:
        _sub(root, "first_timestamp", repr(float(stamps[0])))
        _sub(root, "last_timestamp", repr(float(stamps[-1])))
    _sub(root, "sample_count", 0 if stamps is None else stamps.size)
    offsets = _sub(root, "clock_offsets")
    for t, value, rtt in zip(table.collection_times, table.offsets, table.uncertainties):
        offset = _sub(offsets, "offset")
        _sub(offset, "time", repr(float(t)))
        _sub(offset, "value", repr(float(value)))
        # Not in the XDF specification: the round-trip time that ClockOffset chunks cannot hold.
        _sub(offset, "uncertainty", repr(float(rtt)))
    _sub(root, "writer", f"emosync {software_version()}")
    return _xml_bytes(root)


def _write_samples(f: BinaryIO, plan: _StreamPlan, start: int, stop: int) -> None:
    stream = plan.stream
    for a in range(start, stop, plan.block_rows):
        b = min(stop, a + plan.block_rows)
        try:
            values = stream.data[a:b]
        except (ValueError, OSError) as err:  # a damaged frame or HDF5 chunk: say where, keep nothing
            raise OSError(f"Stream {stream.name!r}: samples {a} to {b - 1} could not be read ({err}). The export "
                          "stopped and no XDF file was written; export the other streams, or repair the session "
                          "from its backup.") from err
        stamps = plan.stamps[a:b]
        if plan.fmt == "string":
            _write_string_samples(f, plan.stream_id, values, stamps)
            continue
        values = np.asarray(values)
        if is_video_stream(stream):
            # LSL has no unsigned formats: RGB8 travels as int8, DEPTH16 as int16 (reinterpreted, not converted).
            values = values.view(LSL_DTYPES[plan.fmt])
        _write_numeric_samples(f, plan.stream_id, values.reshape(b - a, plan.n_channels), stamps, plan.fmt)


def _write_body(f: BinaryIO, session: Session, plans: list[_StreamPlan], windows: np.ndarray,
                chunk_duration_s: float, boundary_interval_s: float) -> None:
    f.write(b"XDF:")
    _write_chunk(f, _FILE_HEADER, _file_header(session))
    for plan in plans:
        _write_chunk(f, _STREAM_HEADER, plan.header_xml, plan.stream_id)
    last_boundary = float(windows[0]) * chunk_duration_s if windows.size else 0.0
    for k, window in enumerate(windows):
        if window * chunk_duration_s - last_boundary >= boundary_interval_s:
            _write_chunk(f, _BOUNDARY, BOUNDARY_UUID)
            last_boundary = float(window) * chunk_duration_s
        for plan in plans:
            _write_samples(f, plan, int(plan.edges[k]), int(plan.edges[k + 1]))
            table = plan.stream.clock_offsets
            for i in np.flatnonzero(plan.offset_windows == k):
                _write_chunk(f, _CLOCK_OFFSET, struct.pack("<dd", table.collection_times[i], table.offsets[i]),
                             plan.stream_id)
    for plan in plans:
        _write_chunk(f, _STREAM_FOOTER, _footer(plan), plan.stream_id)


def _check_out(out: Path, session: Session, overwrite: bool) -> Path:
    if out.name.lower().endswith((".xdfz", ".xdf.gz")):
        raise ValueError(f"{out}: emosync writes uncompressed XDF; name the file *.xdf (gzip it afterwards if "
                         "needed: pyxdf reads .xdfz and .xdf.gz).")
    if out.is_dir():
        raise IsADirectoryError(f"{out} is a folder; an XDF export is one file: name it, e.g. {out / 'session.xdf'}.")
    if out.exists():
        if out.resolve() == session.fname.resolve() or os.path.samefile(out, session.fname):
            raise ValueError(f"{out} is the session being exported; choose another output file.")
        with open(out, "rb") as f:
            if f.read(8) == b"\x89HDF\r\n\x1a\n":
                raise FileExistsError(f"{out} is an HDF5 file (a session?); an XDF export never replaces one, even "
                                      "with overwrite=True. Choose another output file.")
        if not overwrite:
            raise FileExistsError(f"{out} already exists; pass overwrite=True (CLI: --overwrite) to replace it.")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"Cannot write {out}: directory {out.parent} does not exist. Create it first.")
    return out


@verbose
@fill_doc
def write_xdf(session: Session | str | os.PathLike, out: str | os.PathLike, *,
              streams: str | Sequence[str] | None = None, overwrite: bool = False, chunk_duration_s: float = 1.0,
              boundary_interval_s: float = 10.0, block_bytes: int = 4 * 1024 * 1024,
              verbose: bool | str | int | None = None) -> list[Path]:
    """Write a session as an XDF 1.0 file: raw samples and stamps, clock offsets, headers, footers.

    Parameters
    ----------
    %(session_or_path)s
    out : path-like
        The ``.xdf`` file to write (uncompressed).
    streams : str | list of str | None
        Streams by name, type or modality. None: every stream except video and depth
        frames (name those to include them; they are written uncompressed).
    %(overwrite)s
    chunk_duration_s : float
        Seconds of (approximate) recorder time per Samples chunk of each stream, which
        interleaves the streams in time as a recorder would.
    boundary_interval_s : float
        Seconds between Boundary chunks (LabRecorder: 10 s).
    block_bytes : int
        Upper bound in bytes of one block of samples read from the session and written as
        one Samples chunk (a window larger than this is split).
    %(verbose)s

    Returns
    -------
    files : list of Path
        ``[out]``.

    Raises
    ------
    XdfExportError
        A selected stream holds values XDF cannot hold (e.g. uint32); nothing is written.
    FileExistsError
        ``out`` exists and ``overwrite`` is False, or ``out`` is an HDF5 file.
    ValueError
        An unknown stream name, nothing to export, or ``out`` is the session itself.

    Notes
    -----
    Read back with ``pyxdf.load_xdf(out, synchronize_clocks=False, dejitter_timestamps=False)``
    the samples and time stamps equal the session's; with pyxdf's defaults the synchronized
    times agree with ``Stream.times``. See ``docs/xdf.md`` ("Export to XDF").
    """
    if chunk_duration_s <= 0 or boundary_interval_s <= 0:
        raise ValueError(f"chunk_duration_s and boundary_interval_s must be > 0 seconds, got {chunk_duration_s} and "
                         f"{boundary_interval_s}.")
    out = Path(out)
    with opened_session(session) as opened:
        out = _check_out(out, opened, overwrite)
        plans = _plan_streams(opened, streams, int(block_bytes))
        windows = _assign_windows(plans, float(chunk_duration_s))
        tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.partial")
        try:
            with open(tmp, "wb", buffering=1 << 20) as f:
                _write_body(f, opened, plans, windows, float(chunk_duration_s), float(boundary_interval_s))
                f.flush()
                os.fsync(f.fileno())
            publish_file(tmp, out, overwrite=overwrite, action="exporting",
                         hint="Pass overwrite=True (CLI: --overwrite) to replace it, or choose another name.")
        finally:
            tmp.unlink(missing_ok=True)
    logger.info("Wrote %s: %d stream(s) (%s), %.1f MB.", out, len(plans),
                ", ".join(f"{p.stream.name} {p.stamps.size}" for p in plans), out.stat().st_size / 1e6)
    return [out]
