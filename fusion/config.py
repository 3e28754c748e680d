"""The pretraining configuration (``configs/pretrain/*.yaml``), validated with unknown keys rejected."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from acquisition._config import StrictModel, load_config


class DataConfig(StrictModel):
    """Windows (see :class:`fusion.data.SessionWindows`)."""

    window_s: float = Field(1.0, gt=0)
    stride_s: float = Field(0.5, gt=0)
    modalities: list[Literal["rgb", "depth", "emg", "eeg"]] = ["rgb", "depth", "emg", "eeg"]
    clip_frames: int = Field(8, ge=1)
    image_size: int = Field(64, ge=8)
    depth_scale_mm: float = Field(100.0, gt=0)
    num_workers: int = Field(0, ge=0)
    cache: bool = False  # keep decoded windows in RAM after the first read (small corpora, CPU runs)


class EncoderConfig(StrictModel):
    """One modality's backbone: a registered name and its extra arguments."""

    name: str
    kwargs: dict[str, Any] = {}


class ModelConfig(StrictModel):
    """Backbones per modality and the shared projection head sizes."""

    encoders: dict[str, EncoderConfig] = {
        "rgb": EncoderConfig(name="tiny3d", kwargs={"width": 16}),
        "depth": EncoderConfig(name="tiny3d", kwargs={"width": 8}),
        "emg": EncoderConfig(name="eegnet", kwargs={"kernel": 64}),
        "eeg": EncoderConfig(name="eegnet", kwargs={"kernel": 32}),
    }
    hidden_dim: int = Field(256, ge=1)
    embed_dim: int = Field(128, ge=1)


class LossConfig(StrictModel):
    """See :class:`fusion.losses.MultiViewContrastiveLoss`."""

    kind: Literal["ntxent", "infonce"] = "ntxent"
    temperature: float = Field(0.1, gt=0)
    time_tolerance_s: float = Field(0.0, ge=0)
    max_logit_scale: float = Field(100.0, gt=1)


class OptimConfig(StrictModel):
    """AdamW with linear warm-up then cosine decay to ``min_lr_ratio * lr``."""

    steps: int = Field(1000, ge=1)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_steps: int = Field(50, ge=0)
    min_lr_ratio: float = Field(0.05, ge=0, le=1)
    grad_clip: float = Field(5.0, gt=0)
    amp: bool = False  # bf16 autocast of the encoders on CUDA; ignored on CPU


class PretrainConfig(StrictModel):
    """Everything a pretraining run needs besides the session files and the output folder."""

    seed: int = 0
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    checkpoint_every: int = Field(200, ge=1)
    log_every: int = Field(1, ge=1)
    threads: int = Field(0, ge=0)  # torch CPU threads; 0 leaves torch's default


def load_pretrain_config(name_or_path: str | Path = "default", overrides: Sequence[str] = ()) -> PretrainConfig:
    """Load ``configs/pretrain/<name>.yaml`` (or a path) with ``key.sub=value`` overrides."""
    return load_config(PretrainConfig, name_or_path, "pretrain", overrides)
