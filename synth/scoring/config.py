"""The scorer's configuration (``configs/synth/score.yaml``), validated with unknown keys rejected."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field

from acquisition.utils.config import StrictModel, load_config


class EstimatorConfig(StrictModel):
    """The AU estimator (see :class:`synth.scoring.estimator.AUEstimator`) and its training."""

    channels: Literal["rgbd", "rgb"] = "rgbd"
    normalize: Literal["median", "none"] = "median"
    width: int = Field(16, ge=1)
    steps: int = Field(800, ge=1)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(1e-3, gt=0)
    augment_shift_px: int = Field(2, ge=0)
    augment_gain: float = Field(0.1, ge=0, lt=2)


class FramesConfig(StrictModel):
    """Which frames are read."""

    train_stride: int = Field(1, ge=1)
    max_train_frames: int = Field(4000, ge=1)
    max_sequences: Optional[int] = Field(None, ge=1)


class RenderedConfig(StrictModel):
    """Which AUs are scored: those whose reference standard deviation is at least ``min_std`` (FACS units)."""

    min_std: float = Field(0.2, ge=0)


class CeilingConfig(StrictModel):
    """k-fold by subject over the reference subjects (capped at the number of subjects)."""

    folds: int = Field(4, ge=2)


class EpisodesConfig(StrictModel):
    """How real reference sessions are cut into expression sequences (for timing and flicker)."""

    threshold: float = Field(0.5, gt=0)
    pad_s: float = Field(0.1, ge=0)
    min_frames: int = Field(5, ge=2)


class GoalsConfig(StrictModel):
    """Issue 15's goals, reported as pass/fail (they never change an exit status)."""

    min_mean_r: float = Field(0.6, ge=-1, le=1)
    max_gap_to_ceiling: float = Field(0.1, ge=0)
    min_margin_over_floor: float = Field(0.3, ge=0)
    max_timing_error_frames: float = Field(1.0, ge=0)


class ScoreConfig(StrictModel):
    """Everything the scorer needs besides the corpus and the session files."""

    seed: int = 0
    threads: int = Field(0, ge=0)
    image_size: int = Field(64, ge=8)
    estimator: EstimatorConfig = EstimatorConfig()
    frames: FramesConfig = FramesConfig()
    rendered: RenderedConfig = RenderedConfig()
    ceiling: CeilingConfig = CeilingConfig()
    episodes: EpisodesConfig = EpisodesConfig()
    goals: GoalsConfig = GoalsConfig()


def load_score_config(name_or_path: str | Path = "score", overrides: Sequence[str] = ()) -> ScoreConfig:
    """Load ``configs/synth/<name>.yaml`` (or a path) with ``key.sub=value`` overrides."""
    return load_config(ScoreConfig, name_or_path, "synth", overrides)
