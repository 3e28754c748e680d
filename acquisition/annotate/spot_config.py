"""Configuration of expression spotting (``configs/spot/*.yaml``), validated with unknown keys rejected.

One :class:`SpotConfig` holds every parameter of ``emosync spot``: the detector (filtering,
hysteresis thresholds, edges, labels), each interference-elimination module of
:mod:`acquisition.annotate.interference` with its own ``enabled`` switch (so its effect can be
measured), and ``tuning``: the simulated subjects and rig seeds the thresholds were tuned on,
which the output stream's provenance repeats so that nobody scores on them. Field values live
only in the YAML files: ``configs/spot/default.yaml`` (tuned, every module on),
``configs/spot/baseline.yaml`` (the spotter before interference elimination, thresholds set by
eye) and variants. Load one with :func:`load_spot_config`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from pydantic import Field, model_validator

from acquisition.utils.config import StrictModel, load_config


class TuningInfo(StrictModel):
    """Where the thresholds came from (informational; copied into provenance and RESULTS)."""

    subjects: list[int]
    seeds: list[int]
    profiles: list[str]
    note: str = ""


class BlinkConfig(StrictModel):
    """Blink suppression: frames where the blink AU rises are bridged in the eye-region AUs."""

    enabled: bool
    au: int = Field(ge=1)
    threshold: float = Field(gt=0)
    margin_s: float = Field(ge=0)
    max_duration_s: float = Field(gt=0)
    aus: list[int]


class HeadMotionConfig(StrictModel):
    """Head-motion compensation: regress pose out of each AU channel; veto rigid-only intervals."""

    enabled: bool
    ridge_deg: float = Field(gt=0)
    ridge_deg_s: float = Field(gt=0)
    ridge_cm: float = Field(gt=0)
    robust_z: float = Field(gt=0)
    veto: bool
    veto_speed_deg_s: float = Field(gt=0)
    veto_fraction: float = Field(gt=0, le=1)
    veto_nonrigid_z: float


class TalkingConfig(StrictModel):
    """Talking suppression: syllable-rate oscillation of the mouth AUs (and lower-face EMG) marks speech."""

    enabled: bool
    band_hz: tuple[float, float]
    window_s: float = Field(gt=0)
    detect_aus: list[int]
    threshold: float = Field(gt=0)
    min_duration_s: float = Field(ge=0)
    margin_s: float = Field(ge=0)
    aus: list[int]

    @model_validator(mode="after")
    def _check_band(self) -> TalkingConfig:
        low, high = self.band_hz
        if not 0 < low < high:
            raise ValueError(f"talking.band_hz {self.band_hz} must satisfy 0 < low < high.")
        return self


class EMGAssistConfig(StrictModel):
    """EMG-assisted spotting: the ``<EMG>-AU`` stream of ``emosync emg-code`` fused with the video AUs."""

    enabled: bool
    stream: str | None
    video_weight: float = Field(ge=0)
    emg_weight: float = Field(ge=0)
    noise_floor: float = Field(gt=0)
    talking_aus: list[int]


class SpotConfig(StrictModel):
    """Parameters of :func:`acquisition.annotate.spotting.spot_expressions` (times in s, thresholds in robust SDs).

    Attributes
    ----------
    tuning : TuningInfo
        Subjects (identity seeds) and rig seeds the thresholds were tuned on.
    smooth_hz : float
        Cut-off (Hz) of the zero-phase 4th-order Butterworth low-pass applied to every channel.
    baseline_window_s : float
        Length (s) of the rolling median that tracks each channel's neutral level.
    noise_floor : float
        Smallest per-channel noise SD of AU channels (intensity, 0-5 scale).
    landmark_noise_floor : float
        The same for landmark motion, in face-size units.
    high, low : float
        Hysteresis thresholds on the standardized combined activation.
    edge_fraction : float
        Onset/offset move outwards to where the activation falls to this fraction of the peak.
    merge_gap_s, min_duration_s, max_nan_gap_s : float
        Merge intervals closer than this; drop shorter ones; interpolate NaN gaps up to this long.
    exclude_aus : list of int
        AUs left out of the activation (AU45: blinks are not expressions).
    au_fraction, min_au_intensity, emotion_similarity : float
        Labelling: dominant AUs and the EMFACS prototype match (see ``docs/spotting.md``).
    blinks, head_motion, talking, emg : module configs
        The interference-elimination modules, each with ``enabled``.
    """

    tuning: TuningInfo
    smooth_hz: float = Field(gt=0)
    baseline_window_s: float = Field(gt=0)
    noise_floor: float = Field(gt=0)
    landmark_noise_floor: float = Field(gt=0)
    high: float = Field(gt=0)
    low: float = Field(gt=0)
    edge_fraction: float = Field(ge=0, lt=1)
    merge_gap_s: float = Field(ge=0)
    min_duration_s: float = Field(ge=0)
    max_nan_gap_s: float = Field(ge=0)
    exclude_aus: list[int]
    au_fraction: float = Field(gt=0, le=1)
    min_au_intensity: float = Field(ge=0)
    emotion_similarity: float = Field(gt=0, le=1)
    blinks: BlinkConfig
    head_motion: HeadMotionConfig
    talking: TalkingConfig
    emg: EMGAssistConfig

    @model_validator(mode="after")
    def _check_thresholds(self) -> SpotConfig:
        if not self.low < self.high:
            raise ValueError(f"Need 0 < low < high, got low={self.low}, high={self.high}.")
        return self


def load_spot_config(name_or_path: str | os.PathLike = "default", overrides: Sequence[str] = ()) -> SpotConfig:
    """Load ``configs/spot/<name>.yaml`` (or a YAML path) with ``key.sub=value`` overrides.

    Parameters
    ----------
    name_or_path : str | path-like
        ``"default"`` (tuned, every module on), ``"baseline"`` (before interference elimination),
        another name under ``configs/spot/``, or a path to a YAML file.
    overrides : sequence of str
        OmegaConf dotlist, e.g. ``["high=5", "talking.enabled=false"]``.

    Returns
    -------
    config : SpotConfig

    Raises
    ------
    acquisition.utils.config.ConfigError
        Unknown name, unknown key or invalid value (the message says which).
    """
    return load_config(SpotConfig, str(name_or_path), "spot", overrides)
