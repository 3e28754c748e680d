"""Configuration of the simulated rig (``configs/rig/*.yaml``), validated with unknown keys rejected."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from acquisition.utils.config import StrictModel, load_config
from synth.facs import TimelineConfig


class VideoConfig(StrictModel):
    """A simulated camera (RGB8 or DEPTH16-mm frames).

    ``frame_bank`` > 0 renders that many frames once, at start, and cycles them (frame ``k`` is
    bank frame ``k % frame_bank``): a camera that costs almost no CPU, for recording at high frame
    rates; its faces follow the AU timeline only for the bank's first pass. ``stamp_frame_index``
    draws each RGB frame's running index into its top-left corner
    (:mod:`acquisition.session.frame_stamp`), so dropped frames show in the file.
    """

    enabled: bool = True
    name: str
    width: int = Field(640, ge=64, le=4096)
    height: int = Field(480, ge=64, le=4096)
    fps: float = Field(30.0, gt=0, le=1000)
    frame_bank: int = Field(0, ge=0, le=2000)
    stamp_frame_index: bool = False

    @model_validator(mode="after")
    def _check_stamp_fits(self) -> VideoConfig:
        from acquisition.session.frame_stamp import STAMP_SHAPE_PX

        if self.stamp_frame_index and (self.height < STAMP_SHAPE_PX[0] or self.width < STAMP_SHAPE_PX[1]):
            raise ValueError(f"stamp_frame_index needs frames of at least {STAMP_SHAPE_PX[1]}x{STAMP_SHAPE_PX[0]} "
                             f"pixels, got {self.width}x{self.height}")
        return self


class EMGChannelConfig(StrictModel):
    """One EMG channel: its label and the muscle under the electrode."""

    label: str
    muscle: str
    side: str = Field("L", pattern="^(L|R)$")


class EMGConfig(StrictModel):
    """Facial EMG: band-limited noise scaled by muscle activation, plus noise floor and mains hum (volts)."""

    enabled: bool = True
    name: str = "EMG"
    srate_hz: float = Field(2000.0, gt=0)
    channels: list[EMGChannelConfig]
    band_hz: tuple[float, float] = (20.0, 500.0)
    max_rms_v: float = Field(200e-6, gt=0)
    noise_rms_v: float = Field(2e-6, ge=0)
    mains_hz: float = Field(50.0, ge=0)
    mains_amplitude_v: float = Field(5e-6, ge=0)
    lead_s: float = Field(0.03, ge=0, le=0.2)

    @model_validator(mode="after")
    def _check_band(self) -> EMGConfig:
        low, high = self.band_hz
        if not 0 < low < high < self.srate_hz / 2:
            raise ValueError(f"band_hz {self.band_hz} must satisfy 0 < low < high < srate_hz/2 = {self.srate_hz / 2}")
        return self


class EEGConfig(StrictModel):
    """EEG: 1/f background, posterior alpha, blink and facial-muscle artefacts (volts)."""

    enabled: bool = True
    name: str = "EEG"
    srate_hz: float = Field(500.0, gt=0)
    channels: list[str]
    background_rms_v: float = Field(10e-6, ge=0)
    alpha_hz: float = Field(10.0, gt=0)
    alpha_rms_v: float = Field(6e-6, ge=0)
    blink_amplitude_v: float = Field(80e-6, ge=0)
    muscle_artifact_rms_v: float = Field(25e-6, ge=0)  # at full activation; real artefacts reach 10-100 uV
    muscle_band_hz: tuple[float, float] = (20.0, 100.0)
    n_sources: int = Field(8, ge=1)

    @model_validator(mode="after")
    def _check_muscle_band(self) -> EEGConfig:
        low, high = self.muscle_band_hz
        if not 0 < low < high < self.srate_hz / 2:
            raise ValueError(f"muscle_band_hz {self.muscle_band_hz} must satisfy 0 < low < high < srate_hz/2 = "
                             f"{self.srate_hz / 2}")
        return self


class StreamToggle(StrictModel):
    """A stream that needs only a name and an on/off switch (and a rate where it has one)."""

    enabled: bool = True
    name: str
    srate_hz: float = Field(0.0, ge=0)


class IdleConfig(StrictModel):
    """Idle behaviour between expressions: slow head motion and tonic AU activity (see :mod:`synth.rig.idle`).

    Off by default so recorded benchmark figures stay comparable; the pretraining benchmark turns it on.
    """

    enabled: bool = False
    head_rms_deg: tuple[float, float, float] = (3.0, 2.0, 1.5)   # yaw, pitch, roll RMS, degrees
    head_max_deg: float = Field(15.0, gt=0, le=40)                # hard limit of each angle, degrees
    head_time_scale_s: float = Field(3.0, gt=0)                   # typical period of the motion
    tonic_aus: list[int] = [1, 2, 4, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23]
    tonic_mean: float = Field(0.3, ge=0, le=5)                    # FACS intensity (0-5) around which it wanders
    tonic_rms: float = Field(0.4, ge=0, le=5)                     # FACS intensity, before clipping at 0
    tonic_time_scale_s: float = Field(1.5, gt=0)
    n_components: int = Field(8, ge=1, le=64)                     # sinusoids per signal (smoothness vs cost)

    @model_validator(mode="after")
    def _check_aus(self) -> IdleConfig:
        from acquisition.annotate.action_units import AU_INDEX

        unknown = sorted(set(self.tonic_aus) - set(AU_INDEX))
        if unknown:
            raise ValueError(f"idle.tonic_aus has unknown AUs {unknown}; known: {sorted(AU_INDEX)}")
        if 45 in self.tonic_aus:
            raise ValueError("idle.tonic_aus must not contain AU45: blinks come from the timeline")
        if any(v < 0 for v in self.head_rms_deg):
            raise ValueError(f"idle.head_rms_deg must be >= 0, got {self.head_rms_deg}")
        return self


def _check_range(name: str, value: tuple[float, float], low: float = 0.0, high: float = float("inf")) -> None:
    """Raise ValueError unless ``low <= value[0] <= value[1] <= high``."""
    if not low <= value[0] <= value[1] <= high:
        raise ValueError(f"{name} {tuple(value)} must be an interval (min, max) with "
                         f"{low:g} <= min <= max <= {high:g}")


class HeadMotionConfig(StrictModel):
    """Rigid head motion: holds, slow turns and sudden re-orientations (see :mod:`synth.rig.confounds`).

    The head holds a pose for a dwell time, then moves to a new one with a minimum-jerk profile,
    either slowly or suddenly. Target angles and positions are normal around the frontal pose
    with a standard deviation of half the limit, clipped at the limit.
    """

    enabled: bool = False
    max_deg: tuple[float, float, float] = (25.0, 20.0, 10.0)              # yaw, pitch, roll limits, degrees
    max_translation_mm: tuple[float, float, float] = (40.0, 20.0, 100.0)  # x (right), y (down), z (away) limits
    dwell_s: tuple[float, float] = (0.6, 4.0)          # how long a pose is held
    slow_move_s: tuple[float, float] = (0.8, 2.5)      # duration of a slow turn
    sudden_move_s: tuple[float, float] = (0.12, 0.35)  # duration of a sudden re-orientation
    sudden_fraction: float = Field(0.35, ge=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> HeadMotionConfig:
        if not all(0 <= v <= 35 for v in self.max_deg):
            raise ValueError(f"head_motion.max_deg {self.max_deg} must each be in [0, 35] degrees "
                             "(the renderer looks implausible beyond about 30)")
        if not all(0 <= v <= 200 for v in self.max_translation_mm):
            raise ValueError(f"head_motion.max_translation_mm {self.max_translation_mm} must each be in [0, 200] mm")
        for name in ("dwell_s", "slow_move_s", "sudden_move_s"):
            _check_range(f"head_motion.{name}", getattr(self, name), 0.01)
        return self


class TalkingConfig(StrictModel):
    """Talking bouts: jaw and lip movement at syllable rate, no emotion (see :mod:`synth.rig.confounds`).

    Each syllable is a sin^2 pulse of jaw drop (AU26) and parted lips (AU25), sometimes with an
    upper-lip raise (AU10) or dimpler (AU14). The EMG speech produces reaches the lower-face
    electrodes through ``emg_drive`` (extra activation per muscle at a full syllable), and the jaw
    muscles leave artefacts on temporal/frontal EEG sites (``eeg_artifact_rms_v``).
    """

    enabled: bool = False
    bouts_per_minute: float = Field(5.0, ge=0)
    bout_duration_s: tuple[float, float] = (2.0, 10.0)
    min_gap_s: float = Field(1.0, ge=0)
    syllable_rate_hz: tuple[float, float] = (3.5, 5.5)
    pause_fraction: float = Field(0.15, ge=0, lt=1)   # syllable slots left silent (gaps between words)
    au26: tuple[float, float] = (1.0, 3.0)            # per-syllable peak intensity ranges, FACS 0-5
    au25: tuple[float, float] = (1.5, 3.0)
    au10: tuple[float, float] = (0.5, 1.5)
    au14: tuple[float, float] = (0.5, 1.5)
    au10_fraction: float = Field(0.3, ge=0, le=1)     # syllables with an upper-lip raise
    au14_fraction: float = Field(0.25, ge=0, le=1)    # syllables with a dimpler
    emg_drive: dict[str, float] = {"levator_labii": 0.25, "mentalis": 0.35, "zygomaticus_major": 0.1,
                                   "orbicularis_oris": 0.4}
    eeg_artifact_rms_v: float = Field(20e-6, ge=0)    # jaw-muscle artefact at a full syllable

    @model_validator(mode="after")
    def _check(self) -> TalkingConfig:
        from acquisition.annotate.action_units import AU_CATALOGUE

        _check_range("talking.bout_duration_s", self.bout_duration_s, 0.1)
        _check_range("talking.syllable_rate_hz", self.syllable_rate_hz, 0.5, 15.0)
        for name in ("au26", "au25", "au10", "au14"):
            _check_range(f"talking.{name}", getattr(self, name), 0.0, 5.0)
        known = {m for au in AU_CATALOGUE.values() for m in au.muscles}
        unknown = sorted(set(self.emg_drive) - known)
        if unknown:
            raise ValueError(f"talking.emg_drive names unknown muscles {unknown}; known: {sorted(known)}")
        if any(not 0 <= v <= 1 for v in self.emg_drive.values()):
            raise ValueError(f"talking.emg_drive values must be in [0, 1], got {self.emg_drive}")
        return self


class LightingConfig(StrictModel):
    """Slow lighting drift (overall gain and colour) and flicker, applied to whole RGB frames."""

    enabled: bool = False
    gain_rms: float = Field(0.12, ge=0, le=0.5)      # slow overall gain drift, fraction of the nominal light
    colour_rms: float = Field(0.04, ge=0, le=0.3)    # per-channel (white balance) drift, fraction
    time_scale_s: float = Field(20.0, gt=0)          # typical period of the drift
    flicker_hz: float = Field(10.0, ge=0)            # mains flicker as the camera sees it (100 Hz aliased at 30 fps)
    flicker_depth: float = Field(0.03, ge=0, le=0.5)  # relative amplitude of the flicker


class CameraNoiseConfig(StrictModel):
    """Sensor noise: Gaussian noise on RGB and depth noise growing with the square of the distance."""

    enabled: bool = False
    rgb_sigma: float = Field(4.0, ge=0, le=50)          # standard deviation, 8-bit levels
    depth_sigma_mm_at_1m: float = Field(2.0, ge=0, le=50)  # standard deviation at 1 m; scales with distance^2


class SubjectsConfig(StrictModel):
    """How subjects differ beyond the face, drawn per ``identity_seed`` (see :mod:`synth.rig.subjects`)."""

    enabled: bool = False
    emg_gain: tuple[float, float] = (0.5, 2.0)            # overall EMG amplitude factor (log-uniform)
    emg_channel_gain: tuple[float, float] = (0.7, 1.4)    # per-channel factor: electrode placement (log-uniform)
    emg_noise_scale: tuple[float, float] = (1.0, 4.0)     # noise-floor factor: skin impedance (log-uniform)
    emg_crosstalk: tuple[float, float] = (0.0, 0.3)       # activation picked up from neighbouring muscles
    eeg_alpha_hz: tuple[float, float] = (8.5, 12.0)       # individual alpha peak frequency
    eeg_artifact_scale: tuple[float, float] = (0.5, 2.0)  # muscle and blink artefact load (log-uniform)
    expressiveness: tuple[float, float] = (0.5, 1.0)      # intensity factor of the emotional expressions

    @model_validator(mode="after")
    def _check(self) -> SubjectsConfig:
        for name in ("emg_gain", "emg_channel_gain", "emg_noise_scale", "eeg_artifact_scale", "expressiveness"):
            _check_range(f"subjects.{name}", getattr(self, name), 1e-3, 10.0)
        _check_range("subjects.emg_crosstalk", self.emg_crosstalk, 0.0, 1.0)
        _check_range("subjects.eeg_alpha_hz", self.eeg_alpha_hz, 6.0, 14.0)
        return self


class FaceConfig(StrictModel):
    """The rendered face: which identity family ``identity_seed`` indexes (see :mod:`synth.rig.face`).

    ``default`` is the original family (identities unchanged); ``wide`` spreads skin tone, face
    shape and hair further and gives some subjects glasses, so held-out faces are new people.
    """

    family: Literal["default", "wide"] = "default"


class RigConfig(StrictModel):
    """The whole simulated rig: one AU timeline driving RGB, depth, EMG, EEG, AUs and markers.

    The confound sections (``head_motion``, ``talking``, ``lighting``, ``camera_noise``,
    ``subjects``, ``face.family``) are off by default: the ``default`` and ``light`` profiles
    are the best case; ``realistic`` turns them on.
    """

    name_prefix: str = ""
    source_prefix: str = "emosync-sim"
    identity_seed: int = 0
    chunk_duration_s: float = Field(0.02, gt=0, le=0.5)
    start_delay_s: float = Field(0.5, ge=0)
    max_lag_s: float = Field(0.5, gt=0)
    timeline: TimelineConfig = Field(default_factory=TimelineConfig)
    idle: IdleConfig = Field(default_factory=IdleConfig)
    face: FaceConfig = Field(default_factory=FaceConfig)
    head_motion: HeadMotionConfig = Field(default_factory=HeadMotionConfig)
    talking: TalkingConfig = Field(default_factory=TalkingConfig)
    lighting: LightingConfig = Field(default_factory=LightingConfig)
    camera_noise: CameraNoiseConfig = Field(default_factory=CameraNoiseConfig)
    subjects: SubjectsConfig = Field(default_factory=SubjectsConfig)
    rgb: VideoConfig
    depth: VideoConfig
    emg: EMGConfig
    eeg: EEGConfig
    au: StreamToggle
    markers: StreamToggle


def load_rig_config(profile: str = "default", overrides: list[str] | tuple[str, ...] = ()) -> RigConfig:
    """Load ``configs/rig/<profile>.yaml`` (or a YAML path) with dotlist overrides."""
    return load_config(RigConfig, profile, "rig", overrides)
