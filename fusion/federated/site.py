"""A site's side of federated pretraining: its sessions, and local steps from the global weights.

The site builds the same :class:`~fusion.model.MultiModalEncoder` and contrastive loss as
``emosync pretrain`` (:func:`fusion.train.build_model`, :func:`fusion.train.training_step`), loads the
received global state, runs ``steps`` AdamW steps on its own windows and returns the new state.
The optimizer starts fresh every round (as in FedAvg); the learning rate of the round comes from
the server, which follows the pretraining config's cosine schedule over the rounds.

A site whose sessions lack a modality of the config cannot train the shared model (an encoder would
never see data, and its input sizes are unknown): :func:`load_site` raises an error naming the site,
and the server goes on with the others.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import default_collate

from acquisition import logger

from ..augment import augment_batch, step_generator
from ..config import PretrainConfig
from ..data import SessionWindows
from ..losses import MultiViewContrastiveLoss
from ..model import MultiModalEncoder
from ..train import CachedWindows, build_model, make_dataset, training_step
from .sessions import resolve_sessions  # noqa: F401  (re-exported: the site's session list)
from .weights import State, load_module_state, module_state


@dataclass
class SiteUpdate:
    """What a site sends back after a round: its new state, the windows it saw and its mean loss."""

    state: State
    n_windows: int
    loss: float


def load_site(sessions: Sequence[str | os.PathLike], config: PretrainConfig, *, site: str) -> SessionWindows:
    """The site's windows, checked to have every modality of the config.

    Raises
    ------
    ValueError
        Naming the site and the missing modalities, or wrapping a session error with the site's name.
    """
    try:
        dataset = make_dataset(sessions, config)
    except (ValueError, KeyError, OSError) as err:
        raise ValueError(f"Site {site!r} cannot read its sessions: {err}") from None
    missing = [m for m in config.data.modalities if m not in dataset.modalities]
    if missing:
        raise ValueError(f"Site {site!r}: none of its {len(dataset.fnames)} session(s) has {missing}, which the "
                         f"federated model needs (data.modalities {config.data.modalities}). Record or import "
                         "those streams, or leave this site out of the federation.")
    if len(dataset) < 2:
        raise ValueError(f"Site {site!r}: only {len(dataset)} window(s) of {config.data.window_s} s in its sessions; "
                         "contrastive training needs at least 2.")
    return dataset


def make_loss(config: PretrainConfig, modalities: Sequence[str]) -> MultiViewContrastiveLoss:
    """The contrastive loss of ``emosync pretrain`` for these modalities."""
    c = config.loss
    return MultiViewContrastiveLoss(list(modalities), kind=c.kind, temperature=c.temperature,
                                    time_tolerance_s=c.time_tolerance_s, max_logit_scale=c.max_logit_scale)


def build_site_model(config: PretrainConfig, dataset: SessionWindows) -> tuple[MultiModalEncoder,
                                                                               MultiViewContrastiveLoss]:
    """Model and loss as ``emosync pretrain`` builds them (seeded: the same initial weights everywhere)."""
    torch.manual_seed(config.seed)
    return build_model(config, dataset), make_loss(config, dataset.modalities)


def train_site(dataset: SessionWindows, config: PretrainConfig, global_state: Mapping[str, np.ndarray], *,
               steps: int, lr: float, proximal_mu: float = 0.0, seed: int = 0) -> SiteUpdate:
    """Run ``steps`` local steps from ``global_state``; return the new state.

    Parameters
    ----------
    dataset : SessionWindows
        The site's windows (:func:`load_site`).
    config : PretrainConfig
        The run's pretraining config (batch size, augmentation, gradient clipping).
    global_state : mapping of str to array
        The received global model (:func:`fusion.federated.weights.module_state` layout).
    steps : int
        Optimizer steps.
    lr : float
        Learning rate of this round.
    proximal_mu : float
        FedProx (Li et al. 2020): adds ``(mu / 2) * ||w - w_global||^2`` to the loss; 0 is FedAvg.
    seed : int
        Seeds this round's batches and augmentations (the server passes run seed, round and site).
    """
    if config.threads:
        torch.set_num_threads(config.threads)
    model, loss_fn = build_site_model(config, dataset)
    load_module_state(model, loss_fn, global_state)
    params = list(model.parameters()) + list(loss_fn.parameters())
    anchor = [p.detach().clone() for p in params]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=config.optim.weight_decay)
    data = CachedWindows(dataset)
    batch_size = min(config.optim.batch_size, len(dataset))
    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    losses = []
    model.train()
    for step in range(steps):
        if len(order) < batch_size:  # a fresh seeded permutation per pass; the partial tail is dropped
            order = torch.randperm(len(dataset), generator=generator).tolist()
        idx, order = order[:batch_size], order[batch_size:]
        batch = default_collate([data[i] for i in idx])
        if config.augment.enabled:
            batch = augment_batch(batch, config.augment, config.data.window_s, step_generator(seed, step))
        loss, _ = training_step(model, loss_fn, batch)
        if proximal_mu > 0:
            loss = loss + proximal_mu / 2 * sum(((p - a) ** 2).sum() for p, a in zip(params, anchor))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.optim.grad_clip)
        optimizer.step()
        losses.append(float(loss.detach()))
    logger.info("Site trained %d step(s) on %d windows, mean loss %.4f", steps, len(dataset), np.mean(losses))
    return SiteUpdate(module_state(model, loss_fn), len(dataset), float(np.mean(losses)))
