"""Read session files lazily: :func:`open_session` returns a :class:`Session` of :class:`Stream`.

Nothing is loaded until asked for: ``stream.data`` reads from HDF5 on indexing,
compressed video frames are decoded one by one, and time stamps are read when
first used.

A closed file is opened plainly read-only. Only a file whose HDF5 superblock says a
writer has it open in SWMR mode (a recording in progress, or a recorder that was killed
before closing it) is opened in SWMR mode, so it can be followed (call
:meth:`Session.refresh`) and a killed recording opens with everything up to its last
flush. A damaged file (truncated by a partial copy or a full disk) fails at once with an
error naming the file; HDF5's SWMR reader would retry its metadata reads for minutes instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import time
from functools import cached_property
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import h5py
import numpy as np

from acquisition.sync.clock import ClockOffsetTable
from acquisition.session.frame_codec import decode_frame, load_filters, open_frame_dataset
from acquisition.session.lz4_frames import is_plain_lz4, read_lz4_frames
from acquisition.session.format import (FILTER_COMPRESSIONS, IMAGE_COMPRESSIONS, SCHEMA_NAME, SCHEMA_VERSION,
                                        STREAMS_GROUP)
from acquisition.sync.synchronize import SyncOptions, SyncResult, synchronize
from acquisition.utils.docs import fill_doc

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: File consistency flags of superblock versions 2 and 3: a writer has the file open (for SWMR).
_WRITE_ACCESS, _SWMR_WRITE_ACCESS = 0x01, 0x04
#: How long a live file may look shorter than its superblock says before it counts as truncated.
_LIVE_SIZE_GRACE_S = 1.0


class StreamData:
    """Array-like, lazy view of a stream's samples, shape ``(n_samples, ...)``.

    Indexing the first axis reads from the file (``data[10:20]``, ``data[[1, 5]]``,
    ``data[-1]``); ``np.asarray(data)`` reads everything. Compressed video frames are
    decoded on read; marker strings come back as ``str``.
    """

    def __init__(self, dataset: h5py.Dataset, n_samples: int, *, sample_shape: tuple[int, ...],
                 dtype: Any, encoded: bool, lz4_frames: bool = False) -> None:
        self._dataset = dataset
        self._n = n_samples
        self._encoded = encoded
        # LZ4-filtered frames are decompressed on all cores (acquisition.session.lz4_frames).
        self._lz4 = lz4_frames and is_plain_lz4(dataset)
        self._strings = h5py.check_string_dtype(dataset.dtype) is not None
        self.shape = (n_samples, *sample_shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"<StreamData shape={self.shape} dtype={self.dtype}{' (compressed)' if self._encoded else ''}>"

    def __getitem__(self, key: Any) -> Any:
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if isinstance(first, (int, np.integer)):
            index = int(first) + self._n if first < 0 else int(first)
            if not 0 <= index < self._n:
                raise IndexError(f"index {first} is out of range for a stream of {self._n} samples")
            rows: Any = index
        elif isinstance(first, slice):
            start, stop, step = first.indices(self._n)
            if step != 1:
                return self[np.arange(start, stop, step)][(slice(None), *rest)]
            rows = slice(start, stop)
            if self._lz4 and not rest:
                return self.read_direct(start, stop)
            if rest and not self._encoded and not self._strings and all(isinstance(r, slice) for r in rest):
                # Let HDF5 read only the part of each frame asked for (e.g. a corner of every frame).
                return self._dataset[(rows, *rest)]
        else:
            rows = np.asarray(first)
            if rows.dtype == bool:
                rows = np.flatnonzero(rows)
            rows = np.where(rows < 0, rows + self._n, rows).astype(np.int64)
            if rows.size and (rows.min() < 0 or rows.max() >= self._n):
                raise IndexError(f"indices out of range for a stream of {self._n} samples")
            order = np.argsort(rows, kind="stable")
            # h5py wants increasing, unique indices: read those, then restore the order asked for.
            unique, inverse = np.unique(rows[order], return_inverse=True)
            values = self._read(unique)
            restored = np.empty((rows.size, *values.shape[1:]), dtype=values.dtype)
            restored[order] = values[inverse]
            return restored[(slice(None), *rest)] if rest else restored
        values = self._read(rows)
        if not rest:
            return values
        return values[rest] if isinstance(rows, int) else values[(slice(None), *rest)]

    def _read(self, rows: Any) -> Any:
        source = self._dataset.asstr() if self._strings else self._dataset
        if isinstance(rows, np.ndarray) and (self._encoded or len(self.shape) > 2):
            # h5py's point selection over one-frame chunks is ~70x slower than reading frames one by one.
            values = [source[int(i)] for i in rows]
            if self._encoded:
                return np.stack([decode_frame(v) for v in values]) if values else np.empty((0, *self.shape[1:]),
                                                                                           dtype=self.dtype)
            return np.stack(values) if values else np.empty((0, *self.shape[1:]), dtype=self.dtype)
        values = source[rows]
        if not self._encoded:
            return values
        if isinstance(rows, int):
            return decode_frame(values)
        if len(values) == 0:
            return np.empty((0, *self.shape[1:]), dtype=self.dtype)
        return np.stack([decode_frame(v) for v in values])

    def read_direct(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Samples ``start:stop`` read straight into ``out``, without intermediate copies.

        The fast way to read long runs of video frames (a time window of 200 fps VGA video):
        HDF5 copies (or decompresses) each chunk directly into ``out``. Reusing one ``out`` for
        many windows also saves the cost of fresh memory, which is larger than the read itself.

        Parameters
        ----------
        start, stop : int
            The samples to read, ``0 <= start <= stop <= n_samples``.
        out : array | None
            Where to read to, shape ``(m, ...)`` with ``m >= stop - start`` and the stream's sample
            shape and dtype (see :attr:`shape`, :attr:`dtype`); a new array when None.

        Returns
        -------
        data : array, shape (stop - start, ...)
            ``out[:stop - start]`` (a view of ``out`` when it was given).
        """
        if not 0 <= start <= stop <= self._n:
            raise IndexError(f"samples {start}:{stop} are out of range for a stream of {self._n} samples")
        n = stop - start
        if out is None:
            out = np.empty((n, *self.shape[1:]), dtype=self.dtype)
        elif out.shape[1:] != self.shape[1:] or out.dtype != self.dtype or out.shape[0] < n:
            raise ValueError(f"out must have at least {n} rows of shape {self.shape[1:]} and dtype {self.dtype}, "
                             f"got shape {out.shape} and dtype {out.dtype}")
        if n == 0:
            return out[:0]
        if self._strings or not out.flags.c_contiguous:
            out[:n] = self[start:stop]
        elif self._encoded:
            for i in range(n):
                out[i] = decode_frame(self._dataset[start + i])
        elif not (self._lz4 and read_lz4_frames(self._dataset, start, stop, out)):
            self._dataset.read_direct(out, source_sel=np.s_[start:stop], dest_sel=np.s_[0:n])
        return out[:n]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        values = np.asarray(self[:])
        return values.astype(dtype) if dtype is not None else values


class Stream:
    """One stream of a session: samples, raw time stamps, clock offsets and metadata.

    Attributes
    ----------
    name : str
        The stream name (its key in :attr:`Session.streams`).
    info : dict
        Stream metadata: ``name``, ``type``, ``source_id``, ``hostname``,
        ``nominal_srate`` (Hz), ``channel_format``, ``channel_count``,
        ``channel_labels``, ``channel_units``, ``channel_types``, ``modality``,
        ``encoding``, ``frame_shape``, ``compression``, ``unit``, ``info_xml``...
    """

    def __init__(self, group: h5py.Group) -> None:
        self._group = group
        self.name = str(group.attrs.get("name", group.name.rsplit("/", 1)[-1]))
        self.info: dict[str, Any] = {key: _from_attr(value) for key, value in group.attrs.items()}

    def __repr__(self) -> str:
        return (f"<Stream {self.name!r} type={self.info.get('type')!r} n_samples={self.n_samples} "
                f"nominal_srate={self.info.get('nominal_srate')} Hz>")

    @property
    def n_samples(self) -> int:
        """Number of complete samples (data and time stamp both written)."""
        return int(min(self._group["data"].shape[0], self._group["timestamps"].shape[0]))

    @property
    def nominal_srate(self) -> float:
        """Nominal sampling rate in Hz (0 for irregular streams)."""
        return float(self.info.get("nominal_srate", 0.0))

    @property
    def modality(self) -> str:
        """``rgb``, ``depth``, ``emg``, ``eeg``, ``markers``, ``au``, ``frame_index`` or ``misc``."""
        return str(self.info.get("modality", "misc"))

    @property
    def data(self) -> StreamData:
        """Samples, array-like of shape ``(n_samples, ...)``, read lazily.

        EMG/EEG in volts; RGB frames ``(n, height, width, 3)`` uint8; depth frames
        ``(n, height, width)`` uint16 in millimetres; markers ``(n, n_channels)`` str.
        """
        info = self.info
        frame_shape = tuple(int(v) for v in info.get("frame_shape", []))
        compression = info.get("compression", "none")
        encoded = compression in IMAGE_COMPRESSIONS
        if compression in FILTER_COMPRESSIONS:
            load_filters()  # registers hdf5plugin's filters with HDF5 before the first read
        dataset = open_frame_dataset(self._group) if frame_shape and not encoded else self._group["data"]
        if frame_shape:
            dtype = np.uint8 if info.get("encoding") == "RGB8" else np.uint16
            shape = frame_shape
        else:
            dtype = object if h5py.check_string_dtype(dataset.dtype) else dataset.dtype
            shape = tuple(dataset.shape[1:])
        return StreamData(dataset, self.n_samples, sample_shape=shape, dtype=dtype, encoded=encoded,
                          lz4_frames=compression == "lz4" and bool(frame_shape))

    @cached_property
    def timestamps(self) -> np.ndarray:
        """Raw time stamps as received, in seconds of the source's clock, shape (n_samples,)."""
        return self._group["timestamps"][: self.n_samples]

    @cached_property
    def clock_offsets(self) -> ClockOffsetTable:
        """The clock offsets measured during recording (see :class:`~acquisition.sync.clock.ClockOffsetTable`)."""
        return ClockOffsetTable.from_array(self._group["clock_offsets"][()])

    @cached_property
    def times(self) -> np.ndarray:
        """Synchronized time stamps in seconds of the recorder's clock, shape (n_samples,).

        Computed on read from the raw stamps and clock offsets with the default
        :class:`~acquisition.sync.synchronize.SyncOptions` (robust clock fit per clock segment, then
        dejitter of regular streams that cannot drop samples); see :meth:`synchronize`.
        """
        return self.sync.times

    @cached_property
    def sync(self) -> SyncResult:
        """The default synchronization of this stream, with its diagnostics (segments, rates, jitter)."""
        return self.synchronize()

    def synchronize(self, options: SyncOptions | None = None, **kwargs: Any) -> SyncResult:
        """Synchronize with chosen options (pyxdf's names), e.g. ``dejitter_timestamps=False``.

        Returns
        -------
        result : SyncResult
            ``result.times`` plus clock segments, jitter segments and effective rates.
        """
        if options is None:
            options = SyncOptions(**kwargs)
        elif kwargs:
            options = options.model_copy(update=kwargs)
        return synchronize(self.timestamps, self.clock_offsets, nominal_srate=self.nominal_srate,
                           can_drop_samples=bool(self.info.get("can_drop_samples", False)), options=options,
                           name=self.name)

    def refresh(self) -> None:
        """Re-read sizes and drop cached arrays (to follow a file that is still being recorded)."""
        for name in ("data", "timestamps", "clock_offsets"):
            self._group[name].refresh()
        for cached in ("timestamps", "clock_offsets", "times", "sync"):
            self.__dict__.pop(cached, None)


class Session:
    """A session file opened read-only.

    Attributes
    ----------
    fname : Path
        The file.
    info : dict
        Root metadata: ``schema``, ``schema_version``, ``session_id``, ``subject_id``,
        ``start_time`` (ISO 8601, UTC), ``software_version``, ``host``, ``notes``,
        ``synthetic`` and, for a finished recording, ``stop_time``.
    streams : dict of str to Stream
        The streams, keyed by name.
    """

    def __init__(self, fname: str | os.PathLike) -> None:
        self.fname = Path(fname)
        if not self.fname.is_file():
            raise FileNotFoundError(f"No session file at {self.fname}.")
        self._file = _open_hdf5(self.fname)
        try:
            self._read_metadata()
        except ValueError:
            self._file.close()
            raise
        except (OSError, RuntimeError, KeyError) as err:  # h5py's errors for damaged objects
            self._file.close()
            raise OSError(f"{self.fname} is damaged: {err}. Copy it again from the original, or open the "
                          "recording's backup.") from None

    @property
    def live(self) -> bool:
        """True if the file was opened in SWMR mode: it is being recorded, or its recorder was killed."""
        return bool(self._file.swmr_mode)

    def _read_metadata(self) -> None:
        """Check the schema, read the root metadata and list the streams."""
        schema = self._file.attrs.get("schema")
        if schema != SCHEMA_NAME or STREAMS_GROUP not in self._file:
            raise ValueError(
                f"{self.fname} is an HDF5 file but not an emosync session (schema={schema!r}); "
                "import other formats with `emosync import-xdf` or the importers."
            )
        version = str(self._file.attrs.get("schema_version", "0"))
        if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise ValueError(
                f"{self.fname} uses session schema {version}, this emosync reads {SCHEMA_VERSION}. "
                "Upgrade emosync to read it."
            )
        self.info: dict[str, Any] = {k: _from_attr(v) for k, v in self._file.attrs.items()}
        self.streams: dict[str, Stream] = {}
        self._load_streams()

    def _load_streams(self) -> None:
        for group in self._file[STREAMS_GROUP].values():
            if "derived_pending" in group.attrs:  # half-copied by a derived-stream commit that was killed
                continue
            stream = Stream(group)
            self.streams.setdefault(stream.name, stream)

    def to_mne(self, streams: str | list[str] | None = None, **kwargs: Any) -> Any:
        """Convert EEG/EMG streams (with markers as annotations) to one ``mne.io.RawArray``.

        See :func:`acquisition.session.to_mne.to_mne` for the options (streams, markers, rate).
        """
        from acquisition.session.to_mne import to_mne

        return to_mne(self, streams, **kwargs)

    def refresh(self) -> None:
        """Follow a live recording (see :attr:`live`): pick up new samples."""
        for stream in self.streams.values():
            stream.refresh()

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Session {self.fname.name} subject={self.info.get('subject_id')!r} streams={list(self.streams)}>"


@fill_doc
def open_session(fname: str | os.PathLike) -> Session:
    """Open a session file read-only and lazily (in SWMR mode only while a writer has it open).

    Parameters
    ----------
    %(fname_session)s

    Returns
    -------
    session : Session
        The session; use it as a context manager or call :meth:`Session.close`.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``fname``.
    OSError
        If the file is not HDF5, is truncated or otherwise damaged (the message names the file).
    ValueError
        If it is HDF5 but not an emosync session, or of an unsupported schema version.
    """
    return Session(fname)


@contextlib.contextmanager
def opened_session(session: Session | str | os.PathLike) -> Iterator[Session]:
    """Yield an open session; close it afterwards only if it was opened here (given by path)."""
    if isinstance(session, Session):
        yield session
        return
    with open_session(session) as opened:
        yield opened


def _open_hdf5(fname: Path) -> h5py.File:
    """Open ``fname`` read-only: plainly if it is closed, in SWMR mode only if a writer has it open.

    Raises
    ------
    OSError
        If the file is not HDF5, is truncated, or cannot be opened; the message names the file.
    """
    try:
        return h5py.File(fname, "r")
    except OSError as err:
        plain_error = err  # a closed, healthy file never gets here
    superblock = _read_superblock(fname)
    if superblock is None:
        raise OSError(f"{fname} is not a readable HDF5 session file: {plain_error}")
    flags, stored_eof = superblock
    size = _size_when_settled(fname, stored_eof, live=bool(flags & _WRITE_ACCESS))
    if size < stored_eof:
        raise OSError(f"{fname} is truncated: it holds {size} bytes but its HDF5 superblock says {stored_eof} "
                      "(an incomplete copy, or a disk that filled up). Copy it again from the original.")
    if not flags & _SWMR_WRITE_ACCESS:
        raise OSError(f"{fname} cannot be opened: {plain_error}. If a program is writing it without SWMR, wait until "
                      "it closes the file.")
    try:
        return h5py.File(fname, "r", libver="latest", swmr=True)
    except (OSError, RuntimeError) as err:
        raise OSError(f"{fname} is being written (or its writer was killed) and cannot be read: {err}") from None


def _read_superblock(fname: Path) -> tuple[int, int] | None:
    """``(file consistency flags, end-of-file address)`` of a version 2/3 superblock, or None.

    The superblock sits at byte 0 or after a user block of 512, 1024, 2048... bytes. emosync writes
    version 3 (``libver="latest"``); older versions cannot be in SWMR mode, so None is enough for them.
    """
    size = fname.stat().st_size
    with open(fname, "rb") as f:
        offset = 0
        while offset + 48 <= size:
            f.seek(offset)
            head = f.read(48)
            if head[:8] == _HDF5_SIGNATURE:
                version, offset_bytes = head[8], head[9]
                if version not in (2, 3) or offset_bytes != 8:
                    return None
                base, stored_eof = struct.unpack("<Q", head[12:20])[0], struct.unpack("<Q", head[28:36])[0]
                return head[11], base + stored_eof
            offset = 512 if offset == 0 else offset * 2
    return None


def _size_when_settled(fname: Path, stored_eof: int, *, live: bool) -> int:
    """The file's size; for a live file, allow a writer that is mid-flush a moment to catch up."""
    size = fname.stat().st_size
    deadline = time.monotonic() + (_LIVE_SIZE_GRACE_S if live else 0.0)
    while size < stored_eof and time.monotonic() < deadline:
        time.sleep(0.05)
        size = fname.stat().st_size
    return size


def _from_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.ndarray):
        if value.dtype.kind in ("O", "S", "U"):
            return [v.decode() if isinstance(v, bytes) else str(v) for v in value.tolist()]
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str) and value[:1] == "{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
