"""Deterministic signal generators of the simulated rig, one per stream.

Each generator produces its stream's samples in order (``next_samples(n)``); sample
``k`` depends only on the seed, the configuration and the ground-truth
:class:`~synth.facs.AUTimeline`, never on how samples were chunked, so a test can
regenerate exactly what was sent and compare a recording sample by sample.
Time zero of the timeline is sample 0 of every stream.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import signal

from acquisition.annotate.action_units import AU_IDS, AU_INDEX
from acquisition.session.frame_stamp import stamp_frame_index
from synth.facs import AUTimeline, muscle_activation

from synth.rig.camera import CameraEffects
from synth.rig.config import EEGConfig, EMGConfig, VideoConfig
from synth.rig.face import FaceRenderer
from synth.rig.subjects import SubjectProfile

#: Coefficients of a 1/f ("pink") filter for white noise (J. O. Smith, "Spectral Audio
#: Signal Processing", pink noise example): flat to within 0.3 dB of 1/f over 3 decades.
_PINK_B = np.array([0.049922035, -0.095993537, 0.050612699, -0.004408786])
_PINK_A = np.array([1.0, -2.494956002, 2.017265875, -0.522189400])

#: EEG channels that pick up blinks, with relative weight (frontal-polar strongest).
_BLINK_WEIGHTS = {"Fp1": 1.0, "Fp2": 1.0, "AF3": 0.7, "AF4": 0.7, "F7": 0.4, "F8": 0.4, "F3": 0.35,
                  "F4": 0.35, "Fz": 0.4}
#: EEG channels that pick up facial-muscle activity (temporal and frontal sites), with relative weight.
_MUSCLE_WEIGHTS = {"T7": 1.0, "T8": 1.0, "TP9": 0.8, "TP10": 0.8, "FT9": 0.9, "FT10": 0.9, "F7": 0.7, "F8": 0.7,
                   "Fp1": 0.6, "Fp2": 0.6, "FC5": 0.4, "FC6": 0.4, "CP5": 0.3, "CP6": 0.3}
#: Muscles whose activity reaches scalp EEG electrodes in the simulation.
_ARTIFACT_MUSCLES = ("zygomaticus_major", "corrugator", "frontalis", "orbicularis_oculi")
#: EEG channels with strong alpha (posterior), with relative weight.
_ALPHA_WEIGHTS = {"O1": 1.0, "O2": 1.0, "Oz": 1.0, "PO9": 0.8, "PO10": 0.8, "P7": 0.6, "P8": 0.6,
                  "P3": 0.6, "P4": 0.6, "Pz": 0.7}


class SampleGenerator:
    """Base: a stream of samples at a fixed rate, produced in order."""

    srate_hz: float

    def __init__(self, srate_hz: float) -> None:
        self.srate_hz = float(srate_hz)
        self.position = 0

    def times_s(self, n: int) -> np.ndarray:
        """Timeline times (seconds) of the next ``n`` samples."""
        return (self.position + np.arange(n)) / self.srate_hz

    def next_samples(self, n: int) -> np.ndarray:
        """Return the next ``n`` samples and advance."""
        out = self._generate(n)
        self.position += n
        return out

    def _generate(self, n: int) -> np.ndarray:
        raise NotImplementedError


class AUIntensityGenerator(SampleGenerator):
    """The ground truth itself: 17 AU intensities (0-5) per sample, shape (n, 17) float32."""

    def __init__(self, timeline: AUTimeline, srate_hz: float) -> None:
        super().__init__(srate_hz)
        self.timeline = timeline

    def _generate(self, n: int) -> np.ndarray:
        return self.timeline.intensities(self.times_s(n))


class EMGGenerator(SampleGenerator):
    """Facial EMG in volts, shape (n, n_channels) float32.

    Each channel is 20-500 Hz band-limited Gaussian noise whose RMS follows the
    activation of its muscle (from the AU timeline, ``lead_s`` ahead of the visible
    motion), plus a white noise floor and mains hum.

    ``subject`` (optional) makes the channels a subject's: per-channel gain, a scaled noise floor
    and crosstalk from neighbouring muscles. ``speech`` (optional, times -> 0-1 articulation
    effort) adds the activation speech produces in the muscles of ``speech_drive``
    (muscle -> activation at full effort), on top of what the visible talking AUs recruit.
    """

    def __init__(self, config: EMGConfig, timeline: AUTimeline, seed: int, *, subject: SubjectProfile | None = None,
                 speech: Callable[[np.ndarray], np.ndarray] | None = None,
                 speech_drive: dict[str, float] | None = None) -> None:
        super().__init__(config.srate_hz)
        self.config = config
        self.timeline = timeline
        self.subject, self.speech = subject, speech
        self._speech_w = np.array([(speech_drive or {}).get(ch.muscle, 0.0) for ch in config.channels])
        n_ch = len(config.channels)
        self._rng = np.random.default_rng([seed, 0xE36])
        self._sos = signal.butter(4, config.band_hz, btype="bandpass", fs=config.srate_hz, output="sos")
        self._zi = np.zeros((self._sos.shape[0], 2, n_ch))
        # Band-passing unit white noise leaves this fraction of its power; undo it so RMS is as configured.
        self._band_gain = 1.0 / np.sqrt(2 * (config.band_hz[1] - config.band_hz[0]) / config.srate_hz)
        # Left and right muscles are not perfectly symmetric.
        self._side_gain = np.array([1.0 if ch.side == "L" else 0.85 for ch in config.channels])
        self._mains_phase = self._rng.uniform(0, 2 * np.pi, n_ch)
        self._muscles = [ch.muscle for ch in config.channels]

    def _generate(self, n: int) -> np.ndarray:
        c = self.config
        t = self.times_s(n)
        au = self.timeline.intensities(t + c.lead_s)
        activation = np.column_stack([muscle_activation(au, m) for m in self._muscles])
        noise_rms_v = c.noise_rms_v
        if self.subject is not None:
            crosstalk = self.subject.emg_crosstalk
            for j, ch in enumerate(c.channels):
                for muscle, weight in crosstalk.get(ch.label, {}).items():
                    activation[:, j] += weight * muscle_activation(au, muscle)
            noise_rms_v = c.noise_rms_v * self.subject.emg_noise_scale
        if self.speech is not None:
            activation += self.speech(t + c.lead_s)[:, None] * self._speech_w[None, :]
        if self.subject is not None or self.speech is not None:
            activation = np.clip(activation, 0.0, 1.0)
        # One draw per call, split by column: the stream of random numbers then does not
        # depend on how samples are chunked.
        noise, floor = np.split(self._rng.standard_normal((n, 2 * len(self._muscles))), 2, axis=1)
        band, self._zi = signal.sosfilt(self._sos, noise, axis=0, zi=self._zi)
        mains = c.mains_amplitude_v * np.sin(2 * np.pi * c.mains_hz * t[:, None] + self._mains_phase)
        gain = self._side_gain if self.subject is None else self._side_gain * self.subject.emg_gain
        emg = band * self._band_gain * activation * c.max_rms_v * gain + floor * noise_rms_v + mains
        return emg.astype(np.float32)


class EEGGenerator(SampleGenerator):
    """EEG in volts, shape (n, n_channels) float32.

    A few pink-noise sources mixed into all channels (so neighbours correlate) plus
    independent pink noise per channel, 8-12 Hz alpha strongest over posterior
    sites, blink artefacts on frontal sites driven by AU45, and facial-muscle (EMG)
    artefacts on temporal and frontal sites while the face moves: real scalp EEG picks
    up frontalis, temporalis and zygomaticus activity, which is why expressions leave a
    trace in EEG at all.

    ``subject`` (optional) sets the alpha peak frequency and scales muscle and blink artefacts;
    ``speech`` (optional, times -> 0-1 articulation effort) adds jaw-muscle artefacts of RMS
    ``speech_artifact_rms_v`` at full effort on the same sites.
    """

    def __init__(self, config: EEGConfig, timeline: AUTimeline, seed: int, *, subject: SubjectProfile | None = None,
                 speech: Callable[[np.ndarray], np.ndarray] | None = None, speech_artifact_rms_v: float = 0.0) -> None:
        super().__init__(config.srate_hz)
        if subject is not None:
            config = config.model_copy(update={
                "alpha_hz": subject.eeg_alpha_hz,
                "blink_amplitude_v": config.blink_amplitude_v * subject.eeg_artifact_scale,
                "muscle_artifact_rms_v": config.muscle_artifact_rms_v * subject.eeg_artifact_scale})
            speech_artifact_rms_v *= subject.eeg_artifact_scale
        self.config = config
        self.timeline = timeline
        self.speech, self._speech_rms_v = speech, float(speech_artifact_rms_v)
        rng = np.random.default_rng([seed, 0xEE6])
        self._rng = rng
        n_ch, n_src = len(config.channels), config.n_sources
        mixing = rng.normal(size=(n_src, n_ch))
        self._mixing = mixing / np.sqrt((mixing**2).sum(axis=0, keepdims=True))
        self._pink_zi = np.zeros((3, n_src + n_ch))
        low, high = config.alpha_hz - 2.0, config.alpha_hz + 2.0
        self._alpha_sos = signal.butter(2, [low, high], btype="bandpass", fs=config.srate_hz, output="sos")
        self._alpha_zi = np.zeros((self._alpha_sos.shape[0], 2, 1))
        self._alpha_gain = 1.0 / np.sqrt(2 * (high - low) / config.srate_hz)
        self._alpha_w = np.array([_ALPHA_WEIGHTS.get(ch, 0.15) for ch in config.channels])
        self._blink_w = np.array([_BLINK_WEIGHTS.get(ch, 0.02) for ch in config.channels])
        # These coefficients turn unit white noise into pink noise of RMS 0.0861 (measured
        # over 2e6 samples); normalise to unit RMS.
        self._pink_gain = 1.0 / 0.0861
        low, high = config.muscle_band_hz
        self._muscle_sos = signal.butter(4, [low, high], btype="bandpass", fs=config.srate_hz, output="sos")
        self._muscle_zi = np.zeros((self._muscle_sos.shape[0], 2, n_ch))
        self._muscle_gain = 1.0 / np.sqrt(2 * (high - low) / config.srate_hz)
        self._muscle_w = np.array([_MUSCLE_WEIGHTS.get(ch, 0.05) for ch in config.channels])

    def _generate(self, n: int) -> np.ndarray:
        c = self.config
        n_ch, n_src = len(c.channels), c.n_sources
        draws = self._rng.standard_normal((n, n_src + 2 * n_ch + 1))  # one draw: chunking-invariant
        white, muscle_white, alpha_white = draws[:, : n_src + n_ch], draws[:, n_src + n_ch : -1], draws[:, -1:]
        pink, self._pink_zi = signal.lfilter(_PINK_B, _PINK_A, white, axis=0, zi=self._pink_zi)
        pink *= self._pink_gain
        background = (pink[:, :n_src] @ self._mixing + pink[:, n_src:]) / np.sqrt(2.0)
        alpha, self._alpha_zi = signal.sosfilt(self._alpha_sos, alpha_white, axis=0, zi=self._alpha_zi)
        au = self.timeline.intensities(self.times_s(n))
        blink = au[:, AU_INDEX[45]] / 5.0
        face = np.clip(sum(muscle_activation(au, m) for m in _ARTIFACT_MUSCLES), 0.0, 1.0)
        muscle, self._muscle_zi = signal.sosfilt(self._muscle_sos, muscle_white, axis=0, zi=self._muscle_zi)
        eeg = (background * c.background_rms_v
               + alpha * self._alpha_gain * c.alpha_rms_v * self._alpha_w
               + blink[:, None] * c.blink_amplitude_v * self._blink_w
               + muscle * self._muscle_gain * face[:, None] * c.muscle_artifact_rms_v * self._muscle_w)
        if self.speech is not None:
            speech = self.speech(self.times_s(n))
            eeg += muscle * self._muscle_gain * speech[:, None] * self._speech_rms_v * self._muscle_w
        return eeg.astype(np.float32)


class FaceVideoGenerator(SampleGenerator):
    """Frames of the procedural face following the AU timeline, as an RGB-D camera gives them.

    ``head_pose`` (optional): times (n,) -> yaw, pitch, roll in degrees (n, 3), e.g.
    :meth:`synth.rig.idle.IdleTimeline.head_pose`, or (n, 6) with x, y, z translation in mm
    (:meth:`synth.rig.confounds.ConfoundTimeline.head_pose`); None renders a frontal, still head.
    ``camera`` (optional) adds lighting changes and sensor noise (:class:`~synth.rig.camera.CameraEffects`);
    ``family`` picks the identity family of the face (see :class:`~synth.rig.face.FaceRenderer`).

    ``next_samples(n)`` returns ``(rgb, depth)``: (n, height, width, 3) uint8 and
    (n, height, width) uint16 millimetres, rendered from the same geometry.
    """

    def __init__(self, config: VideoConfig, timeline: AUTimeline, *, identity_seed: int,
                 head_pose: Callable[[np.ndarray], np.ndarray] | None = None, camera: CameraEffects | None = None,
                 family: str = "default") -> None:
        super().__init__(config.fps)
        self.timeline = timeline
        self.head_pose = head_pose
        self.camera = camera
        self.renderer = FaceRenderer(config.width, config.height, identity_seed=identity_seed, family=family)

    def _generate(self, n: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[override]
        t = self.times_s(n)
        au = self.timeline.intensities(t).astype(np.float64)
        if self.head_pose is None:
            rendered = [self.renderer.render(a) for a in au]
        else:
            pose = self.head_pose(t)
            rendered = [self.renderer.render(a, yaw_deg=p[0], pitch_deg=p[1], roll_deg=p[2],
                                             translation_mm=p[3:6] if len(p) > 3 else (0.0, 0.0, 0.0))
                        for a, p in zip(au, pose)]
        if self.camera is not None:
            rendered = [self.camera.apply(rgb, depth, float(ti), self.position + i)
                        for i, (ti, (rgb, depth)) in enumerate(zip(t, rendered))]
        return np.stack([r[0] for r in rendered]), np.stack([r[1] for r in rendered])


class FrameBankVideoGenerator(SampleGenerator):
    """A cheap camera: ``bank_size`` frames of a :class:`FaceVideoGenerator`, rendered once, then cycled.

    Frame ``k`` is bank frame ``k % bank_size``; with ``stamp`` its RGB frame also carries ``k``
    in its top-left corner (:func:`acquisition.session.frame_stamp.stamp_frame_index`). A frame
    costs one copy instead of a rendering (about 4 ms at 640x480), so the rig can publish VGA at
    hundreds of frames per second. ``next_samples(n)`` returns ``(rgb, depth)`` as
    :class:`FaceVideoGenerator` does.
    """

    def __init__(self, renderer: FaceVideoGenerator, bank_size: int, *, stamp: bool = False) -> None:
        super().__init__(renderer.srate_hz)
        if bank_size < 1:
            raise ValueError(f"bank_size must be >= 1, got {bank_size}")
        self._rgb_bank, self._depth_bank = renderer.next_samples(int(bank_size))
        self.stamp = stamp

    def _generate(self, n: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[override]
        k = self.position + np.arange(n)
        rows = k % self._rgb_bank.shape[0]
        rgb = np.take(self._rgb_bank, rows, axis=0)
        if self.stamp:
            stamp_frame_index(rgb, k)
        return rgb, np.take(self._depth_bank, rows, axis=0)


__all__ = ["AU_IDS", "AUIntensityGenerator", "EMGGenerator", "EEGGenerator", "FaceVideoGenerator",
           "FrameBankVideoGenerator"]
