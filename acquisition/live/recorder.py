"""Record LSL streams into a session file.

:class:`SessionRecorder` resolves streams by LSL predicate (``type='EMG'``, as
LabRecorder queries) or takes every visible stream, opens one inlet per stream
(``recover=True``: a restarted source with the same ``source_id`` rejoins the same
recording), pulls chunks into preallocated numpy buffers, measures clock offsets
every few seconds, and hands everything to a single writer thread that appends to
HDF5 and flushes at least every 0.5 s. Streams that appear later and match are
added while recording. Optionally a local camera is captured directly.

A stream that was found but cannot be recorded (it does not answer when its inlet opens, its
metadata cannot be stored, or its puller fails) is never dropped silently: it is logged, listed in
:attr:`SessionRecorder.failed_streams` and in the file's ``failed_streams`` root attribute, and,
unless ``allow_missing=True``, it stops the recording (what was recorded is kept) and
:meth:`SessionRecorder.stop` raises :class:`StreamOpenError`.

Threads: one puller and one clock-offset collector per stream (as LabRecorder),
one resolver, one writer; video compression runs in a small thread pool.
"""

from __future__ import annotations

import queue
import resource
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Sequence

import numpy as np
import pylsl

from acquisition.lsl import spec_from_stream_info, time_correction_ex
from acquisition.session.format import FRAME_COMPRESSIONS, IMAGE_COMPRESSIONS, StreamSpec
from acquisition.session.frame_codec import encode_frame
from acquisition.session.writer import SessionWriter, check_output_path
from acquisition.utils.docs import fill_doc
from acquisition.utils.logs import logger, verbose

if TYPE_CHECKING:  # OpenCV is imported only when a camera is recorded
    from acquisition.devices.camera import CameraCapture


class StreamNotFoundError(RuntimeError):
    """A requested LSL stream was not found in time."""


class RecordingError(RuntimeError):
    """Recording stopped because the session file could not be written."""


class DiskNearlyFullError(OSError):
    """The disk (or the process's file-size limit) is about to run out; recording stops cleanly."""


class StreamOpenError(RuntimeError):
    """A stream was found but could not be recorded; the recording stopped and the file was closed properly.

    Attributes
    ----------
    failed_streams : dict of str to dict
        Per stream name: ``error`` (what went wrong), ``type``, ``source_id`` and ``hostname``.
    counts : dict of str to int
        Samples written per stream that was recorded (as :meth:`SessionRecorder.stop` returns).
    """

    def __init__(self, message: str, *, failed_streams: dict[str, dict[str, str]], counts: dict[str, int]) -> None:
        super().__init__(message)
        self.failed_streams = failed_streams
        self.counts = counts


@dataclass
class RecorderSettings:
    """Timing of the recorder, in seconds (defaults follow DESIGN.md and beat LabRecorder's)."""

    wait_timeout_s: float = 10.0
    #: How long a found stream may take to answer its inlet (full info, open) before it counts as failed.
    open_timeout_s: float = 10.0
    resolve_interval_s: float = 1.0
    flush_interval_s: float = 0.5
    #: Seconds between pulls of a stream that had nothing more waiting (LabRecorder: 0.5 s); each pull wakes a
    #: thread, and the writer only flushes every ``flush_interval_s`` anyway.
    pull_interval_s: float = 0.25
    clock_offset_interval_s: float = 5.0
    clock_offset_timeout_s: float = 2.0
    inlet_buffer_s: int = 360
    inlet_buffer_max_bytes: int = 1_000_000_000
    min_free_bytes: int = 256 * 1024
    max_backlog_chunks: int = 2000
    #: ``--video-compression auto``: a form must store this many times the stream's nominal rate.
    auto_margin: float = 2.0
    #: ``auto``: frames to measure the forms on, and how long to wait for them (seconds).
    auto_calibration_frames: int = 12
    auto_calibration_timeout_s: float = 3.0


#: Threads that encode PNG/JPEG frames (filters run in the one writer thread).
_ENCODE_WORKERS = 2
#: What ``--video-compression`` accepts: a storage form, or ``auto`` (measured per stream at the start).
RECORD_COMPRESSIONS = (*FRAME_COMPRESSIONS, "auto")


def _stream_key(info: pylsl.StreamInfo) -> tuple[str, str]:
    # A restarted source has a new uid but the same name and source_id: it is the same stream.
    return (info.name(), info.source_id() or info.uid())


def _inlet_buffer_s(info: pylsl.StreamInfo, settings: RecorderSettings) -> int:
    """Seconds an inlet may buffer: LabRecorder's 6 minutes, unless that exceeds the byte cap (video)."""
    value_bytes = {pylsl.cf_double64: 8, pylsl.cf_int64: 8, pylsl.cf_int16: 2, pylsl.cf_int8: 1}.get(
        info.channel_format(), 4)
    bytes_per_s = info.channel_count() * value_bytes * max(info.nominal_srate(), 1.0)
    return int(max(5, min(settings.inlet_buffer_s, settings.inlet_buffer_max_bytes // bytes_per_s)))


def check_predicate(predicate: str) -> None:
    """Raise ``ValueError`` with an example if ``predicate`` is not a valid LSL (XPath 1.0) query."""
    try:
        pylsl.ContinuousResolver(pred=predicate)
    except RuntimeError:
        raise ValueError(
            f"Invalid LSL stream query {predicate!r}. Queries are XPath 1.0 predicates over the stream "
            "info, e.g. \"type='EEG'\", \"name='EMG' and hostname='lab-pc'\", \"starts-with(name,'Cam')\"."
        ) from None


def parse_compression(value: str | dict[str, str]) -> tuple[str, dict[str, str]]:
    """Parse a compression choice into ``(default, {stream name: codec})``.

    ``"png"`` applies to every video stream; ``"RGB=jpeg,Depth=png"`` or a dict names streams
    (unnamed video streams stay uncompressed). Each codec is one of :data:`RECORD_COMPRESSIONS`:
    ``none``, ``png``, ``jpeg``, ``lz4``, ``blosc2`` or ``auto``.
    """
    if isinstance(value, str) and "=" not in value:
        default, per_stream = value, {}
    else:
        if isinstance(value, str):
            pairs = [item.split("=", 1) for item in value.split(",") if item.strip()]
            if any(len(pair) != 2 for pair in pairs):
                raise ValueError(f"Cannot parse video compression {value!r}; use e.g. 'png' or 'RGB=jpeg,Depth=png'.")
            value = {name.strip(): codec.strip() for name, codec in pairs}
        default, per_stream = "none", dict(value)
    for name, codec in (("every video stream", default), *per_stream.items()):
        if codec not in RECORD_COMPRESSIONS:
            raise ValueError(f"Invalid video compression {codec!r} for {name}: allowed values are "
                             f"{', '.join(RECORD_COMPRESSIONS)} (e.g. 'lz4', or per stream 'RGB=auto,Depth=png').")
    return default, per_stream


class _StreamWorker:
    """Pulls one stream and measures its clock offsets."""

    def __init__(self, recorder: SessionRecorder, info: pylsl.StreamInfo, file_name: str) -> None:
        self.recorder = recorder
        self.resolved = info
        self.file_name = file_name
        self.n_received = 0
        self.last_receive_time = 0.0
        self.inlet: pylsl.StreamInlet | None = None
        self.auto_compression = False
        self.threads = [threading.Thread(target=self._pull, name=f"pull-{file_name}", daemon=True)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _open(self) -> StreamSpec | None:
        """Open the inlet and describe the stream from its full info; None if the recording stopped first.

        Raises
        ------
        TimeoutError
            If the stream did not answer within ``settings.open_timeout_s``.
        """
        s = self.recorder.settings
        inlet = pylsl.StreamInlet(self.resolved, max_buflen=_inlet_buffer_s(self.resolved, s), recover=True,
                                  processing_flags=0)
        stop = self.recorder._stop
        deadline = time.monotonic() + s.open_timeout_s
        while not stop.is_set():
            attempt_s = max(0.1, min(2.0, deadline - time.monotonic()))
            try:
                full_info = inlet.info(timeout=attempt_s)
                inlet.open_stream(timeout=attempt_s)
                break
            except pylsl.util.TimeoutError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"it was found but did not answer within {s.open_timeout_s:g} s (LSL inlet "
                                       "info/open timed out): the source may have stopped or be unreachable "
                                       "from this machine") from None
                logger.warning("Stream %s did not answer yet; retrying", self.file_name)
        else:
            return None
        self.inlet = inlet
        compression = self.recorder._compression_for(full_info)
        self.auto_compression = compression == "auto"
        return spec_from_stream_info(full_info, name=self.file_name,
                                     compression="none" if self.auto_compression else compression)

    def _pull(self) -> None:
        """Thread body: open the stream, then pull it until the recording stops; report any failure."""
        rec = self.recorder
        try:
            spec = self._open()
        except Exception as err:  # noqa: BLE001 -- a stream we cannot open must not stop the others' threads
            rec._stream_failed(self, f"could not be opened: {err}")
            return
        if spec is None:
            rec._stream_failed(self, "could not be opened: the recording stopped before the stream answered")
            return
        first: list[tuple[Any, np.ndarray]] = []
        if self.auto_compression and spec.encoding is not None:
            try:
                first = self._calibrate(spec)
            except Exception as err:  # noqa: BLE001 -- reported like any stream that cannot be recorded
                rec._stream_failed(self, f"could not choose its video compression: {err}")
                return
        rec._put(("create", spec))
        for samples, stamps in first:  # the calibration frames are recorded too
            rec._put(("data", self.file_name, self._convert(spec, samples, len(stamps)), stamps))
        offsets = threading.Thread(target=self._collect_offsets, name=f"offsets-{self.file_name}", daemon=True)
        offsets.start()
        self.threads.append(offsets)
        try:
            self._pull_chunks(spec)
        except Exception as err:  # noqa: BLE001 -- reported, and what was pulled so far is written
            rec._stream_failed(self, f"stopped after {self.n_received} samples: {err}")

    def _pull_chunks(self, spec: StreamSpec) -> None:
        """Pull chunks into a preallocated buffer and queue them, until the recording stops and the inlet is drained."""
        rec, inlet = self.recorder, self.inlet
        assert inlet is not None
        strings = spec.channel_format == "string"
        srate = spec.nominal_srate
        if spec.encoding is not None:
            max_samples = 16
        else:
            max_samples = int(max(64, min(8192, (srate or 100) * 2)))
        buffer = None if strings else np.empty((max_samples, spec.channel_count), dtype=inlet.np_dtype)
        draining_until = None
        while True:
            if rec._stop.is_set() and draining_until is None:
                draining_until = time.monotonic() + 0.3  # take what is already in the inlet's buffer
            try:
                samples, stamps = inlet.pull_chunk(timeout=0.0, max_samples=max_samples, dest_obj=buffer,
                                                   as_numpy=True)
            except pylsl.util.LostError:
                time.sleep(0.1)
                continue
            n = len(stamps)
            if n:
                self.n_received += n
                self.last_receive_time = time.monotonic()
                rec._put(("data", self.file_name, self._convert(spec, samples, n), np.asarray(stamps)))
            if n < max_samples:
                if draining_until is not None and (n == 0 or time.monotonic() > draining_until):
                    break
                time.sleep(rec.settings.pull_interval_s)
        inlet.close_stream()

    def _calibrate(self, spec: StreamSpec) -> list[tuple[np.ndarray, np.ndarray]]:
        """Pull the first frames, measure the storage forms on them and set ``spec.compression`` (``auto``).

        Returns the pulled chunks, which are recorded like any others.
        """
        rec, inlet = self.recorder, self.inlet
        assert inlet is not None
        s = rec.settings
        chunks: list[tuple[np.ndarray, np.ndarray]] = []
        n, wanted = 0, max(1, s.auto_calibration_frames)
        buffer = np.empty((wanted, spec.channel_count), dtype=inlet.np_dtype)  # a frame value by value is slow
        deadline = time.monotonic() + s.auto_calibration_timeout_s
        while n < wanted and time.monotonic() < deadline and not rec._stop.is_set():
            samples, stamps = inlet.pull_chunk(timeout=0.05, max_samples=wanted - n, dest_obj=buffer, as_numpy=True)
            if len(stamps):
                chunks.append((samples[: len(stamps)].copy(), np.asarray(stamps)))
                n += len(stamps)
                self.n_received += len(stamps)
                self.last_receive_time = time.monotonic()
        if n == 0:
            raise TimeoutError(f"no frame arrived within {s.auto_calibration_timeout_s:g} s to measure the storage "
                               "forms on; start the camera first, or name a form (e.g. --video-compression lz4)")
        frames = np.concatenate([c[0] for c in chunks]).view(spec.stored_dtype).reshape(n, *spec.frame_shape)
        rec._apply_auto_choice(spec, frames)
        return chunks

    def _convert(self, spec: StreamSpec, samples: np.ndarray, n: int) -> Any:
        if spec.channel_format == "string":
            return np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(samples)
        data = samples[:n]
        if spec.encoding is not None:
            frames = data.view(spec.stored_dtype).reshape(n, *spec.frame_shape)  # type: ignore[misc]
            if spec.compression in IMAGE_COMPRESSIONS:
                return [self.recorder._encoder.submit(encode_frame, f.copy(), spec.compression) for f in frames]
            return frames.copy()
        return data.copy()

    def _collect_offsets(self) -> None:
        rec, inlet = self.recorder, self.inlet
        assert inlet is not None
        s = rec.settings
        while not rec._stop.is_set():
            try:
                correction = time_correction_ex(inlet, timeout=s.clock_offset_timeout_s)
            except (pylsl.util.TimeoutError, pylsl.util.LostError) as err:
                # Unlike LabRecorder (App-LabRecorder#6) nothing is written after a failed measurement.
                logger.debug("No clock offset for %s this time: %s", self.file_name, err)
            else:
                collected = pylsl.local_clock() - correction.offset  # in the source's clock, as XDF stores it
                rec._put(("offsets", self.file_name, (collected, correction.offset, correction.uncertainty)))
            rec._stop.wait(s.clock_offset_interval_s)

    def join(self, timeout: float) -> None:
        for thread in list(self.threads):
            thread.join(timeout)


class SessionRecorder:
    """Record LSL streams (and optionally a local camera) into one session file.

    Parameters
    ----------
    fname : path-like
        The session file to create; an existing file is never overwritten.
    streams : sequence of str
        LSL predicates (XPath 1.0 over the stream info), e.g. ``"type='EMG'"``. Each
        must match at least one stream within ``settings.wait_timeout_s``; streams that
        match later are added while recording.
    all_streams : bool
        Record every stream visible on the network (now and later).
    camera : int | str | None
        Also capture this OpenCV camera (device index or video file/URL) directly.
    camera_fps : float | None
        Frame rate to ask of the camera (Hz; a video file is paced at this rate). The rate it
        delivers is measured over the first seconds, logged, and stored as the stream attribute
        ``delivered_fps``.
    camera_exposure : float | None
        Manual exposure to ask of the camera, in the driver's units (``cv2.CAP_PROP_EXPOSURE``;
        V4L2: 100 us steps); auto exposure is switched off first. None keeps auto exposure.
    video_compression : str | dict
        How video frames are stored: ``"none"`` (raw), ``"png"`` or ``"jpeg"`` (one image per frame,
        encoded in a thread pool), ``"lz4"`` or ``"blosc2"`` (raw frames through a lossless HDF5
        filter of ``hdf5plugin``), or ``"auto"``: at the start, the lossless forms are measured on the
        stream's first frames and the most compact one that keeps up with its nominal rate (with
        ``settings.auto_margin``) is chosen, logged and stored in the stream's ``compression_choice``
        attribute (see :mod:`acquisition.session.compression_choice`). One form for all video
        streams, or per stream name, e.g. ``{"RGB": "auto", "Depth": "png"}`` (others: none), or
        the same as text: ``"RGB=auto,Depth=png"``.
    subject_id, session_id, notes : str
        Stored in the session's root metadata.
    if_exists : ``"error"`` | ``"rename"``
        What to do if ``fname`` exists (see :func:`acquisition.session.writer.check_output_path`).
    allow_missing : bool
        What to do when a stream was found but cannot be recorded (see :attr:`failed_streams`): by
        default the recording stops at once and :meth:`stop` raises :class:`StreamOpenError`; with
        ``True`` the other streams go on being recorded. Either way the file lists the stream in its
        ``failed_streams`` root attribute.
    settings : RecorderSettings | None
        Timing parameters.

    Attributes
    ----------
    failed_streams : dict of str to dict
        Streams that were found but could not be recorded, by stream name: ``error`` (what went
        wrong), ``type``, ``source_id`` and ``hostname``.
    """

    def __init__(self, fname: str | Path, *, streams: Sequence[str] = (), all_streams: bool = False,
                 camera: int | str | None = None, camera_fps: float | None = None,
                 camera_exposure: float | None = None, video_compression: str | dict[str, str] = "none",
                 subject_id: str = "sub-unknown", session_id: str | None = None, notes: str = "",
                 if_exists: str = "error", allow_missing: bool = False,
                 settings: RecorderSettings | None = None) -> None:
        if not streams and not all_streams and camera is None:
            raise ValueError("Nothing to record: pass stream queries (--stream \"type='EEG'\"), "
                             "all_streams=True (--all) or a camera (--camera 0).")
        if streams and all_streams:
            raise ValueError("Pass either stream queries or all_streams=True, not both.")
        self._compression = parse_compression(video_compression)
        for predicate in streams:
            check_predicate(predicate)
        self.fname = Path(fname)
        self.predicates = list(streams)
        self.all_streams = all_streams
        self.camera_source = camera
        self._camera_options = {"fps": camera_fps, "exposure": camera_exposure}
        self.settings = settings or RecorderSettings()
        self._writer_args = dict(subject_id=subject_id, session_id=session_id, notes=notes)
        self._if_exists = if_exists
        self.allow_missing = allow_missing
        self.failed_streams: dict[str, dict[str, str]] = {}
        self._stop = threading.Event()
        self._queue: queue.Queue = queue.Queue()
        self._close_requested = threading.Event()
        self._workers: dict[tuple[str, str], _StreamWorker] = {}
        self._file_names: set[str] = set()
        self._resolvers: list[pylsl.ContinuousResolver] = []
        self._writer: SessionWriter | None = None
        self._writer_thread: threading.Thread | None = None
        self._resolver_thread: threading.Thread | None = None
        self._camera: CameraCapture | None = None
        self._encoder = ThreadPoolExecutor(max_workers=_ENCODE_WORKERS, thread_name_prefix="encode")
        self.error: BaseException | None = None
        self.start_time: float | None = None
        self._last_size = 0

    # -- public --------------------------------------------------------------
    @verbose
    @fill_doc
    def start(self, *, verbose: bool | str | None = None) -> None:
        """Find the streams, create the file and start recording (returns at once).

        Parameters
        ----------
        %(verbose)s

        Raises
        ------
        StreamNotFoundError
            If a query matched no stream within ``settings.wait_timeout_s``.
        """
        check_output_path(self.fname, if_exists="error" if self._if_exists == "error" else "rename")
        found = self._wait_for_streams()
        camera = None
        if self.camera_source is not None:
            from acquisition.devices.camera import CameraCapture

            camera = CameraCapture(self.camera_source, **self._camera_options)
            default, per_stream = self._compression
            compression = per_stream.get(camera.name, default)
            if compression == "auto":
                # A camera is captured in-process: measure on its first frame (it has only one so far).
                first = camera.first_frame_rgb()
                self._apply_auto_choice(camera.spec, np.repeat(first[None], self.settings.auto_calibration_frames, 0))
            else:
                camera.spec.compression = compression
        # The LSL clock at the wall-clock start lets exports place the first sample in real time.
        self._writer = SessionWriter(self.fname, if_exists="error", metadata={"start_lsl_time": pylsl.local_clock()},
                                     **self._writer_args)  # type: ignore[arg-type]
        self.start_time = time.monotonic()
        self._writer_thread = threading.Thread(target=self._write_loop, name="writer", daemon=True)
        self._writer_thread.start()
        for info in found:
            self._add_stream(info)
        if camera is not None:
            self._camera = camera
            self._put(("create", camera.spec))
            camera.start(lambda frame, stamp: self._put(("data", camera.spec.name, frame[None], [stamp])))
        self._resolver_thread = threading.Thread(target=self._resolve_loop, name="resolver", daemon=True)
        self._resolver_thread.start()
        logger.info("Recording %d stream(s) to %s", len(found) + (camera is not None), self.fname)

    def wait(self, duration_s: float | None = None, stop_event: threading.Event | None = None) -> None:
        """Block until ``duration_s`` has passed, ``stop_event`` is set, or writing failed."""
        if stop_event is None:  # one wake-up, not a polling loop: an idle recorder should cost no CPU
            self._stop.wait(duration_s)
            return
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while not self._stop.is_set() and not stop_event.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            self._stop.wait(0.05 if deadline is None else max(0.0, min(0.05, deadline - time.monotonic())))

    def stop(self) -> dict[str, int]:
        """Stop recording, write what is buffered, close the file.

        Returns
        -------
        counts : dict of str to int
            Samples written per stream.

        Raises
        ------
        RecordingError
            If the file could not be written (disk full, file removed...). What was
            flushed before the failure stays in the file.
        StreamOpenError
            If a stream was found but could not be recorded and ``allow_missing`` is False.
            The file was closed properly and holds everything recorded.
        """
        self._stop.set()
        if self._camera is not None:
            self._camera.stop()
            self._put(("final_attrs", self._camera.spec.group_name, self._camera.rate_report()))
        for worker in list(self._workers.values()):
            worker.join(timeout=5)
        self._put(("close", None))
        self._close_requested.set()
        if self._writer_thread is not None:
            self._writer_thread.join()
        self._encoder.shutdown(wait=True)
        counts = {name: w.n_samples for name, w in self._writer.streams.items()} if self._writer else {}
        if self.error is not None:
            raise RecordingError(
                f"Recording to {self.fname} stopped: {self.error}. Data flushed before the failure is kept "
                "in the file (open it with `emosync info`). Free disk space or choose another location, "
                "then record again to a new file."
            ) from self.error
        if self.failed_streams and not self.allow_missing:
            raise StreamOpenError(
                f"{self._failure_text()}. The recording to {self.fname} stopped; everything recorded until then is "
                "kept, and the file lists the failure in its failed_streams attribute. Check the device or its "
                "LSL app, then record again (or pass --allow-missing / allow_missing=True to record without it).",
                failed_streams=dict(self.failed_streams), counts=counts)
        return counts

    def status(self) -> dict[str, dict[str, float]]:
        """Live view per stream: samples received and seconds since the last chunk."""
        now = time.monotonic()
        out = {w.file_name: {"received": w.n_received,
                             "idle_s": now - w.last_receive_time if w.last_receive_time else float("nan")}
               for w in self._workers.values()}
        if self._camera is not None:
            out[self._camera.spec.name] = {"received": self._camera.n_frames, "idle_s": 0.0}
        return out

    @property
    def failed(self) -> bool:
        """True when recording stopped on its own: writing failed, or a stream failed without ``allow_missing``."""
        return self.error is not None or (bool(self.failed_streams) and not self.allow_missing)

    # -- internals -----------------------------------------------------------
    def _compression_for(self, info: pylsl.StreamInfo) -> str:
        default, per_stream = self._compression
        return per_stream.get(info.name(), default)

    def _apply_auto_choice(self, spec: StreamSpec, frames: np.ndarray) -> None:
        """Measure the storage forms on ``frames``; set ``spec.compression`` and record why (``auto``)."""
        # Imported here: the trial writes need OpenCV, which recording without ``auto`` never loads.
        from acquisition.session.compression_choice import choose_frame_compression, describe_choice

        choice = choose_frame_compression(spec, frames, margin=self.settings.auto_margin,
                                          image_workers=_ENCODE_WORKERS)
        spec.compression = choice.compression
        spec.extra.update(describe_choice(choice))
        logger.info("Stream %s: video compression auto -> %s (%s)", spec.name, choice.compression, choice.reason)

    def _put(self, item: tuple) -> None:
        self._queue.put(item)

    def _stream_failed(self, worker: _StreamWorker, reason: str) -> None:
        """Record that ``worker``'s stream cannot be recorded; stop the recording unless ``allow_missing``."""
        info = worker.resolved
        self.failed_streams[worker.file_name] = {"error": reason, "type": info.type(), "source_id": info.source_id(),
                                                 "hostname": info.hostname()}
        logger.error("Stream %s (type %r, source_id %r, host %s) %s", worker.file_name, info.type(),
                     info.source_id(), info.hostname(), reason)
        if not self.allow_missing:
            self._stop.set()

    def _failure_text(self) -> str:
        """One sentence per failed stream, for errors and logs."""
        return "; ".join(f"Stream {name!r} (type {f['type']!r}, source_id {f['source_id']!r}) {f['error']}"
                         for name, f in self.failed_streams.items())

    def _visible(self) -> list[pylsl.StreamInfo]:
        found: dict[tuple[str, str], pylsl.StreamInfo] = {}
        for resolver in self._resolvers:
            for info in resolver.results():
                found.setdefault(_stream_key(info), info)
        return list(found.values())

    def _wait_for_streams(self) -> list[pylsl.StreamInfo]:
        if self.all_streams:
            self._resolvers = [pylsl.ContinuousResolver(forget_after=5.0)]
        else:
            self._resolvers = [pylsl.ContinuousResolver(pred=p, forget_after=5.0) for p in self.predicates]
        if not self._resolvers:
            return []
        deadline = time.monotonic() + self.settings.wait_timeout_s
        while True:
            per_resolver = [resolver.results() for resolver in self._resolvers]
            if all(per_resolver):
                # Give slower streams of the same query a moment to show up too.
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
                return self._visible()
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        visible = pylsl.resolve_streams(wait_time=1.0)
        listing = ", ".join(f"{i.name()} (type={i.type()!r}, source_id={i.source_id()!r}, host={i.hostname()})"
                            for i in visible) or "none"
        if self.all_streams:
            raise StreamNotFoundError(
                f"No LSL stream is visible after {self.settings.wait_timeout_s:g} s. Start your devices' LSL "
                "apps (or `emosync simulate`), check that this machine is on their network, then retry.")
        missing = [p for p, r in zip(self.predicates, per_resolver) if not r]
        raise StreamNotFoundError(
            f"No LSL stream matched {missing} within {self.settings.wait_timeout_s:g} s. Visible streams: "
            f"{listing}. Check the query (e.g. \"type='EEG'\"), start the device, or raise --wait.")

    def _add_stream(self, info: pylsl.StreamInfo) -> None:
        key = _stream_key(info)
        if key in self._workers:
            return
        if not info.source_id():
            logger.warning("Stream %s has no source_id: if its source restarts it cannot rejoin this recording.",
                           info.name())
        file_name = info.name().replace("/", "_")
        n = 2
        while file_name in self._file_names:
            file_name = f"{info.name().replace('/', '_')}_{n}"
            n += 1
        self._file_names.add(file_name)
        worker = _StreamWorker(self, info, file_name)
        self._workers[key] = worker
        if self.start_time is not None and time.monotonic() - self.start_time > 1.0:
            logger.info("Stream %s (%s) appeared and joins the recording", info.name(), info.type())
        worker.start()

    def _resolve_loop(self) -> None:
        while not self._stop.wait(self.settings.resolve_interval_s):
            for info in self._visible():
                self._add_stream(info)

    def _write_loop(self) -> None:
        """Every flush interval, drain the queue, append what arrived once per stream, then flush.

        Batching matters: each HDF5 append costs a few h5py calls whatever its size, so one
        append per stream per 0.5 s instead of one per pulled chunk cuts the writer's CPU. For
        the same reason the writer sleeps between flushes instead of waking for every queued
        chunk (a thread switch each); :meth:`stop` wakes it to close.
        """
        writer = self._writer
        assert writer is not None
        last_flush = time.monotonic()
        batches: dict[str, list[tuple[Any, np.ndarray]]] = {}
        offsets: dict[str, list[tuple[float, float, float]]] = {}
        closing = False
        last_backlog_warning = 0.0
        while True:
            self._close_requested.wait(max(0.0, self.settings.flush_interval_s - (time.monotonic() - last_flush)))
            try:
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    kind = item[0]
                    if kind == "close":
                        closing = True
                    elif kind == "create":
                        writer.add_stream(item[1])
                        if not writer._swmr:
                            writer.start_swmr()
                    elif kind == "data":
                        batches.setdefault(item[1], []).append((item[2], item[3]))
                    elif kind == "offsets":
                        offsets.setdefault(item[1], []).append(item[2])
                    elif kind == "final_attrs" and item[1] in writer.streams:
                        writer.streams[item[1]].final_attrs.update(item[2])
                done = closing and self._queue.empty()
                if done or time.monotonic() - last_flush >= self.settings.flush_interval_s:
                    self._write_batches(writer, batches, offsets)
                    writer.flush()
                    last_flush = time.monotonic()
                    self._check_space(writer)
                    backlog = self._queue.qsize()
                    if backlog > self.settings.max_backlog_chunks and last_flush - last_backlog_warning > 10:
                        last_backlog_warning = last_flush
                        logger.warning("The writer is falling behind (%d chunks waiting): the disk may be too slow "
                                       "for this data rate; consider --video-compression.", backlog)
                if done:
                    break
            except Exception as err:  # noqa: BLE001 -- any write failure must stop the recording loudly
                self.error = err
                self._stop.set()
                logger.error("Writing %s failed: %s. Stopping the recording; data flushed so far is kept.",
                             self.fname, err)
                break
        if isinstance(self.error, OSError) and not isinstance(self.error, DiskNearlyFullError):
            # After an I/O error inside HDF5 the library's state is undefined (closing can crash
            # the process); the file as of the last flush is valid, so leave it untouched.
            return
        final: dict[str, Any] = {"error": str(self.error)} if self.error else {}
        if self.failed_streams:
            final["failed_streams"] = dict(self.failed_streams)
        try:
            writer.close(**final)
        except Exception as err:  # noqa: BLE001
            logger.error("Could not close %s cleanly: %s", self.fname, err)

    @staticmethod
    def _write_batches(writer: SessionWriter, batches: dict[str, list[tuple[Any, np.ndarray]]],
                       offsets: dict[str, list[tuple[float, float, float]]]) -> None:
        for name in list(batches):
            stream = writer.streams.get(name)
            if stream is None:  # its "create" is still on the way: keep the chunks
                continue
            chunks = batches.pop(name)
            stamps = np.concatenate([np.asarray(c[1], dtype=np.float64) for c in chunks])
            if isinstance(chunks[0][0], list):  # frames being encoded in the pool
                stream.append_encoded([f.result() for c in chunks for f in c[0]], stamps)
            else:
                stream.append(np.concatenate([c[0] for c in chunks]), stamps)
        for name in list(offsets):
            stream = writer.streams.get(name)
            if stream is not None:
                rows = np.array(offsets.pop(name))
                stream.append_clock_offsets(rows[:, 0], rows[:, 1], rows[:, 2])

    def _check_space(self, writer: SessionWriter) -> None:
        size = self.fname.stat().st_size
        grown, self._last_size = size - self._last_size, size
        room = shutil.disk_usage(self.fname.parent).free
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY:
            room = min(room, limit - size)
        # Stop while HDF5 can still close the file properly: keep several flushes' worth in reserve.
        reserve = self.settings.min_free_bytes + 4 * max(grown, 0)
        if room < reserve:
            raise DiskNearlyFullError(
                f"only {room / 1e6:.1f} MB left for {self.fname} (disk space or file-size limit), "
                f"less than the {reserve / 1e6:.1f} MB reserve")


__all__ = ["DiskNearlyFullError", "RecorderSettings", "RecordingError", "SessionRecorder", "StreamNotFoundError",
           "StreamOpenError", "check_predicate"]
