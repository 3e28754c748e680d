"""Resumable training of the AU-conditioned generators (``emosync synth train``).

The output folder becomes a model folder (see :mod:`synth.generative.base`) plus logs:

- ``checkpoints/step-XXXXXXX.pt``: weights, EMA, optimizer and scheduler states, the loss log,
  the config and the training sessions' hashes; every ``logging.checkpoint_every`` steps and
  at the end (the last ``logging.keep_checkpoints`` are kept; written to a temporary file and
  renamed, so a killed run never leaves a broken checkpoint).
- ``loss.csv`` and ``loss.png``; ``samples/step-XXXXXXX.png``: one grid per
  ``logging.sample_every`` steps (neutral and the seven EMFACS prototypes at intensity 4; RGB
  row over depth row), drawn with the EMA weights from fixed noise.
- ``weights/`` + ``config.json``: the EMA weights and the model card, at the end.

Exact resume: batch ``k`` and every random draw of step ``k`` come from generators seeded with
``(seed, k)``, so nothing but the checkpointed states carries over between steps and a resumed
run continues bit for bit (tests/synth/test_generative.py). On resume, only ``optim.steps``,
``logging.*`` and ``data.require_face_boxes`` (which selects no frames) may differ from the
checkpoint's config.

DP-SGD (``privacy.dp_sgd``): opacus wraps the diffusion UNet (every layer it uses has per-sample
gradients: Conv2d, Linear, GroupNorm, attention's Linear layers). Each step draws a Poisson
batch (rate ``batch_size / n_frames``), clips per-sample gradients to ``max_grad_norm`` and adds
Gaussian noise (from a generator seeded per step, so resume stays exact); the noise multiplier is
stored in the checkpoint and reused on resume (never recomputed from ``target_epsilon`` with the new
``optim.steps``); the RDP accountant's epsilon at ``delta`` goes into the model card. The GAN's
R1 penalty needs double backward, which opacus' hooks cannot give, so DP-SGD is offered for
the diffusion model only.
"""

from __future__ import annotations

import contextlib
import csv
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from acquisition import logger

from acquisition.annotate.action_units import AU_IDS, MAX_INTENSITY

from acquisition.utils.docs import fill_doc
from acquisition.utils.model_folder import is_model_folder
from acquisition.utils.version import software_version
from synth.generative.base import session_records, utc_now
from synth.generative.config import SynthTrainConfig
from synth.generative.coverage import au_coverage
from synth.generative.frames import FaceFrames, load_face_frames
from synth.generative.motion import AUMotionModel

CHECKPOINTS = "checkpoints"
#: Config sections that may change between a checkpoint and ``--resume``.
RESUMABLE_CHANGES = ("optim.steps", "logging", "data.require_face_boxes")


def build_generator(config: SynthTrainConfig, *, card: dict[str, Any] | None = None,
                    subjects: Sequence[str] | None = None):
    """A fresh generator for ``config`` (weights seeded with ``config.seed``).

    ``subjects``: the training ``subject_id`` values, one identity-table row each (identity models).
    """
    torch.manual_seed(config.seed)
    if config.kind == "diffusion":
        from synth.generative.diffusion import DiffusionGenerator

        return DiffusionGenerator(config.model, config.data.image_size, card=card,
                                  subjects=list(subjects) if subjects is not None else None)
    from synth.generative.gan import GANGenerator

    return GANGenerator(config.model, config.data.image_size, card=card)


def _step_seed(seed: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, step, 0x5E7]).generate_state(1)[0])


def _config_diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        name = f"{prefix}{key}"
        if any(name == c or name.startswith(c + ".") for c in RESUMABLE_CHANGES):
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += _config_diff(a, b, name + ".")
        elif a != b:
            diffs.append(f"{name}: checkpoint {a!r}, now {b!r}")
    return diffs


def latest_checkpoint(out: Path) -> Path | None:
    """The newest ``checkpoints/step-*.pt`` in ``out``, or None."""
    found = sorted((out / CHECKPOINTS).glob("step-*.pt"))
    return found[-1] if found else None


class _Trainer:
    """One run's mutable state: generator, optimizers, EMA, log; one method per training step."""

    def __init__(self, config: SynthTrainConfig, frames: FaceFrames, out: Path, device: torch.device, *,
                 noise_multiplier: float | None = None) -> None:
        from diffusers.training_utils import EMAModel

        self.config, self.frames, self.out, self.device = config, frames, out, device
        subjects = sorted(set(frames.subject_ids.tolist()))
        self.gen = build_generator(config, subjects=subjects).to(device)
        # Row of the identity table of each frame (used by identity models only).
        self.subject_index = np.searchsorted(np.array(subjects), frames.subject_ids)
        o = config.optim
        if config.kind == "diffusion":
            # The identity table (if any) is trained, EMA-averaged and clipped together with the UNet.
            self.main = (self.gen.unet if not self.gen.has_identity
                         else torch.nn.ModuleDict(self.gen.modules()))
            self.optimizers = {"unet": torch.optim.AdamW(self.main.parameters(), lr=o.lr,
                                                         weight_decay=o.weight_decay)}
        else:
            self.main = self.gen.generator
            self.optimizers = {
                "generator": torch.optim.Adam(self.gen.generator.parameters(), lr=o.lr, betas=(0.5, 0.999)),
                "discriminator": torch.optim.Adam(self.gen.discriminator.parameters(), lr=config.model.lr_d,
                                                  betas=(0.5, 0.999)),
            }
        warmup = max(o.warmup_steps, 1)
        self.schedulers = {k: torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
                           for k, opt in self.optimizers.items()}
        self.ema = EMAModel(self.main.parameters(), decay=o.ema_decay) if o.ema_decay > 0 else None
        self.step = 0
        self.log: list[dict[str, float]] = []
        self.privacy_engine = None
        self.dp_model = None
        # On resume, the checkpoint's noise multiplier (recomputing it from the target epsilon would change it
        # whenever optim.steps changes, and the accountant's history would mix two noise levels).
        self.noise_multiplier: float | None = noise_multiplier
        self.amp = bool(o.amp and device.type == "cuda")
        if o.amp and not self.amp:
            logger.info("optim.amp is set but there is no CUDA device: training in float32.")
        if config.privacy.dp_sgd:
            self._make_private()

    # -- DP-SGD -------------------------------------------------------------
    def _make_private(self) -> None:
        p, o = self.config.privacy, self.config.optim
        if self.config.kind != "diffusion":
            raise ValueError("privacy.dp_sgd is supported for the diffusion model only: the GAN's R1 penalty needs "
                             "double backward, which opacus' per-sample gradient hooks do not provide. Use "
                             "configs/synth/diffusion.yaml (or tiny-diffusion) with privacy.dp_sgd=true.")
        from opacus import PrivacyEngine
        from opacus.accountants.utils import get_noise_multiplier

        n = len(self.frames)
        # A stand-in loader tells opacus the expected batch size and sample rate (1 / its length); batches
        # themselves are Poisson draws at that rate made per step below (seeded, so resume stays exact).
        dummy = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(n, 1)), batch_size=o.batch_size)
        self.sample_rate = 1.0 / len(dummy)
        if self.noise_multiplier is None and p.noise_multiplier is not None:
            self.noise_multiplier = p.noise_multiplier
        elif self.noise_multiplier is None:
            self.noise_multiplier = float(get_noise_multiplier(
                target_epsilon=p.target_epsilon, target_delta=p.delta, sample_rate=self.sample_rate,
                steps=o.steps, accountant="rdp"))
        self.privacy_engine = PrivacyEngine(accountant="rdp")
        self.dp_model, optimizer, _ = self.privacy_engine.make_private(
            module=self.gen.unet, optimizer=self.optimizers["unet"], data_loader=dummy,
            noise_multiplier=self.noise_multiplier, max_grad_norm=p.max_grad_norm, poisson_sampling=False)
        self.optimizers["unet"] = optimizer
        self.schedulers["unet"].optimizer = optimizer
        logger.info("DP-SGD: noise multiplier %.3f, max grad norm %g, sample rate %.4f", self.noise_multiplier,
                    p.max_grad_norm, self.sample_rate)

    def epsilon(self) -> float | None:
        """Epsilon spent so far at ``privacy.delta`` (None without DP-SGD)."""
        if self.privacy_engine is None:
            return None
        if not self.privacy_engine.accountant.history:
            return 0.0
        return float(self.privacy_engine.accountant.get_epsilon(self.config.privacy.delta))

    # -- one step -------------------------------------------------------------
    def _batch(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = len(self.frames)
        if self.privacy_engine is not None:
            index = np.flatnonzero(rng.random(n) < self.sample_rate)
        else:
            index = rng.choice(n, self.config.optim.batch_size, replace=n < self.config.optim.batch_size)
        return (torch.from_numpy(self.frames.rgbd[index]).to(self.device),
                torch.from_numpy(self.frames.aus[index]).to(self.device),
                torch.from_numpy(self.subject_index[index]).to(self.device))

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else contextlib.nullcontext()

    def train_step(self) -> dict[str, float]:
        """One optimizer step (for the GAN: one D step and one G step); returns the losses."""
        # Sample grids (gen.sample) leave the modules in eval mode; opacus' hooks skip modules that are not
        # training, so every step must switch back.
        for module in self.gen.modules().values():
            module.train()
        rng = np.random.default_rng(_step_seed(self.config.seed, self.step))
        generator = torch.Generator().manual_seed(_step_seed(self.config.seed, self.step))
        rgbd, aus, subjects = self._batch(rng)
        clip = self.config.optim.grad_clip
        if self.config.kind == "diffusion":
            opt = self.optimizers["unet"]
            opt.zero_grad(set_to_none=True)
            if len(rgbd) == 0:  # an empty Poisson draw (DP only): no update, but the step is still accounted
                self.privacy_engine.accountant.step(noise_multiplier=self.noise_multiplier,
                                                    sample_rate=self.sample_rate)
                losses = {"loss": float("nan")}
            else:
                if self.privacy_engine is not None:
                    # opacus draws its Gaussian noise from the optimizer's generator (the global RNG when None):
                    # a per-step seeded one keeps DP-SGD resume exact too.
                    opt.generator = torch.Generator(device=self.device).manual_seed(
                        _step_seed(self.config.seed + 1, self.step))
                with self._autocast():
                    loss = self.gen.training_loss(self.dp_model or self.gen.unet, rgbd, aus, generator,
                                                  subjects if self.gen.has_identity else None).mean()
                loss.backward()
                losses = {"loss": float(loss.detach())}
                if self.privacy_engine is None:
                    torch.nn.utils.clip_grad_norm_(self.main.parameters(), clip)
                opt.step()
            self.schedulers["unet"].step()
        else:
            g_opt, d_opt = self.optimizers["generator"], self.optimizers["discriminator"]
            gen, disc = self.gen.generator, self.gen.discriminator
            z = torch.randn((len(rgbd), self.config.model.latent_dim), generator=generator).to(self.device)
            with torch.no_grad(), self._autocast():
                fake = gen(z, aus / MAX_INTENSITY)
            d_opt.zero_grad(set_to_none=True)
            with self._autocast():
                d_loss, d_parts = self.gen.discriminator_loss(disc, rgbd, aus, fake.float(), aus)
                d_loss = d_loss.mean()
            d_loss.backward()
            torch.nn.utils.clip_grad_norm_(disc.parameters(), clip)
            d_opt.step()
            g_opt.zero_grad(set_to_none=True)
            with self._autocast():
                g_loss, _, g_parts = self.gen.generator_loss(gen, disc, z, aus, rgbd)
            g_loss.backward()
            torch.nn.utils.clip_grad_norm_(gen.parameters(), clip)
            g_opt.step()
            for sched in self.schedulers.values():
                sched.step()
            losses = {"loss": float(g_loss.detach()), "d_loss": float(d_loss.detach()), **d_parts, **g_parts}
        if self.ema is not None:
            self.ema.step(self.main.parameters())
        self.step += 1
        return losses

    # -- state ----------------------------------------------------------------
    @contextlib.contextmanager
    def ema_weights(self):
        """Temporarily put the EMA weights into the model (for samples and the final save)."""
        if self.ema is None:
            yield
            return
        self.ema.store(self.main.parameters())
        self.ema.copy_to(self.main.parameters())
        try:
            yield
        finally:
            self.ema.restore(self.main.parameters())

    def state(self, sessions: list[dict[str, str]]) -> dict[str, Any]:
        return {
            "step": self.step,
            "config": self.config.model_dump(),
            "sessions": sessions,
            "modules": {k: _plain_state(m) for k, m in self.gen.modules().items()},
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "accountant": (self.privacy_engine.accountant.state_dict() if self.privacy_engine else None),
            "noise_multiplier": self.noise_multiplier,
            "log": self.log,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        for key, module in self.gen.modules().items():
            module.load_state_dict(state["modules"][key])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        for key, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][key])
        for key, sched in self.schedulers.items():
            sched.load_state_dict(state["schedulers"][key])
        if self.privacy_engine is not None and state.get("accountant") is not None:
            self.privacy_engine.accountant.load_state_dict(state["accountant"])
        self.step = int(state["step"])
        self.log = list(state["log"])


def _plain_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the module's state dict (opacus' GradSampleModule wraps the UNet without renaming
    its parameters, so the keys are the plain ones)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def save_checkpoint(trainer: _Trainer, sessions: list[dict[str, str]]) -> Path:
    """Write ``checkpoints/step-XXXXXXX.pt`` atomically and prune old ones."""
    folder = trainer.out / CHECKPOINTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{trainer.step:07d}.pt"
    tmp = path.with_suffix(".pt.tmp")
    torch.save(trainer.state(sessions), tmp)
    os.replace(tmp, path)
    for old in sorted(folder.glob("step-*.pt"))[:-trainer.config.logging.keep_checkpoints]:
        old.unlink()
    return path


def sample_grid_aus() -> tuple[list[str], np.ndarray]:
    """The sample-grid conditions: neutral and each emotion's first prototype at intensity 4, shape (8, 17)."""
    from acquisition.annotate.action_units import AU_INDEX, EMOTION_PROTOTYPES

    names, rows = ["neutral"], [np.zeros(len(AU_IDS), np.float32)]
    for emotion, variants in EMOTION_PROTOTYPES.items():
        row = np.zeros(len(AU_IDS), np.float32)
        for au, weight in variants[0].items():
            row[AU_INDEX[au]] = 4.0 * weight
        names.append(emotion)
        rows.append(row)
    return names, np.stack(rows)


def save_sample_grid(gen: Any, path: Path, *, seed: int = 0, num_inference_steps: int | None = None) -> None:
    """PNG: the grid conditions (columns, named in a header) with one shared noise; RGB row above a depth row.

    ``num_inference_steps`` None: the model config's sampler steps (what ``synth sample`` uses too).
    """
    from PIL import Image, ImageDraw

    from synth.generative.frames import rgbd_to_images

    names, aus = sample_grid_aus()
    rgbd = gen.sample(aus, seed=seed, num_inference_steps=num_inference_steps)
    rgb, depth = rgbd_to_images(rgbd)
    near, far = np.percentile(depth, [1, 99]) if depth.size else (0, 1)
    grey = (255 * (1 - np.clip((depth.astype(np.float32) - near) / max(far - near, 1), 0, 1))).astype(np.uint8)
    top = np.concatenate(list(rgb), axis=1)
    bottom = np.repeat(np.concatenate(list(grey), axis=1)[..., None], 3, axis=2)
    image = Image.fromarray(np.concatenate([top, bottom], axis=0))
    scale = max(1, 128 // gen.image_size)
    image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    header_px = 16
    labelled = Image.new("RGB", (image.width, image.height + header_px), "white")
    labelled.paste(image, (0, header_px))
    draw = ImageDraw.Draw(labelled)
    column_px = gen.image_size * scale
    for k, name in enumerate(names):
        draw.text((k * column_px + 4, 2), name, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    labelled.save(path)


def write_log(out: Path, log: list[dict[str, float]]) -> None:
    """``loss.csv`` (every logged step) and ``loss.png``."""
    if not log:
        return
    columns = list(dict.fromkeys(k for row in log for k in row))
    with open(out / "loss.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(log)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [row["step"] for row in log]
    for key in columns:
        if key not in ("step", "lr", "time_s", "epsilon"):
            ax.plot(steps, [row.get(key, np.nan) for row in log], lw=1.2 if key == "loss" else 0.7, label=key)
    ax.set(xlabel="step", ylabel="loss", title="Generator training loss")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=100)
    plt.close(fig)


@fill_doc
def train_generator(sessions: Sequence[str | os.PathLike], config: SynthTrainConfig, out: str | os.PathLike, *,
                    resume: bool = False, progress: bool = True, device: str | None = None) -> Path:
    """Train a generator on the sessions' face frames; ``out`` becomes a model folder.

    Parameters
    ----------
    sessions : sequence of path-like
        Training sessions (RGB + depth + AUs; face boxes from ``emosync annotate``, see
        ``data.require_face_boxes``).
    config : SynthTrainConfig
        See ``configs/synth/*.yaml``.
    out : path-like
        Output folder. Must be new or empty unless ``resume``.
    resume : bool
        Continue from the newest checkpoint in ``out`` (same config except ``optim.steps``, ``logging``
        and ``data.require_face_boxes``, same sessions).
    %(progress_bar)s
    device : str | None
        ``"cuda"``, ``"cpu"``...; None picks CUDA when available.

    Returns
    -------
    out : Path
        The model folder (load it with :func:`synth.generative.load_generator`).

    Raises
    ------
    FileExistsError
        ``out`` already holds a run and ``resume`` is False.
    ValueError
        Empty training set, sessions without RGB/depth/AUs (or without face boxes when
        ``data.require_face_boxes``), or a checkpoint from another config.
    """
    out = Path(out)
    checkpoint = _check_out(out, resume)
    if not sessions:
        raise ValueError("No training sessions given: the training set is empty.")
    if config.threads:
        torch.set_num_threads(config.threads)
    records = session_records(list(sessions))
    state = _resume_state(checkpoint, config, records) if checkpoint is not None else None
    d = config.data
    frames = load_face_frames(sessions, d.image_size, stride=d.stride, max_frames=d.max_frames,
                              require_face_boxes=d.require_face_boxes)
    identity = getattr(config.model, "identity", None)
    n_subjects = len(set(frames.subject_ids.tolist()))
    if identity is not None and identity.enabled and n_subjects < 2:
        raise ValueError(f"model.identity.enabled learns one identity per training subject, but the sessions hold "
                         f"{n_subjects} subject ({sorted(set(frames.subject_ids.tolist()))}); train on sessions of "
                         "several subjects (different subject_id), or set model.identity.enabled=false.")
    torch_device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out.mkdir(parents=True, exist_ok=True)
    trainer = _Trainer(config, frames, out, torch_device,
                       noise_multiplier=state.get("noise_multiplier") if state is not None else None)
    if state is not None:
        trainer.load_state(state)
        logger.info("Resuming %s from step %d", out, trainer.step)
    _train_loop(trainer, records, progress=progress)
    write_log(out, trainer.log)
    trainer.gen.card = _model_card(trainer, records)
    motion = getattr(config.model, "motion", None)
    if motion is not None and motion.enabled:
        trainer.gen.add_motion(AUMotionModel.fit(frames, motion))
    with trainer.ema_weights():
        if getattr(trainer.gen, "has_identity", False):
            prior = trainer.gen.fit_prior()
            logger.info("Identity prior over %d training subjects: %s", len(prior.subjects), prior.describe())
        trainer.gen.save_pretrained(out)
    epsilon = trainer.gen.card["privacy"]["epsilon"]
    if epsilon is not None:
        logger.info("DP-SGD: epsilon %.3f at delta %g after %d steps", epsilon, config.privacy.delta, trainer.step)
    logger.info("Trained %s generator: %d steps on %d frames -> %s", config.kind, trainer.step, len(frames), out)
    return out


def _check_out(out: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from (None for a new run), after checking ``out`` suits ``resume``."""
    checkpoint = latest_checkpoint(out) if out.is_dir() else None
    if not resume and out.is_dir() and (checkpoint is not None or is_model_folder(out)):
        raise FileExistsError(f"{out} already holds a training run; continue it with --resume, or choose a new --out.")
    if not resume and out.is_dir() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty and holds no training run; choose a new (or empty) --out so that "
                              "no existing files are mixed with (or overwritten by) the model folder.")
    if resume and checkpoint is None:
        raise FileNotFoundError(f"--resume: no checkpoint in {out / CHECKPOINTS}; start without --resume.")
    return checkpoint


def _resume_state(checkpoint: Path, config: SynthTrainConfig, records: list[dict[str, str]]) -> dict[str, Any]:
    """The checkpoint's training state, after checking it was trained with this config on these sessions."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    # Validated again so that a checkpoint written before a config key existed compares with its default.
    diffs = _config_diff(SynthTrainConfig.model_validate(state["config"]).model_dump(), config.model_dump())
    if diffs:
        raise ValueError(f"{checkpoint} was trained with another config ({'; '.join(diffs)}). Resume with the "
                         "same config (only optim.steps, logging.* and data.require_face_boxes may change) or train "
                         "into a new --out.")
    if [r["sha256"] for r in state["sessions"]] != [r["sha256"] for r in records]:
        raise ValueError(f"{checkpoint} was trained on other sessions "
                         f"({[r['path'] for r in state['sessions']]}); resume with the same session files.")
    return state


def _train_loop(trainer: _Trainer, records: list[dict[str, str]], *, progress: bool) -> None:
    """Step until ``optim.steps``, logging, drawing sample grids and checkpointing on the configured steps."""
    from tqdm.auto import tqdm

    config, out = trainer.config, trainer.out
    total, lg = config.optim.steps, config.logging
    started = time.perf_counter()
    with tqdm(total=total, initial=min(trainer.step, total), disable=not progress, desc=f"synth train ({config.kind})",
              unit="step") as bar:
        while trainer.step < total:
            losses = trainer.train_step()
            if trainer.step % lg.log_every == 0 or trainer.step == total:
                lr = trainer.optimizers[next(iter(trainer.optimizers))].param_groups[0]["lr"]
                row = {"step": trainer.step, **losses, "lr": lr, "time_s": time.perf_counter() - started}
                if trainer.privacy_engine is not None:
                    row["epsilon"] = trainer.epsilon()
                trainer.log.append(row)
                bar.set_postfix(loss=f"{losses['loss']:.4f}")
            if trainer.step % lg.sample_every == 0 or trainer.step == total:
                with trainer.ema_weights():
                    save_sample_grid(trainer.gen, out / "samples" / f"step-{trainer.step:07d}.png", seed=config.seed)
            if trainer.step % lg.checkpoint_every == 0 or trainer.step == total:
                save_checkpoint(trainer, records)
                write_log(out, trainer.log)
            bar.update(1)


def _model_card(trainer: _Trainer, records: list[dict[str, str]]) -> dict[str, Any]:
    """What the model folder's ``config.json`` records besides kind and architecture: data, steps, privacy."""
    config, frames, p = trainer.config, trainer.frames, trainer.config.privacy
    return {
        "created": utc_now(), "emosync_version": software_version(), "config": config.model_dump(),
        "training_sessions": records,
        "frames": {"stride": config.data.stride, "max_frames": config.data.max_frames, "n_frames": len(frames),
                   "subjects": sorted(set(frames.subject_ids.tolist())), "au_coverage": au_coverage(frames.aus)},
        "steps": trainer.step,
        "privacy": {"dp_sgd": p.dp_sgd, "epsilon": trainer.epsilon(), "delta": p.delta if p.dp_sgd else None,
                    "noise_multiplier": trainer.noise_multiplier,
                    "max_grad_norm": p.max_grad_norm if p.dp_sgd else None,
                    "accountant": "rdp" if p.dp_sgd else None},
    }
