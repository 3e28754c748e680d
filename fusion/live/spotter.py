"""The online spotter: ``emosync spot``'s logic made causal, on facial-EMG envelopes or video motion.

Offline, :func:`acquisition.annotate.spotting.spot_expressions` sees the whole session: zero-phase
filters, a centred 20 s rolling median, robust SDs over the session, then hysteresis. Live, every step
only looks back:

1. **Front end.** :class:`EMGEnvelope`: causal band-pass (4th-order Butterworth) and mains notch with
   carried filter state, then a causal moving RMS read at ``rate_hz`` (100 Hz). A causal moving
   average delays its input by half its window, so event times are stamped ``envelope_window_s / 2``
   earlier. Without EMG, :class:`VideoMotion` gives the mean absolute grey-level change between
   consecutive frames (every ``video_step_px``-th pixel: 0.75 ms a VGA frame, measured).
2. **Standardization.** Per channel, a running median over the last ``baseline_window_s`` (the neutral
   face) and a robust SD (1.4826 MAD) of the same history, refreshed at 5 Hz; the activation is the L2
   norm of the positive z-scores, standardized again by its own running median and robust SD (step 7
   of docs/spotting.md).
3. **Hysteresis with a bounded delay.** A run above ``low`` that reaches ``high`` is an expression; it
   ends once the activation has stayed below ``low`` for ``merge_gap_s`` (so a shorter dip merges, as
   offline), or is closed when it has lasted ``max_duration_s``. Onset and offset then move outwards
   while the activation keeps falling, down to ``edge_fraction`` of the peak, over the history kept
   (inwards when that fraction is above ``low``: a strong burst crosses ``low`` on the filters' tails).
   So every expression is decided at most ``merge_gap_s`` after its offset, or ``max_duration_s`` after
   its onset: that is the delay of its markers.

Why EMG by default: facial EMG sees a contraction tens of ms before the skin moves, costs a few
filters per sample (5 ms per second of 8-channel 2 kHz EMG), and is blind to head pose and lighting.
The face tracker the offline spotter relies on (MediaPipe's Face Landmarker) took 30 ms a VGA frame on
an idle core here, 91 % of the 33 ms a 30 fps frame allows, before the recorder takes its share of the
2 cores (docs/live.md); so the video path uses frame differences instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import signal

from acquisition.annotate.action_units import MICRO_MAX_DURATION_S

from .config import SpotterConfig

#: Rate at which the running baselines are refreshed, Hz.
BASELINE_RATE_HZ = 5.0
#: Seconds of history needed before anything is spotted.
MIN_BASELINE_S = 2.0
#: Smallest robust SD of the combined activation, in robust SDs of the channels: with one channel (video
#: motion) half the positive parts are 0, its MAD nearly 0, and noise alone reached 40 "SDs" without it.
ACTIVATION_SD_FLOOR = 0.5
#: Quality factor of the causal mains notch: 10 Hz wide at 50 Hz. A narrow IIR notch (Q = 30) rings for
#: about half a second after a burst (measured: it kept strong bursts above threshold 0.25 s longer).
NOTCH_Q = 5.0


class EMGEnvelope:
    """Causal moving-RMS envelopes of facial EMG, read at ``out_rate_hz``.

    Parameters
    ----------
    srate_hz : float
        EMG rate.
    n_channels : int
        Channels.
    band_hz : tuple of float
        Pass band, Hz.
    notch_hz : float | None
        Mains frequency to notch; None or 0 for none.
    window_s : float
        Moving-RMS window, seconds.
    out_rate_hz : float
        Rate of the envelopes (one row every ``round(srate_hz / out_rate_hz)`` input samples).

    Raises
    ------
    ValueError
        If the band does not fit below the Nyquist frequency, or the output rate exceeds the EMG rate.
    """

    def __init__(self, srate_hz: float, n_channels: int, *, band_hz: tuple[float, float] = (20.0, 450.0),
                 notch_hz: float | None = 50.0, window_s: float = 0.1, out_rate_hz: float = 100.0) -> None:
        if band_hz[1] >= srate_hz / 2:
            raise ValueError(f"spotter.band_hz {tuple(band_hz)} does not fit below the Nyquist frequency "
                             f"{srate_hz / 2:g} Hz of EMG at {srate_hz:g} Hz; lower it, e.g. "
                             f"--set spotter.band_hz=[20,{0.45 * srate_hz:g}].")
        if out_rate_hz > srate_hz:
            raise ValueError(f"spotter.rate_hz {out_rate_hz:g} exceeds the EMG rate {srate_hz:g} Hz.")
        sos = signal.butter(4, band_hz, btype="bandpass", fs=srate_hz, output="sos")
        if notch_hz and notch_hz < srate_hz / 2:
            b, a = signal.iirnotch(notch_hz, NOTCH_Q, fs=srate_hz)
            sos = np.vstack([sos, signal.tf2sos(b, a)])
        self._sos = sos
        self._zi = np.zeros((sos.shape[0], 2, n_channels))
        self._n = max(1, int(round(window_s * srate_hz)))
        self._tail = np.zeros((self._n, n_channels))   # the last n squared samples (zeros before the start)
        self._step = max(1, int(round(srate_hz / out_rate_hz)))
        self._count = 0                                  # input samples seen
        self.delay_s = window_s / 2                      # group delay of the causal moving average

    def process(self, x: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Filter a chunk ``x`` (n, n_channels) volts with its time stamps (n,).

        Returns
        -------
        envelopes : array, shape (k, n_channels)
            RMS in volts at the output rate (the rows whose sample index is a multiple of the step).
        times : array, shape (k,)
            The time stamps of those rows (not corrected for the envelope's delay).
        """
        y, self._zi = signal.sosfilt(self._sos, np.asarray(x, dtype=np.float64), axis=0, zi=self._zi)
        sq = np.concatenate([self._tail, y * y])
        cumulative = np.concatenate([np.zeros((1, sq.shape[1])), np.cumsum(sq, axis=0)])
        # the sum of the n squares ending at each new sample
        window_sum = cumulative[self._n + 1:] - cumulative[1:len(y) + 1]
        self._tail = sq[-self._n:]
        index = self._count + np.arange(len(y))
        keep = index % self._step == 0
        self._count += len(y)
        return np.sqrt(np.maximum(window_sum[keep], 0.0) / self._n), np.asarray(times)[keep]


class VideoMotion:
    """Mean absolute grey-level change between consecutive frames (0-255 scale), every ``step``-th pixel.

    Parameters
    ----------
    frame_shape : tuple of int
        ``(height, width, 3)`` for RGB or ``(height, width)``.
    step : int
        Pixel stride in both directions.
    """

    def __init__(self, frame_shape: tuple[int, ...], step: int = 4) -> None:
        self.frame_shape, self.step = tuple(frame_shape), int(step)
        self._previous: np.ndarray | None = None
        self.delay_s = 0.0

    def process(self, frames: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frames as buffer rows (n, n_values) -> motion (k, 1) and the stamps of those frames (k,)."""
        n = len(frames)
        out, stamps = [], []
        for i in range(n):
            f = frames[i].view(np.uint8 if len(self.frame_shape) == 3 else np.uint16).reshape(self.frame_shape)
            grey = f[::self.step, ::self.step].astype(np.float32)
            grey = grey.mean(2) if grey.ndim == 3 else grey
            if self._previous is not None:
                out.append(float(np.mean(np.abs(grey - self._previous))))
                stamps.append(float(times[i]))
            self._previous = grey
        return np.asarray(out).reshape(-1, 1), np.asarray(stamps)


@dataclass
class LiveExpression:
    """One expression the online spotter decided.

    Attributes
    ----------
    onset_s, apex_s, offset_s : float
        Times of the onset, apex and offset on the clock of the samples fed (corrected for the front
        end's delay), seconds.
    peak : float
        Activation at the apex (robust SDs above the running baseline).
    kind : ``"micro"`` | ``"macro"``
        Micro if it lasted at most 0.5 s.
    decided_s : float
        Time of the sample at which it was decided (its offset plus the delay).
    forced : bool
        True when closed at ``max_duration_s`` rather than at its end.
    """

    onset_s: float
    apex_s: float
    offset_s: float
    peak: float
    kind: str
    decided_s: float
    forced: bool = False

    @property
    def duration_s(self) -> float:
        """Offset minus onset, seconds."""
        return self.offset_s - self.onset_s


class _RunningBaseline:
    """Running median and robust SD per column over the last ``window_s``, refreshed at 5 Hz."""

    def __init__(self, n_columns: int, rate_hz: float, window_s: float) -> None:
        self._every = max(1, int(round(rate_hz / BASELINE_RATE_HZ)))
        self._history = np.full((max(3, int(round(window_s * BASELINE_RATE_HZ))), n_columns), np.nan)
        self._seen = 0
        self.median = np.zeros(n_columns)
        self.sd = np.ones(n_columns)

    @property
    def seconds(self) -> float:
        """Seconds of history held."""
        return min(self._seen, len(self._history)) / BASELINE_RATE_HZ

    def feed(self, k: int, row: np.ndarray) -> None:
        if k % self._every:
            return
        self._history[self._seen % len(self._history)] = row
        self._seen += 1
        held = self._history[: min(self._seen, len(self._history))]
        self.median = np.median(held, axis=0)
        self.sd = 1.4826 * np.median(np.abs(held - self.median), axis=0)


class OnlineSpotter:
    """Causal expression spotting on a multichannel feature stream (envelopes or motion).

    Parameters
    ----------
    n_channels : int
        Feature columns (EMG channels, or 1 for video motion).
    rate_hz : float
        Rate of the feature rows.
    config : SpotterConfig
        Thresholds and timings (``configs/live``'s ``spotter``).
    delay_s : float
        Front-end delay subtracted from every event time (half the moving-RMS window for EMG).
    """

    def __init__(self, n_channels: int, rate_hz: float, config: SpotterConfig, *, delay_s: float = 0.0) -> None:
        self.config, self.rate_hz, self.delay_s = config, float(rate_hz), float(delay_s)
        self._channels = _RunningBaseline(n_channels, rate_hz, config.baseline_window_s)
        self._activation = _RunningBaseline(1, rate_hz, config.baseline_window_s)
        size = int(np.ceil((config.max_duration_s + config.merge_gap_s + 2.0) * rate_hz))
        self._times = np.zeros(size)
        self._act = np.zeros(size)
        self._k = 0
        self._open: dict | None = None
        self._refractory = False
        self._merge_n = int(round(config.merge_gap_s * rate_hz))
        self._max_n = int(round(config.max_duration_s * rate_hz))
        self._min_n = max(2, int(np.ceil(config.min_duration_s * rate_hz)))
        self.last_activation = 0.0

    @property
    def ready(self) -> bool:
        """Whether the baselines hold enough history to spot."""
        return self._activation.seconds >= MIN_BASELINE_S

    def activation(self, rows: np.ndarray) -> np.ndarray:
        """Standardized activation of feature rows (updates the running baselines)."""
        out = np.empty(len(rows))
        floor = self.config.noise_floor
        for i, row in enumerate(rows):
            k = self._k + i
            self._channels.feed(k, row)
            base = self._channels
            sd = np.maximum(base.sd, floor * np.abs(base.median) + 1e-12)
            raw = float(np.linalg.norm(np.clip((row - base.median) / sd, 0.0, None)))
            self._activation.feed(k, np.array([raw]))
            a = self._activation
            out[i] = (raw - a.median[0]) / max(a.sd[0], ACTIVATION_SD_FLOOR)
        return out

    def update(self, rows: np.ndarray, times: np.ndarray) -> list[LiveExpression]:
        """Feed feature rows (n, n_channels) with their time stamps (n,); return the expressions decided.

        Parameters
        ----------
        rows : array, shape (n, n_channels)
            Features (envelope volts, or motion) in time order.
        times : array, shape (n,)
            Their time stamps, seconds.
        """
        rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
        if not len(rows):
            return []
        act = self.activation(rows)
        found = []
        size = len(self._act)
        for i in range(len(rows)):
            k = self._k
            self._times[k % size], self._act[k % size] = times[i] - self.delay_s, act[i]
            self._k += 1
            a = act[i] if self.ready else -np.inf
            self.last_activation = float(act[i])
            found += self._step(k, a)
        return found

    def _step(self, k: int, a: float) -> list[LiveExpression]:
        c, o = self.config, self._open
        if o is None:
            if self._refractory:
                self._refractory = a >= c.low
            elif a > c.low:
                self._open = {"start": k, "apex": k, "peak": a, "confirmed": a >= c.high, "last": k}
            return []
        if a > c.low:
            o["last"] = k
            if a > o["peak"]:
                o["apex"], o["peak"] = k, a
            o["confirmed"] |= a >= c.high
        elif k - o["last"] > self._merge_n:
            return self._close(k, forced=False)
        if k - o["start"] >= self._max_n:
            self._refractory = True
            return self._close(k, forced=True)
        return []

    def _close(self, k: int, *, forced: bool) -> list[LiveExpression]:
        o, self._open = self._open, None
        assert o is not None
        if not o["confirmed"]:
            return []
        size = len(self._act)
        act = self._act
        floor = self.config.edge_fraction * o["peak"]
        a, b = o["start"], (k if forced else o["last"]) + 1
        # A strong burst crosses `low` on the filters' tails: its edges are where it falls to the floor.
        while a < o["apex"] and act[a % size] < floor:
            a += 1
        while b - 1 > o["apex"] and act[(b - 1) % size] < floor:
            b -= 1
        # Walk outwards while the activation keeps falling: the threshold crossing is late on a slow ramp.
        while a - 1 > max(k - size, -1) and act[(a - 1) % size] > floor and act[(a - 1) % size] < act[a % size]:
            a -= 1
        while b <= k and act[b % size] > floor and act[b % size] < act[(b - 1) % size]:
            b += 1
        if b - a < self._min_n:
            return []
        onset, apex, offset = (self._times[i % size] for i in (a, o["apex"], b - 1))
        kind = "micro" if offset - onset <= MICRO_MAX_DURATION_S else "macro"
        return [LiveExpression(float(onset), float(apex), float(offset), float(o["peak"]), kind,
                               float(self._times[k % size] + self.delay_s), forced)]


def emg_spotting_channels(labels: Sequence[str], exclude_muscles: Sequence[str], aliases: dict) -> list[int]:
    """Indices of the EMG channels that feed the spotter: all but those over ``exclude_muscles`` (blinks).

    Channels whose label names no muscle are kept (their muscle is unknown, not excluded).
    """
    from acquisition.annotate.electrodes import muscle_of

    return [i for i, label in enumerate(labels) if muscle_of(str(label), aliases, None) not in set(exclude_muscles)]
