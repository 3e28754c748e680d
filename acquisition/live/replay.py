"""Replay a recorded session (or an XDF file) as live LSL streams, with its original timing.

:class:`SessionPlayer` opens one LSL outlet per recorded stream, with the recording's
metadata (type, rate, format, ``source_id``, the ``desc`` of the original stream info
including channels, and the video ``encoding``/``frame`` of camera streams), and pushes
the samples in real time (or ``speed`` times faster) with explicit time stamps::

    new_stamp = replay_t0 + (times - window_start) / speed

``times`` are each stream's *synchronized* stamps (:attr:`acquisition.session.reader.Stream.times`),
so streams recorded from different hosts stay aligned with each other, as they were
in the recorder's clock. Pushing uses ``push_chunk`` with 2-D numpy arrays (video frames
as one row of ``H * W * C`` values in the stream's LSL format: RGB8 as int8, DEPTH16 as
int16, as the simulated rig publishes them), never a per-sample Python loop. Each stream
has its own pacing thread; samples are pushed once their stamp is due, as a live source
would, and read from the session file in blocks just ahead of time: only the time
stamps (a few float64 arrays per stream) are held in memory, never the sample data.

An XDF input is first imported into a temporary session with
:func:`acquisition.io.xdf.import_xdf` (one pass over the file, memory-bounded),
so the replay sees exactly what ``emosync import-xdf`` would store, synchronized the
same way. pyxdf's own ``playback_lsl`` instead loads the whole file into memory and
restamps with the current time.

Use it to test pipelines without hardware (like mne-lsl's ``PlayerLSL``), or to feed a
recorder for round-trip tests (``tests/acquisition/test_replay.py``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pylsl

from acquisition.utils.docs import fill_doc
from acquisition.utils.logs import logger, verbose
from acquisition.lsl import make_stream_info
from acquisition.session.reader import Session, Stream, open_session
from acquisition.session.format import FRAME_ENCODINGS

#: desc children regenerated from the stored metadata instead of copied from the original XML:
#: the stored channel units can differ from the original (an XDF in µV is stored in V).
_REGENERATED = ("channels", "encoding", "frame", "synchronization", "manufacturer")
#: Seconds between choosing the replay clock origin and the first push, so the first samples are not late.
_LEAD_S = 0.05
#: Longest sleep of a pacing thread, seconds: bounds how late ``stop`` is noticed.
_MAX_SLEEP_S = 0.02


@dataclass
class _Track:
    """One stream being replayed: which samples, when, and where they go."""

    stream: Stream
    lsl_name: str
    first: int  # index range [first, stop) of the session stream
    stop: int
    offsets_s: np.ndarray  # replay time of each sample relative to the replay origin, shape (stop - first,)
    due_s: np.ndarray  # running maximum of offsets_s: a sample goes out once it and all before it are due
    lsl_format: str
    block_rows: int
    outlet: pylsl.StreamOutlet | None = None
    pushed: int = 0
    loops: int = 0
    max_lag_s: float = 0.0


@fill_doc
class SessionPlayer:
    """Publish a session's streams as live LSL outlets, paced as they were recorded.

    Parameters
    ----------
    path : path-like
        A session file (``.h5``) or an XDF file (``.xdf``, imported to a temporary session first).
    speed : float
        Playback speed: 2.0 plays twice as fast (time stamps are compressed accordingly).
    loop : bool
        Start over after the end, forever (until :meth:`stop`); time stamps keep increasing.
    name_prefix : str
        Prefix for the LSL stream names (outlets are named ``<prefix><stored name>``).
    streams : sequence of str | None
        Replay only these streams (stored names); default all.
    start_s : float
        Skip this many seconds from the start of the recording (the earliest synchronized
        time stamp of the selected streams).
    duration_s : float | None
        Replay only this many seconds of recording (before ``speed``); default to the end.
    source_id_suffix : str
        Appended to every recorded ``source_id`` (streams without one get
        ``emosync-replay:<file name>:<name>``), e.g. to run two replays side by side.
    wait_for_consumers_s : float
        Before pushing, wait up to this long until every outlet has a consumer (a
        recorder's inlet), so that nothing is pushed into the void. 0 starts at once.
    %(verbose)s

    Examples
    --------
    >>> with SessionPlayer("session.h5", speed=2.0, name_prefix="replay_") as player:  # doctest: +SKIP
    ...     player.wait()
    """

    @verbose
    def __init__(self, path: str | os.PathLike, *, speed: float = 1.0, loop: bool = False, name_prefix: str = "",
                 streams: Sequence[str] | None = None, start_s: float = 0.0, duration_s: float | None = None,
                 source_id_suffix: str = "", wait_for_consumers_s: float = 0.0,
                 verbose: bool | str | None = None) -> None:
        if not speed > 0 or not np.isfinite(speed):
            raise ValueError(f"speed must be a positive number, got {speed!r}.")
        if not start_s >= 0:
            raise ValueError(f"start_s must be >= 0 seconds, got {start_s!r}.")
        if duration_s is not None and not duration_s > 0:
            raise ValueError(f"duration_s must be > 0 seconds (or None for the rest), got {duration_s!r}.")
        self.path = Path(path)
        self.speed = float(speed)
        self.loop = loop
        self.name_prefix = name_prefix
        self.source_id_suffix = source_id_suffix
        self.wait_for_consumers_s = float(wait_for_consumers_s)
        self._tmpdir: str | None = None
        self._session = self._open(self.path)
        try:
            self._tracks = self._plan(streams, float(start_s), duration_s)
        except BaseException:
            self.close()
            raise
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._launcher: threading.Thread | None = None
        self._t0: float | None = None

    # -- setup -----------------------------------------------------------------
    def _open(self, path: Path) -> Session:
        if not path.is_file():
            raise FileNotFoundError(f"Nothing to replay at {path}: no such file.")
        if path.suffix.lower() != ".xdf":
            return open_session(path)
        from acquisition.io.xdf import import_xdf

        self._tmpdir = tempfile.mkdtemp(prefix="emosync-replay-")
        session_path = Path(self._tmpdir) / (path.stem + ".h5")
        logger.info("Importing %s for replay (one pass over the file)", path.name)
        report = import_xdf(path, session_path, checksum=False, verbose="ERROR")
        lost = sum(s["samples_lost"] for s in report["streams"].values())
        if lost or report["damaged_regions"] or report["truncated"]:
            logger.warning("%s is damaged or cut off (%d samples could not be read); replaying what could be. "
                           "`emosync import-xdf` reports the details.", path.name, lost)
        return open_session(session_path)

    def _plan(self, wanted: Sequence[str] | None, start_s: float, duration_s: float | None) -> list[_Track]:
        available = self._session.streams
        names = list(available) if wanted is None else list(wanted)
        unknown = [n for n in names if n not in available]
        if unknown:
            raise ValueError(f"{self.path.name} has no stream named {unknown}; its streams are {list(available)}.")
        if not names:
            raise ValueError(f"{self.path.name} has no streams to replay.")
        times = {name: available[name].times for name in names}
        firsts = [float(np.nanmin(t)) for t in times.values() if t.size and np.isfinite(t).any()]
        if not firsts:
            raise ValueError(f"Every selected stream of {self.path.name} is empty: nothing to replay.")
        self.window_start = min(firsts) + start_s
        self.window_stop = self.window_start + duration_s if duration_s is not None else np.inf
        tracks = []
        fastest = 0.0
        for name in names:
            stream, t = available[name], times[name]
            inside = np.flatnonzero((t >= self.window_start) & (t < self.window_stop))
            # A contiguous index range keeps the recorded order (and any stamp that goes backwards).
            first, stop = (int(inside[0]), int(inside[-1]) + 1) if inside.size else (0, 0)
            offsets = (t[first:stop] - self.window_start) / self.speed
            fastest = max(fastest, stream.nominal_srate)
            tracks.append(_Track(stream=stream, lsl_name=f"{self.name_prefix}{name}", first=first, stop=stop,
                                 offsets_s=offsets, due_s=np.maximum.accumulate(offsets) if offsets.size else offsets,
                                 lsl_format=_lsl_format(stream),
                                 block_rows=_block_rows(stream)))
        if not any(track.stop > track.first for track in tracks):
            raise ValueError(f"No sample of {names} lies in the window from {start_s:g} s"
                             f"{'' if duration_s is None else f' for {duration_s:g} s'}; check --start/--duration.")
        if duration_s is not None:
            span = duration_s
        else:
            last = max(float(times[t.stream.name][t.stop - 1]) for t in tracks if t.stop > t.first)
            # One sample period of the fastest stream, so a loop does not repeat a time stamp.
            span = last - self.window_start + (1.0 / fastest if fastest > 0 else 1e-3)
        #: Replay seconds per loop (recording seconds / speed).
        self.loop_period_s = span / self.speed
        return tracks

    @property
    def stream_names(self) -> list[str]:
        """The LSL names of the replayed streams (``<prefix><stored name>``)."""
        return [track.lsl_name for track in self._tracks]

    @property
    def duration_s(self) -> float:
        """Replay seconds of one pass (after ``speed``)."""
        return self.loop_period_s

    def _make_outlet(self, track: _Track) -> pylsl.StreamOutlet:
        info = _stream_info(track, self._session, self.source_id_suffix, self.speed, self.path.name)
        max_buffered = 10 if track.stream.info.get("encoding") else 360
        return pylsl.StreamOutlet(info, max_buffered=max_buffered)

    # -- running ---------------------------------------------------------------
    def start(self) -> None:
        """Create the outlets and start pushing (returns at once; see :meth:`wait` and :meth:`run`)."""
        if self._launcher is not None:
            raise RuntimeError("This player was already started; create a new SessionPlayer to replay again.")
        for track in self._tracks:
            track.outlet = self._make_outlet(track)
        logger.info("Replaying %s: %s (speed %g%s)", self.path.name, ", ".join(self.stream_names), self.speed,
                    ", looping" if self.loop else "")
        self._launcher = threading.Thread(target=self._launch, name="replay-launch", daemon=True)
        self._launcher.start()

    def _launch(self) -> None:
        if self.wait_for_consumers_s > 0:
            deadline = time.monotonic() + self.wait_for_consumers_s
            for track in self._tracks:
                assert track.outlet is not None
                while not track.outlet.have_consumers() and not self._stop.is_set():
                    if time.monotonic() >= deadline:
                        logger.warning("Stream %s has no consumer after %g s; replaying anyway.", track.lsl_name,
                                       self.wait_for_consumers_s)
                        break
                    self._stop.wait(0.01)
        if self._stop.is_set():
            return
        self._t0 = pylsl.local_clock() + _LEAD_S
        self._threads = [threading.Thread(target=self._pace, args=(track,), name=f"replay-{track.lsl_name}",
                                          daemon=True) for track in self._tracks]
        for thread in self._threads:
            thread.start()

    def _pace(self, track: _Track) -> None:
        assert self._t0 is not None and track.outlet is not None
        n = track.stop - track.first
        if n == 0:
            return
        block_start, block = 0, None
        try:
            while not self._stop.is_set():
                origin = self._t0 + track.loops * self.loop_period_s
                k = 0
                while k < n and not self._stop.is_set():
                    now = pylsl.local_clock()
                    due = int(np.searchsorted(track.due_s, now - origin, side="right"))
                    if due <= k:
                        self._stop.wait(min(_MAX_SLEEP_S, max(0.0, origin + track.due_s[k] - now)))
                        continue
                    if block is None or not block_start <= k < block_start + len(block):
                        block_start = k
                        block = self._read(track, k, min(n, k + track.block_rows))
                    j = min(due, block_start + len(block))
                    stamps = origin + track.offsets_s[k:j]
                    track.outlet.push_chunk(block[k - block_start : j - block_start], stamps.tolist())
                    track.pushed += j - k
                    track.max_lag_s = max(track.max_lag_s, pylsl.local_clock() - float(stamps[-1]))
                    k = j
                if k < n or not self.loop:
                    break
                track.loops += 1
        except Exception as err:  # noqa: BLE001 -- one failing stream must not take the others down silently
            logger.error("Replaying %s stopped: %s", track.lsl_name, err)

    def _read(self, track: _Track, a: int, b: int) -> Any:
        """Samples ``a..b`` of the replay window, in the form ``push_chunk`` takes."""
        values = track.stream.data[track.first + a : track.first + b]
        info = track.stream.info
        if info.get("encoding"):
            lsl_dtype = FRAME_ENCODINGS[info["encoding"]]["lsl_format"]
            return np.ascontiguousarray(values).reshape(len(values), -1).view(lsl_dtype)
        if track.lsl_format == "string":
            return np.asarray(values, dtype=object).reshape(len(values), -1).tolist()
        return np.ascontiguousarray(values)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every stream has been replayed (never, with ``loop``, until :meth:`stop`).

        Returns
        -------
        finished : bool
            False if ``timeout`` (seconds) passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._launcher is None:
            raise RuntimeError("Call start() first.")
        self._launcher.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not self._launcher.is_alive() and not any(t.is_alive() for t in self._threads)

    def run(self, duration_s: float | None = None, *, stop_event: threading.Event | None = None,
            linger_s: float = 0.5) -> None:
        """Start, replay until the end (or ``duration_s`` seconds, or ``stop_event``), then stop.

        ``linger_s`` keeps the outlets open a moment after the last push, so consumers
        receive the tail before the streams disappear.
        """
        self.start()
        deadline = None if duration_s is None else time.monotonic() + duration_s
        try:
            while not (stop_event is not None and stop_event.is_set()):
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if self.wait(0.1):
                    time.sleep(linger_s)
                    break
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop pushing and close the outlets (the streams disappear from the network)."""
        self._stop.set()
        if self._launcher is not None:
            self._launcher.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
        for track in self._tracks:
            track.outlet = None  # an outlet closes when it is garbage-collected

    def close(self) -> None:
        """Stop, close the session and remove a temporary import."""
        if hasattr(self, "_stop"):
            self.stop()
        session = getattr(self, "_session", None)
        if session is not None:
            session.close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def stats(self) -> dict[str, dict[str, float]]:
        """Per LSL stream: samples in the window, samples pushed, loops completed, largest push lag (s)."""
        return {t.lsl_name: {"samples": t.stop - t.first, "pushed": t.pushed, "loops": t.loops,
                             "max_lag_s": t.max_lag_s} for t in self._tracks}

    @property
    def origin(self) -> float | None:
        """LSL time at which the replay window starts (None before the first push is scheduled)."""
        return self._t0

    def __enter__(self) -> SessionPlayer:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _lsl_format(stream: Stream) -> str:
    """The LSL channel format to publish with: video frames always in their encoding's format."""
    encoding = stream.info.get("encoding")
    if encoding:
        return str(FRAME_ENCODINGS[encoding]["lsl_format"])
    return str(stream.info.get("channel_format", "float32"))


def _block_rows(stream: Stream) -> int:
    """Samples read from the file at once: about 1 MB, at least one frame."""
    shape = stream.data.shape[1:]
    row_bytes = int(np.prod(shape)) * (np.dtype(stream.data.dtype).itemsize if stream.data.dtype != object else 64)
    return int(max(1, min(65536, (1 << 20) // max(row_bytes, 1))))


def _copy_children(source: ET.Element, target: pylsl.XMLElement, skip: Sequence[str] = ()) -> None:
    """Copy XML children into a pylsl ``desc`` element (elements and text; XDF/LSL desc has no attributes)."""
    for child in source:
        if child.tag in skip:
            continue
        if len(child):
            _copy_children(child, target.append_child(child.tag))
        else:
            target.append_child_value(child.tag, (child.text or "").strip())


def _stream_info(track: _Track, session: Session, suffix: str, speed: float, source_name: str) -> pylsl.StreamInfo:
    """The replayed stream's LSL info: stored metadata, plus the rest of the original ``desc``."""
    info = track.stream.info
    name = track.stream.name
    original_desc = None
    original_xml = info.get("info_xml") or ""
    if original_xml:
        try:
            original_desc = ET.fromstring(original_xml).find("desc")
        except ET.ParseError:
            logger.warning("Stream %s: stored info_xml is not valid XML; replaying without its desc.", name)
    manufacturer = "emosync replay"
    if original_desc is not None and original_desc.find("manufacturer") is not None:
        manufacturer = (original_desc.find("manufacturer").text or "").strip() or manufacturer  # type: ignore[union-attr]
    # Deterministic for a given file, so a restarted replay rejoins a recording (recover=True inlets).
    source_id = info.get("source_id") or f"emosync-replay:{source_name}:{name}"
    encoding = info.get("encoding") or None
    frame_shape = tuple(int(v) for v in info.get("frame_shape", [])) or None
    count = int(info.get("channel_count", 1))
    lsl = make_stream_info(
        track.lsl_name, str(info.get("type", "")), channel_count=count,
        nominal_srate=float(info.get("nominal_srate", 0.0)), channel_format=track.lsl_format,
        source_id=f"{source_id}{suffix}", channel_labels=_meta(info, "channel_labels", count),
        channel_units=_meta(info, "channel_units", count), channel_types=_meta(info, "channel_types", count),
        encoding=encoding, frame_shape=frame_shape, can_drop_samples=bool(info.get("can_drop_samples", False)),
        manufacturer=manufacturer)
    desc = lsl.desc()
    if original_desc is not None:
        _copy_children(original_desc, desc, skip=_REGENERATED)
        sync = original_desc.find("synchronization")
        if sync is not None:
            _copy_children(sync, desc.child("synchronization"), skip=("can_drop_samples",))
    replay = desc.append_child("emosync_replay")
    for tag, value in (("source", source_name), ("session_id", session.info.get("session_id", "")),
                       ("original_name", name), ("original_source_id", info.get("source_id", "")),
                       ("original_hostname", info.get("hostname", "")), ("speed", repr(speed))):
        replay.append_child_value(tag, str(value))
    return lsl


def _meta(info: dict[str, Any], key: str, count: int) -> list[str]:
    values = info.get(key) or []
    return [str(v) for v in values] if len(values) == count else []


__all__ = ["SessionPlayer"]
