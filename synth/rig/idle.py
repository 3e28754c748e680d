"""Idle behaviour of the simulated subject: slow head motion and tonic facial-muscle activity.

Real people are never perfectly still between expressions: the head drifts and sways by a few
degrees, and facial muscles keep a low, slowly varying tone. Without it every neutral moment of a
simulated session looks the same in every modality, so nothing could tell two neutral windows
apart (cross-modal retrieval among them is impossible by construction).

:class:`IdleTimeline` wraps an :class:`~synth.facs.AUTimeline` and exposes the same
``intensities(times_s)`` (expression AUs + tonic AUs), so every generator that reads the
timeline (face video, EMG, EEG muscle artefacts, the ``ActionUnits`` stream) sees the same
total activity, plus ``head_pose(times_s)`` for the face renderer (RGB and depth).

Both signals are sums of ``n_components`` sinusoids with seeded random frequencies (mean period
about the configured time scale) and phases: a smooth deterministic function of time, so any
sample depends only on its time stamp, never on chunking.
"""

from __future__ import annotations

import numpy as np

from acquisition.annotate.action_units import AU_IDS, AU_INDEX, MAX_INTENSITY
from synth.facs import AUTimeline

from synth.rig.config import IdleConfig


class _SmoothSignal:
    """``n_signals`` smooth zero-mean unit-RMS random functions of time (sums of random sinusoids)."""

    def __init__(self, rng: np.random.Generator, n_signals: int, n_components: int, time_scale_s: float) -> None:
        # Frequencies uniform in [0.5, 1.5] / time_scale_s: the mean period is about time_scale_s.
        self.freq_hz = rng.uniform(0.5, 1.5, (n_signals, n_components)) / time_scale_s
        self.phase = rng.uniform(0.0, 2 * np.pi, (n_signals, n_components))
        self.amplitude = np.sqrt(2.0 / n_components)  # each sinusoid has RMS 1/sqrt(2): the sum has RMS 1

    def __call__(self, times_s: np.ndarray) -> np.ndarray:
        """Values at ``times_s`` (n,), shape (n, n_signals)."""
        t = np.asarray(times_s, dtype=np.float64).reshape(-1)
        out = np.zeros((t.size, self.freq_hz.shape[0]))
        for k in range(self.freq_hz.shape[1]):  # loop over components: memory stays (n, n_signals)
            out += np.sin(2 * np.pi * t[:, None] * self.freq_hz[None, :, k] + self.phase[None, :, k])
        return out * self.amplitude


class IdleTimeline:
    """An AU timeline plus idle head motion and tonic AU activity (same interface as AUTimeline).

    Parameters
    ----------
    timeline : AUTimeline
        The expressions and blinks (ground truth of the markers).
    config : IdleConfig
        Amplitudes and time scales.
    seed : int
        Seed of the idle behaviour (the rig's seed: a session's own motion).
    """

    def __init__(self, timeline: AUTimeline, config: IdleConfig, seed: int) -> None:
        self.base, self.config = timeline, config
        rng = np.random.default_rng([seed, 0x1D1E])
        self._head = _SmoothSignal(rng, 3, config.n_components, config.head_time_scale_s)
        self._tonic = _SmoothSignal(rng, len(config.tonic_aus), config.n_components, config.tonic_time_scale_s)
        self._tonic_columns = np.array([AU_INDEX[au] for au in config.tonic_aus], dtype=int)

    # The expression model is the base timeline's: markers and events are unchanged.
    @property
    def events(self) -> list:
        return self.base.events

    @property
    def expressions(self) -> list:
        return self.base.expressions

    @property
    def duration_s(self) -> float:
        return self.base.duration_s

    def markers(self) -> list[tuple[float, str]]:
        """The base timeline's expression markers (idle activity is not an expression)."""
        return self.base.markers()

    def tonic(self, times_s: np.ndarray) -> np.ndarray:
        """Tonic AU intensities alone, shape (n, 17) float64, in :data:`~synth.facs.AU_IDS` order."""
        t = np.asarray(times_s, dtype=np.float64).reshape(-1)
        out = np.zeros((t.size, len(AU_IDS)))
        if self._tonic_columns.size:
            c = self.config
            out[:, self._tonic_columns] = np.clip(c.tonic_mean + c.tonic_rms * self._tonic(t), 0.0, MAX_INTENSITY)
        return out

    def intensities(self, times_s: np.ndarray) -> np.ndarray:
        """Expression + tonic AU intensities (0-5, clipped), shape (n, 17) float32 (as AUTimeline)."""
        total = self.base.intensities(times_s).astype(np.float64) + self.tonic(times_s)
        return np.clip(total, 0.0, MAX_INTENSITY).astype(np.float32)

    def head_pose(self, times_s: np.ndarray) -> np.ndarray:
        """Head yaw, pitch and roll in degrees, shape (n, 3), each within +-``head_max_deg``."""
        c = self.config
        pose = self._head(times_s) * np.asarray(c.head_rms_deg)[None, :]
        return np.clip(pose, -c.head_max_deg, c.head_max_deg)


def with_idle(timeline: AUTimeline, config: IdleConfig, seed: int) -> AUTimeline | IdleTimeline:
    """``timeline`` wrapped in :class:`IdleTimeline` when ``config.enabled``, else unchanged."""
    return IdleTimeline(timeline, config, seed) if config.enabled else timeline
