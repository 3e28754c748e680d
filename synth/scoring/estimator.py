"""The AU estimator of the scorer: a small CNN that regresses the 17 AU intensities from a face crop.

It is trained only on the reference sessions (subjects the generator never saw), so a generator
cannot score well by reproducing its own training frames: the circularity the old in-generator
regressor had (issue 15). It reads the same ``(n, 4, H, W)`` RGB-D arrays in [-1, 1] as the
generators (:mod:`synth.generative.frames`); ``channels="rgb"`` drops depth, for generators or
cameras whose depth should not count.

Person-specific normalization (``normalize="median"``, the default): before the network sees a frame,
the median frame of its group (a reference session, a corpus sequence) is subtracted, so the network
reads how the face differs from that person's usual face rather than who the person is. OpenFace
normalizes its AU-intensity features per person by their median for the same reason. On the light
rig this moved the cross-subject ceiling from r ~0 (identity dominates the pixels) to ~0.65. The
cost: in a sequence that is expressive for more than half its frames, the median frame is itself
expressive, so the measured course loses part of its baseline; sequences padded with a neutral face
(as ``emosync synth sample`` pads them) and reference episodes cut the same way are measured alike.

The network is deliberately small (three conv blocks with batch norm, about 30k weights at
width 16) so the k-fold ceiling, which trains it once per fold, stays cheap on CPU. Training
uses random translations and brightness gains so that it keys on the face's shape rather than
on exact pixel positions or one subject's skin tone.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from acquisition.annotate.action_units import AU_IDS, MAX_INTENSITY

#: Which input channels of an RGB-D array each channel mode uses.
CHANNELS = {"rgbd": slice(0, 4), "rgb": slice(0, 3)}
#: Per-group input normalizations.
NORMALIZATIONS = ("median", "none")


def subtract_group_median(rgbd: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Each frame minus the median frame of its group (one group for all frames when ``groups`` is None).

    Parameters
    ----------
    rgbd : array of float32, shape (n_frames, C, H, W)
    groups : array, shape (n_frames,) | None
        Group label of each frame (e.g. its session file or sequence id).

    Returns
    -------
    normalized : array of float32, shape (n_frames, C, H, W)
        Differences in [-2, 2].
    """
    rgbd = np.asarray(rgbd, dtype=np.float32)
    groups = np.zeros(len(rgbd), np.int8) if groups is None else np.asarray(groups)
    if len(groups) != len(rgbd):
        raise ValueError(f"groups must have one label per frame ({len(rgbd)}), got {len(groups)}.")
    out = np.empty_like(rgbd)
    for g in np.unique(groups):
        rows = groups == g
        out[rows] = rgbd[rows] - np.median(rgbd[rows], axis=0)
    return out


class _AURegressor(nn.Module):
    """Conv(3x3)-BN-ReLU-pool x 3 -> global average -> linear: (n, C, H, W) -> (n, n_aus) in [0, 1] scale."""

    def __init__(self, in_channels: int, width: int, n_aus: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for w in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers)
        # 4x4 spatial pooling keeps coarse layout (brows vs mouth) that a global average would erase.
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.head = nn.Linear(c * 16, n_aus)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pool(self.features(x)), 1))


class AUEstimator:
    """AU intensities from face crops: fit on reference frames, then measure any frames.

    Parameters
    ----------
    channels : ``"rgbd"`` | ``"rgb"``
        Input channels of the crops the estimator reads (RGB + depth, or RGB only).
    width : int
        Channels of the first conv layer (then 2x and 4x).
    normalize : ``"median"`` | ``"none"``
        Subtract each group's median frame (see the module docstring), or feed frames as they are.
    seed : int
        Seed of the weights, the batches and the augmentation.
    """

    def __init__(self, *, channels: str = "rgbd", width: int = 16, normalize: str = "median", seed: int = 0) -> None:
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}.")
        self.normalize = normalize
        if channels not in CHANNELS:
            raise ValueError(f"channels must be one of {sorted(CHANNELS)}, got {channels!r}.")
        if width < 1:
            raise ValueError(f"width must be at least 1, got {width}.")
        self.channels, self.width, self.seed = channels, int(width), int(seed)
        torch.manual_seed(self.seed)
        n_in = 4 if channels == "rgbd" else 3
        self.model = _AURegressor(n_in, self.width, len(AU_IDS))
        self.n_fit_frames = 0

    def _inputs(self, rgbd: np.ndarray, groups: np.ndarray | None) -> torch.Tensor:
        rgbd = np.asarray(rgbd, dtype=np.float32)
        if rgbd.ndim != 4 or rgbd.shape[1] != 4:
            raise ValueError(f"Frames must have shape (n_frames, 4, height, width) (RGB-D in [-1, 1]), got "
                             f"{rgbd.shape}.")
        if self.normalize == "median":
            rgbd = subtract_group_median(rgbd, groups)
        return torch.from_numpy(np.ascontiguousarray(rgbd[:, CHANNELS[self.channels]]))

    def fit(self, rgbd: np.ndarray, aus: np.ndarray, *, groups: np.ndarray | None = None, steps: int = 600,
            batch_size: int = 32, lr: float = 1e-3, augment_shift_px: int = 2,
            augment_gain: float = 0.1) -> AUEstimator:
        """Train on frames with known AUs (mean squared error on intensities / 5).

        Parameters
        ----------
        rgbd : array of float32, shape (n_frames, 4, H, W)
            Face crops in [-1, 1].
        aus : array of float, shape (n_frames, 17)
            Their true AU intensities (0-5), in :data:`acquisition.annotate.action_units.AU_IDS` order.
        groups : array, shape (n_frames,) | None
            Recording of each frame (e.g. its session file), for the median normalization; None: one group.
        steps : int
            Adam steps.
        batch_size : int
            Frames per step.
        lr : float
            Adam learning rate.
        augment_shift_px : int
            Largest random translation of a batch, in pixels (circular shift).
        augment_gain : float
            Random per-frame brightness gain drawn from ``[1 - gain/2, 1 + gain/2]``.

        Returns
        -------
        self : AUEstimator
        """
        x = self._inputs(rgbd, groups)
        y = torch.from_numpy(np.asarray(aus, dtype=np.float32) / MAX_INTENSITY)
        if y.shape != (len(x), len(AU_IDS)):
            raise ValueError(f"aus must have shape ({len(x)}, {len(AU_IDS)}) to match the frames, got "
                             f"{tuple(y.shape)}.")
        if len(x) < 2:
            raise ValueError(f"At least 2 frames are needed to train the AU estimator, got {len(x)}.")
        gen = torch.Generator().manual_seed(self.seed)
        opt = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.model.train()
        for _ in range(steps):
            idx = torch.randint(len(x), (min(batch_size, len(x)),), generator=gen)
            batch = x[idx]
            if augment_shift_px:
                dy, dx = (torch.randint(-augment_shift_px, augment_shift_px + 1, (2,), generator=gen)).tolist()
                batch = torch.roll(batch, (dy, dx), (2, 3))
            if augment_gain:
                gain = 1.0 + augment_gain * (torch.rand(len(batch), 1, 1, 1, generator=gen) - 0.5)
                batch = batch * gain
            loss = torch.mean((self.model(batch) - y[idx]) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
        self.model.eval()
        self.n_fit_frames = len(x)
        return self

    @torch.no_grad()
    def predict(self, rgbd: np.ndarray, *, groups: np.ndarray | None = None, batch_size: int = 256) -> np.ndarray:
        """Measured AU intensities of frames.

        Parameters
        ----------
        rgbd : array of float32, shape (n_frames, 4, H, W)
            Face crops in [-1, 1], of the size the estimator was trained on.
        groups : array, shape (n_frames,) | None
            Sequence of each frame, for the median normalization; None: one group.
        batch_size : int
            Frames per forward pass (memory only; results do not depend on it in eval mode).

        Returns
        -------
        aus : array of float32, shape (n_frames, 17)
            Intensities on the FACS 0-5 scale, clipped to it.
        """
        if self.n_fit_frames == 0:
            raise RuntimeError("The AU estimator is not trained; call fit(rgbd, aus) first.")
        self.model.eval()
        x = self._inputs(rgbd, groups)
        out = [self.model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
        pred = torch.cat(out).numpy() if out else np.zeros((0, len(AU_IDS)), np.float32)
        return np.clip(pred * MAX_INTENSITY, 0.0, MAX_INTENSITY).astype(np.float32)
