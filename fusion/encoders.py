"""Backbones per modality, built by name from config (no downloaded weights, ever).

Every backbone maps one view to a feature vector and exposes ``out_dim``:

- video (``rgb`` (B, T, 3, H, W), ``depth`` (B, T, 1, H, W)): ``tiny3d`` (4 conv3d blocks),
  ``frames2d`` (a 2D CNN per frame + a temporal conv, keeping time bins),
  torchvision ``r2plus1d_18`` with random init and an ``in_channels`` stem, or ``videomae``
  (transformers ``VideoMAEModel`` built from a ``VideoMAEConfig``, random init, mean-pooled tokens);
- signals (``emg``, ``eeg`` (B, n_chans, n_times)): ``eegnet`` (EEGNet-style: temporal conv,
  depthwise spatial conv, separable conv), ``shallow`` (ShallowConvNet-style band power:
  temporal conv, spatial conv, square, average, log; it cannot memorise the raw noise of a
  window, which is what EMG/EEG encoders otherwise learn on small corpora) or ``conv1d`` (a
  plain strided 1D CNN).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

ENCODERS: dict[str, Callable[..., nn.Module]] = {}


def register_encoder(name: str) -> Callable:
    """Decorator: make a backbone class buildable by ``name`` in :func:`build_encoder`."""
    def wrap(cls: Callable) -> Callable:
        ENCODERS[name] = cls
        return cls
    return wrap


def build_encoder(name: str, **kwargs) -> nn.Module:
    """Build a registered backbone, e.g. ``build_encoder("eegnet", n_chans=32, n_times=500)``."""
    if name not in ENCODERS:
        raise ValueError(f"Unknown encoder {name!r}; registered: {sorted(ENCODERS)}.")
    return ENCODERS[name](**kwargs)


class _VideoInput(nn.Module):
    """(B, T, C, H, W) clips -> (B, C, T, H, W), the layout conv3d wants."""

    @staticmethod
    def to_conv3d(x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"Video input must have shape (B, T, C, H, W), got {tuple(x.shape)}.")
        return x.permute(0, 2, 1, 3, 4)


@register_encoder("tiny3d")
class Tiny3D(_VideoInput):
    """Four conv3d+BN+ReLU blocks, widths ``width * (1, 2, 4, 8)``, global average pool.

    Parameters
    ----------
    in_channels : int
        3 for RGB, 1 for depth.
    width : int
        Channels of the first block; ``out_dim = 8 * width``.
    """

    def __init__(self, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, mult in enumerate((1, 2, 4, 8)):
            # Keep time resolution in the first block (clips are short), then halve everything.
            stride = (1, 2, 2) if i == 0 else (2, 2, 2)
            layers += [nn.Conv3d(c_in, width * mult, 3, stride=stride, padding=1, bias=False),
                       nn.BatchNorm3d(width * mult), nn.ReLU(inplace=True)]
            c_in = width * mult
        self.features = nn.Sequential(*layers)
        self.out_dim = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) -> (B, out_dim)."""
        return self.features(self.to_conv3d(x)).mean(dim=(2, 3, 4))


@register_encoder("frames2d")
class FrameCNNTemporal(_VideoInput):
    """A 2D CNN on every frame, then a temporal conv; keeps ``n_bins`` time bins of the clip.

    Four conv2d+BN+ReLU blocks (widths ``width * (1, 2, 4, 8)``, stride 2), spatial average pool,
    a temporal conv1d (kernel 3) over the per-frame features, and an average into ``n_bins`` bins.
    ``out_dim = 8 * width * n_bins``. Unlike ``tiny3d``, whose strides and pooling average the clip
    over time, it keeps *when* in the window a blink or an onset happens, which is what the EMG
    and EEG band-power envelopes (``shallow``) also keep; per frame it is also cheaper than conv3d.

    Parameters
    ----------
    in_channels : int
        3 for RGB, 1 for depth.
    width : int
        Channels of the first block.
    n_bins : int
        Time bins kept from the clip.
    """

    def __init__(self, in_channels: int = 3, width: int = 16, n_bins: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for mult in (1, 2, 4, 8):
            layers += [nn.Conv2d(c_in, width * mult, 3, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(width * mult), nn.ReLU(inplace=True)]
            c_in = width * mult
        self.frame = nn.Sequential(*layers)
        self.temporal = nn.Sequential(nn.Conv1d(c_in, c_in, 3, padding=1, bias=False), nn.BatchNorm1d(c_in),
                                      nn.ReLU(inplace=True), nn.AdaptiveAvgPool1d(n_bins))
        self.out_dim = c_in * n_bins

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) -> (B, out_dim)."""
        if x.ndim != 5:
            raise ValueError(f"Video input must have shape (B, T, C, H, W), got {tuple(x.shape)}.")
        b, t = x.shape[:2]
        per_frame = self.frame(x.flatten(0, 1)).mean(dim=(2, 3)).view(b, t, -1)   # (B, T, F)
        return self.temporal(per_frame.transpose(1, 2)).flatten(1)


@register_encoder("r2plus1d_18")
class R2Plus1D18(_VideoInput):
    """torchvision ``r2plus1d_18(weights=None)`` with an ``in_channels`` stem; ``out_dim = 512``."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        from torchvision.models.video import r2plus1d_18

        net = r2plus1d_18(weights=None)
        if in_channels != 3:
            old = net.stem[0]
            net.stem[0] = nn.Conv3d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                                    bias=False)
        net.fc = nn.Identity()
        self.net, self.out_dim = net, 512

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) -> (B, 512)."""
        return self.net(self.to_conv3d(x))


@register_encoder("videomae")
class VideoMAE(_VideoInput):
    """transformers ``VideoMAEModel`` from a ``VideoMAEConfig`` (random init, never downloaded).

    ``out_dim = hidden_size``.

    Parameters
    ----------
    in_channels : int
        3 for RGB, 1 for depth.
    image_size, clip_frames : int
        Input frame side and frames per clip (filled in from the data config by ``fusion.train.build_model``).
    patch_size, tubelet_size : int
        Token size in pixels and frames (``image_size`` and ``clip_frames`` must be multiples).
    hidden_size, num_hidden_layers, num_attention_heads, intermediate_size : int
        Transformer size (defaults: a small model for CPU runs, not videomae-base).
    """

    def __init__(self, in_channels: int = 3, image_size: int = 64, clip_frames: int = 8, patch_size: int = 8,
                 tubelet_size: int = 2, hidden_size: int = 128, num_hidden_layers: int = 4,
                 num_attention_heads: int = 4, intermediate_size: int = 256) -> None:
        super().__init__()
        from transformers import VideoMAEConfig, VideoMAEModel

        if image_size % patch_size or clip_frames % tubelet_size:
            raise ValueError(f"videomae needs image_size ({image_size}) divisible by patch_size ({patch_size}) and "
                             f"clip_frames ({clip_frames}) divisible by tubelet_size ({tubelet_size}).")
        config = VideoMAEConfig(image_size=image_size, patch_size=patch_size, num_channels=in_channels,
                                num_frames=clip_frames, tubelet_size=tubelet_size, hidden_size=hidden_size,
                                num_hidden_layers=num_hidden_layers, num_attention_heads=num_attention_heads,
                                intermediate_size=intermediate_size, use_mean_pooling=True)
        self.net, self.out_dim = VideoMAEModel(config), hidden_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) -> (B, hidden_size): mean of the last layer's tokens."""
        if x.ndim != 5:
            raise ValueError(f"Video input must have shape (B, T, C, H, W), got {tuple(x.shape)}.")
        return self.net(pixel_values=x).last_hidden_state.mean(dim=1)


def _check_signal(x: torch.Tensor, n_chans: int) -> None:
    if x.ndim != 3 or x.shape[1] != n_chans:
        raise ValueError(f"Signal input must have shape (B, {n_chans}, n_times), got {tuple(x.shape)}.")


@register_encoder("eegnet")
class EEGNet1D(nn.Module):
    """EEGNet-style encoder (Lawhern et al. 2018) for EMG or EEG windows; ``out_dim = f2 * 4``.

    Parameters
    ----------
    n_chans : int
        Channels of the window.
    n_times : int
        Samples of the window (checked on input; pooling adapts to it).
    f1, depth, f2 : int
        Temporal filters, spatial filters per temporal filter, separable filters.
    kernel : int
        Temporal kernel length in samples (EEGNet uses half the sampling rate).
    """

    def __init__(self, n_chans: int, n_times: int, f1: int = 8, depth: int = 2, f2: int = 16,
                 kernel: int = 64) -> None:
        super().__init__()
        self.n_chans, self.n_times = n_chans, n_times
        kernel = min(kernel, n_times)
        self.block1 = nn.Sequential(
            nn.Conv2d(1, f1, (1, kernel), padding=(0, kernel // 2), bias=False), nn.BatchNorm2d(f1),
            nn.Conv2d(f1, f1 * depth, (n_chans, 1), groups=f1, bias=False),  # depthwise spatial filter
            nn.BatchNorm2d(f1 * depth), nn.ELU(), nn.AvgPool2d((1, 4)))
        self.block2 = nn.Sequential(
            nn.Conv2d(f1 * depth, f1 * depth, (1, 16), padding=(0, 8), groups=f1 * depth, bias=False),
            nn.Conv2d(f1 * depth, f2, 1, bias=False), nn.BatchNorm2d(f2), nn.ELU(),
            nn.AdaptiveAvgPool2d((1, 4)))  # 4 coarse time bins keep "when in the window"
        self.out_dim = f2 * 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_chans, n_times) -> (B, out_dim)."""
        _check_signal(x, self.n_chans)
        return self.block2(self.block1(x[:, None])).flatten(1)


@register_encoder("shallow")
class ShallowBandPower(nn.Module):
    """ShallowConvNet-style encoder (Schirrmeister et al. 2017): log band power over time bins.

    Temporal conv (``n_filters`` filters, ``kernel`` samples) -> spatial conv over all channels ->
    BN -> square -> average over ``bin_s`` of the window (``n_bins`` bins) -> log -> 1x1 conv mixing.
    ``out_dim = n_filters * n_bins``. Power envelopes are what facial EMG and EEG muscle/blink
    artefacts carry about the face; averaging squared outputs over bins leaves no sample-level noise
    to memorise.

    Parameters
    ----------
    n_chans, n_times : int
        Channels and samples of the window.
    n_filters : int
        Temporal and spatial filters.
    kernel : int
        Temporal kernel length in samples.
    n_bins : int
        Time bins the window is averaged into.
    """

    def __init__(self, n_chans: int, n_times: int, n_filters: int = 16, kernel: int = 25, n_bins: int = 8) -> None:
        super().__init__()
        self.n_chans, self.n_times = n_chans, n_times
        kernel = min(kernel, n_times)
        self.temporal = nn.Conv2d(1, n_filters, (1, kernel), padding=(0, kernel // 2), bias=False)
        self.spatial = nn.Conv2d(n_filters, n_filters, (n_chans, 1), bias=False)
        self.bn = nn.BatchNorm2d(n_filters)
        self.pool = nn.AdaptiveAvgPool2d((1, n_bins))
        self.mix = nn.Sequential(nn.Conv1d(n_filters, n_filters, 1), nn.BatchNorm1d(n_filters), nn.ELU())
        self.out_dim = n_filters * n_bins

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_chans, n_times) -> (B, out_dim)."""
        _check_signal(x, self.n_chans)
        power = self.pool(self.bn(self.spatial(self.temporal(x[:, None]))).square())   # (B, F, 1, n_bins)
        return self.mix(torch.log(power.squeeze(2) + 1e-6)).flatten(1)


@register_encoder("conv1d")
class Conv1DEncoder(nn.Module):
    """Four strided conv1d+BN+ReLU blocks over channels-as-features; ``out_dim = 8 * width``."""

    def __init__(self, n_chans: int, n_times: int, width: int = 32, kernel: int = 7) -> None:
        super().__init__()
        self.n_chans, self.n_times = n_chans, n_times
        layers: list[nn.Module] = []
        c_in = n_chans
        for mult in (1, 2, 4, 8):
            layers += [nn.Conv1d(c_in, width * mult, kernel, stride=2, padding=kernel // 2, bias=False),
                       nn.BatchNorm1d(width * mult), nn.ReLU(inplace=True)]
            c_in = width * mult
        self.features = nn.Sequential(*layers)
        self.out_dim = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_chans, n_times) -> (B, out_dim)."""
        _check_signal(x, self.n_chans)
        return self.features(x).mean(dim=2)
