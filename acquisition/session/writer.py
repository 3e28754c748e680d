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

Derived streams: analyses (``emosync annotate``, ``emosync spot``, ...) add their results to a
closed session with :meth:`SessionWriter.replace_derived` and remove them with
:meth:`SessionWriter.remove_streams`. A derived stream carries the attribute ``derived_by``
(the analysis); recorded streams never do, and are never removed. What is safe with HDF5
shaped the design: HDF5 has no journal, so a process killed while it holds a file open for
writing can leave the file's metadata inconsistent, and a file created with the newest
format stays marked "open for write" (unreadable until ``h5clear -s``). So an analysis
never holds the session open for writing while it works: its streams go to a scratch file
beside the session, and only the commit opens the session, copies them in under temporary
names (``~pending-`` plus the ``derived_pending`` attribute), flushes, removes the replaced
streams and renames the new ones (link changes), and closes it: a window of the copy's
length (10 ms for annotate's streams of 150 VGA frames, under 1 % of its run time). A failed
or interrupted analysis leaves the session as it was; temporary streams that a killed commit
left are removed by the next one.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import socket
import tempfile
import uuid
from pathlib import Path
from typing import Any
from collections.abc import Sequence

import h5py
import numpy as np

from acquisition.utils.logs import logger
from acquisition.utils.version import software_version
from acquisition.session.frame_codec import encode_frame, filter_options, open_frame_dataset
from acquisition.session.format import (FILTER_COMPRESSIONS, IMAGE_COMPRESSIONS, SCHEMA_NAME, SCHEMA_VERSION,
                                        STREAMS_GROUP, StreamSpec)

#: Target size of one numeric HDF5 chunk: small enough to flush often, large enough to read fast.
_CHUNK_BYTES = 256 * 1024
#: Stream attribute naming the analysis that wrote a derived stream (``"emosync annotate"``).
DERIVED_BY_ATTR = "derived_by"
#: Attribute of a derived stream that is still being written: the name it will get once complete.
PENDING_ATTR = "derived_pending"
#: Attributes that marked derived streams before ``derived_by`` existed, and the analysis they name.
_LEGACY_DERIVED_ATTRS = {"spotting_source": "emosync spot"}


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
        #: Stream attributes known only once recording ran (e.g. a camera's delivered frame rate),
        #: stored when the session closes (SWMR forbids new attributes while a file is live).
        self.final_attrs: dict[str, Any] = {}
        self._bind()

    def _bind(self) -> None:
        group = self._session._file[STREAMS_GROUP][self.spec.group_name]
        raw_frames = self.spec.frame_shape is not None and self.spec.compression not in IMAGE_COMPRESSIONS
        self._data = open_frame_dataset(group) if raw_frames else group["data"]
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
            if spec.compression in IMAGE_COMPRESSIONS:
                self.append_encoded([encode_frame(frame, spec.compression) for frame in data], timestamps)
                return
        self._write(data, timestamps)

    def append_encoded(self, frames: Sequence[np.ndarray], timestamps: np.ndarray | Sequence[float]) -> None:
        """Append frames that are already encoded with the stream's compression (see :mod:`.frame_codec`)."""
        timestamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        if len(frames) != timestamps.shape[0]:
            raise ValueError(f"{len(frames)} encoded frames but {timestamps.shape[0]} timestamps")
        if self.spec.compression not in IMAGE_COMPRESSIONS:
            raise ValueError(f"Stream {self.spec.name!r} stores raw frames (compression {self.spec.compression!r}); "
                             "use append().")
        self._write(list(frames), timestamps)

    def _write(self, data: np.ndarray | list[np.ndarray], timestamps: np.ndarray) -> None:
        n0, n = self.n_samples, timestamps.shape[0]
        # Data first, then time stamps: a reader trims to the shorter of the two.
        if isinstance(data, list):
            self._data.resize(n0 + n, axis=0)
            # Encoded frames one by one: h5py reads equal-length byte arrays as one 2-D block.
            for i, frame in enumerate(data):
                self._data[n0 + i] = frame
        else:
            _append_rows(self._data, n0, data)
        _append_rows(self._timestamps, n0, timestamps)
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


def _append_rows(dataset: h5py.Dataset, n0: int, rows: np.ndarray) -> None:
    """Grow ``dataset`` along axis 0 and write ``rows`` at ``n0``.

    Numeric rows go through h5py's low-level calls: the recorder appends to every stream twice a
    second, and ``Dataset.resize`` plus slice assignment cost 2.5x more CPU than the same
    dataspace calls made directly (87 vs 35 us per append, measured), which shows at low data
    rates. Strings (object arrays) keep the high-level path, which converts them.
    """
    n = rows.shape[0]
    if rows.dtype.kind == "O":
        dataset.resize(n0 + n, axis=0)
        dataset[n0 : n0 + n] = rows
        return
    rows = np.ascontiguousarray(rows, dtype=dataset.dtype)
    dataset.id.set_extent((n0 + n, *rows.shape[1:]))
    file_space = dataset.id.get_space()
    file_space.select_hyperslab((n0,) + (0,) * (rows.ndim - 1), rows.shape)
    dataset.id.write(h5py.h5s.create_simple(rows.shape), file_space, rows)


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
        """Open an existing, closed session to add streams to it, or to remove derived ones.

        Existing streams are left untouched; new ones are created with :meth:`add_stream`.
        Closing does not change ``stop_time``. An analysis that replaces its own earlier
        results uses :meth:`replace_derived` instead, which holds the file open only briefly.

        Parameters
        ----------
        fname : path-like
            A session file that no process is writing.

        Raises
        ------
        OSError
            If the file cannot be opened for writing: it is being recorded (by another process,
            or by this one in SWMR mode), or it is read-only.
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
        if self._file.swmr_mode:  # HDF5 hands this process its own live recording's handle
            self._file.close()
            raise OSError(f"Cannot open {fname} for adding streams: this process is still recording it (SWMR mode). "
                          "Stop the recording first.")
        if self._file.attrs.get("schema") != SCHEMA_NAME or STREAMS_GROUP not in self._file:
            self._file.close()
            raise ValueError(f"{fname} is not an emosync session; cannot add streams to it.")
        return self

    _appending = False

    # -- derived streams ---------------------------------------------------
    @classmethod
    def replace_derived(cls, fname: str | os.PathLike, specs: Sequence[StreamSpec], *, derived_by: str,
                        replace: Sequence[str] = ()) -> DerivedStreams:
        """Write derived streams that take the place of ``replace`` in a closed session once they are complete.

        The new streams are written into a scratch file beside the session, so the session is
        only read while an analysis runs. :meth:`DerivedStreams.commit` (on leaving the ``with``
        block without an error) then opens the session, copies the new streams in under
        temporary names, removes the streams of ``replace`` and renames the new ones;
        :meth:`DerivedStreams.abort` (on an error or interruption) deletes the scratch file and
        leaves the session untouched.

        Parameters
        ----------
        fname : path-like
            A closed session file (not being recorded). Close any :class:`Session` of it in
            this process before the commit: HDF5 cannot open a file for writing that the same
            process holds read-only.
        specs : sequence of StreamSpec
            The new streams. Their ``derived_by`` attribute is set to ``derived_by``.
        derived_by : str
            The analysis writing them, e.g. ``"emosync annotate"``; stored as the ``derived_by``
            attribute, which marks a stream as derived (removable).
        replace : sequence of str
            Existing streams to remove at commit; each must be derived by the same analysis.
            The new streams may reuse their names.

        Returns
        -------
        streams : DerivedStreams
            Use it as a context manager; ``streams[name]`` is the :class:`StreamWriter` of a new stream.

        Raises
        ------
        ValueError
            If a stream of ``replace`` is missing, recorded or derived by another analysis, if a
            spec names another ``derived_by``, or if a new name is taken by a stream not in
            ``replace`` (checked now and again at commit).
        OSError
            If the session cannot be opened for writing (being recorded, read-only).
        """
        return DerivedStreams(fname, specs, derived_by=derived_by, replace=replace)

    def remove_streams(self, names: Sequence[str], *, derived_by: str | None = None) -> None:
        """Remove derived streams (an analysis' output) from the file.

        Recorded streams are never removed: a stream can go only if it has a ``derived_by``
        attribute. All names are checked before anything is removed. HDF5 does not give the
        space of removed streams back to the file system; ``h5repack`` does.

        Parameters
        ----------
        names : sequence of str
            The streams to remove.
        derived_by : str | None
            If given, every stream must have been written by this analysis (e.g. ``"emosync spot"``).

        Raises
        ------
        ValueError
            If a name is not a stream of the file, is a recorded stream, or was written by
            another analysis; nothing is removed then.
        RuntimeError
            If the file is in SWMR mode (a live recording).
        """
        self._check_structure_change("remove streams")
        for key in self._derived_keys(names, derived_by):
            self._unlink(key)
        self._file.flush()

    def _check_structure_change(self, what: str) -> None:
        if not self._file.id.valid:
            raise ValueError(f"Cannot {what}: the writer of {self.fname} is closed.")
        if self._swmr:
            raise RuntimeError(
                f"Cannot {what} in {self.fname} while it is being recorded (SWMR mode): live readers follow its "
                "structure. Stop the recording, then run the analysis on the closed file."
            )

    def _derived_keys(self, names: Sequence[str], derived_by: str | None) -> list[str]:
        """Group names of ``names``, after checking that each is a derived stream (of ``derived_by``)."""
        streams = self._file[STREAMS_GROUP]
        keys, problems = [], []
        for name in dict.fromkeys(str(n) for n in names):
            key = name.replace("/", "_")
            author = _derived_by(streams[key]) if key in streams else None
            if author is None:
                problems.append(f"{name!r} is not a stream of this file")
            elif not author:
                problems.append(f"{name!r} is a recorded stream (no '{DERIVED_BY_ATTR}' attribute), and recorded "
                                "data are never removed")
            elif derived_by is not None and author != derived_by:
                problems.append(f"{name!r} was written by {author!r}, not {derived_by!r}")
            else:
                keys.append(key)
        if problems:
            raise ValueError(f"Refusing to remove streams from {self.fname}: {'; '.join(problems)}. "
                             "Nothing was removed.")
        return keys

    def _check_replacement(self, names: Sequence[str], replace: Sequence[str], derived_by: str) -> list[str]:
        """Group names of the streams to replace; raises if one may not go or a new name is taken."""
        self._check_structure_change("replace derived streams")
        old_keys = self._derived_keys(replace, derived_by)
        streams = self._file[STREAMS_GROUP]
        taken = [n for n in names if n.replace("/", "_") in streams and n.replace("/", "_") not in old_keys]
        if taken:
            raise ValueError(f"{self.fname} already has streams named {taken}, and they are not being replaced; "
                             "choose other names, or name them in replace= to replace them.")
        return old_keys

    def _swap_in(self, scratch: h5py.File, names: Sequence[str], replace: Sequence[str], derived_by: str) -> None:
        """Copy the streams ``names`` of ``scratch`` in under temporary names, then swap them for ``replace``."""
        self._remove_stale_pending()
        old_keys = self._check_replacement(names, replace, derived_by)
        streams = self._file[STREAMS_GROUP]
        token = uuid.uuid4().hex[:8]
        pending = {name: f"{name.replace('/', '_')}~pending-{token}" for name in names}
        try:
            for name, tmp in pending.items():
                scratch.copy(scratch[STREAMS_GROUP][name.replace("/", "_")], streams, name=tmp)
                streams[tmp].attrs["name"] = tmp
                streams[tmp].attrs[PENDING_ATTR] = name
            self._file.flush()  # the new data are on disk before anything old goes
        except BaseException:
            for tmp in pending.values():
                if tmp in streams:
                    del streams[tmp]
            raise
        for key in old_keys:
            self._unlink(key)
        for name, tmp in pending.items():
            streams.move(tmp, name.replace("/", "_"))
            group = streams[name.replace("/", "_")]
            group.attrs["name"] = name
            del group.attrs[PENDING_ATTR]
        self._file.flush()

    def _remove_stale_pending(self) -> None:
        """Remove the half-copied streams of a commit that was killed."""
        streams = self._file[STREAMS_GROUP]
        stale = [key for key, group in streams.items() if PENDING_ATTR in group.attrs]
        for key in stale:
            self._unlink(key)
        if stale:
            logger.warning("Removed %d incomplete derived streams of %s that an interrupted analysis left: %s",
                           len(stale), self.fname, ", ".join(stale))

    def _unlink(self, key: str) -> None:
        del self._file[STREAMS_GROUP][key]
        self.streams.pop(key, None)

    def close(self, **final_attrs: Any) -> None:
        """Flush and close the file, then store ``final_attrs`` (e.g. ``stop_time``) on the root."""
        if not self._file.id.valid:
            return
        self._file.flush()
        self._file.close()
        if not self._appending:
            final_attrs.setdefault("stop_time", _dt.datetime.now(_dt.timezone.utc).isoformat())
        stream_attrs = {w.spec.group_name: w.final_attrs for w in self.streams.values() if w.final_attrs}
        if not final_attrs and not stream_attrs:
            return
        # SWMR forbids new attributes while live, so end-of-session facts go in after closing.
        with h5py.File(self.fname, "r+", libver="latest") as f:
            for key, value in final_attrs.items():
                f.attrs[key] = _attr_value(value)
            for group_name, attrs in stream_attrs.items():
                for key, value in attrs.items():
                    f[STREAMS_GROUP][group_name].attrs[key] = _attr_value(value)

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class DerivedStreams:
    """New derived streams, written to a scratch file; they enter the session only when complete.

    Obtain one from :meth:`SessionWriter.replace_derived`. As a context manager it commits on
    a normal exit and aborts on an exception (including ``KeyboardInterrupt``).

    Examples
    --------
    >>> with SessionWriter.replace_derived("s.h5", [spec], derived_by="my analysis",  # doctest: +SKIP
    ...                                    replace=["RGB-Score"]) as new:
    ...     new["RGB-Score"].append(scores, stamps)
    """

    def __init__(self, fname: str | os.PathLike, specs: Sequence[StreamSpec], *, derived_by: str,
                 replace: Sequence[str]) -> None:
        self.fname = Path(fname)
        self.derived_by = derived_by
        self._replace = list(dict.fromkeys(str(n) for n in replace))
        specs = _derived_specs(specs, derived_by)
        # Fail now, not after an hour of analysis: the session must open for writing and accept the names.
        with SessionWriter.append_to(self.fname) as session:
            session._check_replacement([spec.name for spec in specs], self._replace, derived_by)
        self._scratch = SessionWriter(_scratch_path(self.fname), subject_id="derived-streams",
                                      metadata={"scratch_for": str(self.fname), "derived_by": derived_by})
        self._state = "open"
        try:
            for spec in specs:
                self._scratch.add_stream(spec)
        except BaseException:
            self.abort()
            raise

    @property
    def names(self) -> list[str]:
        """The names of the new streams (not discarded)."""
        return [writer.spec.name for writer in self._scratch.streams.values()]

    def __getitem__(self, name: str) -> StreamWriter:
        """The writer of the new stream ``name``."""
        writer = self._scratch.streams.get(str(name).replace("/", "_"))
        if writer is None or writer.spec.name != name:
            raise KeyError(f"{name!r} is not one of the new derived streams {self.names}.")
        return writer

    def flush(self) -> None:
        """Push what was written so far to the scratch file."""
        self._scratch.flush()

    def discard(self, names: Sequence[str]) -> None:
        """Drop some new streams before the commit (e.g. outputs that turned out empty)."""
        self._check_open()
        for name in names:
            self._scratch._unlink(self[name].spec.group_name)

    def commit(self) -> list[str]:
        """Copy the new streams into the session, remove the replaced ones, and delete the scratch file.

        Returns
        -------
        names : list of str
            The streams written.

        Raises
        ------
        ValueError, OSError
            If the session changed meanwhile so that the swap is no longer allowed, or cannot be
            opened for writing; the session is then left as it was.
        """
        self._check_open()
        names = self.names
        self._state = "aborted"  # whatever happens below, this object is spent
        scratch_path = self._scratch.fname
        try:
            self._close_scratch()
            with h5py.File(scratch_path, "r") as scratch, SessionWriter.append_to(self.fname) as session:
                session._swap_in(scratch, names, self._replace, self.derived_by)
        finally:
            scratch_path.unlink(missing_ok=True)
        self._state = "committed"
        return names

    def abort(self) -> None:
        """Delete the scratch file; the session stays as it was. Does nothing after commit or abort."""
        if self._state != "open":
            return
        self._state = "aborted"
        self._close_scratch()
        self._scratch.fname.unlink(missing_ok=True)

    def _close_scratch(self) -> None:
        # Not SessionWriter.close(): the scratch file needs no stop_time, only its data on disk.
        if self._scratch._file.id.valid:
            self._scratch._file.close()

    def _check_open(self) -> None:
        if self._state != "open":
            raise RuntimeError(f"These derived streams of {self.fname} were already {self._state}.")

    def __enter__(self) -> DerivedStreams:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def _derived_specs(specs: Sequence[StreamSpec], derived_by: str) -> list[StreamSpec]:
    """``specs`` with their ``derived_by`` attribute set; raises on duplicates or another analysis' name."""
    names = [spec.name for spec in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"Derived streams {duplicates} are given more than once.")
    others = [spec.extra[DERIVED_BY_ATTR] for spec in specs
              if spec.extra.get(DERIVED_BY_ATTR, derived_by) != derived_by]
    if others:
        raise ValueError(f"Specs carry derived_by={others[0]!r} but are written as derived_by={derived_by!r}.")
    return [dataclasses.replace(spec, extra={**spec.extra, DERIVED_BY_ATTR: derived_by}) for spec in specs]


def _scratch_path(fname: Path) -> Path:
    """A new file name beside the session (same disk, which has room for it), else in the temp folder.

    Hidden and not ``*.h5``, so tools that collect a folder's sessions never take it for one.
    """
    folder = fname.resolve().parent
    if not os.access(folder, os.W_OK):
        folder = Path(tempfile.gettempdir())
    return folder / f".{fname.name}.{uuid.uuid4().hex[:8]}.derived.tmp"


def _derived_by(group: h5py.Group) -> str:
    """The analysis that wrote a stream group, or ``""`` for a recorded stream."""
    author = group.attrs.get(DERIVED_BY_ATTR, "")
    if isinstance(author, bytes):
        author = author.decode()
    if author:
        return str(author)
    return next((by for attr, by in _LEGACY_DERIVED_ATTRS.items() if attr in group.attrs), "")


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
    if spec.compression in FILTER_COMPRESSIONS:
        # One frame per chunk: a frame is read without its neighbours, and a time window is read
        # chunk by chunk straight into the caller's array (benchmarks/highspeed.py times it).
        group.create_dataset("data", shape=(0, *shape), maxshape=(None, *shape), chunks=(1, *shape),
                             dtype=np.dtype(spec.stored_dtype),
                             **filter_options(spec.compression, np.dtype(spec.stored_dtype).itemsize))
    elif spec.compression in IMAGE_COMPRESSIONS:
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
