"""The privacy-audit configuration (``configs/synth/audit.yaml``), validated with unknown keys rejected."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field

from acquisition.utils.config import StrictModel, load_config


class FramesConfig(StrictModel):
    """Which frames of each set (training, held-out, synthetic) the audit reads."""

    stride: int = Field(1, ge=1)
    max_frames: int = Field(2000, ge=2)


class NearestConfig(StrictModel):
    """Chunking of the nearest-neighbour search (see :func:`synth.privacy.nearest.nearest_neighbours`)."""

    chunk_size: int = Field(1024, ge=1)


class MembershipConfig(StrictModel):
    """Loss-threshold membership inference on the generator (see :mod:`synth.privacy.membership`)."""

    enabled: bool = True
    max_frames: int = Field(256, ge=2)
    repeats: int = Field(2, ge=1)
    batch_size: int = Field(64, ge=1)


class IdentityConfig(StrictModel):
    """The disclosed identity encoder (see :class:`synth.privacy.identity.IdentityEncoder`)."""

    enabled: bool = True
    steps: int = Field(300, ge=1)
    batch_size: int = Field(64, ge=2)
    width: int = Field(16, ge=1)
    embed_dim: int = Field(32, ge=2)
    lr: float = Field(3e-3, gt=0)
    augment_shift_px: int = Field(2, ge=0)
    augment_gain: float = Field(0.1, ge=0, lt=2)
    logit_scale: float = Field(16.0, gt=0)
    match_quantile: float = Field(0.01, gt=0, lt=1)
    validation_fraction: float = Field(0.2, gt=0, lt=1)


class IdentityPrivacyConfig(StrictModel):
    """Identity privacy: per-identity distances and re-identification (see :mod:`synth.privacy.identity_privacy`)."""

    enabled: bool = True
    trim_fraction: float = Field(0.1, ge=0, lt=0.5)
    min_frames: int = Field(3, ge=1)
    groups_per_subject: int = Field(50, ge=1)
    min_holdout_subjects: int = Field(4, ge=1)
    tolerance: float = Field(0.05, ge=0, lt=1)
    alpha: float = Field(0.05, gt=0, lt=1)
    reid_quantile: float = Field(0.95, gt=0, lt=1)
    max_reid_rate: float = Field(0.2, ge=0, le=1)


class MemorizationConfig(StrictModel):
    """Threshold = ``scale`` times the ``quantile`` of held-out-to-train pixel NN distances, >= ``floor``."""

    quantile: float = Field(0.01, gt=0, lt=1)
    scale: float = Field(0.9, gt=0)
    floor: float = Field(2.0 / 255.0, ge=0)


class RuleConfig(StrictModel):
    """The pass/fail rule (see :func:`synth.privacy.audit.apply_rule`)."""

    spaces: list[Literal["pixel", "embedding"]] = ["pixel", "embedding"]
    tolerance: float = Field(0.05, ge=0, lt=1)
    max_memorized_fraction: float = Field(0.02, ge=0, le=1)
    max_mia_auc: float = Field(0.6, gt=0, le=1)


class ReferenceIntervalConfig(StrictModel):
    """Intervals over held-out people (:mod:`synth.privacy.reference_interval`): would other people flip a verdict?"""

    enabled: bool = True
    n_resamples: int = Field(1000, ge=10)
    confidence: float = Field(0.9, gt=0, lt=1)
    advised_units: int = Field(8, ge=2)


class ReportConfig(StrictModel):
    """What the PNG shows."""

    n_pairs: int = Field(12, ge=1)


class AuditConfig(StrictModel):
    """Everything the audit needs besides the model, the corpus and the session files."""

    seed: int = 0
    threads: int = Field(0, ge=0)  # torch CPU threads during the audit; 0 leaves torch's default
    frames: FramesConfig = FramesConfig()
    nearest: NearestConfig = NearestConfig()
    membership: MembershipConfig = MembershipConfig()
    identity: IdentityConfig = IdentityConfig()
    identity_privacy: IdentityPrivacyConfig = IdentityPrivacyConfig()
    memorization: MemorizationConfig = MemorizationConfig()
    rule: RuleConfig = RuleConfig()
    reference_interval: ReferenceIntervalConfig = ReferenceIntervalConfig()
    report: ReportConfig = ReportConfig()


def load_audit_config(name_or_path: str | Path = "audit", overrides: Sequence[str] = ()) -> AuditConfig:
    """Load ``configs/synth/<name>.yaml`` (or a path) with ``key.sub=value`` overrides."""
    return load_config(AuditConfig, name_or_path, "synth", overrides)
