"""The pretraining configuration (``configs/pretrain/*.yaml``), validated with unknown keys rejected.

The code defaults here *are* ``configs/pretrain/default.yaml`` (a test keeps the two equal), so a
user YAML that sets a few keys, or ``PretrainConfig()`` in Python, gets the recommended setup for
every key it leaves out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from acquisition.utils.config import StrictModel, load_config


class DataConfig(StrictModel):
    """Windows (see :class:`fusion.data.SessionWindows`)."""

    window_s: float = Field(1.0, gt=0)
    stride_s: float = Field(0.5, gt=0)
    modalities: list[Literal["rgb", "depth", "emg", "eeg"]] = ["rgb", "depth", "emg", "eeg"]
    clip_frames: int = Field(8, ge=1)
    image_size: int = Field(64, ge=8)
    depth_scale_mm: float = Field(10.0, gt=0)      # expression deformations are a few mm
    depth_clip: float = Field(3.0, gt=0)           # normalised depth is clipped to +- this
    # foreground: a per-session box around the head (depth); face: around `emosync annotate`'s face boxes
    crop: Literal["foreground", "face", "centre"] = "foreground"
    foreground_mm: float = Field(400.0, gt=0)       # depth foreground = within this of the nearest pixel
    crop_margin: float = Field(0.15, ge=0, le=1)    # foreground box margin, fraction of its side
    video_norm: Literal["none", "session"] = "session"  # session: minus the session's mean frame, / its std
    num_workers: int = Field(2, ge=0)
    cache: bool = False  # keep decoded windows in RAM after the first read (small corpora, CPU runs)
    # Seconds by which a signal's window starts before the video window: facial EMG leads visible motion.
    lead_s: dict[Literal["emg", "eeg"], float] = {}


class AugmentConfig(StrictModel):
    """Training-batch augmentations (see :mod:`fusion.augment`); evaluation never augments."""

    enabled: bool = True
    crop_scale: tuple[float, float] = (0.8, 1.0)   # crop side / frame side, resized back
    flip_p: float = Field(0.5, ge=0, le=1)          # horizontal flip probability (RGB and depth together)
    brightness: float = Field(0.1, ge=0, le=1)      # RGB additive jitter, +- (pixel values 0-1)
    contrast: float = Field(0.1, ge=0, lt=1)        # RGB contrast factor 1 +- this
    depth_scale: float = Field(0.1, ge=0, lt=1)     # normalised depth factor 1 +- this
    signal_scale: float = Field(0.2, ge=0)          # EMG/EEG per-channel gain, log-uniform in [1/(1+s), 1+s]
    signal_shift_s: float = Field(0.02, ge=0)       # EMG/EEG time shift, +- seconds

    @model_validator(mode="after")
    def _check_crop(self) -> AugmentConfig:
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"augment.crop_scale {self.crop_scale} must satisfy 0 < low <= high <= 1")
        return self


class EncoderConfig(StrictModel):
    """One modality's backbone: a registered name and its extra arguments."""

    name: str
    kwargs: dict[str, Any] = {}


class ModelConfig(StrictModel):
    """Backbones per modality and the shared projection head sizes."""

    encoders: dict[str, EncoderConfig] = {
        "rgb": EncoderConfig(name="frames2d", kwargs={"width": 16}),
        "depth": EncoderConfig(name="frames2d", kwargs={"width": 8}),
        "emg": EncoderConfig(name="shallow", kwargs={"n_filters": 16, "kernel": 25, "n_bins": 8}),
        "eeg": EncoderConfig(name="shallow", kwargs={"n_filters": 16, "kernel": 25, "n_bins": 8}),
    }
    hidden_dim: int = Field(256, ge=1)
    embed_dim: int = Field(128, ge=1)
    pair_heads: bool = True    # one projection head per (modality, partner): pairs stop competing for one space


class LossConfig(StrictModel):
    """See :class:`fusion.losses.MultiViewContrastiveLoss`."""

    kind: Literal["ntxent", "dcl", "infonce"] = "ntxent"  # dcl: lightly DCLLoss (positive not in the denominator)
    temperature: float = Field(0.1, gt=0)
    time_tolerance_s: float = Field(0.0, ge=0)
    max_logit_scale: float = Field(100.0, gt=1)


class OptimConfig(StrictModel):
    """AdamW with linear warm-up then cosine decay to ``min_lr_ratio * lr``."""

    steps: int = Field(2000, ge=1)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_steps: int = Field(100, ge=0)
    min_lr_ratio: float = Field(0.05, ge=0, le=1)
    grad_clip: float = Field(5.0, gt=0)
    amp: bool = False  # bf16 autocast of the encoders on CUDA; ignored on CPU

    def decay_factor(self, progress: float) -> float:
        """The cosine decay's multiple of ``lr`` at ``progress`` (0: 1, 1: ``min_lr_ratio``).

        One formula for both schedules: steps after warm-up (``emosync pretrain``) and federated rounds.
        """
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class PretrainConfig(StrictModel):
    """Everything a pretraining run needs besides the session files and the output folder."""

    seed: int = 0
    data: DataConfig = DataConfig()
    augment: AugmentConfig = AugmentConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    checkpoint_every: int = Field(200, ge=1)
    log_every: int = Field(1, ge=1)
    threads: int = Field(0, ge=0)  # torch CPU threads; 0 leaves torch's default


def load_pretrain_config(name_or_path: str | Path = "default", overrides: Sequence[str] = ()) -> PretrainConfig:
    """Load ``configs/pretrain/<name>.yaml`` (or a path) with ``key.sub=value`` overrides."""
    return load_config(PretrainConfig, name_or_path, "pretrain", overrides)
