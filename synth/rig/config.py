"""Configuration of the simulated rig (``configs/rig/*.yaml``), validated with unknown keys rejected."""

from __future__ import annotations

from pydantic import Field, model_validator

from acquisition.utils.config import StrictModel, load_config
from synth.facs import TimelineConfig


class VideoConfig(StrictModel):
    """A simulated camera (RGB8 or DEPTH16-mm frames)."""

    enabled: bool = True
    name: str
    width: int = Field(640, ge=64, le=4096)
    height: int = Field(480, ge=64, le=4096)
    fps: float = Field(30.0, gt=0, le=240)


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


class RigConfig(StrictModel):
    """The whole simulated rig: one AU timeline driving RGB, depth, EMG, EEG, AUs and markers."""

    name_prefix: str = ""
    source_prefix: str = "emosync-sim"
    identity_seed: int = 0
    chunk_duration_s: float = Field(0.02, gt=0, le=0.5)
    start_delay_s: float = Field(0.5, ge=0)
    max_lag_s: float = Field(0.5, gt=0)
    timeline: TimelineConfig = Field(default_factory=TimelineConfig)
    idle: IdleConfig = Field(default_factory=IdleConfig)
    rgb: VideoConfig
    depth: VideoConfig
    emg: EMGConfig
    eeg: EEGConfig
    au: StreamToggle
    markers: StreamToggle


def load_rig_config(profile: str = "default", overrides: list[str] | tuple[str, ...] = ()) -> RigConfig:
    """Load ``configs/rig/<profile>.yaml`` (or a YAML path) with dotlist overrides."""
    return load_config(RigConfig, profile, "rig", overrides)
