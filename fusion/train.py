"""Multi-view contrastive pretraining loop: plain PyTorch, AdamW, warm-up + cosine, exact resume.

:func:`pretrain` is the entry point; its command line is ``emosync pretrain SESSION.h5 [...] --config tiny
--out runs/r1 [--resume] [--amp] [--set key=value ...]`` (:mod:`fusion.cli`).

Distributed: ``torchrun --nproc-per-node N -m emosync pretrain ...`` runs the same training under DDP
(gloo on CPU, nccl on GPUs). ``optim.batch_size`` is the global batch: every rank takes its
contiguous ``1/N`` slice of the same seeded batch, so the data order (and resume) does not depend on
N. Negatives are gathered across ranks (see :mod:`fusion.losses`). Only rank 0 writes files, logs
and shows progress; every rank reads the checkpoint on ``--resume`` (one machine or a shared folder).

The output folder holds ``config.yaml`` (the validated config), ``checkpoint.pt`` (model, loss,
optimizer, scheduler, RNG states and step; written every ``checkpoint_every`` steps and at the end),
``model/`` (:meth:`MultiModalEncoder.save_pretrained`), ``log.csv`` (loss per step) and ``loss.png``.
The data order is a seeded permutation per epoch, so a resumed run sees exactly the batches an
uninterrupted run would.
"""

from __future__ import annotations

import contextlib
import csv
import inspect
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.distributed as torch_dist
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, default_collate

from acquisition import logger

from .augment import augment_batch, step_generator
from .config import AugmentConfig, PretrainConfig
from .data import SessionWindows
from .distributed import DistInfo, all_mean, cleanup, init_from_env
from .encoders import ENCODERS
from .losses import MultiViewContrastiveLoss
from .model import MultiModalEncoder

CHECKPOINT = "checkpoint.pt"


class CachedWindows(Dataset):
    """Keep each item of a dataset in RAM after its first read (single-process loading only)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset, self._cache = dataset, {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        if i not in self._cache:
            self._cache[i] = self.dataset[i]
        return self._cache[i]


def make_dataset(sessions: Sequence[str | os.PathLike], config: PretrainConfig, *,
                 stride_s: float | None = None) -> SessionWindows:
    """The windows a config asks for (``stride_s`` overrides the config's, e.g. for evaluation)."""
    d = config.data
    return SessionWindows(sessions, window_s=d.window_s, stride_s=stride_s or d.stride_s, modalities=d.modalities,
                          clip_frames=d.clip_frames, image_size=d.image_size, depth_scale_mm=d.depth_scale_mm,
                          lead_s=d.lead_s, crop=d.crop, foreground_mm=d.foreground_mm, crop_margin=d.crop_margin,
                          depth_clip=d.depth_clip, video_norm=d.video_norm)


def build_model(config: PretrainConfig, dataset: SessionWindows) -> MultiModalEncoder:
    """Encoders for the dataset's modalities, input sizes taken from the data."""
    specs = {}
    for m in dataset.modalities:
        if m not in config.model.encoders:
            raise ValueError(f"No encoder configured for modality {m!r}; add model.encoders.{m} to the config.")
        enc = config.model.encoders[m]
        if m in ("rgb", "depth"):
            frames, channels, size = dataset.shape(m)[:3]
            shape_kwargs = {"in_channels": channels}
            # Backbones with fixed token grids (videomae) also need the clip geometry; the others adapt to it.
            accepted = inspect.signature(ENCODERS[enc.name]).parameters if enc.name in ENCODERS else {}
            shape_kwargs.update({k: v for k, v in (("image_size", size), ("clip_frames", frames)) if k in accepted})
        else:
            shape_kwargs = {"n_chans": dataset.n_chans[m], "n_times": dataset.n_times[m]}
        specs[m] = {"encoder": enc.name, "encoder_kwargs": {**shape_kwargs, **enc.kwargs}}
    return MultiModalEncoder(specs, hidden_dim=config.model.hidden_dim, embed_dim=config.model.embed_dim,
                             pair_heads=config.model.pair_heads)


def _lr_lambda(config: PretrainConfig):
    o = config.optim

    def factor(step: int) -> float:
        if step < o.warmup_steps:
            return (step + 1) / o.warmup_steps
        progress = (step - o.warmup_steps) / max(1, o.steps - o.warmup_steps)
        return o.decay_factor(min(progress, 1.0))
    return factor


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def _batches(n: int, batch_size: int, seed: int, step: int):
    """Index lists from ``step`` on: a seeded permutation per epoch, last partial batch dropped."""
    per_epoch = n // batch_size
    epoch, offset = divmod(step, per_epoch)
    while True:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()
        for b in range(offset, per_epoch):
            yield perm[b * batch_size:(b + 1) * batch_size]
        epoch, offset = epoch + 1, 0


def pretrain(sessions: Sequence[str | os.PathLike], config: PretrainConfig, out: str | os.PathLike, *,
             resume: bool = False, progress: bool = True, amp: bool | None = None) -> Path:
    """Pretrain encoders on ``sessions``; returns the output folder (see the module docstring).

    ``amp``: bf16 autocast of the encoders on CUDA (a no-op on CPU); None uses ``optim.amp``.
    Under torchrun the process group is set up (and torn down) here.
    """
    info = init_from_env()
    try:
        return _pretrain(sessions, config, Path(out), resume=resume, progress=progress, amp=amp, info=info)
    finally:
        cleanup(info)


def _pretrain(sessions: Sequence[str | os.PathLike], config: PretrainConfig, out: Path, *, resume: bool,
              progress: bool, amp: bool | None, info: DistInfo) -> Path:
    ckpt_path = out / CHECKPOINT
    # every rank checks before DDP's first collective, so rank 0 cannot have written a checkpoint yet
    if resume and not ckpt_path.is_file():
        raise FileNotFoundError(f"--resume: no {CHECKPOINT} in {out}; start without --resume.")
    if not resume and ckpt_path.is_file():
        raise FileExistsError(f"{out} already holds a run ({CHECKPOINT}); pass --resume to continue it or choose "
                              "another --out.")
    if config.threads:
        torch.set_num_threads(config.threads)
    dataset = make_dataset(sessions, config)
    if len(dataset.modalities) < 2:
        raise ValueError(f"Contrastive pretraining needs two modalities; the sessions have {dataset.modalities}.")
    batch_size = min(config.optim.batch_size, len(dataset))
    batch_size -= batch_size % info.world_size  # equal per-rank shapes: all_gather needs them
    if batch_size < max(2, info.world_size):
        raise ValueError(f"Only {len(dataset)} window(s) of {config.data.window_s} s for {info.world_size} rank(s): "
                         "sessions too short to train (each rank needs at least one window per batch).")
    if config.optim.batch_size % info.world_size and info.is_main:
        logger.warning("optim.batch_size %d is not a multiple of %d ranks: using a global batch of %d.",
                       config.optim.batch_size, info.world_size, batch_size)
    use_amp = config.optim.amp if amp is None else amp
    if use_amp and info.device.type != "cuda" and info.is_main:
        logger.info("amp requested but training on %s: bf16 autocast is CUDA-only, running in float32.",
                    info.device)
    use_amp = use_amp and info.device.type == "cuda"
    torch.manual_seed(config.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    model = build_model(config, dataset)
    loss_fn = MultiViewContrastiveLoss(dataset.modalities, kind=config.loss.kind, temperature=config.loss.temperature,
                                       time_tolerance_s=config.loss.time_tolerance_s,
                                       max_logit_scale=config.loss.max_logit_scale)
    params = list(model.parameters()) + list(loss_fn.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config))
    step = 0
    if resume:
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if state["model_config"] != model.config:
            raise ValueError(f"The checkpoint in {out} was trained with model config {state['model_config']}, "
                             f"this run builds {model.config}; the config or the sessions do not match.")
        model.load_state_dict(state["model"])
        loss_fn.load_state_dict(state["loss"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        per_rank = state.get("rng_per_rank")
        same_world = per_rank is not None and len(per_rank) == info.world_size
        _set_rng_state(per_rank[info.rank] if same_world else state["rng"])
        step = int(state["step"])
        if info.is_main:
            logger.info("Resumed %s at step %d of %d", out, step, config.optim.steps)
    trainee = _Trainee(model, loss_fn, amp=use_amp, augment=config.augment, window_s=config.data.window_s,
                       seed=config.seed, rank=info.rank).to(info.device)
    stepper: nn.Module = trainee
    if info.distributed:
        if info.device.type == "cuda":
            trainee.model = nn.SyncBatchNorm.convert_sync_batchnorm(trainee.model)  # small per-GPU batches
            model = trainee.model
        # find_unused_parameters stays False: every encoder runs every step (placeholder inputs for
        # missing views) and every loss term touches every embedding and the temperature.
        stepper = DistributedDataParallel(trainee, device_ids=[info.local_rank] if info.device.type == "cuda"
                                          else None)
        params = list(stepper.module.parameters())
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    data: Dataset = dataset
    workers = config.data.num_workers
    if config.data.cache:
        data, workers = CachedWindows(dataset), 0  # a cache in worker processes would be lost every epoch
    columns = ["step", "loss", "lr", "samples_per_s"] + [f"{a}-{b}" for a, b in loss_fn.pairs]
    if info.is_main:
        _truncate_log(out / "log.csv", columns, step)
        logger.info("Pretraining on %d windows from %d session(s), modalities %s, batch %d (%d per rank), %d steps",
                    len(dataset), len(dataset.fnames), dataset.modalities, batch_size,
                    batch_size // info.world_size, config.optim.steps)
    bar = _progress(config.optim.steps, step, progress and info.is_main)
    batches = _shard(_batches(len(dataset), batch_size, config.seed, step), info.rank, info.world_size)
    loader = DataLoader(data, batch_sampler=_Take(batches, config.optim.steps - step), num_workers=workers,
                        collate_fn=default_collate, pin_memory=info.device.type == "cuda")
    stepper.train()
    log_ctx = open(out / "log.csv", "a", newline="") if info.is_main else contextlib.nullcontext()
    with log_ctx as log_file:
        log = csv.writer(log_file) if info.is_main else None
        tic = time.perf_counter()
        for batch in loader:
            loss, per_pair = stepper(_to_device(batch, info.device), step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.optim.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            toc = time.perf_counter()
            rate, tic = batch_size / (toc - tic), toc
            if step % config.log_every == 0 or step == config.optim.steps:
                # mean over ranks = the loss of the global batch (see fusion.losses); all ranks join
                stats = all_mean(torch.stack([loss.detach(), *(per_pair[f"{a}-{b}"] for a, b in loss_fn.pairs)]),
                                 info).tolist()
                if log is not None:
                    log.writerow([step, f"{stats[0]:.6f}", f"{scheduler.get_last_lr()[0]:.3e}", f"{rate:.1f}",
                                  *(f"{v:.6f}" for v in stats[1:])])
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", samples_s=f"{rate:.0f}")
            if step % config.checkpoint_every == 0 or step == config.optim.steps:
                if log_file is not None:
                    log_file.flush()
                save_checkpoint(out, model, loss_fn, optimizer, scheduler, step)  # every rank: gathers RNG states
    bar.close()
    if info.is_main:
        plot_log(out / "log.csv", out / "loss.png")
        logger.info("Pretraining done at step %d; model in %s", step, out / "model")
    if info.distributed:
        torch_dist.barrier()  # no rank returns before rank 0 has written the final checkpoint
    return out


class _Trainee(nn.Module):
    """Model + loss as one module, so DDP also averages the loss's parameters (InfoNCE temperature).

    Batches are augmented here (``augment`` config), after the window cache, on the training device.
    """

    def __init__(self, model: MultiModalEncoder, loss_fn: MultiViewContrastiveLoss, amp: bool = False,
                 augment: AugmentConfig | None = None, window_s: float = 1.0, seed: int = 0, rank: int = 0) -> None:
        super().__init__()
        self.model, self.loss_fn, self.amp = model, loss_fn, amp
        self.augment = augment or AugmentConfig(enabled=False)
        self.window_s, self.seed, self.rank = window_s, seed, rank

    def forward(self, batch: dict, step: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.training and self.augment.enabled:
            batch = augment_batch(batch, self.augment, self.window_s, step_generator(self.seed, step, self.rank))
        return training_step(self.model, self.loss_fn, batch, amp=self.amp)


def _shard(batches, rank: int, world_size: int):
    """This rank's contiguous slice of every global index list (rank order = lightly's gather order)."""
    for idx in batches:
        k = len(idx) // world_size
        yield idx[rank * k:(rank + 1) * k]


def _to_device(batch, device: torch.device):
    """Move every tensor of a (nested) batch to ``device``."""
    if device.type == "cpu":
        return batch
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


class _Take:
    """A batch sampler that yields ``n`` index lists from an endless generator."""

    def __init__(self, batches, n: int) -> None:
        self.batches, self.n = batches, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        for _ in range(self.n):
            yield next(self.batches)


def training_step(model: MultiModalEncoder, loss_fn: MultiViewContrastiveLoss, batch: dict, *, amp: bool = False):
    """Embed every modality (missing ones too: placeholder input, loss weight 0) and compute the loss.

    ``amp``: encoders under bf16 autocast (CUDA only); the loss always runs in float32 because
    logits at temperature 0.1 (scale up to 100) lose too much precision in bf16.
    """
    device_type = next(model.parameters()).device.type
    with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=amp and device_type == "cuda"):
        z = model(batch)
    z = {m: v.float() for m, v in z.items()}
    return loss_fn(z, batch["available"], batch["session_index"], batch["time_s"])


def save_checkpoint(out: Path, model, loss_fn, optimizer, scheduler, step: int) -> None:
    """Write ``checkpoint.pt`` atomically and refresh ``model/``.

    Under DDP every rank must call this (it gathers each rank's RNG state); only rank 0 writes.
    """
    rng = _rng_state()
    state = {"model": model.state_dict(), "model_config": model.config, "loss": loss_fn.state_dict(),
             "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng, "step": step}
    if torch_dist.is_available() and torch_dist.is_initialized() and torch_dist.get_world_size() > 1:
        per_rank: list = [None] * torch_dist.get_world_size()
        torch_dist.all_gather_object(per_rank, rng)
        if torch_dist.get_rank() != 0:
            return
        state["rng_per_rank"] = per_rank
    tmp = out / (CHECKPOINT + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, out / CHECKPOINT)  # a crash mid-write never leaves a truncated checkpoint
    model.save_pretrained(out / "model")


def _truncate_log(path: Path, columns: list[str], step: int) -> None:
    """Start the CSV log, or drop rows past ``step`` (written after the checkpoint we resume from)."""
    rows = []
    if path.is_file():
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f)][1:]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        w.writerows(r for r in rows if r and int(r[0]) <= step)


def plot_log(csv_path: Path, png_path: Path) -> None:
    """PNG of the loss (and per-pair losses) against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in rows[0]:
        if "-" in key:
            ax.plot(steps, [float(r[key]) for r in rows], lw=0.7, alpha=0.6, label=key)
    ax.plot(steps, [float(r["loss"]) for r in rows], color="k", lw=1.5, label="mean over pairs")
    ax.set(xlabel="step", ylabel="contrastive loss", title="Pretraining loss")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def _progress(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc="pretrain", unit="step")
