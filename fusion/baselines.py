"""Reference points for the pretrained encoders: random init, and supervised from scratch on few labels.

- :func:`random_init_model`: the same encoders as a pretraining run, untrained. Probing its
  frozen features (:func:`fusion.evaluate.probe_report`) says how much of a probe score the
  architecture and the input statistics give for free.
- :func:`train_supervised`: the same encoders trained from scratch, end to end, on a fraction
  (default 10 %) of the labelled training windows, with what the probes on pretrained
  embeddings get and nothing less:

  * the same fusion: each modality's embedding (the one the probes read) is standardised with
    running training statistics, a missing modality's block is zero (its training mean, as
    :func:`fusion.evaluate.fuse` fills it for the probe), and a linear head reads the
    concatenation of the blocks (``ALL``) or one block (per-modality rows);
  * the same budget as pretraining: ``config.optim`` (steps, batch size, AdamW learning rate and
    weight decay, warm-up and cosine schedule, gradient clipping) and ``config.augment``, exactly
    what :func:`fusion.train.pretrain` runs with that config.

  The loss is expression cross-entropy (class-balanced, as the probe) plus MSE on standardised AUs,
  for the fused head plus the mean over the per-modality heads. :func:`supervised_scores` scores the
  heads on held-out windows in the probe's format, so the three can share one table.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, default_collate

from acquisition import logger

from .config import PretrainConfig
from .data import UNKNOWN, SessionWindows
from .evaluate import balanced_class_weights, classification_scores, r2_score
from .model import MultiModalEncoder


def random_init_model(config: PretrainConfig, dataset: SessionWindows, *, seed: int = 0) -> MultiModalEncoder:
    """The encoders a pretraining run with ``config`` would start from (seeded), in eval mode."""
    from .train import build_model

    torch.manual_seed(seed)
    return build_model(config, dataset).eval()


class SupervisedModel(nn.Module):
    """Encoders + linear heads on the probes' features: one per modality and one on their concatenation (``ALL``).

    Parameters
    ----------
    encoders : MultiModalEncoder
        Trained end to end (from random init).
    classes : sequence of str
        Expression classes, index order of the logits.
    n_aus : int
        AU outputs (0: no AU heads).
    momentum : float
        Update rate of the running feature mean and variance (the standardisation used at evaluation).
    """

    def __init__(self, encoders: MultiModalEncoder, classes: Sequence[str], n_aus: int, *,
                 momentum: float = 0.1) -> None:
        super().__init__()
        self.encoders = encoders
        self.classes = list(classes)
        self.momentum = momentum
        mods, dim = encoders.modalities, encoders.config["embed_dim"]
        sizes = {**{m.upper(): dim for m in mods}, "ALL": dim * len(mods)}
        self.expression = nn.ModuleDict({g: nn.Linear(n, len(self.classes)) for g, n in sizes.items()})
        self.au = nn.ModuleDict({g: nn.Linear(n, n_aus) for g, n in sizes.items()}) if n_aus else None
        self.register_buffer("feature_mean", torch.zeros(len(mods), dim))
        self.register_buffer("feature_var", torch.ones(len(mods), dim))
        self.register_buffer("au_mean", torch.zeros(n_aus))
        self.register_buffer("au_std", torch.ones(n_aus))
        self.steps_trained = 0

    @property
    def groups(self) -> dict[str, list[int]]:
        """Head name -> indices of the modalities it reads (``RGB`` ... one each, ``ALL`` every one)."""
        mods = self.encoders.modalities
        return {**{m.upper(): [i] for i, m in enumerate(mods)}, "ALL": list(range(len(mods)))}

    def features(self, batch: dict) -> torch.Tensor:
        """Standardised embeddings, (M, B, embed_dim); a modality missing from a window is zero (its mean).

        In training mode the statistics are those of the batch's available rows and update the running
        ones; in eval mode the running ones are used, as the probe standardises with its training rows.
        """
        z = self.encoders({m: batch[m] for m in self.encoders.modalities})
        blocks = []
        for i, m in enumerate(self.encoders.modalities):
            x, ok = z[m], batch["available"][m].bool()
            mean, var = self.feature_mean[i], self.feature_var[i]
            if self.training and ok.sum() >= 2:
                mean, var = x[ok].mean(0), x[ok].var(0, unbiased=False)
                with torch.no_grad():
                    self.feature_mean[i].lerp_(mean.detach(), self.momentum)
                    self.feature_var[i].lerp_(var.detach(), self.momentum)
            x = (x - mean) / torch.sqrt(var + 1e-5)
            blocks.append(torch.where(ok[:, None], x, torch.zeros_like(x)))
        return torch.stack(blocks)

    def forward(self, batch: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        """Head name -> (expression logits (B, n_classes), standardised AUs (B, n_aus) or None)."""
        f = self.features(batch)
        out = {}
        for name, rows in self.groups.items():
            x = torch.cat(list(f[rows]), dim=1)
            out[name] = (self.expression[name](x), self.au[name](x) if self.au is not None else None)
        return out


def train_supervised(config: PretrainConfig, dataset: SessionWindows, *, label_fraction: float = 0.1,
                     seed: int = 0) -> SupervisedModel:
    """Train the config's encoders from scratch on ``label_fraction`` of the labelled windows of ``dataset``.

    The budget is pretraining's with the same config: ``config.optim.steps`` steps of
    ``config.optim.batch_size`` windows (fewer if fewer are labelled), the same optimiser, schedule,
    gradient clipping and ``config.augment`` augmentations.

    Parameters
    ----------
    config : PretrainConfig
        Encoders, their sizes and the training budget.
    dataset : SessionWindows
        Training windows; those with an expression label (a markers stream) are the labelled pool.
    label_fraction : float
        Fraction of the labelled pool used (seeded random choice, at least 2 windows; the subset
        :func:`fusion.evaluate.probe_scores` draws with the same seed from the same pool).
    seed : int
        Initialisation, label subset, batch order and augmentations.

    Returns
    -------
    model : SupervisedModel, in eval mode (``model.steps_trained`` says how many steps it took).
    """
    from .augment import augment_batch, step_generator
    from .train import _lr_lambda

    labels = dataset.labels()
    pool = np.flatnonzero(labels["expression"].astype(str) != UNKNOWN)
    if len(pool) < 2:
        raise ValueError("Supervised baseline: no expression labels in the training sessions (no Markers stream); "
                         "train it on sessions recorded with expression markers.")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(pool, max(2, int(round(label_fraction * len(pool)))), replace=False))
    classes = sorted(set(labels["expression"][chosen].astype(str)))
    model = SupervisedModel(random_init_model(config, dataset, seed=seed), classes, dataset.n_aus)
    # The chosen windows are few: read them once, train from RAM.
    items = [dataset[int(i)] for i in chosen]
    au = torch.stack([it["au"] for it in items]) if dataset.n_aus else torch.zeros(len(items), 0)
    au_ok = torch.isfinite(au).all(1)
    if dataset.n_aus and au_ok.sum() >= 2:
        model.au_mean.copy_(au[au_ok].mean(0))
        model.au_std.copy_(au[au_ok].std(0).clamp_min(1e-3))  # constant AUs must not blow up the loss
    target = torch.as_tensor([classes.index(str(it["expression"])) for it in items])
    class_weight = balanced_class_weights(target, len(classes))
    steps, batch_size = config.optim.steps, min(config.optim.batch_size, len(items))
    logger.info("Supervised baseline: %d labelled windows (%.0f %% of %d), %d classes, %d steps of %d (pretraining's "
                "budget)", len(chosen), 100 * label_fraction, len(pool), len(classes), steps, batch_size)
    params = list(model.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config))
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        idx = torch.randperm(len(items), generator=generator)[:batch_size].tolist()
        batch = default_collate([items[i] for i in idx])
        if config.augment.enabled:
            batch = augment_batch(batch, config.augment, config.data.window_s, step_generator(seed, step))
        avail = torch.stack([batch["available"][m] for m in model.encoders.modalities]).float()   # (M, B)
        losses = {}
        for name, (logits, au_pred) in model(batch).items():
            ok = avail[model.groups[name]].amax(0)   # the head sees at least one of its modalities
            # class-balanced like the linear probe (both are scored by UAR)
            ce = nn.functional.cross_entropy(logits, target[idx], weight=class_weight, reduction="none")
            loss = (ce * ok).sum() / ok.sum().clamp_min(1)
            if au_pred is not None and au_ok[idx].any():
                z = torch.nan_to_num((batch["au"] - model.au_mean) / model.au_std)
                w = ok * au_ok[idx].float()
                loss = loss + (((au_pred - z) ** 2).mean(1) * w).sum() / w.sum().clamp_min(1)
            losses[name] = loss
        fused = losses.pop("ALL")
        loss = fused + torch.stack(list(losses.values())).mean() if losses else fused
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.optim.grad_clip)
        optimizer.step()
        scheduler.step()
        model.steps_trained += 1
    return model.eval()


@torch.no_grad()
def supervised_scores(model: SupervisedModel, dataset: SessionWindows, *, batch_size: int = 64) -> dict:
    """Score a :class:`SupervisedModel`'s heads on held-out windows, per modality and ``ALL``.

    A window without any of a head's modalities counts as wrong / gets the training AU mean, as in
    :func:`fusion.evaluate.probe_scores`; ``ALL`` reads the modalities that are there (a missing
    block is its training mean).

    Returns
    -------
    scores : dict
        ``MODALITY`` / ``ALL`` -> ``{"au_r2", "expr_acc", "expr_uar", "expr_uf1"}``.
    """
    mods = model.encoders.modalities
    missing = [m for m in mods if m not in dataset.modalities]
    if missing:
        raise ValueError(f"The supervised model has encoders for {mods} but the sessions have no {missing}; score it "
                         "on sessions that have every modality for at least some windows.")
    logits: dict[str, list] = {}
    aus: dict[str, list] = {}
    avail, truth, au_true = [], [], []
    for batch in DataLoader(dataset, batch_size=batch_size):
        for name, (lg, au) in model(batch).items():
            logits.setdefault(name, []).append(lg)
            aus.setdefault(name, []).append(au if au is not None else torch.zeros(len(lg), 0))
        avail.append(torch.stack([batch["available"][m] for m in mods]))
        truth += list(batch["expression"])
        au_true.append(batch["au"])
    ok = torch.cat(avail, 1).numpy()
    truth_arr, y = np.asarray(truth, dtype=str), torch.cat(au_true).numpy()
    labelled = truth_arr != UNKNOWN
    has_au = np.isfinite(y).all(1) if y.ndim == 2 and y.shape[1] else np.zeros(len(y), bool)
    out = {}
    for name, rows in model.groups.items():
        any_ok = ok[rows].any(0)
        pred = np.asarray(model.classes, dtype=object)[torch.cat(logits[name]).argmax(1).numpy()]
        pred[~any_ok] = "<missing>"
        scores = {"au_r2": float("nan")}
        au_pred = (torch.cat(aus[name]) * model.au_std + model.au_mean).numpy()
        if has_au.sum() >= 2 and au_pred.shape[-1]:
            au_pred[~any_ok] = model.au_mean.numpy()
            scores["au_r2"] = r2_score(y[has_au], au_pred[has_au])
        if labelled.any():
            scores.update({f"expr_{k}": v for k, v in
                           classification_scores(truth_arr[labelled], pred[labelled].astype(str)).items()})
        else:
            scores.update(expr_acc=float("nan"), expr_uar=float("nan"), expr_uf1=float("nan"))
        out[name] = scores
    return out
