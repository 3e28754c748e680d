"""Write session files: one writer for the recorder, the importers and synthetic corpora.

:class:`SessionWriter` creates the file and its root metadata; :meth:`SessionWriter.add_stream`
returns a :class:`StreamWriter` that appends chunks of samples with their raw timestamps
and clock offsets. Data are stored exactly as received (raw LSL time stamps, no
correction); synchronization happens on read.

Crash safety: the file is written with the newest HDF5 format and, once the initial
streams exist, in SWMR mode, so a reader can follow a live recording and a killed
writer leaves a file that opens with everything up to the last :meth:`SessionWriter.flush`.
HDF5 cannot create objects while in SWMR mode, so adding a stream later (a late
LSL stream) briefly closes and reopens the file.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import uuid
from pathlib import Path
from typing import Any
from collections.abc import Sequence

import h5py
import numpy as np

from acquisition.utils.logs import logger
from acquisition.utils.version import software_version
from acquisition.session.frame_codec import encode_frame
from acquisition.session.format import SCHEMA_NAME, SCHEMA_VERSION, STREAMS_GROUP, StreamSpec

#: Target size of one numeric HDF5 chunk: small enough to flush often, large enough to read fast.
_CHUNK_BYTES = 256 * 1024


def free_output_path(fname: Path) -> Path:
    """Rename an existing ``fname`` to ``<stem>_oldN<suffix>`` (as LabRecorder does) and return the new name."""
    n = 1
    while (target := fname.with_name(f"{fname.stem}_old{n}{fname.suffix}")).exists():
        n += 1
    fname.rename(target)
    return target


def check_output_path(fname: str | os.PathLike, *, if_exists: str = "error") -> Path:
    """Check that a new session file can be created at ``fname``.

    Parameters
    ----------
    fname : path-like
        The file to create.
    if_exists : ``"error"`` | ``"rename"``
        What to do when ``fname`` exists: refuse, or rename the old file to
        ``<stem>_oldN.h5`` first. An existing file is never overwritten.

    Returns
    -------
    fname : Path
        The checked path.
    """
    fname = Path(fname)
    if if_exists not in ("error", "rename"):
        raise ValueError(f"if_exists must be 'error' or 'rename', got {if_exists!r}")
    if fname.exists():
        if if_exists == "error":
            raise FileExistsError(
                f"{fname} already exists and emosync never overwrites a recording. "
                "Choose another file name, or pass --rename-existing (if_exists='rename') "
                "to move the old file to <name>_oldN.h5 first."
            )
        moved = free_output_path(fname)
        logger.warning("Moved existing %s to %s", fname, moved)
    parent = fname.resolve().parent
    if not parent.is_dir():
        raise FileNotFoundError(f"Cannot write {fname}: directory {parent} does not exist. Create it first.")
    if not os.access(parent, os.W_OK):
        raise PermissionError(
            f"Cannot write {fname}: directory {parent} is not writable by this user. "
            "Choose a directory you can write to."
        )
    return fname


class StreamWriter:
    """Append samples, time stamps and clock offsets to one stream of a session.

    Obtain one from :meth:`SessionWriter.add_stream`; do not construct it directly.
    """

    def __init__(self, session: SessionWriter, spec: StreamSpec) -> None:
        self.spec = spec
        self._session = session
        self.n_samples = 0
        self._bind()

    def _bind(self) -> None:
        group = self._session._file[STREAMS_GROUP][self.spec.group_name]
        self._data = group["data"]
        self._timestamps = group["timestamps"]
        self._offsets = group["clock_offsets"]
        self.n_samples = min(self._data.shape[0], self._timestamps.shape[0])

    def append(self, data: np.ndarray | Sequence[Any], timestamps: np.ndarray | Sequence[float]) -> None:
        """Append a chunk of samples.

        Parameters
        ----------
        data : array, shape (n_samples, n_channels) | (n_samples, height, width[, 3])
            Samples in the stream's stored dtype (video frames as uint8 RGB or uint16
            depth in mm; strings as ``str``). EMG/EEG are expected in volts.
        timestamps : array of float, shape (n_samples,)
            Raw time stamps in seconds, in the clock of the source (as LSL delivered them).
        """
        timestamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        n = timestamps.shape[0]
        if n == 0:
            return
        spec = self.spec
        if spec.channel_format == "string":
            data = np.asarray(data, dtype=object).reshape(n, spec.channel_count)
        else:
            data = np.asarray(data)
            expected = (n, *spec.sample_shape)
            if data.shape != expected:
                raise ValueError(
                    f"Stream {spec.name!r}: data of shape {data.shape} does not match "
                    f"{n} timestamps of samples shaped {spec.sample_shape}; expected {expected}."
                )
            if data.dtype != spec.stored_dtype:
                data = data.astype(spec.stored_dtype)
            if spec.compression != "none":
                self.append_encoded([encode_frame(frame, spec.compression) for frame in data], timestamps)
                return
        self._write(data, timestamps)

    def append_encoded(self, frames: Sequence[np.ndarray], timestamps: np.ndarray | Sequence[float]) -> None:
        """Append frames that are already encoded with the stream's compression (see :mod:`.frame_codec`)."""
        timestamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        if len(frames) != timestamps.shape[0]:
            raise ValueError(f"{len(frames)} encoded frames but {timestamps.shape[0]} timestamps")
        if self.spec.compression == "none":
            raise ValueError(f"Stream {self.spec.name!r} stores raw frames; use append().")
        self._write(list(frames), timestamps)

    def _write(self, data: np.ndarray | list[np.ndarray], timestamps: np.ndarray) -> None:
        n0, n = self.n_samples, timestamps.shape[0]
        # Data first, then time stamps: a reader trims to the shorter of the two.
        self._data.resize(n0 + n, axis=0)
        if isinstance(data, list):
            # Encoded frames one by one: h5py reads equal-length byte arrays as one 2-D block.
            for i, frame in enumerate(data):
                self._data[n0 + i] = frame
        else:
            self._data[n0 : n0 + n] = data
        self._timestamps.resize(n0 + n, axis=0)
        self._timestamps[n0 : n0 + n] = timestamps
        self.n_samples = n0 + n

    def append_clock_offsets(self, collection_times: Sequence[float], offsets: Sequence[float],
                             uncertainties: Sequence[float]) -> None:
        """Append clock-offset measurements.

        Parameters
        ----------
        collection_times : array of float, shape (n,)
            When each offset was measured, in seconds of the *source's* clock
            (local time minus offset, as in XDF ClockOffset chunks).
        offsets : array of float, shape (n,)
            Offset in seconds to add to a source time stamp to get recorder time.
        uncertainties : array of float, shape (n,)
            Round-trip time of the winning probe in seconds (an upper bound of the error);
            NaN when unknown (XDF files do not store it).
        """
        rows = np.column_stack([collection_times, offsets, uncertainties]).astype(np.float64)
        if rows.size == 0:
            return
        if not np.all(np.isfinite(rows[:, :2])):  # an unknown uncertainty (NaN, as from XDF) is fine
            raise ValueError(f"Stream {self.spec.name!r}: refusing to store non-finite clock offsets {rows}")
        n0 = self._offsets.shape[0]
        self._offsets.resize(n0 + rows.shape[0], axis=0)
        self._offsets[n0:] = rows


class SessionWriter:
    """Create a session file and write streams into it.

    Parameters
    ----------
    fname : path-like
        The ``.h5`` file to create. It must not exist (see ``if_exists``).
    subject_id : str
        Pseudonymous subject identifier (never a real name).
    session_id : str | None
        Session identifier; a random UUID when None.
    notes : str
        Free-text notes stored with the session.
    metadata : dict | None
        Extra root attributes (JSON-able values), e.g. ``{"synthetic": True}``.
    if_exists : ``"error"`` | ``"rename"``
        See :func:`check_output_path`.

    Examples
    --------
    >>> with SessionWriter("s.h5", subject_id="sub-01") as w:  # doctest: +SKIP
    ...     emg = w.add_stream(StreamSpec("EMG", "EMG", 2, "float32", 2000.0, "emg-1"))
    ...     emg.append(np.zeros((10, 2), np.float32), np.arange(10) / 2000)
    """

    def __init__(self, fname: str | os.PathLike, *, subject_id: str = "sub-unknown",
                 session_id: str | None = None, notes: str = "",
                 metadata: dict[str, Any] | None = None, if_exists: str = "error") -> None:
        self.fname = check_output_path(fname, if_exists=if_exists)
        self.streams: dict[str, StreamWriter] = {}
        self._swmr = False
        try:
            self._file = h5py.File(self.fname, "w-", libver="latest")
        except OSError as err:
            raise OSError(f"Could not create session file {self.fname}: {err}") from err
        now = _dt.datetime.now(_dt.timezone.utc)
        attrs = {
            "schema": SCHEMA_NAME,
            "schema_version": SCHEMA_VERSION,
            "session_id": session_id or uuid.uuid4().hex,
            "subject_id": subject_id,
            "start_time": now.isoformat(),
            "start_unix_time": now.timestamp(),
            "software": "emosync",
            "software_version": software_version(),
            "host": socket.gethostname(),
            "notes": notes,
            "synthetic": False,
        }
        attrs.update(metadata or {})
        for key, value in attrs.items():
            self._file.attrs[key] = _attr_value(value)
        self._file.create_group(STREAMS_GROUP)
        self._file.flush()

    # -- structure ---------------------------------------------------------
    def add_stream(self, spec: StreamSpec) -> StreamWriter:
        """Create a stream and return its writer.

        Stream names must be unique in a session; use distinct names for distinct
        sources (the recorder suffixes duplicates). In SWMR mode the file is briefly
        closed and reopened, because HDF5 cannot add objects to a live SWMR file.
        """
        if spec.group_name in self.streams or spec.group_name in self._file[STREAMS_GROUP]:
            raise ValueError(f"Stream {spec.name!r} already exists in {self.fname}.")
        was_swmr = self._swmr
        if was_swmr:
            self._reopen(swmr=False)
        group = self._file[STREAMS_GROUP].create_group(spec.group_name)
        _create_datasets(group, spec)
        for key, value in _spec_attrs(spec).items():
            group.attrs[key] = _attr_value(value)
        writer = StreamWriter(self, spec)
        self.streams[spec.group_name] = writer
        if was_swmr:
            self._file.flush()
            self.start_swmr()
        return writer

    def start_swmr(self) -> None:
        """Enter SWMR mode: live readers may follow the file from now on."""
        self._file.swmr_mode = True
        self._swmr = True

    def _reopen(self, *, swmr: bool) -> None:
        self._file.close()
        self._file = h5py.File(self.fname, "r+", libver="latest")
        for writer in self.streams.values():
            writer._bind()
        self._swmr = False
        if swmr:
            self.start_swmr()

    # -- writing -----------------------------------------------------------
    def flush(self) -> None:
        """Push everything written so far to disk (at least every 0.5 s when recording)."""
        self._file.flush()

    @classmethod
    def append_to(cls, fname: str | os.PathLike) -> SessionWriter:
        """Open an existing, closed session to add streams to it (e.g. derived face-tracking streams).

        Existing streams are left untouched; new ones are created with :meth:`add_stream`.
        Closing does not change ``stop_time``.

        Parameters
        ----------
        fname : path-like
            A session file that no other process is writing.
        """
        fname = Path(fname)
        if not fname.is_file():
            raise FileNotFoundError(f"No session file at {fname}.")
        self = cls.__new__(cls)
        self.fname = fname
        self.streams = {}
        self._swmr = False
        self._appending = True
        try:
            self._file = h5py.File(fname, "r+", libver="latest")
        except OSError as err:
            raise OSError(f"Cannot open {fname} for adding streams: {err}. Is it still being recorded, or "
                          "read-only? Wait for the recording to stop, or copy the file first.") from None
        if self._file.attrs.get("schema") != SCHEMA_NAME or STREAMS_GROUP not in self._file:
            self._file.close()
            raise ValueError(f"{fname} is not an emosync session; cannot add streams to it.")
        return self

    _appending = False

    def close(self, **final_attrs: Any) -> None:
        """Flush and close the file, then store ``final_attrs`` (e.g. ``stop_time``) on the root."""
        if not self._file.id.valid:
            return
        self._file.flush()
        self._file.close()
        if not self._appending:
            final_attrs.setdefault("stop_time", _dt.datetime.now(_dt.timezone.utc).isoformat())
        if not final_attrs:
            return
        # SWMR forbids new attributes while live, so end-of-session facts go in after closing.
        with h5py.File(self.fname, "r+", libver="latest") as f:
            for key, value in final_attrs.items():
                f.attrs[key] = _attr_value(value)

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _attr_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, str) for v in value):
            return np.array(value, dtype=h5py.string_dtype()) if value else np.array([], dtype=h5py.string_dtype())
        return np.asarray(value)
    return value


def _spec_attrs(spec: StreamSpec) -> dict[str, Any]:
    unit = ""
    if spec.modality in ("emg", "eeg"):
        unit = "V"
    elif spec.modality == "depth":
        unit = "mm"
    elif spec.modality == "au":
        unit = "FACS intensity 0-5"
    attrs = {
        "name": spec.name,
        "type": spec.type,
        "source_id": spec.source_id,
        "hostname": spec.hostname,
        "nominal_srate": float(spec.nominal_srate),
        "channel_format": spec.channel_format,
        "channel_count": int(spec.channel_count),
        "channel_labels": list(spec.channel_labels),
        "channel_units": list(spec.channel_units),
        "channel_types": list(spec.channel_types),
        "modality": spec.modality,
        "encoding": spec.encoding or "",
        "frame_shape": list(spec.frame_shape or []),
        "compression": spec.compression,
        "can_drop_samples": bool(spec.can_drop_samples),
        "unit": unit,
        "info_xml": spec.info_xml,
    }
    attrs.update(spec.extra)
    return attrs


def _create_datasets(group: h5py.Group, spec: StreamSpec) -> None:
    shape = spec.sample_shape
    if spec.compression != "none":
        group.create_dataset("data", shape=(0,), maxshape=(None,), chunks=(64,),
                             dtype=h5py.vlen_dtype(np.uint8))
    elif spec.channel_format == "string":
        group.create_dataset("data", shape=(0, *shape), maxshape=(None, *shape),
                             chunks=(256, *shape), dtype=h5py.string_dtype("utf-8"))
    else:
        dtype = np.dtype(spec.stored_dtype)
        row_bytes = int(np.prod(shape)) * dtype.itemsize
        rows = int(max(1, min(4096, _CHUNK_BYTES // row_bytes)))
        group.create_dataset("data", shape=(0, *shape), maxshape=(None, *shape),
                             chunks=(rows, *shape), dtype=dtype)
    group.create_dataset("timestamps", shape=(0,), maxshape=(None,), chunks=(4096,), dtype=np.float64)
    group.create_dataset("clock_offsets", shape=(0, 3), maxshape=(None, 3), chunks=(256, 3),
                         dtype=np.float64)
    group["clock_offsets"].attrs["columns"] = np.array(
        ["collection_time_s", "offset_s", "uncertainty_s"], dtype=h5py.string_dtype()
    )
