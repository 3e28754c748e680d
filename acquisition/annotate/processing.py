"""Processing of physiological signals on MNE objects: EMG envelopes, baseline normalization, EEG cleaning.

These are the steps every facial-EMG and EEG analysis repeats after :func:`acquisition.io.export.to_mne`,
written once with the field's defaults (surface EMG 20-500 Hz, mains notch, RMS envelope; EEG
average reference) so that studies and the fusion datasets compute them the same way. All
filtering is MNE's (:meth:`mne.io.Raw.filter`, :meth:`mne.io.Raw.notch_filter`, zero-phase FIR);
the only arithmetic done here is rectification and the moving window of the envelope.

Functions take a ``Raw`` (or ``Epochs`` for :func:`normalize_to_baseline`), work on a copy by
default, and return the result, MNE style.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import mne
import numpy as np
from scipy import stats

from acquisition.utils.docs import add_doc, fill_doc
from acquisition.utils.logs import logger, verbose

#: Envelope methods: root mean square, or average rectified value (mean of ``|x|``).
ENVELOPE_METHODS = ("rms", "arv")

add_doc("copy_inst", """
copy : bool
    Work on a copy (default) or in place.
""")


def _pick(inst: mne.io.BaseRaw | mne.BaseEpochs | mne.Evoked, picks: str | Sequence[str] | Sequence[int],
          what: str) -> np.ndarray:
    """Channel indices for a channel type (``"emg"``), a channel name, or a list of names or indices."""
    types = inst.get_channel_types()
    names = inst.ch_names
    if isinstance(picks, str):
        # A channel type first (as MNE reads picks), else a single channel name.
        index = [i for i, t in enumerate(types) if t == picks]
        if not index and picks in names:
            index = [names.index(picks)]
    else:
        index = []
        for p in picks:
            if isinstance(p, (int, np.integer)) and 0 <= int(p) < len(names):
                index.append(int(p))
            elif p in names:
                index.append(names.index(p))
            else:
                raise ValueError(f"Channel {p!r} is not in the data; its channels are {names}.")
    if not index:
        raise ValueError(
            f"No {what} channels selected by picks={picks!r}: the data have channel types "
            f"{dict(Counter(types))}. Pass picks=[channel names] or set the channel types "
            "(raw.set_channel_types) first."
        )
    return np.array(index)


def _clip_band(band_hz: tuple[float | None, float | None] | None, sfreq: float) -> tuple[float | None, float | None]:
    if band_hz is None:
        return None, None
    low, high = band_hz
    nyquist = sfreq / 2.0
    if high is not None and high >= nyquist:
        clipped = 0.9 * nyquist
        logger.warning("Low-pass edge %.6g Hz is not below the Nyquist frequency %.6g Hz (sfreq %.6g Hz); "
                       "using %.6g Hz instead.", high, nyquist, sfreq, clipped)
        high = clipped
    if low is not None and high is not None and low >= high:
        raise ValueError(f"Band {band_hz} Hz does not fit below the Nyquist frequency {nyquist:g} Hz of data "
                         f"sampled at {sfreq:g} Hz (high edge clipped to {high:g} Hz); pass a lower band_hz.")
    if low is not None and low <= 0:
        low = None
    return low, high


def _notch_freqs(notch_hz: float | None, top_hz: float | None, sfreq: float) -> np.ndarray:
    """Mains frequency and its harmonics up to ``top_hz`` (or Nyquist), keeping room for the notch's transition."""
    if notch_hz is None or notch_hz <= 0:
        return np.zeros(0)
    nyquist = sfreq / 2.0
    # MNE's FIR notch needs its stop band (width f/200) plus a 1 Hz transition below Nyquist.
    limit = min(top_hz if top_hz is not None else nyquist, nyquist - 1.0)
    freqs = np.arange(1, int(limit // notch_hz) + 1) * float(notch_hz)
    freqs = freqs[freqs + freqs / 400 + 0.5 < nyquist]
    if freqs.size == 0 and (top_hz is None or notch_hz <= top_hz):
        logger.warning("Mains notch at %.6g Hz skipped: it is not below the Nyquist frequency %.6g Hz of data "
                       "sampled at %.6g Hz.", notch_hz, nyquist, sfreq)
    return freqs


@verbose
@fill_doc
def filter_emg(raw: mne.io.BaseRaw, *, picks: str | Sequence[str] = "emg",
               band_hz: tuple[float | None, float | None] | None = (20.0, 500.0), notch_hz: float | None = 50.0,
               copy: bool = True, verbose: bool | str | int | None = None) -> mne.io.BaseRaw:
    """Band-pass and notch-filter EMG channels with MNE's zero-phase FIR filters.

    Parameters
    ----------
    raw : mne.io.Raw
        Data with EMG channels, loaded (volts).
    picks : str | list of str
        Channels to filter: a channel type (default ``"emg"``) or channel names.
    band_hz : (float | None, float | None) | None
        Pass band in Hz (surface EMG: 20-500 Hz). A high edge at or above Nyquist is
        clipped to 0.9 x Nyquist with a warning; None skips the band-pass.
    notch_hz : float | None
        Mains frequency in Hz (50 in Europe, 60 in the Americas); it and its harmonics
        up to the high band edge are notched. Skipped with a warning when it is not
        below Nyquist; None: no notch.
    %(copy_inst)s
    %(verbose)s

    Returns
    -------
    raw : mne.io.Raw
        The filtered data (volts).
    """
    raw = raw.copy() if copy else raw
    index = _pick(raw, picks, "EMG")
    sfreq = raw.info["sfreq"]
    low, high = _clip_band(band_hz, sfreq)
    freqs = _notch_freqs(notch_hz, high, sfreq)
    if freqs.size:
        raw.notch_filter(freqs, picks=index, verbose=False)
    if low is not None or high is not None:
        raw.filter(low, high, picks=index, verbose=False)
    return raw


def _moving_mean(x: np.ndarray, half: int) -> np.ndarray:
    """Centered moving mean over ``2 * half + 1`` samples along the last axis; shorter windows at the edges."""
    n = x.shape[-1]
    cumulative = np.concatenate([np.zeros((*x.shape[:-1], 1)), np.cumsum(x, axis=-1)], axis=-1)
    k = np.arange(n)
    lo, hi = np.maximum(k - half, 0), np.minimum(k + half + 1, n)
    return (cumulative[..., hi] - cumulative[..., lo]) / (hi - lo)


@verbose
@fill_doc
def emg_envelope(raw: mne.io.BaseRaw, *, picks: str | Sequence[str] = "emg",
                 band_hz: tuple[float | None, float | None] | None = (20.0, 500.0), notch_hz: float | None = 50.0,
                 window_s: float = 0.1, method: str = "rms", copy: bool = True,
                 verbose: bool | str | int | None = None) -> mne.io.BaseRaw:
    """EMG amplitude envelope: band-pass, notch, rectify, then a centered moving RMS (or mean).

    Parameters
    ----------
    raw : mne.io.Raw
        Data with EMG channels, loaded (volts).
    picks : str | list of str
        EMG channels (default: every channel of type ``emg``); others are left untouched.
    band_hz, notch_hz
        Filters applied first, see :func:`filter_emg`.
    window_s : float
        Length of the moving window in seconds (default 0.1 s). It spans
        ``2 * round(window_s * sfreq / 2) + 1`` samples centered on each sample (so the
        envelope is not delayed); near the edges it is shortened to the samples available.
    method : ``"rms"`` | ``"arv"``
        ``"rms"``: square root of the window mean of the squared (rectified) signal;
        ``"arv"``: window mean of the rectified signal (average rectified value).
    %(copy_inst)s
    %(verbose)s

    Returns
    -------
    raw : mne.io.Raw
        The envelope (volts, non-negative) in the picked channels, same shape and rate.
    """
    if method not in ENVELOPE_METHODS:
        raise ValueError(f"method must be one of {ENVELOPE_METHODS}, got {method!r}.")
    if window_s <= 0:
        raise ValueError(f"window_s must be positive (seconds), got {window_s}.")
    raw = filter_emg(raw, picks=picks, band_hz=band_hz, notch_hz=notch_hz, copy=copy)
    index = _pick(raw, picks, "EMG")
    half = int(round(window_s * raw.info["sfreq"] / 2))
    if half < 1:
        logger.warning("window_s=%g s is shorter than two samples at %g Hz: the envelope is the rectified signal.",
                       window_s, raw.info["sfreq"])

    def envelope(x: np.ndarray) -> np.ndarray:
        rectified = np.abs(x)
        if method == "rms":
            return np.sqrt(_moving_mean(rectified**2, half))
        return _moving_mean(rectified, half)

    raw.apply_function(envelope, picks=index, channel_wise=False, verbose=False)
    return raw


@verbose
@fill_doc
def normalize_to_baseline(inst: mne.io.BaseRaw | mne.BaseEpochs | mne.Evoked, baseline: tuple[float, float], *,
                          picks: str | Sequence[str] = "emg", mode: str = "ratio", copy: bool = True,
                          verbose: bool | str | int | None = None) -> mne.io.BaseRaw | mne.BaseEpochs | mne.Evoked:
    """Express activation relative to a baseline window, per channel (and per epoch), with MNE's ``rescale``.

    Parameters
    ----------
    inst : mne.io.Raw | mne.Epochs | mne.Evoked
        Envelopes (e.g. from :func:`emg_envelope`), loaded.
    baseline : (float, float)
        Baseline window in seconds on ``inst.times`` (from the first sample of a Raw; from
        the event for Epochs, e.g. ``(-2.0, 0.0)``).
    picks : str | list of str
        Channels to normalize (default: every ``emg`` channel).
    mode : str
        :func:`mne.baseline.rescale` mode: ``"ratio"`` (default: divide by the baseline
        mean, so 1 means baseline activation), ``"percent"``, ``"mean"``, ``"zscore"``,
        ``"logratio"``...
    %(copy_inst)s
    %(verbose)s

    Returns
    -------
    inst : mne.io.Raw | mne.Epochs | mne.Evoked
        Normalized data. With ``"ratio"`` the picked channels are dimensionless (their MNE
        type is unchanged, so do not export them as volts).
    """
    if isinstance(inst, mne.BaseEpochs) and not inst.preload:
        raise ValueError("normalize_to_baseline needs loaded epochs: create them with preload=True "
                         "or call epochs.load_data().")
    inst = inst.copy() if copy else inst
    index = _pick(inst, picks, "EMG")
    tmin, tmax = baseline
    times = inst.times
    window = (times >= tmin) & (times <= tmax)
    if not window.any():
        raise ValueError(f"Baseline {baseline} s holds no sample: the data span {times[0]:g} to {times[-1]:g} s.")
    if mode in ("ratio", "percent", "logratio", "zlogratio"):
        data = inst.get_data(picks=index)
        means = data[..., window].mean(axis=-1)
        if np.any(means <= 0):
            bad = sorted({inst.ch_names[index[i]] for i in np.argwhere(means <= 0)[:, -1]})
            raise ValueError(f"The baseline mean of {bad} is not positive, so mode={mode!r} is undefined; "
                             "normalize an envelope (emg_envelope), not the raw signal.")

    def rescale(x: np.ndarray) -> np.ndarray:
        return mne.baseline.rescale(x, times, (tmin, tmax), mode=mode, copy=True, verbose=False)

    if isinstance(inst, mne.Evoked):
        inst.data[index] = rescale(inst.data[index])
    else:
        inst.apply_function(rescale, picks=index, channel_wise=False, verbose=False)
    return inst


@verbose
@fill_doc
def preprocess_eeg(raw: mne.io.BaseRaw, *, reference: str | Sequence[str] | None = "average",
                   band_hz: tuple[float | None, float | None] | None = (1.0, 40.0), notch_hz: float | None = 50.0,
                   copy: bool = True, verbose: bool | str | int | None = None) -> mne.io.BaseRaw:
    """Re-reference, notch and band-pass EEG channels with MNE.

    Parameters
    ----------
    raw : mne.io.Raw
        Data with EEG channels, loaded (volts).
    reference : ``"average"`` | list of str | None
        New reference (see :meth:`mne.io.Raw.set_eeg_reference`): the average of all EEG
        channels (default), the mean of the named channels (e.g. ``["TP9", "TP10"]``), or
        None to keep the recorded one.
    band_hz : (float | None, float | None) | None
        Pass band in Hz (default 1-40 Hz); a high edge at or above Nyquist is clipped with
        a warning; None: no band-pass.
    notch_hz : float | None
        Mains frequency in Hz; it and its harmonics inside the pass band are notched
        (none when the band stops below it).
    %(copy_inst)s
    %(verbose)s

    Returns
    -------
    raw : mne.io.Raw
        The processed data (volts); other channel types are untouched.
    """
    raw = raw.copy() if copy else raw
    index = _pick(raw, "eeg", "EEG")
    if reference is not None:
        raw.set_eeg_reference(reference if isinstance(reference, str) else list(reference), projection=False,
                              verbose=False)
    sfreq = raw.info["sfreq"]
    low, high = _clip_band(band_hz, sfreq)
    freqs = _notch_freqs(notch_hz, high, sfreq)
    if freqs.size:
        raw.notch_filter(freqs, picks=index, verbose=False)
    if low is not None or high is not None:
        raw.filter(low, high, picks=index, verbose=False)
    return raw


@dataclass
class ConditionMean:
    """Mean time course of one condition with its confidence interval.

    Attributes
    ----------
    times : array of float, shape (n_times,)
        Seconds from the event.
    mean, lower, upper : array of float, shape (n_channels, n_times)
        Mean over epochs and the bounds of its two-sided confidence interval (Student t,
        ``n_epochs - 1`` degrees of freedom; NaN with a single epoch).
    n_epochs : int
        Epochs averaged.
    ch_names : list of str
        The channels, in row order.
    """

    times: np.ndarray
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    n_epochs: int
    ch_names: list[str]


def condition_means(epochs: mne.BaseEpochs, *, picks: str | Sequence[str] = "emg",
                    confidence: float = 0.95) -> dict[str, ConditionMean]:
    """Mean time course and confidence interval per condition (event type) of loaded epochs.

    Parameters
    ----------
    epochs : mne.Epochs
        Epochs with their ``event_id`` naming the conditions.
    picks : str | list of str
        Channels (default: every ``emg`` channel).
    confidence : float
        Coverage of the interval (default 0.95), from the t distribution of the epoch mean.

    Returns
    -------
    means : dict of str to ConditionMean
        One entry per condition that has epochs left.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}.")
    index = _pick(epochs, picks, "selected")
    out = {}
    for condition in epochs.event_id:
        data = epochs[condition].get_data(picks=index)  # (n_epochs, n_channels, n_times)
        n = data.shape[0]
        if n == 0:
            continue
        mean = data.mean(axis=0)
        if n > 1:
            half = stats.t.ppf(0.5 + confidence / 2, n - 1) * data.std(axis=0, ddof=1) / np.sqrt(n)
        else:
            half = np.full_like(mean, np.nan)
        out[condition] = ConditionMean(epochs.times.copy(), mean, mean - half, mean + half, n,
                                       [epochs.ch_names[i] for i in index])
    return out
