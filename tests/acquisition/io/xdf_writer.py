"""A minimal XDF 1.0 writer, for tests and benchmarks only.

No maintained pure-Python XDF writer exists (LabRecorder, the reference writer, only
records live LSL streams), yet the importer needs files with known content: exact
samples and stamps, units in microvolts, clock offsets with drift and resets, missing
footers, corrupt chunks, truncation, and files of a gigabyte or more. This module
writes such files chunk by chunk straight to disk, so even a large file never has to
fit in memory.

It covers the chunk types of the XDF 1.0 specification (https://github.com/sccn/xdf):
FileHeader (tag 1), StreamHeader (2, LSL stream-info XML with ``desc/channels``),
Samples (3, numeric or string, with or without per-sample time stamps), ClockOffset
(4), Boundary (5) and StreamFooter (6), plus deliberate damage: a corrupt Samples
chunk, raw garbage, and truncation (:func:`truncate_copy`). It is validated by
reading its output back with pyxdf (``tests/acquisition/test_xdf_import.py``).
Not for production recordings: there is no locking, no crash safety, no
compression, and it trusts its caller's arguments.
"""

from __future__ import annotations

import os
import struct
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from acquisition.io.xdf_export import varlen

#: The 16-byte signature of a Boundary chunk, from the XDF specification.
BOUNDARY_UUID = bytes([0x43, 0xA5, 0x46, 0xDC, 0xCB, 0xF5, 0x41, 0x0F,
                       0xB3, 0x0E, 0xD5, 0x46, 0x73, 0x83, 0xCB, 0xE4])

_DTYPES = {"float32": "<f4", "double64": "<f8", "int8": "<i1", "int16": "<i2", "int32": "<i4", "int64": "<i8"}


def _xml_elements(values: dict[str, Any]) -> str:
    out = []
    for tag, value in values.items():
        if isinstance(value, dict):
            out.append(f"<{tag}>{_xml_elements(value)}</{tag}>")
        elif isinstance(value, list):  # repeated children: {"channel": [{...}, {...}]}
            out.extend(f"<{tag}>{_xml_elements(v) if isinstance(v, dict) else escape(str(v))}</{tag}>"
                       for v in value)
        else:
            out.append(f"<{tag}>{escape(str(value))}</{tag}>")
    return "".join(out)


class XDFWriter:
    """Write an XDF 1.0 file chunk by chunk.

    Parameters
    ----------
    path : path-like
        The file to create (overwritten if it exists: test files only).
    header : dict | None
        Extra FileHeader fields (``{"datetime": "2025-01-31T00:21:17+0000"}``);
        ``version`` is always ``1.0``.

    Examples
    --------
    >>> with XDFWriter("t.xdf") as w:  # doctest: +SKIP
    ...     w.add_stream(1, "EEG", "EEG", 2, 100.0, "float32", channel_units=["microvolts"] * 2)
    ...     w.write_samples(1, np.zeros((10, 2), np.float32), 100 + np.arange(10) / 100)
    ...     w.write_clock_offset(1, 100.0, -0.5)
    ...     w.write_footer(1)
    """

    def __init__(self, path: str | os.PathLike, *, header: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self._f = open(self.path, "wb")  # closed in close()
        self._f.write(b"XDF:")
        self.streams: dict[int, dict[str, Any]] = {}
        self.write_chunk(1, b"", _xml("info", {"version": "1.0", **(header or {})}))

    # -- low level --------------------------------------------------------------
    def write_chunk(self, tag: int, prefix: bytes, content: bytes | str) -> None:
        """Write one chunk: ``[varlen length][tag u16][prefix][content]`` (length counts tag onwards)."""
        body = content.encode() if isinstance(content, str) else content
        self._f.write(varlen(2 + len(prefix) + len(body)))
        self._f.write(struct.pack("<H", tag))
        self._f.write(prefix)
        self._f.write(body)

    def write_raw(self, data: bytes) -> None:
        """Write bytes outside any chunk structure (to simulate a damaged region)."""
        self._f.write(data)

    # -- chunks -----------------------------------------------------------------
    def add_stream(self, stream_id: int, name: str, type: str, channel_count: int, nominal_srate: float,
                   channel_format: str, *, source_id: str = "", hostname: str = "xdf-writer",
                   channel_labels: Sequence[str] = (), channel_units: Sequence[str] = (),
                   channel_types: Sequence[str] = (), desc: dict[str, Any] | None = None,
                   created_at: float = 0.0) -> None:
        """Write a StreamHeader chunk (an LSL stream-info XML with ``desc/channels``).

        Parameters
        ----------
        stream_id : int
            The XDF stream id (any uint32, unique in the file).
        name, type, channel_count, nominal_srate, channel_format, source_id, hostname
            As in the LSL stream info; ``nominal_srate`` in Hz (0: irregular).
        channel_labels, channel_units, channel_types : sequence of str
            Per-channel metadata (``desc/channels/channel/{label,unit,type}``).
        desc : dict | None
            More ``desc`` children as nested dicts, e.g.
            ``{"synchronization": {"can_drop_samples": "true"}}``.
        created_at : float
            LSL ``created_at`` (source clock, seconds).
        """
        desc_fields: dict[str, Any] = {}
        n_meta = max(len(channel_labels), len(channel_units), len(channel_types))
        if n_meta:
            channels = []
            for i in range(n_meta):
                channel = {}
                for key, values in (("label", channel_labels), ("unit", channel_units), ("type", channel_types)):
                    if values:
                        channel[key] = values[i]
                channels.append(channel)
            desc_fields["channels"] = {"channel": channels}
        desc_fields.update(desc or {})
        info = {"name": name, "type": type, "channel_count": channel_count, "nominal_srate": repr(float(nominal_srate)),
                "channel_format": channel_format, "source_id": source_id, "version": "1.1",
                "created_at": repr(float(created_at)), "uid": str(uuid.uuid4()), "session_id": "default",
                "hostname": hostname}
        xml = _xml("info", info, desc=_xml_elements(desc_fields))
        self.write_chunk(2, struct.pack("<I", stream_id), xml)
        self.streams[stream_id] = {"format": channel_format, "channels": channel_count,
                                   "srate": float(nominal_srate), "count": 0, "first": None, "last": None,
                                   "offsets": []}

    def write_samples(self, stream_id: int, data: np.ndarray | Sequence[Sequence[str]],
                      timestamps: np.ndarray | Sequence[float], *, omit_timestamps: bool = False) -> None:
        """Write a Samples chunk.

        Parameters
        ----------
        stream_id : int
            A stream added with :meth:`add_stream`.
        data : array, shape (n_samples, n_channels), or list of lists of str
            The values, in the stream's channel format.
        timestamps : array of float, shape (n_samples,)
            Time stamps in seconds (source clock).
        omit_timestamps : bool
            Store only the first sample's time stamp; readers deduce the others as
            ``previous + 1 / nominal_srate`` (XDF's time-stamp compression). The
            reader's deduced values are then the truth, not ``timestamps[1:]``.
        """
        s = self.streams[stream_id]
        stamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        n = stamps.shape[0]
        parts = [struct.pack("<I", stream_id), varlen(n)]
        if s["format"] == "string":
            for k in range(n):
                parts.append(b"\x00" if omit_timestamps and k else b"\x08" + struct.pack("<d", stamps[k]))
                for value in data[k]:
                    raw = str(value).encode("utf-8")
                    parts.append(varlen(len(raw)) + raw)
        else:
            values = np.ascontiguousarray(data, dtype=_DTYPES[s["format"]]).reshape(n, s["channels"])
            # One packed record per sample ([flag][f64 stamp][values]) written in one go: fast
            # enough to stream gigabytes without a per-sample Python loop.
            with_ts = np.dtype([("flag", "u1"), ("ts", "<f8"), ("v", values.dtype, (s["channels"],))])
            without_ts = np.dtype([("flag", "u1"), ("v", values.dtype, (s["channels"],))])
            n_full = 1 if omit_timestamps else n
            if n_full:
                full = np.empty(min(n_full, n), dtype=with_ts)
                full["flag"], full["ts"], full["v"] = 8, stamps[:n_full], values[:n_full]
                parts.append(full.tobytes())
            if n > n_full:
                rest = np.empty(n - n_full, dtype=without_ts)
                rest["flag"], rest["v"] = 0, values[n_full:]
                parts.append(rest.tobytes())
        body = b"".join(parts)
        self._f.write(varlen(2 + len(body)))
        self._f.write(struct.pack("<H", 3))
        self._f.write(body)
        if n:
            s["count"] += n
            s["first"] = stamps[0] if s["first"] is None else s["first"]
            s["last"] = stamps[-1]

    def write_corrupt_samples_chunk(self, stream_id: int, n_bytes: int = 64, *, seed: int = 0) -> None:
        """Write a Samples chunk with a valid length and stream id but an unreadable body.

        Its sample count is not a valid variable-length integer, so readers must skip
        it (pyxdf scans forward to the next Boundary chunk, losing what lies between).
        """
        garbage = np.random.default_rng(seed).integers(0, 256, n_bytes, dtype=np.uint8).tobytes()
        self.write_chunk(3, struct.pack("<I", stream_id), b"\x07" + garbage)

    def write_clock_offset(self, stream_id: int, collection_time: float, offset: float) -> None:
        """Write a ClockOffset chunk: when (source clock, s) and the offset to the recorder's clock (s)."""
        self.write_chunk(4, struct.pack("<I", stream_id), struct.pack("<dd", collection_time, offset))
        self.streams[stream_id]["offsets"].append((collection_time, offset))

    def write_boundary(self) -> None:
        """Write a Boundary chunk (readers resynchronize on these after damage)."""
        self.write_chunk(5, b"", BOUNDARY_UUID)

    def write_footer(self, stream_id: int, *, sample_count: int | None = None) -> None:
        """Write a StreamFooter chunk from what was written (``sample_count`` overrides the count)."""
        s = self.streams[stream_id]
        offsets = "".join(f"<offset><time>{t!r}</time><value>{v!r}</value></offset>" for t, v in s["offsets"])
        fields = {"first_timestamp": repr(float(s["first"] or 0.0)), "last_timestamp": repr(float(s["last"] or 0.0)),
                  "sample_count": s["count"] if sample_count is None else sample_count}
        xml = _xml("info", fields, clock_offsets=offsets)
        self.write_chunk(6, struct.pack("<I", stream_id), xml)

    def close(self) -> None:
        """Close the file (no footers are added: write them first if wanted)."""
        self._f.close()

    def __enter__(self) -> XDFWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _xml(root: str, fields: dict[str, Any], **raw_children: str) -> str:
    inner = _xml_elements(fields) + "".join(f"<{tag}>{xml}</{tag}>" for tag, xml in raw_children.items())
    return f'<?xml version="1.0"?><{root}>{inner}</{root}>'


def truncate_copy(src: str | os.PathLike, dst: str | os.PathLike, fraction: float) -> int:
    """Copy the first ``fraction`` of ``src`` to ``dst`` (a crashed or cut-off recording).

    Returns
    -------
    n_bytes : int
        Bytes written.
    """
    data = Path(src).read_bytes()
    n = int(len(data) * fraction)
    Path(dst).write_bytes(data[:n])
    return n
