"""What ``emosync info`` reports: per-stream counts, rates, gaps, clock offsets, sizes.

Everything is computed from the file itself (nothing is trusted from the recorder's
memory), so the same report works for recordings, imports and synthetic corpora.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from acquisition.session.format import IMAGE_COMPRESSIONS
from acquisition.session.frame_stamp import frame_drop_report, is_stamped, stream_frame_indices
from acquisition.session.reader import Session, Stream

#: A gap is a pause between consecutive samples longer than this many sample periods...
GAP_PERIODS = 10
#: ...and at least this many seconds.
GAP_MIN_S = 0.1


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def summarize_stream(stream: Stream, *, check_frame_stamps: bool | None = None) -> dict[str, Any]:
    """Summary of one stream (JSON-able).

    Returns a dict with ``type``, ``modality``, ``source_id``, ``hostname``,
    ``n_samples``, ``nominal_srate`` and ``effective_srate`` (Hz; per jitter segment in
    ``segment_srates``), ``first_time`` and ``last_time`` (recorder clock, s),
    ``duration_s``, ``gaps`` (list of ``{"start_s", "duration_s"}``),
    ``dropped_samples_estimate``, ``clock_offsets`` (count, span, mean/std/min/max offset,
    median uncertainty, in s), ``clock_segments`` (one per clock reset: span, drift in ppm,
    fit residual), ``dejittered``, ``jitter_before_s`` / ``jitter_after_s`` (SD of sample
    intervals), ``shape``, ``dtype``, ``compression`` and ``stored_bytes``. Video streams whose
    frames carry frame-index stamps (:mod:`acquisition.session.frame_stamp`, e.g. the highspeed
    simulated rig) also get ``frame_stamps``: frames dropped between the first and last stamp
    (``dropped_frames``, ``gaps``), repeated and unreadable ones, counted from the stamps themselves.
    ``check_frame_stamps``: read the stamps (True), or not (False); None (default) reads them unless
    the frames are stored as PNG/JPEG images, where decoding every frame would take minutes for a
    long recording (``frame_stamps`` is then ``{"checked": False, ...}`` with the call that does it).
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
    if stream.modality == "rgb" and is_stamped(info):
        if check_frame_stamps is None:
            check_frame_stamps = info.get("compression", "none") not in IMAGE_COMPRESSIONS
        if check_frame_stamps:
            out["frame_stamps"] = {"checked": True, **frame_drop_report(stream_frame_indices(stream))}
        else:
            out["frame_stamps"] = {"checked": False, "how": "frames stored as images: count drops with "
                                   "acquisition.session.frame_stamp.frame_drop_report(stream_frame_indices(stream))"}
    return out


def summarize_session(session: Session, *, check_frame_stamps: bool | None = None) -> dict[str, Any]:
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
        "streams": {name: summarize_stream(stream, check_frame_stamps=check_frame_stamps)
                    for name, stream in session.streams.items()},
    }
