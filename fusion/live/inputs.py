"""Live inputs: resolve an LSL stream by predicate and pull it into a ring buffer in its own thread.

One :class:`StreamInput` per stream. Its thread pulls chunks with a preallocated ``dest_obj`` (the only
fast path for video frames over pylsl, see docs/DESIGN: ``pull_chunk`` into a 2-D buffer) and copies
them into a :class:`RingBuffer` of ``buffer_s`` seconds, with three clocks per sample: the source's
time stamp, that stamp on this machine's LSL clock (``+ time_correction()``, refreshed every 2 s, so
streams of several machines line up) and the ``local_clock()`` of its arrival (for the latency). The
inference loop only reads the buffer under its lock; it never waits on LSL.
"""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np
import pylsl

from acquisition.lsl.streaminfo import read_channels, xml_text
from acquisition.utils.logs import logger

#: Seconds between two ``time_correction`` probes of one inlet.
TIME_CORRECTION_INTERVAL_S = 2.0


class StreamNotFound(RuntimeError):
    """No LSL stream matched a predicate within the timeout."""


class RingBuffer:
    """The newest ``capacity`` samples of one stream, with their time stamps and arrival times.

    Parameters
    ----------
    capacity : int
        Samples kept.
    n_channels : int
        Values per sample (``height * width * colours`` for video frames).
    dtype : numpy dtype
        Sample type.

    Notes
    -----
    ``total`` counts every sample ever written, so sample ``k`` (0-based since the start) is at row
    ``k % capacity`` while ``k >= total - capacity``. Readers copy under :attr:`lock`.
    """

    def __init__(self, capacity: int, n_channels: int, dtype: np.dtype) -> None:
        self.capacity = int(capacity)
        self.data = np.zeros((self.capacity, int(n_channels)), dtype=dtype)
        self.times = np.zeros(self.capacity)        # this machine's LSL clock, seconds
        self.source_times = np.zeros(self.capacity)  # the source's own stamps, seconds
        self.arrival = np.zeros(self.capacity)      # local_clock() when the chunk was pulled, seconds
        self.total = 0
        self.lock = threading.Lock()

    def write(self, data: np.ndarray, source_times: np.ndarray, offset_s: float, arrival_s: float) -> None:
        """Append ``n`` samples ``(n, n_channels)`` with their source stamps; keep only the newest ``capacity``."""
        n = len(source_times)
        if n > self.capacity:  # more than fits: only the newest matter
            data, source_times = data[-self.capacity:], source_times[-self.capacity:]
            skipped, n = len(source_times) - self.capacity, self.capacity
        else:
            skipped = 0
        rows = (self.total + skipped + np.arange(n)) % self.capacity
        with self.lock:
            self.data[rows] = data[:n]
            self.source_times[rows] = source_times
            self.times[rows] = source_times + offset_s
            self.arrival[rows] = arrival_s
            self.total += skipped + n

    def span(self) -> tuple[int, int]:
        """``(first, stop)``: the absolute indices of the samples held (``stop`` excluded)."""
        with self.lock:
            return max(0, self.total - self.capacity), self.total

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Copies of samples ``start .. stop - 1``: ``(data, times, source_times, arrival)``.

        Raises
        ------
        IndexError
            If part of the range was overwritten already or is not written yet.
        """
        with self.lock:
            if start < self.total - self.capacity or stop > self.total or start > stop:
                raise IndexError(f"samples {start}-{stop} are not in the buffer (it holds "
                                 f"{max(0, self.total - self.capacity)}-{self.total}).")
            rows = np.arange(start, stop) % self.capacity
            return self.data[rows], self.times[rows], self.source_times[rows], self.arrival[rows]

    def read_new(self, start: int) -> tuple[int, np.ndarray, np.ndarray]:
        """Every sample from ``start`` on, atomically: ``(first, data, times)``.

        ``first`` is ``start``, or the oldest sample held when ``start`` was overwritten already (a
        reader that fell more than the buffer behind loses the oldest samples, never blocks the writer).
        """
        with self.lock:
            first = max(start, self.total - self.capacity)
            rows = np.arange(first, self.total) % self.capacity
            return first, self.data[rows], self.times[rows]

    def nearest(self, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The held samples nearest in time to ``targets`` (this machine's clock): absolute indices and times."""
        with self.lock:
            first = max(0, self.total - self.capacity)
            if self.total - first < 2:
                return np.zeros(0, int), np.zeros(0)
            times = self.times[np.arange(first, self.total) % self.capacity]
        right = np.clip(np.searchsorted(times, targets), 1, len(times) - 1)
        left = right - 1
        pick = np.where(np.abs(times[left] - targets) <= np.abs(times[right] - targets), left, right)
        return first + pick, times[pick]

    def search(self, t: float) -> int:
        """Absolute index of the first held sample with time (this machine's clock) >= ``t``."""
        with self.lock:
            first = max(0, self.total - self.capacity)
            rows = np.arange(first, self.total) % self.capacity
            return first + int(np.searchsorted(self.times[rows], t, "left"))

    def oldest_time(self) -> float:
        """Time (this machine's clock) of the oldest sample held; ``inf`` when empty."""
        with self.lock:
            return float(self.times[max(0, self.total - self.capacity) % self.capacity]) if self.total else np.inf

    def latest_time(self) -> float:
        """Time (this machine's clock) of the newest sample; ``-inf`` when empty."""
        with self.lock:
            return float(self.times[(self.total - 1) % self.capacity]) if self.total else -np.inf


@dataclass
class StreamDescription:
    """What :class:`StreamInput` read from a stream's full LSL description.

    Attributes
    ----------
    name, type, source_id : str
        The stream's LSL name, content type and source id.
    n_channels : int
        Values per sample.
    srate_hz : float
        Nominal rate (0: irregular).
    channel_labels : list of str
        Per-channel labels (empty when the description has none).
    encoding : str | None
        ``"RGB8"`` or ``"DEPTH16-mm"`` for video frames, else None.
    frame_shape : tuple of int | None
        ``(height, width, 3)`` or ``(height, width)`` for video frames.
    """

    name: str
    type: str
    source_id: str
    n_channels: int
    srate_hz: float
    channel_labels: list[str]
    encoding: str | None = None
    frame_shape: tuple[int, ...] | None = None

    @classmethod
    def from_info(cls, info: pylsl.StreamInfo) -> StreamDescription:
        """Read a full ``StreamInfo`` (``inlet.info()``, with its ``desc``)."""
        desc = ET.fromstring(info.as_xml()).find("desc")
        labels = read_channels(desc)[0]
        encoding = xml_text(desc, "encoding") or None
        shape = None
        if encoding is not None:
            frame = desc.find("frame") if desc is not None else None
            h, w, c = (int(xml_text(frame, k, "0")) for k in ("height", "width", "channels"))
            shape = (h, w, c) if c == 3 else (h, w)
        return cls(info.name(), info.type(), info.source_id(), info.channel_count(), info.nominal_srate(),
                   labels if len(labels) == info.channel_count() else [], encoding, shape)

    def __str__(self) -> str:
        return f"{self.name!r} ({self.type}, {self.n_channels} channels at {self.srate_hz:g} Hz)"


def resolve(predicate: str, *, timeout_s: float, what: str) -> list[pylsl.StreamInfo]:
    """Every stream matching ``predicate`` (an LSL XPath query such as ``"type='EMG'"``).

    Raises
    ------
    ValueError
        If ``predicate`` is not a valid query.
    StreamNotFound
        If none appears within ``timeout_s`` (the message names the query and lists what is visible).
    """
    try:
        found = pylsl.resolve_bypred(predicate, minimum=1, timeout=timeout_s)
    except RuntimeError:
        raise ValueError(f"Invalid LSL stream query for {what}: {predicate!r}. Queries are XPath 1.0 predicates "
                         "over the stream info, e.g. \"type='EMG'\" or \"name='EMG' and hostname='lab-pc'\".") from None
    if not found:
        visible = pylsl.resolve_streams(wait_time=0.5)
        listing = ", ".join(f"{i.name()} (type={i.type()!r})" for i in visible) or "none"
        raise StreamNotFound(f"No LSL stream matched the {what} query {predicate!r} within {timeout_s:g} s. Visible "
                             f"streams: {listing}. Start the device (or `emosync simulate`), fix the query, or raise "
                             "--set resolve_timeout_s=...")
    return found


class StreamInput:
    """One LSL stream pulled into a :class:`RingBuffer` by its own thread.

    Parameters
    ----------
    info : pylsl.StreamInfo
        A resolved stream (see :func:`resolve`).
    buffer_s : float
        Seconds of samples kept.
    open_timeout_s : float
        How long the stream may take to answer.

    Attributes
    ----------
    description : StreamDescription
        From the stream's full description.
    buffer : RingBuffer
        The newest samples.
    """

    def __init__(self, info: pylsl.StreamInfo, *, buffer_s: float, open_timeout_s: float = 5.0) -> None:
        self.inlet = pylsl.StreamInlet(info, max_buflen=max(5, int(np.ceil(buffer_s))), recover=True,
                                       processing_flags=0)
        try:
            full = self.inlet.info(timeout=open_timeout_s)
            self.inlet.open_stream(timeout=open_timeout_s)
        except pylsl.util.TimeoutError:
            raise TimeoutError(f"Stream {info.name()!r} was found but did not answer within {open_timeout_s:g} s: "
                               "the source may have stopped.") from None
        self.description = StreamDescription.from_info(full)
        rate = self.description.srate_hz or 100.0
        self.buffer = RingBuffer(int(np.ceil(buffer_s * rate)) + 1, self.description.n_channels, self.inlet.np_dtype)
        self.offset_s = 0.0
        self.n_received = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pull, name=f"live-pull-{self.description.name}", daemon=True)

    def start(self) -> StreamInput:
        """Start pulling (returns at once)."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop pulling and close the inlet."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.inlet.close_stream()

    def _pull(self) -> None:
        rate = self.description.srate_hz or 100.0
        max_samples = 8 if self.description.encoding else int(max(32, min(4096, rate)))
        chunk = np.empty((max_samples, self.description.n_channels), dtype=self.inlet.np_dtype)
        next_correction = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_correction:
                try:
                    self.offset_s = self.inlet.time_correction(timeout=1.0)
                except (pylsl.util.TimeoutError, pylsl.util.LostError):
                    pass  # keep the last estimate
                next_correction = now + TIME_CORRECTION_INTERVAL_S
            try:
                _, stamps = self.inlet.pull_chunk(timeout=0.0, max_samples=max_samples, dest_obj=chunk,
                                                  as_numpy=True)
            except pylsl.util.LostError:
                self._stop.wait(0.1)
                continue
            n = len(stamps)
            if n:
                self.buffer.write(chunk[:n], np.asarray(stamps), self.offset_s, pylsl.local_clock())
                self.n_received += n
            if n < max_samples:
                # Short sleeps: the arrival time is part of the latency we report.
                self._stop.wait(0.002)
        logger.debug("Stopped pulling %s after %d samples", self.description, self.n_received)
