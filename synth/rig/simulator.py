"""The simulated rig: real LSL outlets driven by one ground-truth AU timeline.

:class:`SimulatedRig` publishes RGB and depth frames (type ``VideoRaw``), facial EMG,
EEG, the AU intensities themselves (type ``ActionUnits``) and expression markers,
each from its own outlet with a stable ``source_id``, paced in real time with
explicit per-sample time stamps ``t0 + k / rate``. It is what every job uses on a
machine without sensors, and what the recorder's tests record.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from collections.abc import Callable

import numpy as np
import pylsl

from acquisition.utils.logs import logger, verbose
from acquisition.lsl import make_stream_info
from acquisition.session.frame_stamp import STAMP_LAYOUT
from acquisition.annotate.action_units import AU_LABELS
from synth.facs import AUTimeline, generate_timeline

from synth.rig.camera import CameraEffects
from synth.rig.config import RigConfig
from synth.rig.confounds import HEAD_POSE_COLUMNS, ConfoundTimeline, with_confounds
from synth.rig.idle import IdleTimeline
from synth.rig.subjects import SubjectProfile, draw_subject
from synth.rig.signals import (AUIntensityGenerator, EEGGenerator, EMGGenerator, FaceVideoGenerator,
                               FrameBankVideoGenerator, SampleGenerator)

#: Seconds of timeline drawn when no duration is given (the rig can run this long).
DEFAULT_HORIZON_S = 4 * 3600.0
#: Seconds of video an outlet keeps for a slow consumer (360 s of VGA frames would be 10 GB).
VIDEO_MAX_BUFFERED_S = 20


@dataclass
class _StreamStats:
    pushed: int = 0
    max_lag_s: float = 0.0
    behind_warnings: int = 0


@dataclass
class _PacedSource:
    """A generator whose samples are pushed to one or more outlets when their time has come."""

    name: str
    generator: SampleGenerator
    push: Callable[[object, list[float]], None]
    period_s: float
    stats: list[_StreamStats] = field(default_factory=list)


class SimulatedRig:
    """Real LSL outlets for a simulated facial-expression rig.

    Parameters
    ----------
    config : RigConfig
        Streams, rates and the expression model (see ``configs/rig/``).
    seed : int
        Seeds the AU timeline and every signal; the same seed gives the same samples.
    duration_s : float | None
        Length of the ground-truth timeline in seconds (default 4 h). :meth:`run`
        may stop earlier.
    profile : str
        Name of the profile the config came from, stored in each stream's description.

    Notes
    -----
    Sample ``k`` of a stream with rate ``r`` is stamped ``t0 + k / r`` (LSL clock,
    seconds) and pushed once that time has passed. ``t0`` and the seed travel in
    each stream's ``desc/emosync_simulation``, so a recording alone is enough to
    regenerate what was sent (see :meth:`regenerate`).
    """

    def __init__(self, config: RigConfig, *, seed: int = 0, duration_s: float | None = None,
                 profile: str = "custom") -> None:
        self.config = config
        self.seed = int(seed)
        self.profile = profile
        #: The subject's body (EMG, EEG, expressiveness) when ``subjects`` is on, else None.
        self.subject: SubjectProfile | None = None
        if config.subjects.enabled:
            self.subject = draw_subject(config.identity_seed, config.subjects, config.emg.channels)
        # With idle behaviour or confounds on, the timeline also carries tonic and talking AUs (every
        # generator sees them) and head motion.
        self.timeline: AUTimeline | IdleTimeline | ConfoundTimeline = with_confounds(
            generate_timeline(config.timeline, duration_s or DEFAULT_HORIZON_S, self.seed), config, self.seed,
            self.subject)
        self.t0: float | None = None
        self._sources: list[_PacedSource] = []
        self._outlets: dict[str, pylsl.StreamOutlet] = {}
        self._stats: dict[str, _StreamStats] = {}
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    # -- names ---------------------------------------------------------------
    def stream_name(self, key: str) -> str:
        """Full LSL name of a stream (``key`` is ``rgb``, ``depth``, ``emg``, ``eeg``, ``au`` or ``markers``)."""
        return self.config.name_prefix + getattr(self.config, key).name

    def source_id(self, key: str) -> str:
        """Stable ``source_id`` of a stream: a restarted rig with the same seed rejoins recordings."""
        return f"{self.config.source_prefix}:{self.stream_name(key)}:{self.seed}"

    @property
    def enabled_streams(self) -> list[str]:
        """Keys of the enabled streams."""
        return [k for k in ("rgb", "depth", "emg", "eeg", "au", "markers") if getattr(self.config, k).enabled]

    # -- ground truth ----------------------------------------------------------
    def head_pose(self, times_s: np.ndarray) -> np.ndarray:
        """True head pose at ``times_s`` (seconds from sample 0), shape (n, 6).

        Columns :data:`~synth.rig.confounds.HEAD_POSE_COLUMNS`: yaw, pitch, roll in degrees
        (the renderer's signs: +yaw turns the face to the image right, +pitch lifts the chin,
        +roll is clockwise) and x (image right), y (down), z (away from the camera) in mm,
        relative to the frontal pose at 600 mm. Zeros when the head is still.
        """
        t = np.asarray(times_s, dtype=np.float64).reshape(-1)
        pose = np.zeros((t.size, len(HEAD_POSE_COLUMNS)))
        head_pose = getattr(self.timeline, "head_pose", None)
        if head_pose is not None:
            moved = head_pose(t)
            pose[:, : moved.shape[1]] = moved
        return pose

    def talking_intervals(self) -> list[tuple[float, float]]:
        """``(start_s, stop_s)`` of each talking bout (first syllable onset to last syllable end).

        Empty when ``talking`` is off. Talking is in the ``ActionUnits`` stream (AU25/26/10/14) but
        never in ``Markers``.
        """
        intervals = getattr(self.timeline, "talking_intervals", None)
        return [] if intervals is None else intervals()

    def _speech(self) -> Callable[[np.ndarray], np.ndarray] | None:
        return self.timeline.speech_envelope if self.config.talking.enabled else None  # type: ignore[union-attr]

    # -- generators ----------------------------------------------------------
    def make_generator(self, key: str) -> SampleGenerator:
        """A fresh generator for a stream, positioned at sample 0 (``rgb``/``depth`` share ``"video"``)."""
        c = self.config
        if key in ("rgb", "depth", "video"):
            video = c.rgb if c.rgb.enabled or key == "rgb" else c.depth
            camera = None
            if c.lighting.enabled or c.camera_noise.enabled:
                camera = CameraEffects(video.width, video.height, self.seed,
                                       lighting=c.lighting if c.lighting.enabled else None,
                                       noise=c.camera_noise if c.camera_noise.enabled else None)
            face = FaceVideoGenerator(video, self.timeline, identity_seed=c.identity_seed,
                                      head_pose=getattr(self.timeline, "head_pose", None), camera=camera,
                                      family=c.face.family)
            if video.frame_bank:
                return FrameBankVideoGenerator(face, video.frame_bank, stamp=c.rgb.stamp_frame_index)
            return face
        if key == "emg":
            return EMGGenerator(c.emg, self.timeline, self.seed, subject=self.subject, speech=self._speech(),
                                speech_drive=c.talking.emg_drive)
        if key == "eeg":
            return EEGGenerator(c.eeg, self.timeline, self.seed, subject=self.subject, speech=self._speech(),
                                speech_artifact_rms_v=c.talking.eeg_artifact_rms_v)
        if key == "au":
            return AUIntensityGenerator(self.timeline, c.au.srate_hz)
        raise ValueError(f"No generator for stream {key!r}; use one of rgb, depth, emg, eeg, au.")

    def regenerate(self, key: str, n_samples: int) -> np.ndarray:
        """Samples ``0 .. n_samples-1`` of a stream exactly as the rig sends them (stored dtype and shape)."""
        generator = self.make_generator(key)
        data = generator.next_samples(n_samples)
        if key in ("rgb", "depth"):
            return data[0] if key == "rgb" else data[1]
        return data

    # -- running -------------------------------------------------------------
    def _info(self, key: str, **kwargs: object) -> pylsl.StreamInfo:
        info = make_stream_info(self.stream_name(key), source_id=self.source_id(key), **kwargs)  # type: ignore[arg-type]
        sim = info.desc().append_child("emosync_simulation")
        for tag, value in (("seed", self.seed), ("t0", repr(self.t0)), ("profile", self.profile),
                           ("identity_seed", self.config.identity_seed), ("stream", key)):
            sim.append_child_value(tag, str(value))
        return info

    def _add_source(self, key: str, generator: SampleGenerator, outlets: list[tuple[str, pylsl.StreamOutlet]],
                    to_lsl: Callable[[object], list[np.ndarray]], period_s: float) -> None:
        stats = [self._stats.setdefault(k, _StreamStats()) for k, _ in outlets]

        def push(samples: object, stamps: list[float]) -> None:
            for (_, outlet), chunk in zip(outlets, to_lsl(samples)):
                outlet.push_chunk(chunk, stamps)

        self._sources.append(_PacedSource(key, generator, push, period_s, stats))

    @verbose
    def start(self, *, verbose: bool | str | None = None) -> None:
        """Open the outlets and start pushing (returns at once; see :meth:`run`)."""
        if self._threads:
            raise RuntimeError("The rig is already running; call stop() first.")
        c = self.config
        enabled = self.enabled_streams
        # Before t0: a frame bank renders for a second or more, which must not eat into start_delay_s.
        video_generator = self.make_generator("video") if {"rgb", "depth"} & set(enabled) else None
        self.t0 = pylsl.local_clock() + c.start_delay_s
        self._stop.clear()
        video_outlets = []
        for key, video, encoding, fmt in (("rgb", c.rgb, "RGB8", "int8"), ("depth", c.depth, "DEPTH16-mm", "int16")):
            if key not in enabled:
                continue
            shape = (video.height, video.width, 3) if key == "rgb" else (video.height, video.width)
            info = self._info(key, type="VideoRaw", channel_count=int(np.prod(shape)), nominal_srate=video.fps,
                              channel_format=fmt, encoding=encoding, frame_shape=shape, can_drop_samples=True)
            if key == "rgb" and video.stamp_frame_index:  # readers find dropped frames from the stamps
                info.desc().append_child_value("frame_stamp", STAMP_LAYOUT)
            video_outlets.append((key, pylsl.StreamOutlet(info, max_buffered=VIDEO_MAX_BUFFERED_S)))
        if video_outlets:
            if "rgb" in enabled and "depth" in enabled and (c.rgb.width, c.rgb.height, c.rgb.fps) != (
                    c.depth.width, c.depth.height, c.depth.fps):
                raise ValueError("The simulated RGB-D camera renders both streams together: rgb and depth "
                                 "need the same width, height and fps.")
            keys = [k for k, _ in video_outlets]

            def frames_to_lsl(frames: object) -> list[np.ndarray]:
                rgb, depth = frames  # type: ignore[misc]
                chosen = {"rgb": rgb.view(np.int8), "depth": depth.view(np.int16)}
                return [chosen[k].reshape(chosen[k].shape[0], -1) for k in keys]

            video_cfg = c.rgb if "rgb" in enabled else c.depth
            self._add_source("video", video_generator, video_outlets, frames_to_lsl, 1.0 / video_cfg.fps)
        if "emg" in enabled:
            labels = [ch.label for ch in c.emg.channels]
            info = self._info("emg", type="EMG", channel_count=len(labels), nominal_srate=c.emg.srate_hz,
                              channel_format="float32", channel_labels=labels, channel_units=["V"] * len(labels),
                              channel_types=["EMG"] * len(labels))
            # Surface EMG over each muscle is recorded bipolar (two electrodes ~1 cm apart).
            info.desc().append_child_value("reference", "bipolar (electrode pair over each muscle)")
            muscles = info.desc().append_child("muscles")
            for ch in c.emg.channels:
                muscle = muscles.append_child("muscle")
                muscle.append_child_value("label", ch.label)
                muscle.append_child_value("name", ch.muscle)
                muscle.append_child_value("side", ch.side)
            self._add_source("emg", self.make_generator("emg"), [("emg", pylsl.StreamOutlet(info))],
                             lambda x: [x], c.chunk_duration_s)
        if "eeg" in enabled:
            labels = list(c.eeg.channels)
            info = self._info("eeg", type="EEG", channel_count=len(labels), nominal_srate=c.eeg.srate_hz,
                              channel_format="float32", channel_labels=labels, channel_units=["V"] * len(labels),
                              channel_types=["EEG"] * len(labels))
            info.desc().append_child_value("reference", "average")  # the simulated EEG has no physical reference
            self._add_source("eeg", self.make_generator("eeg"), [("eeg", pylsl.StreamOutlet(info))],
                             lambda x: [x], c.chunk_duration_s)
        if "au" in enabled:
            labels = list(AU_LABELS)
            info = self._info("au", type="ActionUnits", channel_count=len(labels), nominal_srate=c.au.srate_hz,
                              channel_format="float32", channel_labels=labels,
                              channel_units=["FACS intensity 0-5"] * len(labels), channel_types=["AU"] * len(labels))
            self._add_source("au", self.make_generator("au"), [("au", pylsl.StreamOutlet(info))],
                             lambda x: [x], 1.0 / c.au.srate_hz)
        self._threads = [threading.Thread(target=self._run_source, args=(s,), name=f"rig-{s.name}", daemon=True)
                         for s in self._sources]
        if "markers" in enabled:
            info = self._info("markers", type="Markers", channel_count=1, nominal_srate=0.0,
                              channel_format="string", channel_labels=["expression"], can_drop_samples=False)
            outlet = pylsl.StreamOutlet(info)
            self._outlets["markers"] = outlet
            self._stats["markers"] = _StreamStats()
            self._threads.append(threading.Thread(target=self._run_markers, args=(outlet,), name="rig-markers",
                                                  daemon=True))
        for thread in self._threads:
            thread.start()
        logger.info("Simulated rig started: %s (seed %d, t0 = %.3f s LSL time)",
                    ", ".join(self.stream_name(k) for k in enabled), self.seed, self.t0)

    def _run_source(self, source: _PacedSource) -> None:
        assert self.t0 is not None
        rate = source.generator.srate_hz
        max_chunk = max(1, int(rate))  # never more than one second in one push
        while not self._stop.is_set():
            now = pylsl.local_clock()
            due = int(np.floor((now - self.t0) * rate)) + 1 if now >= self.t0 else 0
            n = min(due - source.generator.position, max_chunk)
            if n > 0:
                k0 = source.generator.position
                samples = source.generator.next_samples(n)
                stamps = (self.t0 + (k0 + np.arange(n)) / rate).tolist()
                source.push(samples, stamps)
                lag = pylsl.local_clock() - stamps[-1]
                for stats in source.stats:
                    stats.pushed += n
                    stats.max_lag_s = max(stats.max_lag_s, lag)
                if lag > self.config.max_lag_s:
                    stats = source.stats[0]
                    if stats.behind_warnings % 50 == 0:
                        logger.warning("Simulated %s is %.2f s behind real time (machine too busy?)",
                                       source.name, lag)
                    stats.behind_warnings += 1
                    continue
            next_due = self.t0 + source.generator.position / rate
            self._stop.wait(min(source.period_s, max(0.0, next_due - pylsl.local_clock() + 1e-4)) or 1e-4)

    def _run_markers(self, outlet: pylsl.StreamOutlet) -> None:
        assert self.t0 is not None
        stats = self._stats["markers"]
        for when_s, text in self.timeline.markers():
            stamp = self.t0 + when_s
            while not self._stop.is_set() and pylsl.local_clock() < stamp:
                self._stop.wait(min(0.05, stamp - pylsl.local_clock()))
            if self._stop.is_set():
                return
            outlet.push_sample([text], stamp)
            stats.pushed += 1

    def stop(self) -> None:
        """Stop pushing and close the outlets."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
        self._sources = []
        self._outlets.clear()  # outlets close when garbage-collected

    def stats(self) -> dict[str, dict[str, float]]:
        """Per stream: samples pushed and the largest lag behind real time (seconds)."""
        return {self.stream_name(k): {"pushed": s.pushed, "max_lag_s": s.max_lag_s} for k, s in self._stats.items()}

    def run(self, duration_s: float | None = None, *, stop_event: threading.Event | None = None) -> None:
        """Start, push for ``duration_s`` seconds (or until ``stop_event`` is set), then stop."""
        self.start()
        stop_event = stop_event or threading.Event()
        try:
            deadline = None if duration_s is None else time.monotonic() + self.config.start_delay_s + duration_s
            while not stop_event.is_set() and (deadline is None or time.monotonic() < deadline):
                stop_event.wait(0.1 if deadline is None else min(0.1, max(0.0, deadline - time.monotonic())))
        finally:
            self.stop()

    def __enter__(self) -> SimulatedRig:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
