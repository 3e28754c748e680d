"""Configuration of the simulated rig (``configs/rig/*.yaml``), validated with unknown keys rejected."""

from __future__ import annotations

from pydantic import Field, model_validator

from acquisition._config import StrictModel, load_config
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


class RigConfig(StrictModel):
    """The whole simulated rig: one AU timeline driving RGB, depth, EMG, EEG, AUs and markers."""

    name_prefix: str = ""
    source_prefix: str = "emosync-sim"
    identity_seed: int = 0
    chunk_duration_s: float = Field(0.02, gt=0, le=0.5)
    start_delay_s: float = Field(0.5, ge=0)
    max_lag_s: float = Field(0.5, gt=0)
    timeline: TimelineConfig = Field(default_factory=TimelineConfig)
    rgb: VideoConfig
    depth: VideoConfig
    emg: EMGConfig
    eeg: EEGConfig
    au: StreamToggle
    markers: StreamToggle


def load_rig_config(profile: str = "default", overrides: list[str] | tuple[str, ...] = ()) -> RigConfig:
    """Load ``configs/rig/<profile>.yaml`` (or a YAML path) with dotlist overrides."""
    return load_config(RigConfig, profile, "rig", overrides)
