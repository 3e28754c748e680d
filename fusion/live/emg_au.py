"""AU estimates from live facial EMG: ``emosync emg-code``'s model (:mod:`acquisition.annotate.emg_coding`) made causal.

Offline coding sees the whole session: the neutral baseline is its quietest 2 s stretch and the subject's
range a high quantile of all the activity. Live, both are running: the resting power of a channel is the
lowest 2 s mean power seen so far, and the range the same quantile of the last ``range_history_s``
seconds of activity (at least ``min_range_factor`` times the resting level, as offline). The muscles, the
AUs they cover and the intensity curves are those of the ``configs/emg_code`` file named in the live
config, so live and offline AUs are the same model. Not made causal: the blink split (a grey opening
needs ``max_duration_s`` of the future), so AU45 and the orbicularis oculi AUs include blinks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from acquisition.annotate.action_units import AU_LABELS, AU_IDS, MAX_INTENSITY
from acquisition.annotate.electrodes import channel_muscles
from acquisition.annotate.emg_coding import EMGCodingConfig, covered_aus

from .spotter import EMGEnvelope

#: Rate at which the activity history for the subject's range is kept, Hz.
RANGE_RATE_HZ = 10.0


class OnlineEMGCoder:
    """FACS intensities (0-5) of the AUs a montage covers, from EMG chunks, causally.

    Parameters
    ----------
    channel_labels : sequence of str
        One label per EMG channel, naming the muscle (``"EMG_ZYG_L"``...).
    srate_hz : float
        EMG rate.
    config : EMGCodingConfig
        ``configs/emg_code``'s settings (muscles, band, envelope, curves).
    baseline_window_s : float
        Length of the running resting-power window, seconds.
    range_history_s : float
        Seconds of activity over which the subject's range is taken.

    Raises
    ------
    ValueError
        If no channel names a known muscle, or the muscles cover no AU (as ``emosync emg-code``).
    """

    def __init__(self, channel_labels: Sequence[str], srate_hz: float, config: EMGCodingConfig, *,
                 baseline_window_s: float = 2.0, range_history_s: float = 60.0) -> None:
        labels = [str(c) for c in channel_labels]
        self.muscles = channel_muscles(labels, config.muscles, config.channels)
        self.aus = covered_aus(list(self.muscles.values()), config.min_weight)
        if not self.aus:
            raise ValueError(f"The muscles under the electrodes ({sorted(set(self.muscles.values()))}) produce no "
                             f"AU with weight >= min_weight={config.min_weight:g}.")
        self.config = config
        self._picked = [labels.index(label) for label in self.muscles]
        self._muscle_of = list(self.muscles.values())
        self.envelope = EMGEnvelope(srate_hz, len(self._picked), band_hz=config.band_hz, notch_hz=config.notch_hz,
                                    window_s=config.envelope_window_s, out_rate_hz=config.srate_hz)
        self._base_n = max(1, int(round(baseline_window_s * config.srate_hz)))
        self._power_tail = np.zeros((0, len(self._picked)))
        self._rest_power = np.full(len(self._picked), np.inf)
        self._range_every = max(1, int(round(config.srate_hz / RANGE_RATE_HZ)))
        self._range = np.full((max(2, int(range_history_s * RANGE_RATE_HZ)), len(self._picked)), np.nan)
        self._rows = 0
        self._range_seen = 0

    @property
    def au_labels(self) -> list[str]:
        """Column names of the output (``"AU04"``...), in :data:`AU_IDS` order."""
        return [AU_LABELS[AU_IDS.index(au)] for au in self.aus]

    def process(self, emg: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """AU intensities of an EMG chunk (n, n_channels) volts with its stamps (n,).

        Returns
        -------
        values : array, shape (k, n_aus)
            FACS 0-5 at the coding rate (``config.srate_hz``); columns :attr:`au_labels`.
        times : array, shape (k,)
            Their time stamps, corrected for the envelope's delay.
        """
        env, t = self.envelope.process(np.asarray(emg)[:, self._picked], times)
        if not len(env):
            return np.zeros((0, len(self.aus))), t
        power = env ** 2
        # Resting power: the lowest mean power over any baseline window seen so far (the quietest stretch).
        tail = np.concatenate([self._power_tail, power])
        if len(tail) >= self._base_n:
            cumulative = np.concatenate([np.zeros((1, tail.shape[1])), np.cumsum(tail, axis=0)])
            means = (cumulative[self._base_n:] - cumulative[:-self._base_n]) / self._base_n
            self._rest_power = np.minimum(self._rest_power, means.min(0))
            rest = self._rest_power
        else:
            rest = np.minimum(self._rest_power, tail.mean(0))
        self._power_tail = tail[-(self._base_n - 1):] if self._base_n > 1 else tail[:0]
        activity = np.sqrt(np.maximum(power - rest, 0.0))
        index = self._rows + np.arange(len(activity))
        for row in activity[index % self._range_every == 0]:
            self._range[self._range_seen % len(self._range)] = row
            self._range_seen += 1
        self._rows += len(activity)
        held = self._range[: min(self._range_seen, len(self._range))]
        quantile = np.quantile(held, self.config.range_quantile, axis=0) if len(held) else np.zeros(len(rest))
        spread = np.maximum(quantile, self.config.min_range_factor * np.sqrt(rest))
        relative = activity / np.where(spread > 0, spread, 1.0)
        by_muscle = {m: relative[:, [i for i, mm in enumerate(self._muscle_of) if mm == m]].mean(axis=1)
                     for m in dict.fromkeys(self._muscle_of)}
        values = np.empty((len(activity), len(self.aus)))
        for j, (au, weights) in enumerate(self.aus.items()):
            x = sum(w * by_muscle[m] for m, w in weights.items()) / sum(weights.values())
            curve = self.config.curve(au)
            values[:, j] = np.clip(curve.offset + curve.gain * x ** curve.exponent, 0.0, MAX_INTENSITY)
        return values, t - self.envelope.delay_s
