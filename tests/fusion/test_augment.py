"""Batch augmentations: shapes kept, video crop/flip shared by RGB and depth, signals scaled and shifted."""

from __future__ import annotations

import torch

from fusion.augment import augment_batch
from fusion.config import AugmentConfig


def _batch(b=4):
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(b, 3, 3, 16, 16, generator=g)
    return {"rgb": rgb, "depth": rgb[:, :, :1].clone(), "emg": torch.randn(b, 2, 100, generator=g),
            "eeg": torch.zeros(b, 3, 50), "available": {"rgb": torch.ones(b, dtype=torch.bool)}}


def test_disabled_is_identity_and_enabled_is_seeded():
    batch = _batch()
    assert augment_batch(batch, AugmentConfig(enabled=False), 1.0) is batch
    config = AugmentConfig(enabled=True)
    torch.manual_seed(1)
    a = augment_batch(batch, config, 1.0)
    torch.manual_seed(1)
    b = augment_batch(batch, config, 1.0)
    for m in ("rgb", "depth", "emg", "eeg"):
        assert a[m].shape == batch[m].shape
        torch.testing.assert_close(a[m], b[m], rtol=0, atol=0)
    assert not torch.equal(a["rgb"], batch["rgb"]) and not torch.equal(a["emg"], batch["emg"])
    assert a["available"] is batch["available"] and torch.all(a["eeg"] == 0)  # placeholders stay zero


def test_video_geometry_is_shared_by_rgb_and_depth_and_frames():
    """Depth is RGB's first channel here: with photometric jitter off, the same warp keeps them equal."""
    batch = _batch()
    batch["rgb"][:, 1] = batch["rgb"][:, 0]  # frames 0 and 1 identical: the crop must treat them alike
    batch["depth"] = batch["rgb"][:, :, :1].clone()
    config = AugmentConfig(enabled=True, brightness=0.0, contrast=0.0, depth_scale=0.0, crop_scale=(0.6, 0.8),
                           flip_p=0.5)
    torch.manual_seed(2)
    out = augment_batch(batch, config, 1.0)
    torch.testing.assert_close(out["depth"], out["rgb"][:, :, :1])
    torch.testing.assert_close(out["rgb"][:, 0], out["rgb"][:, 1])
    flipped = AugmentConfig(enabled=True, brightness=0.0, contrast=0.0, crop_scale=(1.0, 1.0), flip_p=1.0)
    torch.testing.assert_close(augment_batch(batch, flipped, 1.0)["rgb"], batch["rgb"].flip(-1))


def test_signal_shift_and_scale():
    batch = _batch(2)
    ramp = torch.arange(100.0).expand(2, 2, 100).clone()
    batch["emg"] = ramp
    config = AugmentConfig(enabled=True, signal_scale=0.0, signal_shift_s=0.05)   # up to 5 of 100 samples
    torch.manual_seed(0)
    out = augment_batch(batch, config, 1.0)["emg"]
    shift = ramp[:, :, 50] - out[:, :, 50]
    assert torch.all(shift.abs() <= 5) and torch.all(out[:, :, 10:90] == ramp[:, :, 10:90] - shift[..., None])
    config = AugmentConfig(enabled=True, signal_scale=0.5, signal_shift_s=0.0)
    gain = augment_batch(batch, config, 1.0)["emg"][:, :, 1:] / ramp[:, :, 1:]
    assert torch.allclose(gain, gain[:, :, :1]) and torch.all((gain > 1 / 1.5 - 1e-6) & (gain < 1.5 + 1e-6))


def test_step_generator_makes_augmentation_a_function_of_the_step():
    """Exact resume: step k's augmentation depends on (seed, step, rank) only, not on the global RNG."""
    from fusion.augment import step_generator

    batch, config = _batch(), AugmentConfig(enabled=True)
    torch.manual_seed(0)
    a = augment_batch(batch, config, 1.0, step_generator(0, 7))
    torch.manual_seed(123)
    b = augment_batch(batch, config, 1.0, step_generator(0, 7))
    c = augment_batch(batch, config, 1.0, step_generator(0, 8))
    torch.testing.assert_close(a["rgb"], b["rgb"], rtol=0, atol=0)
    assert not torch.equal(a["rgb"], c["rgb"])
    # a federated site's seed (round seed mixed with its name, up to 2**62) once overflowed torch's seed
    big = 2**62 - 1
    d = step_generator(big, 19, rank=3).initial_seed()
    assert d == ((big * 1_000_003 + 19) * 1_009 + 3) % (2**63 - 1) != step_generator(big, 20).initial_seed()
