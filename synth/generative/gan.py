"""AU-conditioned GAN of RGB-D face crops in plain PyTorch (GANimation-style), the fast alternative.

Generator ``G(z, au)``: a latent ``z`` (everything but the expression; no identity input) and
the AU vector ``au / 5`` go through a linear layer to a ``(C, s/16, s/16)`` map, then four
upsampling blocks; the AU vector is also concatenated as constant maps to the input of every
block, as GANimation feeds AUs spatially. Output: 4 channels (RGB + depth) through ``tanh``.

Discriminator ``D(x, au)``: four strided convolutions, then GANimation's two heads: a realness
logit (with a projection term on the AUs, so mismatched AUs look fake) and an AU regression
(``au / 5`` through a sigmoid). No batch normalization (group norm
in G, none in D), so per-sample gradients (opacus DP-SGD) are well defined.

Losses: non-saturating GAN loss, ``lambda_au`` x MSE of D's AU head on real frames (D) and
on generated frames against the requested AUs (G), an R1 penalty on real frames, and
``lambda_rec`` x a coarse paired L1 term (G's output for a real frame's AUs against that
frame, both average-pooled by ``rec_pool``). Without the paired term the tiny CPU models
conditioned unreliably within a few hundred steps (the smile proxy of the tests ranged from
-0.1 to 0.3 over seeds and session sets); with it, 0.27-0.31 after 250 steps on the same runs.

Temporal coherence: a sequence shares one ``z``; frames differ only through their AUs.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from acquisition.annotate.action_units import MAX_INTENSITY

from acquisition.utils.docs import fill_doc
from acquisition.utils.model_folder import load_weights, prepare_weights_dir, read_model_folder, save_safetensors

from synth.generative.base import save_generator_config
from synth.generative.config import GANModelConfig
from synth.generative.frames import N_AUS, N_CHANNELS

#: Upsampling / downsampling stages: the smallest feature map is ``image_size / 2**N_STAGES``.
N_STAGES = 4


def _widths(base: int) -> list[int]:
    """Channels per stage, widest at the lowest resolution (capped at 8 x base)."""
    return [base * min(2 ** (N_STAGES - 1 - k), 8) for k in range(N_STAGES)]


class _UpBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in + N_AUS, c_out, 3, padding=1)
        self.norm = nn.GroupNorm(min(8, c_out), c_out)

    def forward(self, x: torch.Tensor, au: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        maps = au[:, :, None, None].expand(-1, -1, *x.shape[-2:])
        return F.leaky_relu(self.norm(self.conv(torch.cat([x, maps], 1))), 0.2)


class AUGeneratorNet(nn.Module):
    """``G(z, au)``: (n, latent_dim), (n, 17) in 0-1 -> (n, 4, image_size, image_size) in [-1, 1]."""

    def __init__(self, latent_dim: int, base_channels: int, image_size: int) -> None:
        super().__init__()
        widths = _widths(base_channels)
        self.start = image_size // 2 ** N_STAGES
        self.fc = nn.Linear(latent_dim + N_AUS, widths[0] * self.start ** 2)
        self.blocks = nn.ModuleList(_UpBlock(c_in, c_out) for c_in, c_out in zip(widths, widths[1:] + [widths[-1]]))
        self.out = nn.Conv2d(widths[-1], N_CHANNELS, 3, padding=1)

    def forward(self, z: torch.Tensor, au: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.fc(torch.cat([z, au], 1)), 0.2).view(z.shape[0], -1, self.start, self.start)
        for block in self.blocks:
            x = block(x, au)
        return torch.tanh(self.out(x))


class AUDiscriminatorNet(nn.Module):
    """``D(x, au)``: (n, 4, s, s), (n, 17) in 0-1 -> realness logit (n,) and AU estimate (n, 17) in 0-1.

    The realness logit has a projection term ``<embed(au), h>`` (Miyato & Koyama 2018), so a
    frame that does not show its AUs looks fake; the AU head (GANimation) regresses the AUs.
    """

    def __init__(self, base_channels: int, image_size: int) -> None:
        super().__init__()
        widths = _widths(base_channels)[::-1]
        layers: list[nn.Module] = []
        c_in = N_CHANNELS
        for c_out in widths:
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        flat = c_in * (image_size // 2 ** N_STAGES) ** 2
        self.real = nn.Linear(flat, 1)
        self.embed = nn.Linear(N_AUS, flat, bias=False)
        self.au = nn.Linear(flat, N_AUS)

    def forward(self, x: torch.Tensor, au: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x).flatten(1)
        return self.real(h).squeeze(1) + (self.embed(au) * h).sum(1), torch.sigmoid(self.au(h))


@fill_doc
class GANGenerator:
    """The GAN behind :class:`~synth.generative.base.AUGenerator`.

    Parameters
    ----------
    config : GANModelConfig
        Latent size, widths and loss weights.
    image_size : int
        Side of the crops (divisible by 16).
    %(generator_card)s
    """

    kind = "gan"

    def __init__(self, config: GANModelConfig, image_size: int, *, card: dict[str, Any] | None = None) -> None:
        if image_size % 2 ** N_STAGES:
            raise ValueError(f"The GAN needs image_size divisible by {2 ** N_STAGES}, got {image_size}.")
        self.config = config
        self.image_size = int(image_size)
        self.generator = AUGeneratorNet(config.latent_dim, config.base_channels, image_size)
        self.discriminator = AUDiscriminatorNet(config.base_channels, image_size)
        self.card: dict[str, Any] = dict(card or {})

    # -- persistence -------------------------------------------------------
    def save_pretrained(self, model_dir: str | os.PathLike) -> None:
        """Write ``weights/generator.safetensors``, ``weights/discriminator.safetensors``, then the card."""
        weights = prepare_weights_dir(model_dir)
        for name, module in self.modules().items():
            save_safetensors(weights / f"{name}.safetensors", module.state_dict())
        save_generator_config(model_dir, self)

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike, *, device: str = "cpu") -> GANGenerator:
        """Load a model folder written by :meth:`save_pretrained`."""
        folder = read_model_folder(model_dir, kind=cls.kind)
        card = folder.config
        gan = cls(GANModelConfig.model_validate(card["config"]["model"]), int(card["image_size"]), card=card)
        for name, module in gan.modules().items():
            state = load_weights(folder, name)
            try:
                module.load_state_dict(state)
            except RuntimeError as err:
                raise ValueError(f"{model_dir}: the saved {name} does not match the card's config "
                                 f"({type(err).__name__}: {str(err)[:200]}).") from None
        return gan.to(device)

    def to(self, device: str | torch.device) -> GANGenerator:
        """Move the weights to ``device``; returns self."""
        self.generator.to(device)
        self.discriminator.to(device)
        return self

    @property
    def device(self) -> torch.device:
        """Where the weights live."""
        return next(self.generator.parameters()).device

    def modules(self) -> dict[str, nn.Module]:
        """The trainable modules by name (EMA applies to the generator)."""
        return {"generator": self.generator, "discriminator": self.discriminator}

    # -- losses ------------------------------------------------------------
    def discriminator_loss(self, disc: nn.Module, real: torch.Tensor, aus: torch.Tensor, fake: torch.Tensor,
                           fake_aus: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Per-sample D loss (realness + AU regression on real frames + R1), shape (n,), and its parts."""
        c = self.config
        real = real.detach().requires_grad_(c.r1_gamma > 0)
        logit_real, au_real = disc(real, aus / MAX_INTENSITY)
        logit_fake, _ = disc(fake.detach(), fake_aus / MAX_INTENSITY)
        adv = F.softplus(-logit_real) + F.softplus(logit_fake)
        au_loss = (au_real - aus / MAX_INTENSITY).pow(2).mean(1)
        loss = adv + c.lambda_au * au_loss
        r1 = torch.zeros(())
        if c.r1_gamma > 0:
            (grad,) = torch.autograd.grad(logit_real.sum(), real, create_graph=True)
            r1 = grad.pow(2).flatten(1).sum(1)
            loss = loss + 0.5 * c.r1_gamma * r1
        return loss, {"d_adv": float(adv.detach().mean()), "d_au": float(au_loss.detach().mean()),
                      "r1": float(r1.detach().mean())}

    def generator_loss(self, gen: nn.Module, disc: nn.Module, z: torch.Tensor, aus: torch.Tensor,
                       real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """G loss (scalar), the fakes, and the parts: fool D, show the requested AUs, match the real frames coarsely.

        ``aus`` are the AUs of the real frames ``real``; the paired term compares G's output with its
        real frame after ``rec_pool`` x ``rec_pool`` average pooling, which pulls the conditional mean of
        G toward that of the data (the expression) and leaves fine detail to the adversarial loss.
        """
        c = self.config
        fake = gen(z, aus / MAX_INTENSITY)
        logit, au_fake = disc(fake, aus / MAX_INTENSITY)
        adv = F.softplus(-logit).mean()
        au_loss = (au_fake - aus / MAX_INTENSITY).pow(2).mean()
        rec = (F.avg_pool2d(fake, c.rec_pool) - F.avg_pool2d(real, c.rec_pool)).abs().mean()
        loss = adv + c.lambda_au * au_loss + c.lambda_rec * rec
        return loss, fake, {"g_adv": float(adv.detach()), "g_au": float(au_loss.detach()), "g_rec": float(rec.detach())}

    # -- protocol ----------------------------------------------------------
    @torch.no_grad()
    def per_sample_loss(self, rgbd: torch.Tensor, aus: torch.Tensor, *, seed: int = 0,
                        batch_size: int = 256) -> torch.Tensor:
        """The discriminator's realness loss ``softplus(-D(x, au))``, shape (n,) (deterministic; ``seed`` unused)."""
        self.discriminator.eval()
        rgbd = torch.as_tensor(rgbd, dtype=torch.float32)
        aus = torch.as_tensor(aus, dtype=torch.float32) / MAX_INTENSITY
        out = [F.softplus(-self.discriminator(rgbd[i:i + batch_size].to(self.device),
                                              aus[i:i + batch_size].to(self.device))[0]).cpu()
               for i in range(0, rgbd.shape[0], batch_size)]
        return torch.cat(out) if out else torch.zeros(0)

    @torch.no_grad()
    def sample(self, aus_sequence: np.ndarray, *, seed: int = 0, num_inference_steps: int | None = None,
               batch_size: int = 256) -> np.ndarray:
        """One sequence from one shared latent (seeded): (n, 4, H, W) in [-1, 1]; ``num_inference_steps`` unused."""
        self.generator.eval()
        aus = torch.as_tensor(np.asarray(aus_sequence, dtype=np.float32)) / MAX_INTENSITY
        z = torch.randn((1, self.config.latent_dim), generator=torch.Generator().manual_seed(int(seed)))
        out = [self.generator(z.expand(len(aus[i:i + batch_size]), -1).to(self.device),
                              aus[i:i + batch_size].to(self.device)).cpu()
               for i in range(0, len(aus), batch_size)]
        return torch.cat(out).numpy()
