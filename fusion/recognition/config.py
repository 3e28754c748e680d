"""The recognition configuration (``configs/recognize/*.yaml``), validated with unknown keys rejected.

The code defaults here are ``configs/recognize/default.yaml`` (a test keeps the two equal).
Clip geometry (window length, frames, image size, crop) and the encoders come from the
pretraining run given with ``--encoders``; a run from scratch takes both from the pretraining
config named in ``scratch_config``, so pretrained and scratch models have the same architecture,
the same fusion and the same step budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field

from acquisition.utils.config import StrictModel, load_config


class OptimConfig(StrictModel):
    """AdamW, cosine decay, class-balanced cross-entropy; the same budget for every mode and init."""

    steps: int = Field(300, ge=1)
    batch_size: int = Field(32, ge=2)
    lr_head: float = Field(3e-3, gt=0)
    lr_encoder: float = Field(1e-3, gt=0)    # fine-tune (pretrained) and scratch alike; unused by the probe
    weight_decay: float = Field(1e-4, ge=0)
    grad_clip: float = Field(5.0, gt=0)


class RecognizeConfig(StrictModel):
    """Everything a recognition run needs besides the session files, the encoders and the output folder."""

    seed: int = 0
    classes: Literal["megc3", "basic7"] = "megc3"
    intervals: str = "Markers"               # marker stream with the intervals: ground truth, or "<stream>-Spotted"
    anchor: Literal["apex", "centre"] = "apex"   # clip centre; an interval without an apex marker uses its centre
    mode: Literal["probe", "finetune"] = "finetune"
    modalities: list[Literal["rgb", "depth", "emg", "eeg"]] = ["rgb", "depth", "emg", "eeg"]
    label_fraction: float = Field(1.0, gt=0, le=1)   # of each training fold's clips, stratified by class
    scratch_config: str = "tiny"             # configs/pretrain name: encoders and clips when training from scratch
    dropout: float = Field(0.2, ge=0, lt=1)  # on the fused embedding, before the linear classifier
    augment: bool = True                     # the pretraining config's batch augmentations (not in probe mode)
    optim: OptimConfig = OptimConfig()
    threads: int = Field(0, ge=0)            # torch CPU threads; 0 leaves torch's default


def load_recognize_config(name_or_path: str | Path = "default", overrides: Sequence[str] = ()) -> RecognizeConfig:
    """Load ``configs/recognize/<name>.yaml`` (or a path) with ``key.sub=value`` overrides."""
    return load_config(RecognizeConfig, name_or_path, "recognize", overrides)
