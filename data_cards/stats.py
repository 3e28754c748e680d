"""Everything a card says about the data, computed from the session files (never typed by hand).

Per session: streams, nominal and effective rates, sample counts, durations, the
pseudonymous subject, the ``synthetic`` flag, AU intensity statistics (``ActionUnits``
streams) and expression counts (``Markers`` streams, parsed with :mod:`acquisition.session.markers`).
Per corpus: the same, aggregated. Reads are bounded in memory (AU streams in blocks) and
video frames are never decoded.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from acquisition.session.markers import read_expression_markers
from acquisition.session.reader import Stream, open_session

#: An AU counts as active in a sample when its intensity (FACS 0-5) exceeds this.
AU_ACTIVE_THRESHOLD = 0.5
_AU_BLOCK_ROWS = 65536


@dataclass
class StreamStats:
    """One stream of one session, as a card reports it. Rates in Hz, durations in seconds."""

    name: str
    type: str
    modality: str
    channel_count: int
    n_samples: int
    nominal_srate_hz: float
    effective_srate_hz: float | None
    duration_s: float
    unit: str = ""


@dataclass
class AUStats:
    """Running per-AU statistics over samples: sum, count, max and active count."""

    total: dict[str, float] = field(default_factory=dict)
    n: dict[str, int] = field(default_factory=dict)
    max: dict[str, float] = field(default_factory=dict)
    n_active: dict[str, int] = field(default_factory=dict)

    def add_block(self, labels: list[str], values: np.ndarray) -> None:
        """Add samples ``values`` of shape (n_samples, n_aus) whose columns are ``labels``."""
        finite = np.isfinite(values)
        clean = np.where(finite, values, 0.0)
        for j, label in enumerate(labels):
            count = int(finite[:, j].sum())
            if not count:
                continue
            self.total[label] = self.total.get(label, 0.0) + float(clean[:, j].sum())
            self.n[label] = self.n.get(label, 0) + count
            self.max[label] = max(self.max.get(label, -np.inf), float(np.max(values[finite[:, j], j])))
            self.n_active[label] = self.n_active.get(label, 0) + int((clean[:, j] > AU_ACTIVE_THRESHOLD).sum())

    def merge(self, other: AUStats) -> None:
        """Add another :class:`AUStats` into this one."""
        for label in other.n:
            self.total[label] = self.total.get(label, 0.0) + other.total[label]
            self.n[label] = self.n.get(label, 0) + other.n[label]
            self.max[label] = max(self.max.get(label, -np.inf), other.max[label])
            self.n_active[label] = self.n_active.get(label, 0) + other.n_active[label]

    def table(self) -> list[dict[str, Any]]:
        """Rows ``{"au", "mean", "max", "fraction_active", "n_samples"}`` sorted by AU name."""
        return [{"au": label, "mean": self.total[label] / self.n[label], "max": self.max[label],
                 "fraction_active": self.n_active[label] / self.n[label], "n_samples": self.n[label]}
                for label in sorted(self.n)]


@dataclass
class SessionStats:
    """What a card reports about one session file."""

    file: str
    sha256: str
    size_bytes: int
    session_id: str
    subject_id: str
    synthetic: bool
    start_time: str
    stop_time: str
    duration_s: float
    streams: list[StreamStats]
    expressions: Counter = field(default_factory=Counter)  # (emotion, kind) -> count, recorded markers
    derived_expressions: Counter = field(default_factory=Counter)  # (stream, emotion, kind): e.g. `emosync spot`
    au: dict[str, AUStats] = field(default_factory=dict)  # per ActionUnits stream: ground truth and estimates differ

    @property
    def n_micro(self) -> int:
        return sum(n for (_, kind), n in self.expressions.items() if kind == "micro")

    @property
    def n_macro(self) -> int:
        return sum(n for (_, kind), n in self.expressions.items() if kind == "macro")


def _stream_stats(stream: Stream) -> StreamStats:
    n = stream.n_samples
    srate = stream.nominal_srate
    duration, effective = 0.0, None
    if n > 1:
        # Synchronized times, as `emosync info` reports them: raw stamps can jump at a clock reset.
        sync = stream.sync
        duration = max(float(sync.times[-1] - sync.times[0]), 0.0)
        if srate > 0:  # irregular streams (markers) have no rate
            effective = float(sync.effective_srate) if sync.effective_srate > 0 else (
                (n - 1) / duration if duration > 0 else None)
    return StreamStats(name=stream.name, type=str(stream.info.get("type", "")), modality=stream.modality,
                       channel_count=int(stream.info.get("channel_count", 0)), n_samples=n, nominal_srate_hz=srate,
                       effective_srate_hz=effective, duration_s=duration, unit=str(stream.info.get("unit", "")))


def _is_derived(stream: Stream) -> bool:
    """Markers computed from other streams (``emosync spot``) are predictions, not ground truth."""
    return "spotting_source" in stream.info or str(stream.info.get("source_id", "")).startswith("emosync-spot:")


def session_stats(fname: str | Path, *, relative_name: str, sha256: str) -> SessionStats:
    """Compute a session's card statistics from the file.

    Parameters
    ----------
    fname : path-like
        The session file.
    relative_name : str
        Its path as written in the card (relative to the corpus folder).
    sha256 : str
        Its SHA-256 (hashed once by the caller, see :func:`data_cards.inputs.hash_inputs`).

    Returns
    -------
    stats : SessionStats
    """
    fname = Path(fname)
    with open_session(fname) as session:
        info = session.info
        streams = [_stream_stats(s) for s in session.streams.values()]
        stats = SessionStats(
            file=relative_name, sha256=sha256, size_bytes=fname.stat().st_size,
            session_id=str(info.get("session_id", "")), subject_id=str(info.get("subject_id", "") or "sub-unknown"),
            synthetic=bool(info.get("synthetic", False)), start_time=str(info.get("start_time", "")),
            stop_time=str(info.get("stop_time", "")),
            duration_s=max((s.duration_s for s in streams), default=0.0), streams=streams)
        for stream in session.streams.values():
            if stream.n_samples == 0:
                continue
            if stream.modality == "au":
                labels = list(stream.info.get("channel_labels") or [])
                labels = labels or [f"ch{j}" for j in range(int(stream.info.get("channel_count", 0)))]
                for start in range(0, stream.n_samples, _AU_BLOCK_ROWS):
                    block = np.asarray(stream.data[start:start + _AU_BLOCK_ROWS], dtype=np.float64)
                    stats.au.setdefault(stream.name, AUStats()).add_block(labels, block.reshape(len(block), -1))
            elif stream.modality == "markers":
                # Paired on synchronized times, as fusion's labels and the plots are (raw stamps of a
                # source whose clock was reset are out of order).
                expressions = read_expression_markers(stream).complete
                if _is_derived(stream):
                    stats.derived_expressions.update((stream.name, e.label, e.kind) for e in expressions)
                else:
                    stats.expressions.update((e.label, e.kind) for e in expressions)
    return stats


@dataclass
class StreamSummary:
    """One stream name across a corpus."""

    name: str
    types: set[str]
    modalities: set[str]
    channel_counts: set[int]
    units: set[str]
    nominal_srates_hz: set[float]
    effective_srates_hz: list[float]
    n_sessions: int
    n_samples: int
    duration_s: float


@dataclass
class CorpusStats:
    """A corpus's card statistics, aggregated over its sessions."""

    sessions: list[SessionStats]
    streams: dict[str, StreamSummary]
    subjects: Counter  # subject id -> number of sessions
    expressions: Counter
    derived_expressions: Counter
    au: dict[str, AUStats]  # per ActionUnits stream name

    @property
    def n_sessions(self) -> int:
        return len(self.sessions)

    @property
    def total_duration_s(self) -> float:
        return float(sum(s.duration_s for s in self.sessions))

    @property
    def synthetic(self) -> bool | None:
        """True if every session is synthetic, False if none is, None when mixed."""
        flags = {s.synthetic for s in self.sessions}
        return flags.pop() if len(flags) == 1 else None

    @property
    def total_bytes(self) -> int:
        return int(sum(s.size_bytes for s in self.sessions))


def aggregate(sessions: list[SessionStats]) -> CorpusStats:
    """Combine per-session statistics into corpus statistics."""
    streams: dict[str, StreamSummary] = {}
    au: dict[str, AUStats] = {}
    expressions: Counter = Counter()
    derived: Counter = Counter()
    for session in sessions:
        for st in session.streams:
            summary = streams.setdefault(st.name, StreamSummary(st.name, set(), set(), set(), set(), set(), [],
                                                                0, 0, 0.0))
            summary.types.add(st.type)
            summary.modalities.add(st.modality)
            summary.channel_counts.add(st.channel_count)
            summary.units.add(st.unit)
            summary.nominal_srates_hz.add(st.nominal_srate_hz)
            if st.effective_srate_hz is not None:
                summary.effective_srates_hz.append(st.effective_srate_hz)
            summary.n_sessions += 1
            summary.n_samples += st.n_samples
            summary.duration_s += st.duration_s
        for name, au_stats in session.au.items():
            au.setdefault(name, AUStats()).merge(au_stats)
        expressions.update(session.expressions)
        derived.update(session.derived_expressions)
    subjects = Counter(s.subject_id for s in sessions)
    return CorpusStats(sessions=sessions, streams=dict(sorted(streams.items())), subjects=subjects,
                       expressions=expressions, derived_expressions=derived, au=dict(sorted(au.items())))
