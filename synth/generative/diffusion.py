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

Training is DDPM (``DDPMScheduler``), with an EMA of the weights (``EMAModel``); sampling
uses DDIM (eta = 0) or DPM-Solver++ in ``num_inference_steps`` (25) steps.

Temporal coherence: all frames of a sequence start from the *same* initial noise and the
samplers are deterministic, so two frames differ only through their AU condition: frames
with equal AUs are identical, and smoothly varying AU curves give smoothly varying frames.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
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



def au_tokens(aus: torch.Tensor) -> torch.Tensor:
    """Per-AU tokens ``[onehot(i), onehot(i) * au_i / 5]``: (n, 17) -> (n, 17, 34)."""
    eye = torch.eye(N_AUS, dtype=aus.dtype, device=aus.device)
    scaled = eye[None] * (aus / MAX_INTENSITY)[:, :, None]
    return torch.cat([eye.expand(aus.shape[0], -1, -1), scaled], dim=-1)


def build_unet(config: DiffusionModelConfig, image_size: int) -> UNet2DConditionModel:
    """The UNet for ``config``: cross-attention blocks (all but the first level) only when tokens are used."""
    levels = len(config.block_out_channels)
    tokens = config.conditioning in ("tokens", "both")
    down = ["DownBlock2D"] + ["CrossAttnDownBlock2D" if tokens else "DownBlock2D"] * (levels - 1)
    up = ["CrossAttnUpBlock2D" if tokens else "UpBlock2D"] * (levels - 1) + ["UpBlock2D"]
    kwargs: dict[str, Any] = {}
    if config.conditioning in ("projection", "both"):
        kwargs.update(class_embed_type="projection", projection_class_embeddings_input_dim=N_AUS)
    if tokens:
        kwargs.update(encoder_hid_dim=2 * N_AUS, encoder_hid_dim_type="text_proj")
    return UNet2DConditionModel(
        sample_size=image_size, in_channels=N_CHANNELS, out_channels=N_CHANNELS,
        block_out_channels=tuple(config.block_out_channels), layers_per_block=config.layers_per_block,
        down_block_types=tuple(down), up_block_types=tuple(up),
        mid_block_type="UNetMidBlock2DCrossAttn" if tokens else "UNetMidBlock2D",
        cross_attention_dim=config.cross_attention_dim, attention_head_dim=config.attention_head_dim,
        norm_num_groups=config.norm_num_groups, **kwargs)


def unet_condition(unet: UNet2DConditionModel, aus: torch.Tensor) -> dict[str, torch.Tensor | None]:
    """The UNet's conditioning keyword arguments for AU intensities ``aus`` (n, 17) on the 0-5 scale."""
    config = unet.config
    if config.encoder_hid_dim_type == "text_proj":
        hidden = au_tokens(aus)
    else:  # no cross-attention: the UNet still requires the argument, and ignores it
        hidden = aus.new_zeros(aus.shape[0], 1, config.cross_attention_dim)
    labels = aus / MAX_INTENSITY if config.class_embed_type == "projection" else None
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
                 shared_noise: bool = True, batch_size: int = 64) -> AUFacePipelineOutput:
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
        outputs = []
        for start in range(0, n, batch_size):
            # Multistep schedulers (DPM-Solver++) keep per-run state (step index, past outputs): reset per batch.
            self.scheduler.set_timesteps(num_inference_steps, device=device)
            x = noise[start:start + batch_size].clone() * self.scheduler.init_noise_sigma
            cond = unet_condition(unet, aus[start:start + batch_size])
            for t in self.scheduler.timesteps:
                model_in = self.scheduler.scale_model_input(x, t)
                out = unet(model_in, t, **cond).sample
                kwargs = {"eta": eta, "generator": generator} if isinstance(self.scheduler, DDIMScheduler) else {}
                x = self.scheduler.step(out, t, x, **kwargs).prev_sample
            outputs.append(x.clamp(-1, 1).float().cpu())
        return AUFacePipelineOutput(images=torch.cat(outputs).numpy())


def _schedulers(config: DiffusionModelConfig) -> tuple[DDPMScheduler, Any]:
    train = DDPMScheduler(num_train_timesteps=config.num_train_timesteps, beta_schedule=config.beta_schedule,
                          prediction_type=config.prediction_type, clip_sample=True)
    if config.sampler == "ddim":
        sample = DDIMScheduler.from_config(train.config, clip_sample=True, set_alpha_to_one=True)
    else:
        sample = DPMSolverMultistepScheduler.from_config(train.config, algorithm_type="dpmsolver++",
                                                         solver_order=2)
    return train, sample


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
    """

    kind = "diffusion"

    def __init__(self, config: DiffusionModelConfig, image_size: int, *, unet: UNet2DConditionModel | None = None,
                 card: dict[str, Any] | None = None) -> None:
        self.config = config
        self.image_size = int(image_size)
        self.unet = unet if unet is not None else build_unet(config, image_size)
        self.train_scheduler, sample_scheduler = _schedulers(config)
        self.pipeline = AUConditionedFacePipeline(unet=self.unet, scheduler=sample_scheduler)
        self.pipeline.set_progress_bar_config(disable=True)
        self.card: dict[str, Any] = dict(card or {})

    # -- persistence -------------------------------------------------------
    def save_pretrained(self, model_dir: str | os.PathLike) -> None:
        """Write the pipeline (``weights/``: unet + scheduler, diffusers layout), then the card (``config.json``)."""
        self.pipeline.save_pretrained(prepare_weights_dir(model_dir), safe_serialization=True)
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
            pipeline = AUConditionedFacePipeline.from_pretrained(folder.weights, local_files_only=True)
        finally:
            if quiet:
                diffusers_logging.enable_progress_bar()
        expected = build_unet(config, int(card["image_size"])).config
        for key in ("block_out_channels", "class_embed_type", "encoder_hid_dim_type", "sample_size"):
            if tuple(np.atleast_1d(expected[key] or [])) != tuple(np.atleast_1d(pipeline.unet.config[key] or [])):
                raise ValueError(f"{model_dir}: the saved UNet's {key}={pipeline.unet.config[key]!r} does not match "
                                 f"the card's config ({expected[key]!r}); the folder mixes two models.")
        gen = cls(config, int(card["image_size"]), unet=pipeline.unet, card=card)
        return gen.to(device)

    def to(self, device: str | torch.device) -> DiffusionGenerator:
        """Move the weights to ``device``; returns self."""
        self.unet.to(device)
        return self

    @property
    def device(self) -> torch.device:
        """Where the weights live."""
        return self.unet.device

    # -- training ----------------------------------------------------------
    def modules(self) -> dict[str, torch.nn.Module]:
        """The trainable modules by name (what checkpoints and EMA hold)."""
        return {"unet": self.unet}

    def denoising_loss(self, unet: torch.nn.Module, rgbd: torch.Tensor, aus: torch.Tensor, timesteps: torch.Tensor,
                       noise: torch.Tensor) -> torch.Tensor:
        """Per-sample MSE of the denoiser's prediction (epsilon, x0 or v, per config), shape (n,)."""
        noisy = self.train_scheduler.add_noise(rgbd, noise, timesteps)
        pred = unet(noisy, timesteps, **unet_condition(self.unet, aus)).sample
        if self.config.prediction_type == "epsilon":
            target = noise
        elif self.config.prediction_type == "sample":
            target = rgbd
        else:
            target = self.train_scheduler.get_velocity(rgbd, noise, timesteps)
        return (pred.float() - target.float()).pow(2).mean(dim=(1, 2, 3))

    def training_loss(self, unet: torch.nn.Module, rgbd: torch.Tensor, aus: torch.Tensor,
                      generator: torch.Generator) -> torch.Tensor:
        """DDPM loss of a batch with random timesteps and noise drawn from ``generator``, shape (n,)."""
        n = rgbd.shape[0]
        timesteps = torch.randint(0, self.config.num_train_timesteps, (n,), generator=generator).to(rgbd.device)
        noise = torch.randn(rgbd.shape, generator=generator).to(rgbd.device)
        return self.denoising_loss(unet, rgbd, aus, timesteps, noise)

    # -- protocol ----------------------------------------------------------
    @torch.no_grad()
    def per_sample_loss(self, rgbd: torch.Tensor, aus: torch.Tensor, *, seed: int = 0,
                        batch_size: int = 64) -> torch.Tensor:
        """Denoising MSE averaged over ``config.loss_timesteps`` with fixed noises (seeded), shape (n,)."""
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
               batch_size: int = 64) -> np.ndarray:
        """One sequence from shared initial noise (seeded) and a deterministic sampler: (n, 4, H, W) in [-1, 1]."""
        self.unet.eval()
        generator = torch.Generator().manual_seed(int(seed))
        return self.pipeline(torch.as_tensor(np.asarray(aus_sequence, dtype=np.float32)), generator=generator,
                             num_inference_steps=num_inference_steps or self.config.num_inference_steps,
                             batch_size=batch_size).images
