"""Reference points for the pretrained encoders: random init, and supervised from scratch on few labels.

- :func:`random_init_model`: the same encoders as a pretraining run, untrained. Probing its
  frozen features (:func:`fusion.evaluate.probe_report`) says how much of a probe score the
  architecture and the input statistics give for free.
- :func:`train_supervised`: the same encoders trained from scratch, end to end, on a fraction
  (default 10 %) of the labelled training windows: expression classification (cross-entropy)
  plus AU regression (MSE on standardised AUs), one linear head per task shared by all
  modalities, applied to each modality's projection output. :func:`supervised_scores` scores its
  own heads on held-out windows in the probe's format, so the three can share one table.
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
    """Encoders + an expression head and an AU head shared across modalities.

    Parameters
    ----------
    encoders : MultiModalEncoder
        Trained end to end (from random init).
    classes : sequence of str
        Expression classes, index order of the logits.
    n_aus : int
        AU outputs (0: no AU head).
    """

    def __init__(self, encoders: MultiModalEncoder, classes: Sequence[str], n_aus: int) -> None:
        super().__init__()
        self.encoders = encoders
        self.classes = list(classes)
        dim = encoders.config["embed_dim"]
        self.expression = nn.Linear(dim, len(self.classes))
        self.au = nn.Linear(dim, n_aus) if n_aus else None
        self.register_buffer("au_mean", torch.zeros(n_aus))
        self.register_buffer("au_std", torch.ones(n_aus))

    def features(self, batch: dict) -> dict[str, torch.Tensor]:
        """Unnormalised projection outputs per modality (the mean over pair heads), each (B, embed_dim)."""
        return {m: torch.stack(list(enc.projections(batch[m]).values())).mean(0)
                for m, enc in self.encoders.encoders.items()}

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-modality outputs: expression logits (M, B, n_classes), standardised AUs (M, B, n_aus) or None."""
        f = torch.stack(list(self.features(batch).values()))
        return self.expression(f), (self.au(f) if self.au is not None else None)


def train_supervised(config: PretrainConfig, dataset: SessionWindows, *, label_fraction: float = 0.1,
                     steps: int = 300, batch_size: int = 32, lr: float = 3e-3, seed: int = 0) -> SupervisedModel:
    """Train the config's encoders from scratch on ``label_fraction`` of the labelled windows of ``dataset``.

    Parameters
    ----------
    config : PretrainConfig
        Encoders and their sizes (the optimiser settings here are the function's own).
    dataset : SessionWindows
        Training windows; those with an expression label (a markers stream) are the labelled pool.
    label_fraction : float
        Fraction of the labelled pool used (seeded random choice, at least 2 windows).
    steps, batch_size, lr, seed : training settings (AdamW, cosine decay).

    Returns
    -------
    model : SupervisedModel, in eval mode.
    """
    labels = dataset.labels()
    pool = np.flatnonzero(labels["expression"].astype(str) != UNKNOWN)
    if len(pool) < 2:
        raise ValueError("Supervised baseline: no expression labels in the training sessions (no Markers stream).")
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
    logger.info("Supervised baseline: %d labelled windows (%.0f %% of %d), %d classes, %d steps", len(chosen),
                100 * label_fraction, len(pool), len(classes), steps)
    params = list(model.parameters())
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randperm(len(items), generator=generator)[:batch_size].tolist()
        batch = default_collate([items[i] for i in idx])
        logits, au_pred = model(batch)
        avail = torch.stack([batch["available"][m] for m in model.encoders.modalities]).float()   # (M, B)
        # class-balanced like the linear probe (both are scored by UAR)
        ce = nn.functional.cross_entropy(logits.flatten(0, 1), target[idx].repeat(len(avail)), weight=class_weight,
                                         reduction="none")
        loss = (ce * avail.flatten()).sum() / avail.sum().clamp_min(1)
        if au_pred is not None and au_ok[idx].any():
            z = (batch["au"] - model.au_mean) / model.au_std
            ok = avail * au_ok[idx].float()[None]
            mse = ((au_pred - torch.nan_to_num(z)[None]) ** 2).mean(2)
            loss = loss + (mse * ok).sum() / ok.sum().clamp_min(1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        optimizer.step()
        scheduler.step()
    return model.eval()


@torch.no_grad()
def supervised_scores(model: SupervisedModel, dataset: SessionWindows, *, batch_size: int = 64) -> dict:
    """Score a :class:`SupervisedModel` on held-out windows, per modality and ``ALL``.

    ``ALL`` averages the available modalities' logits (and AU predictions). A window without the
    modality counts as wrong / gets the training AU mean, as in :func:`fusion.evaluate.probe_scores`.

    Returns
    -------
    scores : dict
        ``MODALITY`` -> ``{"au_r2", "expr_acc", "expr_uar", "expr_uf1"}``.
    """
    mods = model.encoders.modalities
    logits, aus, avail, truth, au_true = [], [], [], [], []
    for batch in DataLoader(dataset, batch_size=batch_size):
        lg, au = model(batch)
        logits.append(lg)
        aus.append(au if au is not None else torch.zeros(*lg.shape[:2], 0))
        avail.append(torch.stack([batch["available"][m] for m in mods]))
        truth += list(batch["expression"])
        au_true.append(batch["au"])
    lg, au_pred, ok = torch.cat(logits, 1), torch.cat(aus, 1), torch.cat(avail, 1)
    au_pred = au_pred * model.au_std + model.au_mean
    truth_arr, y = np.asarray(truth, dtype=str), torch.cat(au_true).numpy()
    labelled = truth_arr != UNKNOWN
    has_au = np.isfinite(y).all(1) if y.ndim == 2 and y.shape[1] else np.zeros(len(y), bool)
    out = {}
    groups = {m.upper(): [i] for i, m in enumerate(mods)}
    groups["ALL"] = list(range(len(mods)))
    for name, rows in groups.items():
        w = ok[rows].float()                                            # (k, N)
        any_ok = (w.sum(0) > 0).numpy()
        mean_logits = (lg[rows] * w[..., None]).sum(0) / w.sum(0).clamp_min(1)[:, None]
        pred = np.asarray(model.classes, dtype=object)[mean_logits.argmax(1).numpy()]
        pred[~any_ok] = "<missing>"
        scores = {"au_r2": float("nan")}
        if has_au.sum() >= 2 and au_pred.shape[-1]:
            p = ((au_pred[rows] * w[..., None]).sum(0) / w.sum(0).clamp_min(1)[:, None]).numpy()
            p[~any_ok] = model.au_mean.numpy()
            scores["au_r2"] = r2_score(y[has_au], p[has_au])
        if labelled.any():
            scores.update({f"expr_{k}": v for k, v in
                           classification_scores(truth_arr[labelled], pred[labelled].astype(str)).items()})
        else:
            scores.update(expr_acc=float("nan"), expr_uar=float("nan"), expr_uf1=float("nan"))
        out[name] = scores
    return out

