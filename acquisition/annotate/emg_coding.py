"""EMG-based AU coding (``emosync emg-code``): FACS intensities of the AUs the facial electrodes cover.

Facial EMG sees a muscle contract tens of milliseconds before the skin moves, and does not care
where the head points or how the face is lit, which is why the field codes AUs from it where the
camera struggles. Coding here is subject-independent: nothing is trained per subject.

1. **Muscles.** The muscle under each electrode comes from its channel label
   (:mod:`.electrodes`; aliases and explicit maps in the config).
2. **Envelopes.** Each channel is band-passed (20-450 Hz), notched at the mains frequency and
   rectified into a moving-RMS envelope (:func:`~acquisition.annotate.processing.emg_envelope`,
   MNE's filters), read at the output rate.
3. **Calibration on the subject.** A neutral baseline (the quietest stretch of the session, or a
   time range given in the config) sets each channel's resting power ``b``; the activity above
   it is ``sqrt(max(e^2 - b^2, 0))`` (powers add: resting tone and electrode noise are
   uncorrelated with the new activity), divided by the subject's own range (a high quantile of
   that activity over the session). Electrodes over the same muscle are averaged.
4. **Muscles to AUs.** Each AU whose muscles the montage covers (:data:`AU_CATALOGUE`
   weights, at least ``min_weight`` of them present) gets the weighted mean of its muscles'
   relative activity ``x``, mapped to FACS 0-5 by ``clip(offset + gain * x ** exponent, 0, 5)``.
   The curve's parameters are in the config, fitted only on the tuning subjects it lists
   (``benchmarks/emg_coding_eval.py --tune``).

The AUs go into a derived stream ``<EMG>-AU`` (type ``ActionUnits``, columns named as in
:data:`AU_LABELS`) on the EMG stream's clock, written through
:meth:`SessionWriter.replace_derived <acquisition.session.writer.SessionWriter.replace_derived>`,
so a failed run leaves the session as it was.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, field_validator, model_validator

from acquisition.annotate.action_units import AU_CATALOGUE, AU_IDS, AU_LABELS, MAX_INTENSITY
from acquisition.annotate.electrodes import KNOWN_MUSCLES, channel_muscles, channel_side, check_aliases
from acquisition.session.format import StreamSpec
from acquisition.utils.config import StrictModel, load_config
from acquisition.utils.docs import fill_doc
from acquisition.utils.logs import logger, verbose

#: ``derived_by`` of the AU streams EMG coding writes (spotting finds them by it).
DERIVED_BY = "emosync emg-code"
#: Suffix of the derived stream's name: ``"EMG"`` -> ``"EMG-AU"``.
OUT_SUFFIX = "-AU"


class TuningConfig(StrictModel):
    """Where the curve parameters come from; the held-out subjects are never used to set anything."""

    subjects: list[int]
    held_out: list[int]
    profile: str
    note: str = ""

    @model_validator(mode="after")
    def _disjoint(self) -> TuningConfig:
        both = sorted(set(self.subjects) & set(self.held_out))
        if both:
            raise ValueError(f"tuning.subjects and tuning.held_out share subjects {both}")
        return self


class BaselineConfig(StrictModel):
    """The neutral baseline: a given range, or the quietest stretch of ``window_s`` seconds."""

    range_s: tuple[float, float] | None = None  # seconds from the first EMG sample; None: find the quietest stretch
    window_s: float = Field(2.0, gt=0)

    @field_validator("range_s")
    @classmethod
    def _ordered(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not 0 <= value[0] < value[1]:
            raise ValueError(f"baseline.range_s {value} must be (start, stop) seconds with 0 <= start < stop")
        return value


class BlinkConfig(StrictModel):
    """Blinks are brief bursts of one muscle: split them off its slower activity (see :func:`split_bursts`)."""

    enabled: bool = True
    au: int = 45
    muscle: str = "orbicularis_oculi"
    max_duration_s: float = Field(0.3, gt=0, le=2.0)

    @model_validator(mode="after")
    def _known(self) -> BlinkConfig:
        if self.au not in AU_IDS:
            raise ValueError(f"blinks.au {self.au} is not an AU of {list(AU_IDS)}")
        if self.muscle not in KNOWN_MUSCLES:
            raise ValueError(f"blinks.muscle {self.muscle!r} is not a muscle of the AU vocabulary: "
                             f"{list(KNOWN_MUSCLES)}")
        return self


class CurveConfig(StrictModel):
    """Relative activity ``x`` (1 = the subject's range) to FACS intensity: ``offset + gain * x ** exponent``."""

    offset: float = Field(0.0, ge=-MAX_INTENSITY, le=MAX_INTENSITY)
    gain: float = Field(MAX_INTENSITY, gt=0)
    exponent: float = Field(1.0, gt=0, le=5)


class EMGCodingConfig(StrictModel):
    """Settings of EMG-based AU coding (``configs/emg_code/*.yaml``)."""

    tuning: TuningConfig
    srate_hz: float = Field(100.0, gt=0)                        # rate of the AU stream written
    band_hz: tuple[float, float] = (20.0, 450.0)                # surface-EMG pass band
    notch_hz: float | None = Field(50.0, ge=0)                  # mains; None or 0: no notch
    envelope_window_s: float = Field(0.1, gt=0)                 # moving-RMS window (the envelope's low-pass)
    baseline: BaselineConfig = BaselineConfig()
    range_quantile: float = Field(0.99, gt=0.5, lt=1)           # the subject's range: this quantile of activity
    min_range_factor: float = Field(1.0, ge=0)                  # range >= this x resting level (quiet sessions)
    min_weight: float = Field(0.5, gt=0)                        # an AU is covered if its present muscles weigh this
    blinks: BlinkConfig = BlinkConfig()
    muscles: dict[str, list[str]]                               # muscle -> aliases in channel labels
    channels: dict[str, str] = {}                               # explicit channel label -> muscle
    curves: dict[str, CurveConfig]                              # "default" and per-AU ("AU04") curves

    @model_validator(mode="after")
    def _check(self) -> EMGCodingConfig:
        check_aliases(self.muscles, self.channels)
        if "default" not in self.curves:
            raise ValueError("curves needs a 'default' entry")
        unknown = sorted(set(self.curves) - {"default", *AU_LABELS})
        if unknown:
            raise ValueError(f"curves has unknown keys {unknown}; use 'default' or AU labels {AU_LABELS}")
        if not 0 < self.band_hz[0] < self.band_hz[1]:
            raise ValueError(f"band_hz {self.band_hz} must be (low, high) Hz with 0 < low < high")
        return self

    def curve(self, au: int) -> CurveConfig:
        """The curve of one AU (its own, else the default)."""
        return self.curves.get(AU_LABELS[AU_IDS.index(au)], self.curves["default"])


def load_emg_coding_config(name_or_path: str | os.PathLike = "default",
                           overrides: Sequence[str] = ()) -> EMGCodingConfig:
    """Load ``configs/emg_code/<name>.yaml`` (or a path) with ``key=value`` overrides.

    Raises
    ------
    acquisition.utils.config.ConfigError
        If the file is missing, not YAML, or does not validate (unknown keys, unknown muscles...).
    """
    return load_config(EMGCodingConfig, Path(name_or_path) if isinstance(name_or_path, os.PathLike) else name_or_path,
                       "emg_code", overrides)


# ---------------------------------------------------------------------------- arrays
@dataclass
class _Coding:
    """Everything one coding run computes (arrays at the output rate)."""

    values: np.ndarray            # (n, k) FACS 0-5
    times_s: np.ndarray           # (n,) seconds from the first EMG sample
    au_ids: list[int]
    muscles: dict[str, str]       # channel label -> muscle
    baseline_s: tuple[float, float]
    rest_v: dict[str, float]      # channel -> resting RMS at the baseline (volts)
    range_v: dict[str, float]     # channel -> the subject's range of activity above rest (volts)


def covered_aus(muscles: Sequence[str], min_weight: float) -> dict[int, dict[str, float]]:
    """AUs the montage covers and the weights of their present muscles (from :data:`AU_CATALOGUE`).

    Parameters
    ----------
    muscles : sequence of str
        Muscles under the electrodes.
    min_weight : float
        An AU is covered when the weights of its present muscles add up to at least this.

    Returns
    -------
    aus : dict of int to dict of str to float
        AU -> {muscle: weight}, in :data:`AU_IDS` order.
    """
    present = set(muscles)
    out = {}
    for au in AU_IDS:
        weights = {m: w for m, w in AU_CATALOGUE[au].muscles.items() if m in present}
        if weights and sum(weights.values()) >= min_weight:
            out[au] = weights
    return out


def _envelopes(emg: np.ndarray, srate_hz: float, labels: list[str], config: EMGCodingConfig) -> tuple[np.ndarray,
                                                                                                      np.ndarray]:
    """Moving-RMS envelopes read at the output rate: ``(envelopes (n, n_ch) volts, times_s (n,))``."""
    import mne

    from acquisition.annotate.processing import emg_envelope

    info = mne.create_info(labels, srate_hz, ch_types="emg")
    raw = mne.io.RawArray(emg.T.astype(np.float64), info, verbose=False)
    notch = config.notch_hz if config.notch_hz else None
    env = emg_envelope(raw, picks="emg", band_hz=config.band_hz, notch_hz=notch, window_s=config.envelope_window_s,
                       method="rms", copy=False, verbose=False).get_data()
    n_out = int(np.floor((emg.shape[0] - 1) / srate_hz * config.srate_hz)) + 1
    times_s = np.arange(n_out) / config.srate_hz
    source_s = np.arange(emg.shape[0]) / srate_hz
    return np.column_stack([np.interp(times_s, source_s, ch) for ch in env]), times_s


def _moving_mean(x: np.ndarray, n: int) -> np.ndarray:
    """Mean of every run of ``n`` consecutive rows (``len(x) - n + 1`` rows)."""
    cumulative = np.concatenate([np.zeros((1, *x.shape[1:])), np.cumsum(x, axis=0)])
    return (cumulative[n:] - cumulative[:-n]) / n


def find_baseline(envelopes: np.ndarray, srate_hz: float, window_s: float) -> tuple[float, float]:
    """The quietest stretch: the ``window_s`` window where the envelopes, each relative to its median, sum lowest.

    Parameters
    ----------
    envelopes : array, shape (n, n_channels)
        Envelopes at ``srate_hz``.
    srate_hz : float
        Their rate.
    window_s : float
        Length of the baseline.

    Returns
    -------
    start_s, stop_s : float
        Seconds from the first sample.

    Raises
    ------
    ValueError
        If the data are shorter than the window.
    """
    n = int(round(window_s * srate_hz))
    if envelopes.shape[0] < n or n < 1:
        raise ValueError(f"The EMG is {envelopes.shape[0] / srate_hz:.2f} s long, shorter than the baseline window "
                         f"of {window_s:g} s. Record a longer session, or set a shorter baseline: "
                         "--set baseline.window_s=0.5 (or give it: --set baseline.range_s=[start,stop]).")
    median = np.median(envelopes, axis=0)
    relative = envelopes / np.where(median > 0, median, 1.0)
    start = int(np.argmin(_moving_mean(relative.sum(axis=1), n)))
    return start / srate_hz, (start + n) / srate_hz


def split_bursts(x: np.ndarray, srate_hz: float, max_duration_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Split activity into brief bursts and the rest, with a grey-scale opening.

    The opening (a moving minimum, then a moving maximum, over ``max_duration_s``) follows the
    signal wherever it stays up for at least that long and cuts off peaks that are narrower:
    blinks (0.1-0.4 s bursts of orbicularis oculi) go to ``bursts``, cheek raising and lid
    tightening, which are held, stay in ``sustained``.

    Parameters
    ----------
    x : array, shape (n,)
        Activity at ``srate_hz``.
    srate_hz : float
        Its rate.
    max_duration_s : float
        Longest burst.

    Returns
    -------
    sustained, bursts : array, shape (n,)
        Non-negative where ``x`` is; ``sustained + bursts == x``.
    """
    from scipy import ndimage

    size = 2 * int(round(max_duration_s * srate_hz / 2)) + 1
    sustained = ndimage.grey_opening(x, size=size, mode="nearest")
    return sustained, x - sustained


def _code(emg: np.ndarray, srate_hz: float, channel_labels: Sequence[str], config: EMGCodingConfig) -> _Coding:
    emg = np.asarray(emg)
    labels = [str(c) for c in channel_labels]
    if emg.ndim != 2 or emg.shape[1] != len(labels):
        raise ValueError(f"emg must have shape (n_samples, n_channels) with one column per channel label "
                         f"({len(labels)} labels), got {emg.shape}.")
    if srate_hz <= 0 or config.srate_hz > srate_hz:
        raise ValueError(f"The EMG rate {srate_hz:g} Hz must be positive and at least the output rate "
                         f"{config.srate_hz:g} Hz (set srate_hz lower with --set srate_hz=...).")
    if config.band_hz[1] >= srate_hz / 2:
        raise ValueError(f"band_hz {config.band_hz} does not fit below the Nyquist frequency {srate_hz / 2:g} Hz of "
                         f"EMG sampled at {srate_hz:g} Hz; lower it, e.g. --set band_hz=[20,{0.45 * srate_hz:g}].")
    muscles = channel_muscles(labels, config.muscles, config.channels)
    aus = covered_aus(list(muscles.values()), config.min_weight)
    if not aus:
        raise ValueError(f"The muscles under the electrodes ({sorted(set(muscles.values()))}) produce no AU with "
                         f"weight >= min_weight={config.min_weight:g}; lower it with --set min_weight=...")
    picked = [labels.index(label) for label in muscles]
    data = emg[:, picked]
    if not np.isfinite(data).all():
        raise ValueError("The EMG holds NaN or infinite samples; drop or interpolate them before coding.")
    env, times_s = _envelopes(data, srate_hz, list(muscles), config)
    if config.baseline.range_s is None:
        start_s, stop_s = find_baseline(env, config.srate_hz, config.baseline.window_s)
    else:
        start_s, stop_s = config.baseline.range_s
    window = (times_s >= start_s) & (times_s < stop_s)
    if not window.any():
        raise ValueError(f"baseline.range_s {config.baseline.range_s} holds no sample: the EMG spans 0 to "
                         f"{times_s[-1]:.2f} s from its first sample.")
    rest_power = np.mean(env[window] ** 2, axis=0)
    activity = np.sqrt(np.maximum(env**2 - rest_power, 0.0))
    spread = np.maximum(np.quantile(activity, config.range_quantile, axis=0),
                        config.min_range_factor * np.sqrt(rest_power))
    relative = activity / np.where(spread > 0, spread, 1.0)
    by_muscle = {m: relative[:, [i for i, mm in enumerate(muscles.values()) if mm == m]].mean(axis=1)
                 for m in dict.fromkeys(muscles.values())}
    blink = config.blinks
    bursts = {}
    if blink.enabled and blink.muscle in by_muscle:
        by_muscle[blink.muscle], bursts[blink.muscle] = split_bursts(by_muscle[blink.muscle], config.srate_hz,
                                                                     blink.max_duration_s)
    values = np.empty((len(times_s), len(aus)))
    for j, (au, weights) in enumerate(aus.items()):
        # The blink AU reads the bursts of the blink muscle; every other AU its sustained activity.
        parts = {**by_muscle, **bursts} if au == blink.au else by_muscle
        x = sum(w * parts[m] for m, w in weights.items()) / sum(weights.values())
        curve = config.curve(au)
        values[:, j] = np.clip(curve.offset + curve.gain * x**curve.exponent, 0.0, MAX_INTENSITY)
    logger.info("EMG coding: %s -> AUs %s; baseline %.2f-%.2f s", ", ".join(f"{k}={v}" for k, v in muscles.items()),
                ",".join(map(str, aus)), start_s, stop_s)
    return _Coding(values, times_s, list(aus), muscles, (float(start_s), float(stop_s)),
                   {k: float(np.sqrt(p)) for k, p in zip(muscles, rest_power)},
                   {k: float(s) for k, s in zip(muscles, spread)})


def emg_to_aus(emg: np.ndarray, srate_hz: float, channel_labels: Sequence[str], *,
               config: EMGCodingConfig | None = None) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """AU intensities from facial EMG, for the AUs its electrodes cover.

    Parameters
    ----------
    emg : array, shape (n_samples, n_channels)
        Facial EMG in volts (channels that name no muscle are ignored).
    srate_hz : float
        Its sampling rate.
    channel_labels : sequence of str
        One label per column, naming the muscle (``"EMG_ZYG_L"``, ``"Corrugator"``...).
    config : EMGCodingConfig | None
        Settings (default ``configs/emg_code/default.yaml``).

    Returns
    -------
    au_values : array of float, shape (n, k)
        FACS intensities 0-5 at ``config.srate_hz``, one column per covered AU.
    times_s : array of float, shape (n,)
        Seconds from the first EMG sample.
    au_ids : list of int
        The covered AUs, in :data:`AU_IDS` order (columns of ``au_values``).

    Raises
    ------
    ValueError
        If no channel names a known muscle (the message lists the labels and how to map them),
        if the shapes or rates do not fit, or if the data are shorter than the baseline.
    """
    coding = _code(emg, srate_hz, channel_labels, config or load_emg_coding_config())
    return coding.values, coding.times_s, coding.au_ids


# ---------------------------------------------------------------------------- sessions
@dataclass
class EMGCodingResult:
    """The outcome of :func:`emg_code_session`.

    Attributes
    ----------
    source : str
        The EMG stream coded.
    au_ids : list of int
        The covered AUs (columns of ``values``).
    values : array of float, shape (n, k)
        FACS intensities 0-5.
    timestamps : array of float, shape (n,)
        Raw time stamps on the EMG stream's clock (seconds).
    channel_muscles : dict of str to str
        Channel label -> muscle, for the channels used.
    baseline_s : (float, float)
        The neutral baseline, seconds from the first EMG sample.
    config : EMGCodingConfig
    out_stream : str | None
        The stream written (None with ``write=False``).
    rest_v, range_v : dict of str to float
        Per channel: resting RMS at the baseline and the range of activity above it (volts).
    """

    source: str
    au_ids: list[int]
    values: np.ndarray
    timestamps: np.ndarray
    channel_muscles: dict[str, str]
    baseline_s: tuple[float, float]
    config: EMGCodingConfig
    out_stream: str | None = None
    rest_v: dict[str, float] = field(default_factory=dict)
    range_v: dict[str, float] = field(default_factory=dict)

    @property
    def au_labels(self) -> list[str]:
        """Column labels (``"AU04"``...)."""
        return [AU_LABELS[AU_IDS.index(au)] for au in self.au_ids]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (no sample arrays)."""
        return {"source": self.source, "out_stream": self.out_stream, "aus": self.au_labels,
                "n_samples": int(len(self.timestamps)), "srate_hz": self.config.srate_hz,
                "baseline_s": list(self.baseline_s), "channel_muscles": self.channel_muscles,
                "sides": {k: channel_side(k) for k in self.channel_muscles},
                "rest_uv": {k: round(v * 1e6, 3) for k, v in self.rest_v.items()},
                "range_uv": {k: round(v * 1e6, 3) for k, v in self.range_v.items()},
                "mean": {lab: float(np.mean(self.values[:, j])) for j, lab in enumerate(self.au_labels)},
                "max": {lab: float(np.max(self.values[:, j])) for j, lab in enumerate(self.au_labels)}}


def _type(stream: Any) -> str:
    return str(stream.info.get("type", "")).lower()


def choose_emg_stream(session: Any, stream: str | None = None) -> Any:
    """The EMG stream to code: ``stream``, else the session's only stream of type ``EMG``.

    Raises
    ------
    ValueError
        If ``stream`` is missing or not EMG, or if the session has no EMG stream or several
        (the message lists the streams and says to pass ``--stream``).
    """
    listing = ", ".join(f"{n} ({s.info.get('type')})" for n, s in session.streams.items()) or "none"
    if stream is not None:
        if stream not in session.streams:
            raise ValueError(f"No stream {stream!r} in {session.fname}. Streams: {listing}.")
        st = session.streams[stream]
        if _type(st) != "emg":
            raise ValueError(f"Stream {stream!r} is of type {st.info.get('type')!r}, not EMG. Streams: {listing}.")
        return st
    candidates = [s for s in session.streams.values() if _type(s) == "emg"]
    if not candidates:
        raise ValueError(f"{session.fname} has no EMG stream (type 'EMG'). Streams: {listing}. "
                         "Record facial EMG, or name the stream with --stream.")
    if len(candidates) > 1:
        raise ValueError(f"{session.fname} has several EMG streams ({', '.join(s.name for s in candidates)}); "
                         "choose one with --stream.")
    return candidates[0]


@dataclass
class _Source:
    name: str
    info: dict[str, Any]
    clock_offsets: Any
    timestamps: np.ndarray
    existing: dict[str, str]  # stream -> derived_by ("" for recorded streams)


@verbose
@fill_doc
def emg_code_session(fname: str | os.PathLike, *, stream: str | None = None, config: EMGCodingConfig | None = None,
                     out_stream: str | None = None, overwrite: bool = False, write: bool = True,
                     verbose: bool | str | int | None = None) -> EMGCodingResult:
    """Code AU intensities from a session's facial EMG and write them as a derived stream.

    Parameters
    ----------
    %(fname_analysis)s
    stream : str | None
        The EMG stream; default the session's only stream of type ``EMG``.
    config : EMGCodingConfig | None
        Settings (default ``configs/emg_code/default.yaml``).
    out_stream : str | None
        Name of the AU stream to write (default ``"<EMG>-AU"``).
    overwrite : bool
        Replace an AU stream an earlier ``emg-code`` wrote (never another analysis' stream), once
        the new one is complete.
    write : bool
        False to only compute.
    %(verbose)s

    Returns
    -------
    result : EMGCodingResult

    Raises
    ------
    FileNotFoundError
        If the session does not exist.
    FileExistsError
        If ``out_stream`` exists and ``overwrite`` is False, or it was not written by ``emg-code``.
    ValueError
        If there is no usable EMG stream, or its channels name no known muscle.
    """
    from acquisition.session.reader import open_session
    from acquisition.session.writer import SessionWriter

    config = config or load_emg_coding_config()
    if not Path(fname).exists():
        raise FileNotFoundError(f"No session file {fname}.")
    with open_session(fname) as session:
        st = choose_emg_stream(session, stream)
        if st.n_samples == 0:
            raise ValueError(f"EMG stream {st.name!r} in {fname} is empty (0 samples); nothing to code.")
        srate = float(st.nominal_srate)
        if srate <= 0:
            raise ValueError(f"EMG stream {st.name!r} has no nominal rate (irregular stream); EMG coding needs a "
                             "regularly sampled stream.")
        labels = list(st.info.get("channel_labels") or [])
        if not labels:
            raise ValueError(f"EMG stream {st.name!r} in {fname} has no channel labels, so the muscles under its "
                             "electrodes are unknown. Record or import it with channel labels that name the muscles "
                             "(e.g. 'EMG_CORR_L', 'Zygomaticus major').")
        emg = np.asarray(st.data[:], dtype=np.float64)
        source = _Source(st.name, dict(st.info), st.clock_offsets, np.asarray(st.timestamps, dtype=np.float64),
                         {n: str(s.info.get("derived_by") or "") for n, s in session.streams.items()})
    coding = _code(emg, srate, labels, config)
    # Output samples sit at fractional EMG sample positions; their raw stamps follow the EMG's own stamps.
    positions = coding.times_s * srate
    timestamps = np.interp(positions, np.arange(len(source.timestamps)), source.timestamps)
    result = EMGCodingResult(source.name, coding.au_ids, coding.values, timestamps, coding.muscles, coding.baseline_s,
                             config, rest_v=coding.rest_v, range_v=coding.range_v)
    if not write:
        return result
    name = out_stream or f"{source.name}{OUT_SUFFIX}"
    replace = []
    if name in source.existing:
        if not overwrite:
            raise FileExistsError(f"{fname} already has a stream {name!r}. Pass --overwrite (overwrite=True) to "
                                  "replace it, or --out-stream to choose another name.")
        if source.existing[name] != DERIVED_BY:
            raise FileExistsError(f"Stream {name!r} in {fname} was not written by emg-code; refusing to replace it. "
                                  "Choose another --out-stream.")
        replace = [name]
    spec = StreamSpec(name, "ActionUnits", len(result.au_ids), "float32", config.srate_hz,
                      source_id=f"{source.info.get('source_id', '') or source.name}-AU",
                      hostname=str(source.info.get("hostname", "")), channel_labels=result.au_labels,
                      channel_units=["FACS intensity 0-5"] * len(result.au_ids),
                      extra={"derived_from": source.name, "emg_code_config": config.model_dump_json(),
                             "emg_code_baseline": json.dumps(
                                 {"start_s": coding.baseline_s[0], "stop_s": coding.baseline_s[1],
                                  "how": "quietest" if config.baseline.range_s is None else "given",
                                  "rest_uv": {k: v * 1e6 for k, v in coding.rest_v.items()},
                                  "range_uv": {k: v * 1e6 for k, v in coding.range_v.items()}}),
                             "emg_code_muscles": json.dumps(coding.muscles)})
    offsets = source.clock_offsets
    with SessionWriter.replace_derived(fname, [spec], derived_by=DERIVED_BY, replace=replace) as new:
        new[name].append(result.values.astype(np.float32), timestamps)
        # Same clock as the EMG: copy its offsets so the AUs' `times` line up with every other stream.
        if offsets.offsets.size:
            new[name].append_clock_offsets(offsets.collection_times, offsets.offsets, offsets.uncertainties)
    result.out_stream = name
    logger.info("Wrote %d samples of %s to stream %r of %s", len(timestamps), ",".join(result.au_labels), name, fname)
    return result
