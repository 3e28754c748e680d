"""The generator training configuration (``configs/synth/*.yaml``), validated with unknown keys rejected.

One file describes one run: which generator (``model.kind``: ``diffusion`` or ``gan``) with
its architecture, the training frames, the optimizer, logging/checkpoints and the optional
DP-SGD mode. ``--set model.block_out_channels=[32,64]`` style overrides use the OmegaConf
dotlist syntax of every emosync config.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from acquisition.utils.config import StrictModel, load_config


class DataConfig(StrictModel):
    """Which frames train the model (see :func:`synth.generative.frames.load_face_frames`).

    ``require_face_boxes``: a session without ``emosync annotate``'s face boxes is centre-cropped,
    with a warning naming it; true refuses such a session instead (for recordings whose framing
    does not put the face in the centre).
    """

    image_size: int = Field(64, ge=8)
    stride: int = Field(1, ge=1)
    max_frames: int | None = Field(None, ge=1)
    require_face_boxes: bool = False


class IdentityConfig(StrictModel):
    """Identity as a second, separate input of the generator (see :mod:`synth.generative.identity`).

    ``enabled``: learn one embedding of ``dim`` numbers per training subject (``subject_id``),
    jointly with the generator; it enters wherever the AUs enter (an extra cross-attention token
    and/or the class projection), never through the AU tokens. ``dropout``: probability that a
    training frame's identity is replaced by the null identity (zeros), classifier-free style, so
    the model also learns an identity-free face and leans on the AUs for expression.

    After training a ``prior`` is fitted over the learned embeddings: ``mixture`` (a Dirichlet
    mix of ``mix_k`` distinct training embeddings, re-normalized to their mean norm) or
    ``gaussian`` (mean and covariance shrunk towards a scaled identity by ``shrinkage``). A new
    identity is accepted only if its Euclidean distance to every training embedding, and to every
    identity already accepted in the same corpus, is at least ``min_distance_factor`` times the
    median nearest-neighbour distance between training embeddings. At most
    ``max_new_identities`` new identities may be asked of one corpus.
    """

    enabled: bool = False
    dim: int = Field(32, ge=2)
    dropout: float = Field(0.1, ge=0, lt=1)
    prior: Literal["mixture", "gaussian"] = "mixture"
    mix_k: int = Field(3, ge=2)
    dirichlet_alpha: float = Field(1.0, gt=0)
    shrinkage: float = Field(0.5, ge=0, le=1)
    min_distance_factor: float = Field(0.5, ge=0)
    max_new_identities: int = Field(500, ge=1)
    #: Initial noise of a sequence's frames: one shared draw, an AR(1) walk of ``noise_walk_rho``, or independent.
    noise: Literal["shared", "walk", "independent"] = "shared"
    noise_walk_rho: float = Field(0.98, ge=0, le=1)


class MotionConfig(StrictModel):
    """The learned AU motion model (:mod:`synth.generative.motion`) that animates a sampled neutral face.

    ``enabled``: fit it after training (``emosync synth fit-motion`` adds one to a trained model);
    sampling then draws one neutral face per sequence and moves it with the learned per-AU flow
    and residual. ``neutral_max_au``: frames whose AUs all stay below this intensity make a
    subject's neutral reference (at least ``min_neutral_frames`` of them, else all its frames).
    ``ridge``: penalty of the regressions, per training frame. ``flow_levels`` and
    ``flow_window_px``: OpenCV Farneback pyramid levels and averaging window.
    """

    enabled: bool = False
    neutral_max_au: float = Field(0.3, gt=0, le=5)
    min_neutral_frames: int = Field(10, ge=1)
    ridge: float = Field(0.01, ge=0)
    flow_levels: int = Field(3, ge=1)
    flow_window_px: int = Field(9, ge=3)


class DiffusionModelConfig(StrictModel):
    """An AU-conditioned ``UNet2DConditionModel`` and its noise schedule.

    ``conditioning``: ``projection`` adds a learned projection of the AU vector (divided by 5)
    to the timestep embedding (``class_embed_type="projection"``); ``tokens`` feeds 17 AU tokens
    (a learned embedding per AU scaled by its intensity plus a learned bias) to cross-attention
    blocks through ``encoder_hidden_states``; ``both`` does both. ``identity``: the optional
    identity input (off: the AU-only model of earlier releases, which loads as before). ``motion``:
    the optional learned AU motion model that renders expression on a sampled neutral face.
    """

    kind: Literal["diffusion"] = "diffusion"
    block_out_channels: list[int] = [64, 128, 256]
    layers_per_block: int = Field(2, ge=1)
    conditioning: Literal["projection", "tokens", "both"] = "both"
    cross_attention_dim: int = Field(128, ge=8)
    attention_head_dim: int = Field(8, ge=1)
    norm_num_groups: int = Field(32, ge=1)
    num_train_timesteps: int = Field(1000, ge=10)
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "squaredcos_cap_v2"
    prediction_type: Literal["epsilon", "sample", "v_prediction"] = "epsilon"
    sampler: Literal["ddim", "dpm++"] = "ddim"
    num_inference_steps: int = Field(25, ge=1)
    #: Timesteps (as fractions of num_train_timesteps) averaged by the membership-inference loss.
    loss_timesteps: list[float] = [0.1, 0.3, 0.5, 0.7, 0.9]
    identity: IdentityConfig = IdentityConfig()
    motion: MotionConfig = MotionConfig()

    @model_validator(mode="after")
    def _check(self) -> DiffusionModelConfig:
        if any(c % self.norm_num_groups for c in self.block_out_channels):
            raise ValueError(f"every block_out_channels entry must be divisible by norm_num_groups="
                             f"{self.norm_num_groups}, got {self.block_out_channels}")
        if not all(0 <= f < 1 for f in self.loss_timesteps) or not self.loss_timesteps:
            raise ValueError("loss_timesteps must be fractions in [0, 1)")
        return self


class GANModelConfig(StrictModel):
    """GANimation-style conditional GAN: G(z, au) -> RGB-D; D(x) -> (realness, AU regression).

    The generator's latent ``z`` carries everything but expression (no identity input); the
    discriminator's AU head is trained on real frames and pushes G to show the requested AUs.
    """

    kind: Literal["gan"] = "gan"
    latent_dim: int = Field(64, ge=1)
    base_channels: int = Field(64, ge=4)
    lambda_au: float = Field(10.0, ge=0)
    r1_gamma: float = Field(1.0, ge=0)
    lambda_rec: float = Field(1.0, ge=0)
    rec_pool: int = Field(2, ge=1)
    lr_d: float = Field(2e-4, gt=0)


class OptimConfig(StrictModel):
    """Adam(W) with a constant learning rate after a linear warm-up."""

    steps: int = Field(2000, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(2e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(0, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    ema_decay: float = Field(0.999, ge=0, lt=1)  # 0 disables EMA
    amp: bool = False  # bf16 autocast on CUDA; ignored (with a log line) on CPU


class LoggingConfig(StrictModel):
    """How often to log, checkpoint and draw sample grids (in optimizer steps)."""

    log_every: int = Field(10, ge=1)
    checkpoint_every: int = Field(500, ge=1)
    sample_every: int = Field(500, ge=1)
    keep_checkpoints: int = Field(2, ge=1)


class PrivacyConfig(StrictModel):
    """Optional DP-SGD (opacus). Give ``target_epsilon`` (noise calibrated to it) or ``noise_multiplier``."""

    dp_sgd: bool = False
    target_epsilon: float | None = Field(None, gt=0)
    noise_multiplier: float | None = Field(None, ge=0)
    delta: float = Field(1e-5, gt=0, lt=1)
    max_grad_norm: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> PrivacyConfig:
        if self.dp_sgd and (self.target_epsilon is None) == (self.noise_multiplier is None):
            raise ValueError("privacy.dp_sgd needs exactly one of privacy.target_epsilon or privacy.noise_multiplier")
        return self


class SynthTrainConfig(StrictModel):
    """Everything a generator training run needs besides the sessions and the output folder."""

    seed: int = 0
    threads: int = Field(0, ge=0)  # torch CPU threads; 0 leaves torch's default
    data: DataConfig = DataConfig()
    model: Annotated[Union[DiffusionModelConfig, GANModelConfig], Field(discriminator="kind")] = \
        DiffusionModelConfig()
    optim: OptimConfig = OptimConfig()
    logging: LoggingConfig = LoggingConfig()
    privacy: PrivacyConfig = PrivacyConfig()

    @property
    def kind(self) -> str:
        """``"diffusion"`` or ``"gan"``."""
        return self.model.kind

    @model_validator(mode="after")
    def _check(self) -> SynthTrainConfig:
        if self.model.kind == "gan" and self.data.image_size % 16:
            raise ValueError(f"the GAN needs data.image_size divisible by 16 (e.g. 32, 64, 112), "
                             f"got {self.data.image_size}")
        if self.model.kind == "diffusion" and self.model.identity.enabled and self.privacy.dp_sgd:
            raise ValueError("model.identity.enabled and privacy.dp_sgd cannot be combined: the identity table "
                             "learns one embedding per training subject, which DP-SGD's per-sample clipping does "
                             "not cover. Turn one of them off.")
        if self.model.kind == "diffusion" and self.model.motion.enabled and self.privacy.dp_sgd:
            raise ValueError("model.motion.enabled and privacy.dp_sgd cannot be combined: the AU motion model is "
                             "fitted on every training frame without noise, outside DP-SGD's guarantee. Turn one "
                             "of them off.")
        if self.model.kind == "diffusion":
            factor = 2 ** (len(self.model.block_out_channels) - 1)
            if self.data.image_size % factor:
                raise ValueError(f"data.image_size={self.data.image_size} must be divisible by {factor} "
                                 f"({len(self.model.block_out_channels)} UNet levels)")
        return self


def load_synth_config(name_or_path: str | Path = "tiny-gan", overrides: Sequence[str] = ()) -> SynthTrainConfig:
    """Load ``configs/synth/<name>.yaml`` (or a path) with ``key.sub=value`` overrides."""
    return load_config(SynthTrainConfig, name_or_path, "synth", overrides)
