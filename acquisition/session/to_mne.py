"""A session's EEG/EMG streams as one :class:`mne.io.RawArray`, its markers as annotations.

Behind :meth:`Session.to_mne <acquisition.session.reader.Session.to_mne>`; the file exports
built on it live in :mod:`acquisition.io.export` (``docs/mne-export.md`` has the conventions).
This module is in the session layer because the reader's ``to_mne`` method needs it; it takes
the session as an argument and never imports the reader, so there is no import cycle.

- **Channels.** Numeric streams become channels. Their MNE type comes from the
  per-channel LSL type (``desc/channels/channel/type``), else the stream type:
  ``eeg``, ``emg``, ``ecg``, ``eog``, ``stim``, ``gsr``, ``resp``, ``misc``...;
  unknown types become ``misc`` with a warning naming the channels. Voltage channels
  are scaled to volts from their declared unit (``V``, ``mV``, ``uV``).
- **Time.** The rate is the *effective* rate of the synchronized time stamps
  (:attr:`acquisition.sync.SyncResult.effective_srate`); ``meas_date`` is the wall
  clock of the first sample when the session stores the recorder's LSL clock at its
  start (``start_lsl_time``), else the session's ``start_time``.
- **Markers.** String streams become :class:`mne.Annotations` with onsets relative to
  the first sample, both sides in synchronized time. Expression markers are paired by
  :func:`acquisition.session.markers.parse_expression_markers`: a complete
  ``onset/<label>/<kind>`` ... ``offset/<label>/<kind>`` expression becomes one annotation
  ``<label>/<kind>`` with a duration (see :func:`pair_markers`).
- **Several rates.** EMG (2 kHz) and EEG (500 Hz) put into one ``Raw`` are resampled by
  MNE onto one rate (default: the highest, so no band is lost) and cut to the
  interval all of them cover.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import mne
import numpy as np

from acquisition.session.markers import marker_texts, parse_expression_markers
from acquisition.sync import SyncOptions
from acquisition.utils.docs import add_doc, fill_doc
from acquisition.utils.logs import logger, verbose

# acquisition.session.reader's Session and Stream, which are not imported here: the reader imports this module.
Session = Stream = Any

#: MNE channel type for an LSL stream or channel type (compared in lower case).
MNE_CHANNEL_TYPES: dict[str, str] = {
    "eeg": "eeg", "emg": "emg", "ecg": "ecg", "ekg": "ecg", "eog": "eog", "heog": "eog", "veog": "eog",
    "stim": "stim", "trig": "stim", "trigger": "stim", "marker": "stim", "markers": "stim",
    "gsr": "gsr", "eda": "gsr", "resp": "resp", "bio": "bio", "temperature": "temperature", "misc": "misc",
}

#: MNE stores these channel types in SI units; factor from a declared unit (lower case) to SI.
_SI_FACTORS: dict[str, dict[str, float]] = {
    "volt": {"v": 1.0, "volt": 1.0, "volts": 1.0, "mv": 1e-3, "millivolts": 1e-3, "uv": 1e-6, "\u00b5v": 1e-6,
             "\u03bcv": 1e-6, "microvolts": 1e-6, "nv": 1e-9},
    "siemens": {"s": 1.0, "siemens": 1.0, "ms": 1e-3, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6,
                "umho": 1e-6, "\u00b5mho": 1e-6, "microsiemens": 1e-6},
}
_SI_QUANTITY = {"eeg": "volt", "emg": "volt", "ecg": "volt", "eog": "volt", "gsr": "siemens"}

add_doc("markers", """
markers : "all" | str | list of str | bool | None
    Marker (string) streams that become annotations: ``"all"``/True (default) or names;
    None/False for none.
""")

#: Stream modalities that :func:`to_mne` converts when no streams are named.
DEFAULT_MODALITIES = ("eeg", "emg")


@dataclass
class _Signal:
    """One numeric stream loaded for MNE: data in SI units, channel metadata, synchronized times."""

    name: str
    data: np.ndarray  # (n_channels, n_samples)
    ch_names: list[str]
    ch_types: list[str]
    sfreq: float
    times: np.ndarray  # (n_samples,) synchronized, seconds
    gap_starts: list[int] = field(default_factory=list)  # first sample after each gap

    @property
    def first_time(self) -> float:
        return float(self.times[0])


# -- selecting and loading streams ------------------------------------------------------------

def describe_streams(session: Session) -> str:
    return ", ".join(f"{name!r} (type {s.info.get('type')!r}, {s.n_samples} samples)"
                     for name, s in session.streams.items()) or "none"


def is_marker_stream(stream: Stream) -> bool:
    return stream.info.get("channel_format") == "string" or (
        stream.modality == "markers" and stream.nominal_srate == 0)


def is_video_stream(stream: Stream) -> bool:
    return bool(stream.info.get("frame_shape")) or stream.modality in ("rgb", "depth")


def select_streams(session: Session, wanted: str | Sequence[str] | None, *, what: str) -> list[Stream]:
    """Streams by exact name, else by modality or LSL type (case-insensitive)."""
    if isinstance(wanted, str):
        wanted = [wanted]
    chosen: list[Stream] = []
    for key in wanted or []:
        if key in session.streams:
            matches = [session.streams[key]]
        else:
            matches = [s for s in session.streams.values()
                       if key.lower() in (s.modality.lower(), str(s.info.get("type", "")).lower())]
        if not matches:
            raise ValueError(
                f"No stream named {key!r} (nor of that type or modality) in {session.fname.name}. "
                f"Its streams are: {describe_streams(session)}. Pass one of these names as {what}."
            )
        chosen += [s for s in matches if s not in chosen]
    return chosen


def signal_streams(session: Session, streams: str | Sequence[str] | None) -> list[Stream]:
    if streams is None or (not isinstance(streams, str) and len(streams) == 0):
        selected = [s for s in session.streams.values() if s.modality in DEFAULT_MODALITIES]
        if not selected:
            raise ValueError(
                f"Session {session.fname.name} has no EEG or EMG stream to convert. Its streams are: "
                f"{describe_streams(session)}. Name the numeric streams to convert with "
                "streams=[...] (CLI: --stream NAME); channels of unknown type become 'misc'."
            )
    else:
        selected = select_streams(session, streams, what="streams=[...] (CLI: --stream)")
    for stream in selected:
        if is_video_stream(stream):
            raise ValueError(
                f"Stream {stream.name!r} holds video frames; MNE Raw objects hold numeric channels "
                "(EEG, EMG, ...). Leave it out of streams=[...]."
            )
        if is_marker_stream(stream):
            raise ValueError(
                f"Stream {stream.name!r} is a marker stream; it becomes annotations, not channels. "
                "Pass it as markers=[...] instead of streams=[...]."
            )
    return selected


def marker_streams(session: Session, markers: str | Sequence[str] | bool | None) -> list[Stream]:
    if markers is None or markers is False:
        return []
    if markers is True or markers == "all":
        return [s for s in session.streams.values() if is_marker_stream(s)]
    selected = select_streams(session, markers, what="markers=[...]")
    for stream in selected:
        if not is_marker_stream(stream):
            raise ValueError(f"Stream {stream.name!r} is not a marker stream (format "
                             f"{stream.info.get('channel_format')!r}, {stream.nominal_srate} Hz).")
    return selected


def _channel_types(stream: Stream, labels: list[str]) -> list[str]:
    declared = list(stream.info.get("channel_types") or [])
    stream_type = str(stream.info.get("type", ""))
    types, unknown = [], []
    for i, label in enumerate(labels):
        given = (declared[i] if i < len(declared) else "") or stream_type
        mne_type = MNE_CHANNEL_TYPES.get(given.strip().lower())
        if mne_type is None:
            unknown.append(f"{label} ({given or 'no type'})")
            mne_type = "misc"
        types.append(mne_type)
    if unknown:
        logger.warning(
            "Stream %s: channel type not known to MNE for %s; exported as 'misc'. Known types: %s.",
            stream.name, ", ".join(unknown), ", ".join(sorted(set(MNE_CHANNEL_TYPES))))
    return types


def _si_factors(stream: Stream, labels: list[str], types: list[str]) -> np.ndarray:
    units = list(stream.info.get("channel_units") or [])
    stream_unit = str(stream.info.get("unit", ""))
    factors = np.ones(len(labels))
    wrong = []
    for i, (label, ch_type) in enumerate(zip(labels, types)):
        quantity = _SI_QUANTITY.get(ch_type)
        if quantity is None:
            continue
        unit = (units[i] if i < len(units) else "") or stream_unit
        if not unit:
            continue  # the session format stores EEG/EMG in volts; other quantities are taken as SI
        factor = _SI_FACTORS[quantity].get(unit.strip().lower())
        if factor is None:
            wrong.append(f"{label} ({ch_type}, unit {unit!r})")
        else:
            factors[i] = factor
    if wrong:
        raise ValueError(
            f"Stream {stream.name!r}: MNE stores {', '.join(sorted({t for t in types if t in _SI_QUANTITY}))} "
            f"channels in SI units, but these channels declare a unit it cannot convert: {', '.join(wrong)}. "
            "Fix channel_units in the session (e.g. 'V', 'mV', 'uV'; 'S', 'uS' for gsr) when importing."
        )
    return factors


def _effective_rate(stream: Stream, sync: Any, n: int) -> float:
    rate = float(sync.effective_srate)
    nominal = stream.nominal_srate
    if rate <= 0:
        rate = nominal
    if rate <= 0:
        raise ValueError(
            f"Stream {stream.name!r} is irregular (nominal rate 0 Hz) and numeric; an MNE Raw needs a "
            "regular rate. Leave it out of streams=[...]."
        )
    # Use the nominal rate when it puts every sample within 1 % of a period of its synchronized
    # time: the difference is then numerical noise, and integer rates keep EDF/BDF files exact.
    if nominal > 0 and abs(rate - nominal) / rate * n < 0.01:
        return nominal
    return rate


def _load_signal(stream: Stream, sync_options: SyncOptions | None) -> _Signal | None:
    n = stream.n_samples
    if n == 0:
        logger.warning("Stream %s has no samples; skipped.", stream.name)
        return None
    sync = stream.sync if sync_options is None else stream.synchronize(sync_options)
    count = int(stream.info.get("channel_count", stream.data.shape[1]))
    labels = [str(label) for label in (stream.info.get("channel_labels") or [])][:count]
    labels = [label or f"{stream.name}_{i}" for i, label in enumerate(labels + [""] * (count - len(labels)))]
    types = _channel_types(stream, labels)
    factors = _si_factors(stream, labels, types)
    data = np.asarray(stream.data[:], dtype=np.float64).T * factors[:, None]
    rate = _effective_rate(stream, sync, n)
    gap_starts = [a for a, _ in sync.jitter_segments[1:]]
    if gap_starts:
        logger.warning(
            "Stream %s has %d gap(s) (at %s s); an MNE Raw is sampled without gaps, so the samples after "
            "each gap follow the ones before it. The gaps are annotated 'BAD boundary'/'EDGE boundary' "
            "(as mne.concatenate_raws does): filters restart there and epochs across them are rejected.",
            stream.name, len(gap_starts), ", ".join(f"{sync.times[k] - sync.times[0]:.3f}" for k in gap_starts))
    return _Signal(stream.name, data, labels, types, rate, np.asarray(sync.times, dtype=np.float64), gap_starts)


@dataclass
class _Markers:
    times: np.ndarray  # synchronized, seconds
    texts: list[str]


def _load_markers(stream: Stream, sync_options: SyncOptions | None) -> _Markers | None:
    if stream.n_samples == 0:
        logger.warning("Marker stream %s has no samples; skipped.", stream.name)
        return None
    times = (stream.sync if sync_options is None else stream.synchronize(sync_options)).times
    return _Markers(np.asarray(times, dtype=np.float64), marker_texts(stream.data[:]))


def pair_markers(times: np.ndarray, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Turn expression markers into events with a duration, paired by :mod:`acquisition.session.markers`.

    A complete expression (``onset/<label>/<kind>`` ... ``offset/<label>/<kind>``) becomes one
    event ``<label>/<kind>`` lasting from onset to offset. Its apex, each marker of an
    incomplete expression (no onset or no offset) and every other marker stay events of zero
    duration with their own text.

    Parameters
    ----------
    times : array of float, shape (n_markers,)
        Marker times in seconds (synchronized).
    texts : sequence of str, length n_markers
        Marker texts, e.g. ``"onset/happiness/micro"``.

    Returns
    -------
    onsets : array of float, shape (n_events,)
        Event starts, seconds, same clock as ``times``, sorted.
    durations : array of float, shape (n_events,)
        Event durations in seconds.
    descriptions : list of str
        Event texts (``"happiness/micro"`` for a pair).
    """
    parsed = parse_expression_markers(times, texts)
    rows = [(t, 0.0, text) for t, text in parsed.others]
    for expression in parsed.expressions:
        if not expression.complete:
            rows += [(t, 0.0, text) for t, text in expression.markers()]
            continue
        rows.append((expression.onset_s, expression.duration_s, f"{expression.label}/{expression.kind}"))
        if not math.isnan(expression.apex_s):
            rows.append((expression.apex_s, 0.0, f"apex/{expression.label}/{expression.kind}"))
    rows.sort(key=lambda row: row[0])
    return (np.array([r[0] for r in rows], dtype=np.float64), np.array([r[1] for r in rows], dtype=np.float64),
            [r[2] for r in rows])


# -- building the Raw -------------------------------------------------------------------------

def _meas_date(session: Session, first_time: float) -> _dt.datetime | None:
    start = session.info.get("start_time")
    if not start:  # e.g. an XDF import without a recording datetime: unknown, nothing to warn about
        return None
    try:
        date = _dt.datetime.fromisoformat(str(start))
    except ValueError:
        logger.warning("Session start_time %r is not an ISO 8601 time; meas_date left unset.", start)
        return None
    if date.tzinfo is None:
        date = date.replace(tzinfo=_dt.timezone.utc)
    date = date.astimezone(_dt.timezone.utc)
    anchor = session.info.get("start_lsl_time")
    if isinstance(anchor, (int, float)) and math.isfinite(anchor):
        # start_lsl_time is the recorder's LSL clock at start_time, so this is the first sample's wall clock.
        return date + _dt.timedelta(seconds=first_time - float(anchor))
    logger.debug("Session has no start_lsl_time: meas_date is the session start_time, which can precede the "
                 "first sample by the stream-discovery time (about a second).")
    return date


def _index_onsets(times: np.ndarray, query: np.ndarray, sfreq: float) -> np.ndarray:
    """Onsets (s from the first sample) of ``query`` times, placed by sample index so gaps are respected."""
    index = np.arange(times.shape[0], dtype=np.float64)
    k = np.interp(query, times, index)
    before, after = query < times[0], query > times[-1]
    k[before] = (query[before] - times[0]) * sfreq
    k[after] = index[-1] + (query[after] - times[-1]) * sfreq
    return k / sfreq


def _combine(signals: list[_Signal], sfreq: float | None) -> tuple[np.ndarray, float, float, list[float]]:
    """One data array on one grid: resample (MNE) to the common rate, then cut to the shared interval.

    Returns data (n_channels, n_times), rate, time of the first sample (synchronized clock)
    and the gap positions in seconds from that first sample.
    """
    target = float(sfreq) if sfreq is not None else max(s.sfreq for s in signals)
    pieces: list[np.ndarray] = []
    for s in signals:
        if s.sfreq != target:
            raw = mne.io.RawArray(s.data, mne.create_info(s.ch_names, s.sfreq, s.ch_types), verbose=False)
            raw.resample(target, verbose=False)
            logger.info("Resampled stream %s from %.6g Hz to %.6g Hz (MNE, FFT method).", s.name, s.sfreq, target)
            pieces.append(raw.get_data())
        else:
            pieces.append(s.data)
    starts = np.array([s.first_time for s in signals])
    stops = np.array([s.first_time + (p.shape[1] - 1) / target for s, p in zip(signals, pieces)])
    t0, t1 = starts.max(), stops.min()
    if t1 <= t0:
        spans = ", ".join(f"{s.name}: {a:.3f}-{b:.3f} s" for s, a, b in zip(signals, starts, stops))
        raise ValueError(f"The streams do not overlap in time ({spans}); convert them one at a time.")
    n = int(np.floor((t1 - t0) * target + 1e-9)) + 1
    cut, misalign, gaps = [], [], []
    for s, piece in zip(signals, pieces):
        offset = (t0 - s.first_time) * target
        k0 = int(round(offset))
        misalign.append(abs(k0 - offset) / target)
        n = min(n, piece.shape[1] - k0)
        cut.append((piece, k0))
        gaps += [k / s.sfreq - (t0 - s.first_time) for k in s.gap_starts]
    data = np.concatenate([piece[:, k0 : k0 + n] for piece, k0 in cut], axis=0)
    logger.info("Combined %s on a %.6g Hz grid from %.3f s to %.3f s (LSL clock); alignment error <= %.3g ms.",
                ", ".join(s.name for s in signals), target, t0, t0 + (n - 1) / target, 1e3 * max(misalign))
    return data, target, float(t0), [g for g in gaps if 0 < g < n / target]


@verbose
@fill_doc
def to_mne(session: Session, streams: str | Sequence[str] | None = None, *,
           markers: str | Sequence[str] | bool | None = "all", sync_options: SyncOptions | None = None,
           sfreq: float | None = None, pair_expression_markers: bool = True, line_freq: float | None = None,
           verbose: bool | str | int | None = None) -> mne.io.RawArray:
    """Convert EEG/EMG streams of a session to one :class:`mne.io.RawArray`, markers to annotations.

    Parameters
    ----------
    session : Session
        An open session (:meth:`Session.to_mne <acquisition.session.reader.Session.to_mne>` calls this;
        :func:`acquisition.io.export.to_mne` also takes a path).
    streams : str | list of str | None
        Numeric streams to convert, by name, or by modality / LSL type (``"emg"`` selects
        every EMG stream). None: every EEG and EMG stream.
    %(markers)s
    %(sync_options)s
    sfreq : float | None
        Rate in Hz of the result when streams of different rates are combined; each stream
        whose effective rate differs is resampled with :meth:`mne.io.Raw.resample`.
        None: the highest effective rate (no band is lost). Ignored for a single stream,
        which keeps its own rate.
    pair_expression_markers : bool
        Turn each complete expression (``onset/<label>/<kind>`` ... ``offset/<label>/<kind>``)
        into one annotation ``<label>/<kind>`` with a duration (see :func:`pair_markers`).
    line_freq : float | None
        Mains frequency in Hz, stored in ``raw.info["line_freq"]`` (BIDS needs it).
    %(verbose)s

    Returns
    -------
    raw : mne.io.RawArray
        Data in SI units (volts for EEG/EMG), shape ``(n_channels, n_times)``, at the
        effective rate; ``meas_date`` in UTC; annotations with onsets in seconds from the
        first sample.

    Notes
    -----
    Several streams are aligned on the interval they all cover; the first sample of each is
    placed to the nearest sample of the common grid (error at most half a sample period,
    0.25 ms at 2 kHz, logged). Markers are placed by sample index of the synchronized time
    stamps (a single stream) or by time from the common first sample (several streams).
    Marker events outside the data are dropped; ones that straddle an edge are cut to it.
    """
    selected = signal_streams(session, streams)
    signals = [s for s in (_load_signal(st, sync_options) for st in selected) if s is not None]
    if not signals:
        raise ValueError(
            f"All selected streams of {session.fname.name} are empty ({', '.join(s.name for s in selected)}); "
            f"nothing to convert. Streams in the session: {describe_streams(session)}."
        )
    _make_names_unique(signals)
    if len(signals) == 1:
        only = signals[0]
        data, rate, first_time = only.data, only.sfreq, only.first_time
        gaps = [k / only.sfreq for k in only.gap_starts]

        def onsets_of(t: np.ndarray) -> np.ndarray:
            return _index_onsets(only.times, t, only.sfreq)
    else:
        data, rate, first_time, gaps = _combine(signals, sfreq)

        def onsets_of(t: np.ndarray) -> np.ndarray:
            return t - first_time

    info = mne.create_info([c for s in signals for c in s.ch_names], rate, [t for s in signals for t in s.ch_types])
    info["line_freq"] = line_freq
    subject = str(session.info.get("subject_id", "")) or None
    if subject:
        info["subject_info"] = {"his_id": subject}
    info["description"] = (f"emosync session {session.info.get('session_id', '')}: "
                           + ", ".join(s.name for s in signals))
    raw = mne.io.RawArray(data, info, verbose=False)
    raw.set_meas_date(_meas_date(session, first_time))
    starts, lengths, texts = _marker_events(session, markers, sync_options, pair_expression_markers)
    onsets, durations, descriptions = [onsets_of(starts)], [lengths], texts
    for gap in gaps:
        onsets.append(np.array([gap, gap]))
        durations.append(np.zeros(2))
        descriptions += ["BAD boundary", "EDGE boundary"]
    if descriptions:
        raw.set_annotations(_clip_annotations(np.concatenate(onsets), np.concatenate(durations), descriptions,
                                              raw.times[-1] + 1 / rate))
    return raw


def _marker_events(session: Session, markers: str | Sequence[str] | bool | None, sync_options: SyncOptions | None,
                   pair: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Events of the chosen marker streams: starts (synchronized s), durations (s) and texts.

    With ``pair``, complete expressions become one event each (:func:`pair_markers`); else
    every marker is an event of zero length with its own text.
    """
    starts, lengths, texts = [np.zeros(0)], [np.zeros(0)], []
    for stream in marker_streams(session, markers):
        loaded = _load_markers(stream, sync_options)
        if loaded is None:
            continue
        if pair:
            times, durations, descriptions = pair_markers(loaded.times, loaded.texts)
        else:
            times, durations, descriptions = loaded.times, np.zeros(len(loaded.texts)), loaded.texts
        starts.append(times)
        lengths.append(durations)
        texts += descriptions
    return np.concatenate(starts), np.concatenate(lengths), texts


def _make_names_unique(signals: list[_Signal]) -> None:
    for s in signals:
        if len(set(s.ch_names)) != len(s.ch_names):
            logger.warning("Stream %s repeats channel labels %s; numbered to keep MNE names unique.", s.name,
                           sorted({c for c in s.ch_names if s.ch_names.count(c) > 1}))
            s.ch_names = [f"{c}-{i}" if s.ch_names.count(c) > 1 else c for i, c in enumerate(s.ch_names)]
    seen: dict[str, int] = {}
    for s in signals:
        for name in s.ch_names:
            seen[name] = seen.get(name, 0) + 1
    clashes = {name for name, count in seen.items() if count > 1}
    for s in signals:
        renamed = [f"{s.name}-{c}" if c in clashes else c for c in s.ch_names]
        if renamed != s.ch_names:
            logger.info("Stream %s: channel names shared with another stream were prefixed: %s", s.name,
                        ", ".join(r for r, c in zip(renamed, s.ch_names) if r != c))
        s.ch_names = renamed
    if len(set(c for s in signals for c in s.ch_names)) != sum(len(s.ch_names) for s in signals):
        raise ValueError("Channel names are not unique even after prefixing them with their stream names; "
                         "rename the channels (channel_labels) in the session.")


def _clip_annotations(onsets: np.ndarray, durations: np.ndarray, descriptions: list[str],
                      length_s: float) -> mne.Annotations:
    ends = onsets + durations
    keep = (ends >= 0) & (onsets <= length_s)
    dropped = int((~keep).sum())
    if dropped:
        logger.info("%d marker event(s) lie outside the converted data and were left out.", dropped)
    starts, ends = np.clip(onsets[keep], 0, length_s), np.clip(ends[keep], 0, length_s)
    return mne.Annotations(starts, ends - starts, [d for d, k in zip(descriptions, keep) if k])
