"""Align streams in time: windows of samples and resampling onto a common time base.

Everything works on synchronized times (:attr:`Stream.times`, recorder clock, seconds),
so streams from different machines line up. Used by fusion's dataset (windows anchored
on the video frame clock) and by plots and exports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from acquisition.session.reader import Session, Stream


@dataclass
class StreamWindow:
    """The samples of one stream inside a time window.

    Attributes
    ----------
    data : array, shape (n, ...)
        The samples (read from the file on demand).
    times : array of float, shape (n,)
        Their synchronized times, seconds (recorder clock).
    first_index : int
        Index of the first sample in the stream.
    """

    data: Any
    times: np.ndarray
    first_index: int


def sample_range(stream: Stream, start_s: float, stop_s: float) -> tuple[int, int]:
    """Indices ``[first, last)`` of the samples with ``start_s <= times < stop_s`` (times sorted)."""
    times = stream.times
    return int(np.searchsorted(times, start_s, "left")), int(np.searchsorted(times, stop_s, "left"))


def window(stream: Stream, start_s: float, stop_s: float, *, out: np.ndarray | None = None) -> StreamWindow:
    """Read the samples of ``stream`` with ``start_s <= time < stop_s`` (seconds, recorder clock).

    Parameters
    ----------
    stream : Stream
        The stream.
    start_s, stop_s : float
        The window, seconds of the recorder clock (:attr:`Stream.times`).
    out : array | None
        Read the samples straight into this array (see :meth:`StreamData.read_direct`): reusing
        one buffer makes reading windows of high-rate video several times faster.

    Returns
    -------
    window : StreamWindow
        The samples (a view of ``out`` when given) and their times.
    """
    if stop_s < start_s:
        raise ValueError(f"stop_s ({stop_s}) is before start_s ({start_s})")
    first, last = sample_range(stream, start_s, stop_s)
    return StreamWindow(stream.data.read_direct(first, last, out), stream.times[first:last], first)


def session_window(session: Session, start_s: float, stop_s: float,
                   streams: list[str] | None = None) -> dict[str, StreamWindow]:
    """The samples of every (or the named) stream in a time window, keyed by stream name."""
    names = list(session.streams) if streams is None else streams
    missing = sorted(set(names) - set(session.streams))
    if missing:
        raise KeyError(f"No stream {missing} in {session.fname.name}; streams: {sorted(session.streams)}")
    return {name: window(session.streams[name], start_s, stop_s) for name in names}


def common_time_base(streams: list[Stream], srate_hz: float) -> np.ndarray:
    """A regular time grid (seconds) over the span all ``streams`` cover, at ``srate_hz``."""
    if srate_hz <= 0:
        raise ValueError(f"srate_hz must be > 0, got {srate_hz}")
    nonempty = [s for s in streams if s.n_samples]
    if len(nonempty) != len(streams):
        empty = [s.name for s in streams if not s.n_samples]
        raise ValueError(f"Streams {empty} have no samples; leave them out of the common time base.")
    start = max(float(s.times[0]) for s in streams)
    stop = min(float(s.times[-1]) for s in streams)
    if stop <= start:
        raise ValueError("The streams do not overlap in time: " +
                         ", ".join(f"{s.name} {s.times[0]:.3f}-{s.times[-1]:.3f} s" for s in streams))
    return start + np.arange(int(np.floor((stop - start) * srate_hz)) + 1) / srate_hz


def resample(stream: Stream, times_s: np.ndarray, *, method: str = "auto") -> np.ndarray:
    """Values of a regular stream at arbitrary times.

    Parameters
    ----------
    stream : Stream
        A numeric stream (EMG, EEG, AUs, video frames...).
    times_s : array of float, shape (n,)
        Target times, seconds (recorder clock), inside the stream's span.
    method : ``"auto"`` | ``"linear"`` | ``"nearest"``
        ``linear`` interpolates each channel (signals); ``nearest`` takes the closest
        sample (video frames, which must not be blended); ``auto`` picks ``nearest`` for
        video and ``linear`` otherwise. For downsampling signals, low-pass first (e.g.
        with MNE) to avoid aliasing: this function does not filter.

    Returns
    -------
    values : array, shape (n, ...)
    """
    if method not in ("auto", "linear", "nearest"):
        raise ValueError(f"method must be 'auto', 'linear' or 'nearest', got {method!r}")
    if stream.data.dtype == object:
        raise ValueError(f"Stream {stream.name!r} holds strings (markers); use window() instead of resample().")
    times_s = np.asarray(times_s, dtype=np.float64)
    src = stream.times
    if stream.n_samples == 0:
        raise ValueError(f"Stream {stream.name!r} has no samples")
    if times_s.size and (times_s.min() < src[0] - 1e-9 or times_s.max() > src[-1] + 1e-9):
        raise ValueError(f"Times {times_s.min():.3f}-{times_s.max():.3f} s fall outside stream {stream.name!r} "
                         f"({src[0]:.3f}-{src[-1]:.3f} s); use common_time_base() for a grid all streams cover.")
    if method == "auto":
        method = "nearest" if stream.modality in ("rgb", "depth") else "linear"
    right = np.clip(np.searchsorted(src, times_s), 1, len(src) - 1) if len(src) > 1 else np.zeros(len(times_s), int)
    if method == "nearest" or len(src) == 1:
        left = np.maximum(right - 1, 0)
        pick = np.where(np.abs(src[left] - times_s) <= np.abs(src[right] - times_s), left, right)
        return np.asarray(stream.data[pick])
    first, last = int(right.min()) - 1, int(right.max()) + 1
    block = np.asarray(stream.data[first:last], dtype=np.float64)
    left = right - 1
    weight = (times_s - src[left]) / np.maximum(src[right] - src[left], 1e-12)
    weight = weight.reshape((-1,) + (1,) * (block.ndim - 1))
    return (1 - weight) * block[left - first] + weight * block[right - first]
