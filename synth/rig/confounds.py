"""Confounds of the realistic rig: rigid head motion, talking bouts and per-subject expressiveness.

Micro-expression spotting is hard on real recordings because the face does much more than
express: the head turns and shifts, the mouth talks, the eyes blink. This module adds those
to the ground-truth timeline, so that every generator (face video, EMG, EEG, the
``ActionUnits`` stream) sees the same activity, while the ``Markers`` stream still carries only
the emotional expressions (what spotting is scored against).

* :class:`HeadMotion`: holds, slow turns and sudden re-orientations of the head (yaw, pitch,
  roll) with translation toward/away from the camera and sideways; minimum-jerk moves between
  poses drawn at construction.
* :class:`TalkingBouts`: bouts of speech as syllable pulses of jaw drop (AU26) and parted lips
  (AU25), sometimes AU10/AU14; the speech envelope also drives EMG and EEG artefacts.
* :class:`ConfoundTimeline`: an :class:`~synth.facs.AUTimeline` plus all of the above (and the
  idle behaviour of :mod:`synth.rig.idle` when on), with the same interface.

Everything is drawn at construction from the rig's seed; every value is a deterministic
function of time, so any sample depends only on its time stamp, never on chunking.
"""

from __future__ import annotations

import numpy as np

from acquisition.annotate.action_units import AU_IDS, AU_INDEX, MAX_INTENSITY
from synth.facs import AUTimeline

from synth.rig.config import HeadMotionConfig, RigConfig, TalkingConfig
from synth.rig.idle import IdleTimeline, with_idle
from synth.rig.subjects import SubjectProfile

#: Columns of :meth:`ConfoundTimeline.head_pose`.
HEAD_POSE_COLUMNS = ("yaw_deg", "pitch_deg", "roll_deg", "x_mm", "y_mm", "z_mm")
#: Renderer limit on any angle is 45 degrees; idle sway plus motion never get near it.
_MAX_TOTAL_DEG = 40.0
#: First speech no earlier than this (the recording settles first), seconds.
_TALK_LEAD_IN_S = 2.0


def _minimum_jerk(tau: np.ndarray) -> np.ndarray:
    """Minimum-jerk position profile 0 -> 1 over ``tau`` in [0, 1] (Flash & Hogan 1985)."""
    tau = np.clip(tau, 0.0, 1.0)
    return tau**3 * (10.0 - 15.0 * tau + 6.0 * tau * tau)


class HeadMotion:
    """Rigid head motion: hold a pose, move to the next one (slowly or suddenly), repeat.

    Parameters
    ----------
    config : HeadMotionConfig
        Limits and timing.
    duration_s : float
        Length of the motion to draw, in seconds (the pose is held after it).
    seed : int
        The rig's seed (a session's own motion).
    """

    def __init__(self, config: HeadMotionConfig, duration_s: float, seed: int) -> None:
        rng = np.random.default_rng([int(seed), 0x4EAD])
        limits = np.array(list(config.max_deg) + list(config.max_translation_mm), dtype=np.float64)
        poses, starts, ends = [np.zeros(6)], [], []
        t = 0.0
        while True:
            t += rng.uniform(*config.dwell_s)
            if t >= duration_s:
                break
            sudden = rng.random() < config.sudden_fraction
            move = rng.uniform(*(config.sudden_move_s if sudden else config.slow_move_s))
            poses.append(np.clip(rng.normal(0.0, 0.5, 6) * limits, -limits, limits))
            starts.append(t)
            ends.append(t + move)
            t += move
        self._poses = np.array(poses)
        self._starts = np.array(starts)
        self._ends = np.array(ends)

    @property
    def n_moves(self) -> int:
        """Number of moves between held poses."""
        return len(self._starts)

    def move_intervals(self) -> list[tuple[float, float]]:
        """Start and end of each move, in seconds."""
        return list(zip(self._starts.tolist(), self._ends.tolist()))

    def __call__(self, times_s: np.ndarray) -> np.ndarray:
        """Pose at ``times_s`` (n,): shape (n, 6), columns :data:`HEAD_POSE_COLUMNS`."""
        t = np.asarray(times_s, dtype=np.float64).reshape(-1)
        k = np.searchsorted(self._starts, t, side="right") - 1  # the last move that has begun
        before = k < 0
        kk = np.maximum(k, 0)
        if not self.n_moves:
            return np.repeat(self._poses[:1], t.size, axis=0)
        tau = (t - self._starts[kk]) / (self._ends[kk] - self._starts[kk])
        frac = np.where(before, 0.0, _minimum_jerk(tau))[:, None]
        src = np.where(before[:, None], self._poses[0], self._poses[kk])
        dst = np.where(before[:, None], self._poses[0], self._poses[kk + 1])
        return src + (dst - src) * frac


class TalkingBouts:
    """Bouts of speech: syllable pulses of jaw and lip movement, without emotion.

    Parameters
    ----------
    config : TalkingConfig
        Rates, durations and AU intensity ranges.
    duration_s : float
        Length of the timeline, in seconds (no bout runs past it).
    seed : int
        The rig's seed.
    """

    def __init__(self, config: TalkingConfig, duration_s: float, seed: int) -> None:
        self.config = config
        rng = np.random.default_rng([int(seed), 0x7A1C])
        starts, lengths, peaks, bouts = [], [], [], []
        rate_per_s = config.bouts_per_minute / 60.0
        t = _TALK_LEAD_IN_S
        while rate_per_s > 0:
            t += rng.exponential(1.0 / rate_per_s)
            length = rng.uniform(*config.bout_duration_s)
            if t + length > duration_s:
                break
            period = 1.0 / rng.uniform(*config.syllable_rate_hz)
            s, last_end = t, None
            while s + 0.5 * period < t + length:
                slot = period * rng.uniform(0.75, 1.25)
                # Draws for every slot, spoken or not: the stream of random numbers is then fixed per slot.
                spoken = rng.random() >= config.pause_fraction
                peak = np.array([rng.uniform(*config.au26), rng.uniform(*config.au25),
                                 rng.uniform(*config.au10) * (rng.random() < config.au10_fraction),
                                 rng.uniform(*config.au14) * (rng.random() < config.au14_fraction)])
                if spoken:
                    starts.append(s)
                    lengths.append(0.85 * slot)
                    peaks.append(peak)
                    last_end = s + 0.85 * slot
                s += slot
            if last_end is not None:
                bouts.append((t, last_end))
            t += length + config.min_gap_s
        self._starts = np.array(starts)
        self._lengths = np.array(lengths)
        self._peaks = np.array(peaks).reshape(-1, 4)
        self._bouts = bouts
        self._columns = np.array([AU_INDEX[26], AU_INDEX[25], AU_INDEX[10], AU_INDEX[14]])

    def intervals(self) -> list[tuple[float, float]]:
        """``(start_s, stop_s)`` of each bout: first syllable onset to last syllable end."""
        return list(self._bouts)

    def _pulse(self, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index of the syllable under each time (or -1) and its sin^2 envelope (0-1)."""
        t = np.asarray(times_s, dtype=np.float64).reshape(-1)
        k = np.searchsorted(self._starts, t, side="right") - 1
        kk = np.maximum(k, 0)
        if not self._starts.size:
            return np.full(t.size, -1), np.zeros(t.size)
        phase = (t - self._starts[kk]) / self._lengths[kk]
        inside = (k >= 0) & (phase < 1.0)
        return np.where(inside, k, -1), np.where(inside, np.sin(np.pi * phase) ** 2, 0.0)

    def intensities(self, times_s: np.ndarray) -> np.ndarray:
        """Talking AU intensities, shape (n, 17) float64 in :data:`~synth.facs.AU_IDS` order."""
        k, env = self._pulse(times_s)
        out = np.zeros((env.size, len(AU_IDS)))
        if self._starts.size:
            peaks = self._peaks[np.maximum(k, 0)]
            # Lips part before the jaw drops and close after it: the square root widens the pulse.
            shape = np.column_stack([env, np.sqrt(env), env, env])
            out[:, self._columns] = peaks * shape
        return out

    def speech_envelope(self, times_s: np.ndarray) -> np.ndarray:
        """Articulation effort (0-1) at ``times_s``: the syllable envelope scaled by its jaw drop."""
        k, env = self._pulse(times_s)
        if not self._starts.size:
            return env
        return env * self._peaks[np.maximum(k, 0), 0] / max(self.config.au26[1], 1e-9)


class ConfoundTimeline:
    """An AU timeline plus the confounds of the realistic rig (same interface as AUTimeline).

    Parameters
    ----------
    timeline : AUTimeline
        The expressions and blinks (ground truth of the markers).
    idle : IdleTimeline | None
        Idle behaviour (tonic AUs and head sway) around the same timeline, or None.
    talking : TalkingBouts | None
        Speech, or None.
    motion : HeadMotion | None
        Rigid head motion, or None.
    expressiveness : float
        Factor on the emotional expressions' intensities (not blinks, talking or tone).
    """

    def __init__(self, timeline: AUTimeline, *, idle: IdleTimeline | None = None, talking: TalkingBouts | None = None,
                 motion: HeadMotion | None = None, expressiveness: float = 1.0) -> None:
        self.base, self.idle, self.talking, self.motion = timeline, idle, talking, motion
        self.expressiveness = float(expressiveness)

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
        """The base timeline's expression markers: talking, blinks and motion are not expressions."""
        return self.base.markers()

    def intensities(self, times_s: np.ndarray) -> np.ndarray:
        """All facial activity: expressions, blinks, tone and talking (0-5, clipped), (n, 17) float32."""
        total = self.base.intensities(times_s).astype(np.float64)
        if self.expressiveness != 1.0:
            expression = np.arange(len(AU_IDS)) != AU_INDEX[45]
            total[:, expression] *= self.expressiveness
        if self.idle is not None:
            total += self.idle.tonic(times_s)
        if self.talking is not None:
            total += self.talking.intensities(times_s)
        return np.clip(total, 0.0, MAX_INTENSITY).astype(np.float32)

    def speech_envelope(self, times_s: np.ndarray) -> np.ndarray:
        """Articulation effort (0-1) at ``times_s``; zeros without talking."""
        if self.talking is None:
            return np.zeros(np.asarray(times_s).size)
        return self.talking.speech_envelope(times_s)

    def talking_intervals(self) -> list[tuple[float, float]]:
        """``(start_s, stop_s)`` of each talking bout; empty without talking."""
        return [] if self.talking is None else self.talking.intervals()

    def head_pose(self, times_s: np.ndarray) -> np.ndarray:
        """Head pose, shape (n, 6): yaw, pitch, roll (degrees) and x, y, z translation (mm).

        Idle sway plus rigid motion; x is to the image right, y down, z away from the camera.
        """
        t = np.asarray(times_s, dtype=np.float64).reshape(-1)
        pose = self.motion(t) if self.motion is not None else np.zeros((t.size, 6))
        if self.idle is not None:
            pose[:, :3] += self.idle.head_pose(t)
        pose[:, :3] = np.clip(pose[:, :3], -_MAX_TOTAL_DEG, _MAX_TOTAL_DEG)
        return pose


def with_confounds(timeline: AUTimeline, config: RigConfig, seed: int, subject: SubjectProfile | None = None
                   ) -> AUTimeline | IdleTimeline | ConfoundTimeline:
    """The rig's ground-truth timeline: ``timeline`` with idle behaviour and whichever confounds are on.

    Without talking, head motion and subject differences this is :func:`~synth.rig.idle.with_idle`'s
    result, so the ``default`` and ``light`` profiles produce the samples they always did.

    Parameters
    ----------
    timeline : AUTimeline
        Expressions and blinks.
    config : RigConfig
        The rig configuration (its ``idle``, ``talking``, ``head_motion`` and ``subjects`` sections).
    seed : int
        The rig's seed.
    subject : SubjectProfile | None
        The subject (its expressiveness scales the expressions), or None.
    """
    if not (config.talking.enabled or config.head_motion.enabled or subject is not None):
        return with_idle(timeline, config.idle, seed)
    return ConfoundTimeline(
        timeline,
        idle=IdleTimeline(timeline, config.idle, seed) if config.idle.enabled else None,
        talking=TalkingBouts(config.talking, timeline.duration_s, seed) if config.talking.enabled else None,
        motion=HeadMotion(config.head_motion, timeline.duration_s, seed) if config.head_motion.enabled else None,
        expressiveness=1.0 if subject is None else subject.expressiveness,
    )
