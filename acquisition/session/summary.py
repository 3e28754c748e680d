"""What ``emosync info`` reports: per-stream counts, rates, gaps, clock offsets, sizes.

Everything is computed from the file itself (nothing is trusted from the recorder's
memory), so the same report works for recordings, imports and synthetic corpora.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from acquisition.session.reader import Session, Stream

#: A gap is a pause between consecutive samples longer than this many sample periods...
GAP_PERIODS = 10
#: ...and at least this many seconds.
GAP_MIN_S = 0.1


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def summarize_stream(stream: Stream) -> dict[str, Any]:
    """Summary of one stream (JSON-able).

    Returns a dict with ``type``, ``modality``, ``source_id``, ``hostname``,
    ``n_samples``, ``nominal_srate`` and ``effective_srate`` (Hz; per jitter segment in
    ``segment_srates``), ``first_time`` and ``last_time`` (recorder clock, s),
    ``duration_s``, ``gaps`` (list of ``{"start_s", "duration_s"}``),
    ``dropped_samples_estimate``, ``clock_offsets`` (count, span, mean/std/min/max offset,
    median uncertainty, in s), ``clock_segments`` (one per clock reset: span, drift in ppm,
    fit residual), ``dejittered``, ``jitter_before_s`` / ``jitter_after_s`` (SD of sample
    intervals), ``shape``, ``dtype``, ``compression`` and ``stored_bytes``.
    """
    info = stream.info
    n = stream.n_samples
    srate = stream.nominal_srate
    out: dict[str, Any] = {
        "type": info.get("type"),
        "modality": stream.modality,
        "source_id": info.get("source_id"),
        "hostname": info.get("hostname"),
        "n_samples": n,
        "nominal_srate": srate,
        "shape": list(stream.data.shape),
        "dtype": str(stream.data.dtype),
        "compression": info.get("compression", "none"),
        "stored_bytes": int(stream._group["data"].id.get_storage_size()),
        "clock_offsets": stream.clock_offsets.summary(),
    }
    sync = stream.sync
    times = sync.times
    if n:
        out.update(first_time=float(times[0]), last_time=float(times[-1]), duration_s=float(times[-1] - times[0]))
    out["clock_segments"] = [
        {"start_s": seg.start_time_s, "stop_s": seg.stop_time_s, "n_offsets": seg.last_offset - seg.first_offset + 1,
         "drift_ppm": seg.slope * 1e6, "residual_std_s": seg.residual_std_s} for seg in sync.clock_segments]
    out["dejittered"] = sync.dejittered
    out["jitter_before_s"] = _finite_or_none(sync.jitter_before_s)
    out["jitter_after_s"] = _finite_or_none(sync.jitter_after_s)
    out["segment_srates"] = sync.segment_srates
    gaps: list[dict[str, float]] = []
    dropped = 0
    if n > 1:
        if srate > 0 and sync.effective_srate > 0:
            out["effective_srate"] = sync.effective_srate
        elif srate > 0 and times[-1] > times[0]:
            out["effective_srate"] = float((n - 1) / (times[-1] - times[0]))
        else:  # irregular streams (markers) have no rate to report
            out["effective_srate"] = None
        if srate > 0:
            dt = np.diff(stream.timestamps)
            threshold = max(GAP_PERIODS / srate, GAP_MIN_S)
            for i in np.flatnonzero(dt > threshold):
                gaps.append({"start_s": float(times[i]), "duration_s": float(dt[i])})
            late = dt > 1.5 / srate
            dropped = int(np.sum(np.round(dt[late] * srate) - 1))
    out["gaps"] = gaps
    out["dropped_samples_estimate"] = dropped if srate > 0 else None
    return out


def summarize_session(session: Session) -> dict[str, Any]:
    """Summary of a session (JSON-able): file, root metadata and every stream (see :func:`summarize_stream`)."""
    meta = {k: v for k, v in session.info.items()}
    return {
        "file": str(session.fname),
        "file_size_bytes": session.fname.stat().st_size,
        "schema_version": meta.get("schema_version"),
        "session_id": meta.get("session_id"),
        "subject_id": meta.get("subject_id"),
        "start_time": meta.get("start_time"),
        "stop_time": meta.get("stop_time"),
        "synthetic": bool(meta.get("synthetic", False)),
        "streams": {name: summarize_stream(stream) for name, stream in session.streams.items()},
    }
