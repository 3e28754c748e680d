"""AU-conditioned diffusion model of RGB-D face crops (diffusers).

Model: a ``UNet2DConditionModel`` with 4 input/output channels (RGB + depth of one crop, so
the two stay aligned) conditioned only on the 17 AU intensities, in two ways
(``model.conditioning``):

- ``projection``: ``class_embed_type="projection"`` adds a learned projection of ``au / 5``
  to the timestep embedding (it scales and shifts every ResNet block).
- ``tokens``: 17 tokens through ``encoder_hidden_states`` into cross-attention blocks. Token
  ``i`` is ``[onehot(i), onehot(i) * au_i / 5]`` (34 numbers), and the UNet's own
  ``encoder_hid_proj`` (``encoder_hid_dim_type="text_proj"``) maps it to
  ``e_i + (au_i / 5) w_i + b``: a learned embedding per AU scaled by its intensity. Keeping
  the token projection inside the UNet leaves the pipeline with standard diffusers
  components only, so ``from_pretrained`` needs no custom module import.

Identity (``model.identity.enabled``, :mod:`synth.generative.identity`): a learned table of one
``dim``-vector per training subject, trained jointly. Its vector ``v`` enters beside the AUs, not
through them: every token gets ``dim`` extra zero columns and one identity token
``[0 (34), v]`` is appended (``encoder_hid_proj`` maps it to ``W v + b``), and with the class
projection ``v`` is appended to ``au / 5``. The AU tokens' projection is unchanged (their extra
columns are zero). The null identity (zeros) is what identity dropout trains and what an
identity model samples when no identity is asked for. The table is saved as
``weights/identity.safetensors``; the prior fitted on it goes into the model card.

Training is DDPM (``DDPMScheduler``), with an EMA of the weights (``EMAModel``); sampling
uses DDIM (eta = 0) or DPM-Solver++ (2nd order) in ``num_inference_steps`` (25) steps; ``model.sampler``
is the default and :meth:`DiffusionGenerator.set_sampler` swaps it at sampling time.

Temporal coherence: all frames of a sequence start from the *same* initial noise and the
samplers are deterministic, so two frames differ only through their AU condition: frames
with equal AUs are identical, and smoothly varying AU curves give smoothly varying frames.
Identity models hold one identity vector over the whole sequence as well; their noise scheme
(``model.identity.noise``: shared, AR(1) walk or independent) was chosen by measured flicker
(docs/synthesis.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler, \
    UNet2DConditionModel
from diffusers.utils import BaseOutput

from acquisition.annotate.action_units import MAX_INTENSITY

from acquisition.utils.docs import fill_doc
from acquisition.utils.model_folder import prepare_weights_dir, read_model_folder

from synth.generative.base import save_generator_config
from synth.generative.config import DiffusionModelConfig
from synth.generative.frames import N_AUS, N_CHANNELS
from synth.generative.identity import IDENTITY_WEIGHTS, IdentityPrior, identity_noise
from synth.generative.motion import AUMotionModel


def au_tokens(aus: torch.Tensor) -> torch.Tensor:
    """Per-AU tokens ``[onehot(i), onehot(i) * au_i / 5]``: (n, 17) -> (n, 17, 34)."""
    eye = torch.eye(N_AUS, dtype=aus.dtype, device=aus.device)
    scaled = eye[None] * (aus / MAX_INTENSITY)[:, :, None]
    return torch.cat([eye.expand(aus.shape[0], -1, -1), scaled], dim=-1)


def identity_dim(config: DiffusionModelConfig) -> int:
    """Width of the identity input (0: an AU-only model)."""
    return config.identity.dim if config.identity.enabled else 0


def unet_identity_dim(unet: UNet2DConditionModel) -> int:
    """Width of the identity input a built UNet expects, read from its config (0: AU-only)."""
    config = unet.config
    if config.encoder_hid_dim_type == "text_proj":
        return int(config.encoder_hid_dim) - 2 * N_AUS
    if config.class_embed_type == "projection":
        return int(config.projection_class_embeddings_input_dim) - N_AUS
    return 0


def condition_tokens(aus: torch.Tensor, identity: torch.Tensor | None, dim: int) -> torch.Tensor:
    """AU tokens, plus one identity token when ``dim`` > 0: (n, 17) -> (n, 17 [+ 1], 34 + dim).

    The AU tokens get ``dim`` zero columns (their projection is the AU-only one); the identity
    token is ``[0 (34), identity]`` (zeros, the null identity, when ``identity`` is None).
    """
    tokens = au_tokens(aus)
    if dim == 0:
        return tokens
    n = aus.shape[0]
    identity = aus.new_zeros(n, dim) if identity is None else identity.to(aus.dtype)
    tokens = torch.cat([tokens, aus.new_zeros(n, N_AUS, dim)], dim=-1)
    id_token = torch.cat([aus.new_zeros(n, 1, 2 * N_AUS), identity[:, None]], dim=-1)
    return torch.cat([tokens, id_token], dim=1)


def build_unet(config: DiffusionModelConfig, image_size: int) -> UNet2DConditionModel:
    """The UNet for ``config``: cross-attention blocks (all but the first level) only when tokens are used."""
    levels = len(config.block_out_channels)
    extra = identity_dim(config)
    tokens = config.conditioning in ("tokens", "both")
    down = ["DownBlock2D"] + ["CrossAttnDownBlock2D" if tokens else "DownBlock2D"] * (levels - 1)
    up = ["CrossAttnUpBlock2D" if tokens else "UpBlock2D"] * (levels - 1) + ["UpBlock2D"]
    kwargs: dict[str, Any] = {}
    if config.conditioning in ("projection", "both"):
        kwargs.update(class_embed_type="projection", projection_class_embeddings_input_dim=N_AUS + extra)
    if tokens:
        kwargs.update(encoder_hid_dim=2 * N_AUS + extra, encoder_hid_dim_type="text_proj")
    return UNet2DConditionModel(
        sample_size=image_size, in_channels=N_CHANNELS, out_channels=N_CHANNELS,
        block_out_channels=tuple(config.block_out_channels), layers_per_block=config.layers_per_block,
        down_block_types=tuple(down), up_block_types=tuple(up),
        mid_block_type="UNetMidBlock2DCrossAttn" if tokens else "UNetMidBlock2D",
        cross_attention_dim=config.cross_attention_dim, attention_head_dim=config.attention_head_dim,
        norm_num_groups=config.norm_num_groups, **kwargs)


def unet_condition(unet: UNet2DConditionModel, aus: torch.Tensor, identity: torch.Tensor | None = None
                   ) -> dict[str, torch.Tensor | None]:
    """The UNet's conditioning keyword arguments for AU intensities ``aus`` (n, 17) on the 0-5 scale.

    ``identity`` (n, dim): identity vectors for an identity model (None: the null identity); refused
    by an AU-only UNet.
    """
    config = unet.config
    dim = unet_identity_dim(unet)
    if identity is not None and dim == 0:
        raise ValueError("This diffusion model has no identity input (trained with model.identity.enabled=false); "
                         "sample it without identities.")
    if identity is not None and identity.shape != (aus.shape[0], dim):
        raise ValueError(f"identity must have shape (n_frames, {dim}) = ({aus.shape[0]}, {dim}), "
                         f"got {tuple(identity.shape)}.")
    if config.encoder_hid_dim_type == "text_proj":
        hidden = condition_tokens(aus, identity, dim)
    else:  # no cross-attention: the UNet still requires the argument, and ignores it
        hidden = aus.new_zeros(aus.shape[0], 1, config.cross_attention_dim)
    labels = None
    if config.class_embed_type == "projection":
        labels = aus / MAX_INTENSITY
        if dim:
            labels = torch.cat([labels, aus.new_zeros(aus.shape[0], dim) if identity is None
                                else identity.to(aus.dtype)], dim=1)
    return {"encoder_hidden_states": hidden, "class_labels": labels}


@dataclass
class AUFacePipelineOutput(BaseOutput):
    """``images``: array of float32, shape (n, 4, H, W) in [-1, 1] (RGB + depth)."""

    images: np.ndarray


class AUConditionedFacePipeline(DiffusionPipeline):
    """Generate RGB-D face crops from AU intensities (``unet`` + ``scheduler``).

    Parameters
    ----------
    unet : UNet2DConditionModel
        The AU-conditioned denoiser (see :func:`build_unet`).
    scheduler : SchedulerMixin
        DDPM for training; DDIM or DPM-Solver++ for sampling (``from_config`` switches).
    """

    def __init__(self, unet: UNet2DConditionModel, scheduler: Any) -> None:
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)

    @torch.no_grad()
    def __call__(self, aus: torch.Tensor, *, noise: torch.Tensor | None = None,
                 generator: torch.Generator | None = None, num_inference_steps: int = 25, eta: float = 0.0,
                 shared_noise: bool = True, batch_size: int = 64, identity: torch.Tensor | None = None,
                 guidance_scale: float = 1.0) -> AUFacePipelineOutput:
        """Denoise from noise to crops, one per row of ``aus``.

        Parameters
        ----------
        aus : Tensor, shape (n, 17)
            AU intensities (0-5).
        noise : Tensor, shape (1 or n, 4, H, W) | None
            Initial noise; drawn from ``generator`` when None.
        generator : torch.Generator | None
            Source of the initial noise (and of DDIM noise when ``eta > 0``).
        num_inference_steps : int
            Sampler steps.
        eta : float
            DDIM eta; 0 makes the sampler deterministic given the initial noise.
        shared_noise : bool
            One initial noise for all rows (a temporally coherent sequence) instead of one per row.
        batch_size : int
            Frames denoised together.
        identity : Tensor, shape (1 or n, dim) | None
            Identity vector(s) of an identity model; one row is held for every frame. None: the
            null identity (identity models) or none at all (AU-only models).
        guidance_scale : float
            Expression guidance: each step's output becomes ``neutral + g * (out - neutral)``, where
            ``neutral`` is the model's output for the same input and identity with every AU at 0. This
            is classifier-free guidance (Ho & Salimans 2022) with the neutral face as the reference
            condition, so it needs no retraining; ``g > 1`` strengthens what the AUs change, at twice
            the cost per step. 1: off.
        """
        unet = self.unet
        size = unet.config.sample_size
        device = unet.device
        aus = torch.as_tensor(aus, dtype=torch.float32).to(device)
        n = aus.shape[0]
        if noise is None:
            noise = torch.randn((1 if shared_noise else n, N_CHANNELS, size, size), generator=generator,
                                dtype=torch.float32).to(device)
        noise = noise.expand(n, -1, -1, -1) if noise.shape[0] == 1 else noise
        if identity is not None:
            identity = torch.as_tensor(identity, dtype=torch.float32).to(device)
            identity = identity.expand(n, -1) if identity.shape[0] == 1 else identity
        outputs = []
        for start in range(0, n, batch_size):
            # Multistep schedulers (DPM-Solver++) keep per-run state (step index, past outputs): reset per batch.
            self.scheduler.set_timesteps(num_inference_steps, device=device)
            x = noise[start:start + batch_size].clone() * self.scheduler.init_noise_sigma
            ids = None if identity is None else identity[start:start + batch_size]
            cond = unet_condition(unet, aus[start:start + batch_size], ids)
            neutral = unet_condition(unet, torch.zeros_like(aus[start:start + batch_size]), ids)
            for t in self.scheduler.timesteps:
                model_in = self.scheduler.scale_model_input(x, t)
                out = unet(model_in, t, **cond).sample
                if guidance_scale != 1.0:
                    reference = unet(model_in, t, **neutral).sample
                    out = reference + guidance_scale * (out - reference)
                kwargs = {"eta": eta, "generator": generator} if isinstance(self.scheduler, DDIMScheduler) else {}
                x = self.scheduler.step(out, t, x, **kwargs).prev_sample
            outputs.append(x.clamp(-1, 1).float().cpu())
        return AUFacePipelineOutput(images=torch.cat(outputs).numpy())


#: Sampler names (``model.sampler``, ``synth sample --sampler``).
SAMPLERS = ("ddim", "dpm++")
#: How expression is rendered (``synth sample --expression``): by the denoiser, or by the AU motion model.
EXPRESSIONS = ("diffusion", "motion")


def _sample_scheduler(train: DDPMScheduler, sampler: str) -> Any:
    """The deterministic sampler ``sampler`` on the training noise schedule."""
    if sampler == "ddim":
        return DDIMScheduler.from_config(train.config, clip_sample=True, set_alpha_to_one=True)
    if sampler == "dpm++":
        return DPMSolverMultistepScheduler.from_config(train.config, algorithm_type="dpmsolver++", solver_order=2)
    raise ValueError(f"Unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}.")


def _schedulers(config: DiffusionModelConfig) -> tuple[DDPMScheduler, Any]:
    train = DDPMScheduler(num_train_timesteps=config.num_train_timesteps, beta_schedule=config.beta_schedule,
                          prediction_type=config.prediction_type, clip_sample=True)
    return train, _sample_scheduler(train, config.sampler)


@fill_doc
class DiffusionGenerator:
    """The diffusion generator behind :class:`~synth.generative.base.AUGenerator`.

    Parameters
    ----------
    config : DiffusionModelConfig
        Architecture, schedule and sampler.
    image_size : int
        Side of the crops, in pixels.
    unet : UNet2DConditionModel | None
        Trained weights; a fresh UNet when None.
    %(generator_card)s
    subjects : list of str | None
        Training ``subject_id`` values, one row of the identity table each (identity models only;
        read from the card when None).
    identity_table : torch.nn.Embedding | None
        Learned identity embeddings; a fresh table when None (identity models only).
    motion : AUMotionModel | None
        A learned AU motion model (:mod:`synth.generative.motion`); when given, sampling draws one
        neutral face per sequence and the motion model renders the AUs on it (see :meth:`set_expression`).
    """

    kind = "diffusion"

    def __init__(self, config: DiffusionModelConfig, image_size: int, *, unet: UNet2DConditionModel | None = None,
                 card: dict[str, Any] | None = None, subjects: list[str] | None = None,
                 identity_table: torch.nn.Embedding | None = None, motion: AUMotionModel | None = None) -> None:
        self.config = config
        self.image_size = int(image_size)
        self.unet = unet if unet is not None else build_unet(config, image_size)
        self.train_scheduler, sample_scheduler = _schedulers(config)
        self.pipeline = AUConditionedFacePipeline(unet=self.unet, scheduler=sample_scheduler)
        self.sampler: str = config.sampler
        self.pipeline.set_progress_bar_config(disable=True)
        self.card: dict[str, Any] = dict(card or {})
        self.identity_table: torch.nn.Embedding | None = None
        self.subjects: list[str] = []
        self.prior: IdentityPrior | None = None
        if config.identity.enabled:
            id_card = self.card.get("identity") or {}
            self.subjects = list(subjects if subjects is not None else id_card.get("subjects", []))
            if not self.subjects:
                raise ValueError("model.identity.enabled needs the training subjects (one identity each); none given.")
            if identity_table is None:
                identity_table = torch.nn.Embedding(len(self.subjects), config.identity.dim)
                torch.nn.init.normal_(identity_table.weight, std=1.0)
            self.identity_table = identity_table
            if id_card.get("kind"):
                self.prior = IdentityPrior.from_card(id_card, self.identity_embeddings())
        self.motion: AUMotionModel | None = None
        self.expression: str = "diffusion"
        if motion is not None:
            self.add_motion(motion)

    def add_motion(self, motion: AUMotionModel) -> None:
        """Attach a fitted AU motion model (recorded in the card) and sample with it from now on."""
        if motion.image_size != self.image_size:
            raise ValueError(f"The AU motion model was fitted on {motion.image_size} px crops; this generator makes "
                             f"{self.image_size} px crops. Fit it on frames of the generator's size.")
        self.motion = motion
        self.card["motion"] = motion.fitted
        self.config = self.config.model_copy(update={"motion": self.config.motion.model_copy(
            update={**motion.fitted.get("config", {}), "enabled": True})})
        self.expression = "motion"

    def set_expression(self, expression: str) -> None:
        """Render expression with ``"motion"`` (the learned AU motion model) or ``"diffusion"`` (the denoiser).

        ``"motion"`` samples one neutral face per sequence and animates it; ``"diffusion"`` denoises
        every frame under its AUs. Models with a motion model default to ``"motion"``.
        """
        if expression not in EXPRESSIONS:
            raise ValueError(f"Unknown expression renderer {expression!r}; choose one of {', '.join(EXPRESSIONS)}.")
        if expression == "motion" and self.motion is None:
            raise ValueError("This diffusion model has no AU motion model: add one with `emosync synth fit-motion "
                             "MODEL_DIR` (or train with model.motion.enabled=true), or sample with the denoiser.")
        self.expression = expression

    def set_sampler(self, sampler: str) -> None:
        """Sample with ``sampler`` (``"ddim"`` or ``"dpm++"``) from now on; the trained weights are unchanged.

        Both samplers run on the schedule the model was trained with (diffusers' scheduler swap), so
        any model can be sampled with either; ``model.sampler`` in the card stays the trained default.
        """
        self.pipeline.scheduler = _sample_scheduler(self.train_scheduler, sampler)
        self.sampler = sampler

    @property
    def has_identity(self) -> bool:
        """Whether the model takes an identity input (trained with ``model.identity.enabled``)."""
        return self.identity_table is not None

    def identity_embeddings(self) -> np.ndarray:
        """The learned table, one row per training subject (``self.subjects`` order): (n_subjects, dim)."""
        if self.identity_table is None:
            raise ValueError("This diffusion model has no identity input (AU-only).")
        return self.identity_table.weight.detach().float().cpu().numpy().copy()

    def fit_prior(self) -> IdentityPrior:
        """Fit the identity prior on the current table (after training); stored in the card on save."""
        self.prior = IdentityPrior.fit(self.identity_embeddings(), self.subjects, self.config.identity)
        self.card["identity"] = self.prior.to_card()
        return self.prior

    # -- persistence -------------------------------------------------------
    def save_pretrained(self, model_dir: str | os.PathLike) -> None:
        """Write the pipeline (``weights/``: unet + scheduler, diffusers layout, and the identity table), then the card.
        """
        weights = prepare_weights_dir(model_dir)
        self.pipeline.save_pretrained(weights, safe_serialization=True)
        if self.identity_table is not None:
            from safetensors.torch import save_file

            save_file({"embeddings": self.identity_table.weight.detach().cpu().contiguous()},
                      str(weights / IDENTITY_WEIGHTS))
        if self.motion is not None:
            self.motion.save(weights)
        save_generator_config(model_dir, self)

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike, *, device: str = "cpu") -> DiffusionGenerator:
        """Load a model folder offline (``AUConditionedFacePipeline.from_pretrained(..., local_files_only=True)``)."""
        folder = read_model_folder(model_dir, kind=cls.kind)
        card = folder.config
        config = DiffusionModelConfig.model_validate(card["config"]["model"])
        from diffusers.utils import logging as diffusers_logging

        quiet = diffusers_logging.is_progress_bar_enabled()
        diffusers_logging.disable_progress_bar()  # a bar for loading two small components is noise
        try:
            # low_cpu_mem_usage=False: the default asks for `accelerate`, and warns without it; these models are small.
            pipeline = AUConditionedFacePipeline.from_pretrained(folder.weights, local_files_only=True,
                                                                 low_cpu_mem_usage=False)
        finally:
            if quiet:
                diffusers_logging.enable_progress_bar()
        expected = build_unet(config, int(card["image_size"])).config
        for key in ("block_out_channels", "class_embed_type", "encoder_hid_dim_type", "sample_size"):
            if tuple(np.atleast_1d(expected[key] or [])) != tuple(np.atleast_1d(pipeline.unet.config[key] or [])):
                raise ValueError(f"{model_dir}: the saved UNet's {key}={pipeline.unet.config[key]!r} does not match "
                                 f"the card's config ({expected[key]!r}); the folder mixes two models.")
        table = None
        if config.identity.enabled:
            from safetensors.torch import load_file

            path = Path(folder.weights) / IDENTITY_WEIGHTS
            if not path.is_file():
                raise FileNotFoundError(f"{model_dir}: the card says the model has an identity input, but "
                                        f"{path} is missing; the folder is incomplete (re-save or retrain it).")
            weight = load_file(str(path))["embeddings"]
            table = torch.nn.Embedding(*weight.shape)
            table.weight.data.copy_(weight)
        motion = AUMotionModel.load(folder.weights, card["motion"]) if card.get("motion") else None
        gen = cls(config, int(card["image_size"]), unet=pipeline.unet, card=card, identity_table=table, motion=motion)
        return gen.to(device)

    def to(self, device: str | torch.device) -> DiffusionGenerator:
        """Move the weights to ``device``; returns self."""
        self.unet.to(device)
        if self.identity_table is not None:
            self.identity_table.to(device)
        return self

    @property
    def device(self) -> torch.device:
        """Where the weights live."""
        return self.unet.device

    # -- training ----------------------------------------------------------
    def modules(self) -> dict[str, torch.nn.Module]:
        """The trainable modules by name (what checkpoints and EMA hold)."""
        if self.identity_table is None:
            return {"unet": self.unet}
        return {"unet": self.unet, "identity": self.identity_table}

    def denoising_loss(self, unet: torch.nn.Module, rgbd: torch.Tensor, aus: torch.Tensor, timesteps: torch.Tensor,
                       noise: torch.Tensor, identity: torch.Tensor | None = None) -> torch.Tensor:
        """Per-sample MSE of the denoiser's prediction (epsilon, x0 or v, per config), shape (n,)."""
        noisy = self.train_scheduler.add_noise(rgbd, noise, timesteps)
        pred = unet(noisy, timesteps, **unet_condition(self.unet, aus, identity)).sample
        if self.config.prediction_type == "epsilon":
            target = noise
        elif self.config.prediction_type == "sample":
            target = rgbd
        else:
            target = self.train_scheduler.get_velocity(rgbd, noise, timesteps)
        return (pred.float() - target.float()).pow(2).mean(dim=(1, 2, 3))

    def training_loss(self, unet: torch.nn.Module, rgbd: torch.Tensor, aus: torch.Tensor,
                      generator: torch.Generator, subjects: torch.Tensor | None = None) -> torch.Tensor:
        """DDPM loss of a batch with random timesteps and noise drawn from ``generator``, shape (n,).

        ``subjects`` (n,): rows of the identity table (identity models); each is replaced by the null
        identity with probability ``model.identity.dropout``.
        """
        n = rgbd.shape[0]
        timesteps = torch.randint(0, self.config.num_train_timesteps, (n,), generator=generator).to(rgbd.device)
        noise = torch.randn(rgbd.shape, generator=generator).to(rgbd.device)
        identity = None
        if self.identity_table is not None:
            if subjects is None:
                raise ValueError("An identity model's training loss needs each frame's subject index.")
            keep = (torch.rand((n, 1), generator=generator) >= self.config.identity.dropout).to(rgbd.device)
            identity = self.identity_table(subjects.to(rgbd.device)) * keep
        return self.denoising_loss(unet, rgbd, aus, timesteps, noise, identity)

    # -- protocol ----------------------------------------------------------
    @torch.no_grad()
    def per_sample_loss(self, rgbd: torch.Tensor, aus: torch.Tensor, *, seed: int = 0,
                        batch_size: int = 64) -> torch.Tensor:
        """Denoising MSE averaged over ``config.loss_timesteps`` with fixed noises (seeded), shape (n,).

        Identity models are scored with the null identity: the statistic must not need to know whose
        frame it is.
        """
        self.unet.eval()
        rgbd = torch.as_tensor(rgbd, dtype=torch.float32)
        aus = torch.as_tensor(aus, dtype=torch.float32)
        steps = [int(f * self.config.num_train_timesteps) for f in self.config.loss_timesteps]
        generator = torch.Generator().manual_seed(seed)
        noises = torch.randn((len(steps), *rgbd.shape), generator=generator)
        out = torch.zeros(rgbd.shape[0])
        for start in range(0, rgbd.shape[0], batch_size):
            x = rgbd[start:start + batch_size].to(self.device)
            a = aus[start:start + batch_size].to(self.device)
            for k, t in enumerate(steps):
                timesteps = torch.full((x.shape[0],), t, dtype=torch.long, device=self.device)
                loss = self.denoising_loss(self.unet, x, a, timesteps, noises[k, start:start + batch_size].to(x.device))
                out[start:start + x.shape[0]] += loss.cpu() / len(steps)
        return out

    def sample(self, aus_sequence: np.ndarray, *, seed: int = 0, num_inference_steps: int | None = None,
               batch_size: int = 64, identity: np.ndarray | None = None, noise: str | None = None,
               guidance_scale: float = 1.0) -> np.ndarray:
        """One sequence from seeded initial noise and a deterministic sampler: (n, 4, H, W) in [-1, 1].

        With :attr:`expression` ``"motion"``, the sampler draws one neutral frame (all AUs 0, the
        given identity) and the AU motion model animates it; ``noise`` and ``guidance_scale`` then
        have nothing to act on.

        Parameters
        ----------
        aus_sequence : array, shape (n_frames, 17)
            Requested AU intensities (0-5).
        seed : int
            Seed of the initial noise.
        num_inference_steps : int | None
            Sampler steps (None: the config's).
        batch_size : int
            Frames denoised together.
        identity : array, shape (dim,) | None
            One identity vector held for every frame (identity models only; None: the null identity).
        noise : ``"shared"`` | ``"walk"`` | ``"independent"`` | None
            Initial-noise scheme (:func:`synth.generative.identity.identity_noise`); None: the config's
            ``model.identity.noise`` (``shared`` for AU-only models).
        guidance_scale : float
            Expression guidance (:class:`AUConditionedFacePipeline`); 1: off.
        """
        if guidance_scale <= 0:
            raise ValueError(f"guidance_scale must be > 0 (1: off), got {guidance_scale}.")
        self.unet.eval()
        aus = torch.as_tensor(np.asarray(aus_sequence, dtype=np.float32))
        steps = num_inference_steps or self.config.num_inference_steps
        scheme = noise or (self.config.identity.noise if self.has_identity else "shared")
        id_tensor = None
        if identity is not None:
            if not self.has_identity:
                raise ValueError("This diffusion model has no identity input (trained with "
                                 "model.identity.enabled=false): sample it without an identity.")
            id_tensor = torch.as_tensor(np.asarray(identity, dtype=np.float32).reshape(1, -1))
        if self.expression == "motion":
            generator = torch.Generator().manual_seed(int(seed))
            neutral = self.pipeline(torch.zeros((1, N_AUS)), generator=generator, num_inference_steps=steps,
                                    identity=id_tensor).images[0]
            return self.motion.animate(neutral, aus.numpy())
        if scheme == "shared":  # exactly the AU-only models' draw, so their samples do not change
            generator = torch.Generator().manual_seed(int(seed))
            return self.pipeline(aus, generator=generator, num_inference_steps=steps, batch_size=batch_size,
                                 identity=id_tensor, guidance_scale=guidance_scale).images
        shape = (N_CHANNELS, self.image_size, self.image_size)
        init = torch.from_numpy(identity_noise(shape, len(aus), scheme=scheme, seed=int(seed),
                                               rho=self.config.identity.noise_walk_rho))
        return self.pipeline(aus, noise=init, num_inference_steps=steps, batch_size=batch_size,
                             identity=id_tensor, guidance_scale=guidance_scale).images
