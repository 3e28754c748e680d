"""Light augmentations of training batches (``augment:`` in the pretraining config).

Applied to collated batches inside the training step, after the window cache (a cached window is
augmented afresh every time it is drawn). The random draws come from a generator seeded with
(config seed, step, rank), so step k is augmented the same way whether or not the run was
resumed in between (the global RNG is not: e.g. each DataLoader iterator draws a base seed from it).

- video: one random crop (side fraction in ``crop_scale``, resized back) and horizontal flip per
  window, the same for every frame of the clip and for RGB and depth (they show the same scene,
  so e.g. the direction of a head turn stays consistent between them); RGB brightness/contrast
  jitter; depth scale jitter;
- EMG/EEG: one amplitude scale per window and channel (log-uniform within ``1 +- signal_scale``)
  and a time shift of up to ``signal_shift_s`` (edge samples repeated).

Missing views (all-zero placeholders) stay zero except for the crop, which keeps zeros zero.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import AugmentConfig

VIDEO = ("rgb", "depth")
SIGNALS = ("emg", "eeg")


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """The CPU generator of one training step's augmentations (a pure function of its arguments)."""
    # folded into torch's signed 64-bit seed range: a federated site's seeds are large (up to 2**62)
    return torch.Generator().manual_seed(((seed * 1_000_003 + step) * 1_009 + rank) % (2**63 - 1))


def _uniform(n: int, low: float, high: float, device: torch.device, generator: torch.Generator | None
             ) -> torch.Tensor:
    # drawn on the CPU (the generator's device), then moved: identical on every device
    return (low + (high - low) * torch.rand(n, generator=generator)).to(device)


def augment_batch(batch: dict, config: AugmentConfig, window_s: float, generator: torch.Generator | None = None
                  ) -> dict:
    """A copy of ``batch`` with augmented views (labels and masks unchanged); see the module docstring.

    Parameters
    ----------
    batch : dict
        A collated :class:`fusion.data.SessionWindows` batch (``rgb`` (B, T, 3, S, S), ``depth``
        (B, T, 1, S, S), ``emg``/``eeg`` (B, C, n_times), ...).
    config : AugmentConfig
        What to apply and how strongly.
    window_s : float
        Window length in seconds (converts ``signal_shift_s`` to samples).
    generator : torch.Generator | None
        CPU generator of the random draws (see :func:`step_generator`); None uses the global RNG.
    """
    if not config.enabled:
        return batch
    out = dict(batch)
    videos = [m for m in VIDEO if m in batch]
    if videos:
        ref = batch[videos[0]]
        b, device = ref.shape[0], ref.device
        g = generator
        scale = _uniform(b, *config.crop_scale, device, g)
        # crop centre anywhere that keeps the crop inside the frame (normalised coordinates)
        tx = (1 - scale) * _uniform(b, -1.0, 1.0, device, g)
        ty = (1 - scale) * _uniform(b, -1.0, 1.0, device, g)
        flip = torch.where(_uniform(b, 0.0, 1.0, device, g) < config.flip_p, -1.0, 1.0)
        theta = torch.zeros(b, 2, 3, device=device)
        theta[:, 0, 0], theta[:, 0, 2] = scale * flip, tx
        theta[:, 1, 1], theta[:, 1, 2] = scale, ty
        for m in videos:
            clip = batch[m]
            _, t, c, h, w = clip.shape
            grid = F.affine_grid(theta.repeat_interleave(t, 0), [b * t, c, h, w], align_corners=False)
            warped = F.grid_sample(clip.reshape(b * t, c, h, w), grid.to(clip.dtype), mode="bilinear",
                                   padding_mode="border", align_corners=False).reshape(b, t, c, h, w)
            if m == "rgb":
                gain = _uniform(b, 1 - config.contrast, 1 + config.contrast, device, generator).view(b, 1, 1, 1, 1)
                shift = _uniform(b, -config.brightness, config.brightness, device, generator).view(b, 1, 1, 1, 1)
                mean = warped.mean(dim=(1, 2, 3, 4), keepdim=True)
                warped = (warped - mean) * gain + mean + shift  # no clamp: views may be normalised (video_norm)
            else:
                warped = warped * _uniform(b, 1 - config.depth_scale, 1 + config.depth_scale, device, generator).view(
                    b, 1, 1, 1, 1)
            out[m] = warped
    for m in SIGNALS:
        if m not in batch:
            continue
        x = batch[m]
        b, c, n = x.shape
        log_s = math.log1p(config.signal_scale)
        gain = torch.exp(_uniform(b * c, -log_s, log_s, x.device, generator)).view(b, c, 1)
        max_shift = int(round(config.signal_shift_s * n / window_s))
        if max_shift > 0:
            shift = torch.randint(-max_shift, max_shift + 1, (b,), generator=generator).to(x.device)
            idx = (torch.arange(n, device=x.device)[None, :] - shift[:, None]).clamp(0, n - 1)
            x = torch.gather(x, 2, idx[:, None, :].expand(b, c, n))
        out[m] = x * gain
    return out
