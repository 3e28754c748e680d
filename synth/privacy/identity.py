"""The disclosed identity encoder: a small CNN trained on the audit's training frames to tell subjects apart.

The embedding-space half of the audit needs a space where "looks like the same person" is
close and "another person" is far, built offline (no downloaded face-recognition weights). We
train one per audit, on the training sessions' face frames labelled by subject, with a cosine
softmax (NormFace: class weights and embeddings on the unit sphere, so a frame's embedding
lands near its subject's direction) and small random shifts so it keys on the face rather than
on exact pixel positions. Its architecture, steps and held-back accuracy are reported with the
audit, so a reader can judge how much to trust the embedding figures. The trained subject
classifier is kept with the encoder (:func:`subject_probabilities`): the audit's
re-identification attack asks it "which training subject is this?".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from acquisition import logger


class IdentityEncoder(nn.Module):
    """Frames ``(n, channels, H, W)`` in [-1, 1] -> unit-norm embeddings ``(n, embed_dim)``.

    Parameters
    ----------
    in_channels : int
        4 for RGB + depth.
    width : int
        Channels of the first conv layer (doubled twice). Group norm, not batch norm, so a
        briefly trained encoder behaves the same in training and evaluation.
    embed_dim : int
        Size of the embedding.
    """

    def __init__(self, in_channels: int = 4, width: int = 16, embed_dim: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for out in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.GroupNorm(math.gcd(4, out), out), nn.ReLU()]
            channels = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.project = nn.Linear(channels, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape (n, embed_dim), each row of unit length."""
        return F.normalize(self.project(self.features(x)), dim=1)

    def set_subject_head(self, subjects: list[str], weights: torch.Tensor, logit_scale: float) -> None:
        """Keep the trained subject classifier: one unit direction per subject and the softmax temperature.

        The re-identification attack of the audit (:mod:`synth.privacy.identity_privacy`) asks this
        head "which training subject is this?", so it is kept with the encoder rather than dropped
        after training.

        Parameters
        ----------
        subjects : list of str
            Subject of each row of ``weights``.
        weights : Tensor, shape (n_subjects, embed_dim)
            Class weights; stored normalized to unit length.
        logit_scale : float
            Logits are ``logit_scale * cos(embedding, direction)``.
        """
        if weights.shape != (len(subjects), self.project.out_features):
            raise ValueError(f"weights must have shape {(len(subjects), self.project.out_features)} "
                             f"(n_subjects, embed_dim), got {tuple(weights.shape)}")
        self.subjects = list(subjects)
        self.logit_scale = float(logit_scale)
        self.register_buffer("subject_directions", F.normalize(weights.detach().float(), dim=1))


def _augment(x: torch.Tensor, shift_px: int, gain: float, generator: torch.Generator) -> torch.Tensor:
    if shift_px <= 0:
        return x
    dy, dx = (int(v) for v in torch.randint(-shift_px, shift_px + 1, (2,), generator=generator))
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    return x * (1.0 + gain * (torch.rand((len(x), 1, 1, 1), generator=generator) - 0.5))


def train_identity_encoder(rgbd: np.ndarray, labels: np.ndarray, *, steps: int = 300, batch_size: int = 64,
                           width: int = 16, embed_dim: int = 32, lr: float = 3e-3, augment_shift_px: int = 2,
                           augment_gain: float = 0.1, logit_scale: float = 16.0,
                           validation: np.ndarray | None = None, seed: int = 0,
                           ) -> tuple[IdentityEncoder, dict[str, Any]]:
    """Train an :class:`IdentityEncoder` to classify ``labels`` (subjects) from frames.

    Parameters
    ----------
    rgbd : ndarray of float32, shape (n, channels, H, W)
        Frames in [-1, 1].
    labels : ndarray, shape (n,)
        Subject of each frame (any hashable values); at least two distinct ones.
    steps, batch_size, lr : int, int, float
        Adam optimization.
    width, embed_dim : int
        See :class:`IdentityEncoder`.
    augment_shift_px : int
        Random translation range in pixels (0: no augmentation).
    augment_gain : float
        Random brightness gain range: each frame is scaled by a factor in ``1 +- augment_gain / 2``.
    logit_scale : float
        Cosine-softmax temperature: logits lie in ``[-logit_scale, logit_scale]``.
    validation : ndarray of bool, shape (n,) | None
        Frames held back from training to measure accuracy (e.g. the last part of each session).
    seed : int
        Initialization and batch order.

    Returns
    -------
    encoder : IdentityEncoder
        In eval mode.
    info : dict
        ``architecture``, ``subjects``, ``steps``, ``train_accuracy``, ``validation_accuracy``
        (None without validation frames) and ``final_loss``.
    """
    names, y = np.unique(np.asarray(labels).astype(str), return_inverse=True)
    if len(names) < 2:
        raise ValueError(f"the identity encoder needs frames of at least two subjects, got {list(names)}")
    if len(rgbd) != len(y):
        raise ValueError(f"rgbd has {len(rgbd)} frames but labels has {len(y)} entries")
    held = np.zeros(len(y), bool) if validation is None else np.asarray(validation, bool)
    train_rows = np.flatnonzero(~held)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    encoder = IdentityEncoder(rgbd.shape[1], width, embed_dim)
    class_weights = nn.Parameter(torch.randn(len(names), embed_dim) * 0.1)
    optimizer = torch.optim.Adam([*encoder.parameters(), class_weights], lr=lr)
    x_all = torch.from_numpy(np.ascontiguousarray(rgbd, dtype=np.float32))
    y_all = torch.from_numpy(y.astype(np.int64))
    encoder.train()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        batch = train_rows[torch.randint(len(train_rows), (min(batch_size, len(train_rows)),),
                                         generator=generator).numpy()]
        x = _augment(x_all[batch], augment_shift_px, augment_gain, generator)
        logits = logit_scale * encoder(x) @ F.normalize(class_weights, dim=1).T
        loss = F.cross_entropy(logits, y_all[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    encoder.eval()
    encoder.set_subject_head([str(n) for n in names], class_weights.detach(), logit_scale)
    predicted = subject_probabilities(encoder, embed(encoder, rgbd)).argmax(1)
    correct = predicted == y
    info = {
        "architecture": f"3 strided conv layers ({width}/{2 * width}/{4 * width} ch) + linear to {embed_dim}, "
                        "unit norm; cosine-softmax subject classifier",
        "subjects": [str(n) for n in names],
        "n_frames": int(len(y)),
        "steps": int(steps),
        "final_loss": float(loss.detach()),
        "train_accuracy": float(correct[~held].mean()),
        "validation_accuracy": float(correct[held].mean()) if held.any() else None,
    }
    logger.info("Identity encoder: %d subjects, train accuracy %.3f, validation accuracy %s", len(names),
                info["train_accuracy"], info["validation_accuracy"])
    return encoder, info


def subject_probabilities(encoder: IdentityEncoder, embeddings: np.ndarray) -> np.ndarray:
    """Softmax over the training subjects of the encoder's subject head, for given embeddings.

    Parameters
    ----------
    encoder : IdentityEncoder
        Trained by :func:`train_identity_encoder` (which keeps its subject head).
    embeddings : ndarray of float, shape (n, embed_dim)
        Embeddings (:func:`embed`) or identity centroids; each row is normalized to unit length
        first, as the head compares directions.

    Returns
    -------
    probabilities : ndarray of float64, shape (n, n_subjects)
        Columns in the order of ``encoder.subjects``; rows sum to 1.
    """
    if getattr(encoder, "subject_directions", None) is None:
        raise ValueError("This identity encoder has no subject head; train it with train_identity_encoder.")
    x = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
    with torch.no_grad():
        logits = encoder.logit_scale * F.normalize(x, dim=1) @ encoder.subject_directions.T
        return torch.softmax(logits.double(), dim=1).numpy()


def embed(encoder: IdentityEncoder, rgbd: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Embeddings of frames, shape (n, embed_dim), float32, unit norm."""
    out = []
    encoder.eval()
    with torch.no_grad():
        for i in range(0, len(rgbd), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(rgbd[i:i + batch_size], dtype=np.float32))
            out.append(encoder(x).numpy())
    return np.concatenate(out) if out else np.zeros((0, encoder.project.out_features), np.float32)
