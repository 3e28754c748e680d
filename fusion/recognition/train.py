"""Training a recognizer: clips of expression intervals, encoders pretrained or from scratch, probe or fine-tune.

:func:`read_clips` reads one clip per interval into RAM (the pretraining window centred on the
apex, every modality the encoders know), because recognition corpora are small (tens of clips
per subject) and leave-one-subject-out trains one model per subject on the same clips.
:class:`EncoderSource` hands out fresh encoders for each model: a pretraining run's weights, or
the same architecture (:func:`fusion.train.build_model` of ``scratch_config``) from a seeded
random init. :func:`fit` trains a :class:`~fusion.recognition.head.RecognitionModel` with the
same step budget in every case:

- ``probe``: encoders frozen (eval mode), the clips embedded once, only the classifier trained;
- ``finetune``: encoders and classifier trained end to end (``lr_encoder`` / ``lr_head``), on
  augmented batches (the pretraining config's ``augment``). From scratch this is the supervised
  baseline with the same architecture, fusion and budget as the pretrained model.

The loss is class-balanced cross-entropy (:func:`fusion.evaluate.balanced_class_weights`), since
the scores (UF1, UAR) weigh every class alike and ``negative`` covers five of seven emotions.
:func:`train_recognizer` is ``emosync recognize train``: all clips of the sessions, one model,
saved with ``save_pretrained``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from acquisition import logger, open_session
from acquisition.annotate.action_units import MICRO_MAX_DURATION_S
from acquisition.utils.logs import verbose

from ..config import AugmentConfig, PretrainConfig, load_pretrain_config
from ..data import SIGNALS, SessionWindows
from ..evaluate import balanced_class_weights
from ..model import MultiModalEncoder
from .classes import class_names, map_labels
from .config import RecognizeConfig
from .head import RecognitionModel
from .intervals import ExpressionInterval, read_all_intervals


@dataclass
class Clips:
    """One multi-modal clip per expression interval, in RAM.

    Attributes
    ----------
    intervals : list of ExpressionInterval
        The intervals, clip order.
    views : dict of str to Tensor
        Per modality, all clips stacked: ``rgb`` (N, T, 3, S, S), ``emg`` (N, C, n_times), ...
    available : dict of str to Tensor
        Per modality, (N,) bool: the clip has that view.
    dataset : SessionWindows
        The windows the clips were read from (shapes and channel counts for building encoders).
    """

    intervals: list[ExpressionInterval]
    views: dict[str, torch.Tensor]
    available: dict[str, torch.Tensor]
    dataset: SessionWindows

    def __len__(self) -> int:
        return len(self.intervals)

    @property
    def labels(self) -> np.ndarray:
        """Marker label of every clip, (N,) str."""
        return np.asarray([i.label for i in self.intervals], dtype=object)

    @property
    def subjects(self) -> np.ndarray:
        """Subject id of every clip, (N,) str."""
        return np.asarray([i.subject for i in self.intervals], dtype=object)

    def batch(self, idx: Sequence[int] | np.ndarray, modalities: Sequence[str] | None = None) -> dict:
        """The clips ``idx`` as a batch: one tensor per modality and ``available``."""
        idx = torch.as_tensor(np.asarray(idx, dtype=np.int64))
        mods = list(modalities or self.views)
        return {**{m: self.views[m][idx] for m in mods}, "available": {m: self.available[m][idx] for m in mods}}


def make_clip_windows(sessions: Sequence[Path], centres: Sequence[np.ndarray], config: PretrainConfig
                      ) -> SessionWindows:
    """Windows of the pretraining config's geometry centred at ``centres`` (one array per session)."""
    d = config.data
    return SessionWindows(sessions, window_s=d.window_s, stride_s=d.stride_s, modalities=d.modalities,
                          clip_frames=d.clip_frames, image_size=d.image_size, depth_scale_mm=d.depth_scale_mm,
                          lead_s=d.lead_s, crop=d.crop, foreground_mm=d.foreground_mm, crop_margin=d.crop_margin,
                          depth_clip=d.depth_clip, video_norm=d.video_norm, centres=centres)


def _inside_recording(intervals: list[ExpressionInterval], anchor: str, window_s: float) -> list[ExpressionInterval]:
    """The intervals whose clip lies inside the session's video (a clip cut by the recording's edge is dropped)."""
    kept: list[ExpressionInterval] = []
    for fname in dict.fromkeys(i.session for i in intervals):
        with open_session(fname) as session:
            rgb = [s for s in session.streams.values() if s.modality == "rgb"]
            if not rgb:
                raise ValueError(f"{fname.name} has no RGB stream; clips are placed on the video frame clock.")
            times = rgb[0].times
        first, last = (float(times[0]), float(times[-1])) if len(times) else (np.inf, -np.inf)
        own = [i for i in intervals if i.session == fname]
        fits = [i for i in own if first <= i.centre_s(anchor) - window_s / 2
                and i.centre_s(anchor) + window_s / 2 <= last]
        if len(fits) < len(own):
            logger.warning("%s: %d of %d expression(s) too close to the recording's start or end for a %.2f s clip: "
                           "left out.", fname.name, len(own) - len(fits), len(own), window_s)
        kept += fits
    return kept


def read_clips(intervals: Sequence[ExpressionInterval], config: PretrainConfig, *, anchor: str = "apex",
               progress: bool = False) -> Clips:
    """Read the clip of every interval (see the module docstring).

    Parameters
    ----------
    intervals : sequence of ExpressionInterval
        From :func:`~fusion.recognition.intervals.read_intervals`.
    config : PretrainConfig
        Clip geometry (``data``): the encoders' pretraining config.
    anchor : ``"apex"`` | ``"centre"``
        Where each clip is centred.
    progress : bool
        Show a progress bar.

    Raises
    ------
    ValueError
        If no interval leaves room for a clip.
    """
    from tqdm.auto import tqdm

    kept = _inside_recording(list(intervals), anchor, config.data.window_s)
    if not kept:
        raise ValueError(f"No expression interval of {len(intervals)} lies far enough inside its recording for a "
                         f"{config.data.window_s} s clip centred on its {anchor}. Recordings must hold "
                         f"{config.data.window_s / 2:g} s of video on either side of it; for a synthetic corpus, "
                         "sample longer sequences: `emosync synth sample ... --frames N` centres the expression "
                         "in N frames, and N >= fps x (clip + expression length) leaves room (at 30 fps, "
                         f"{int(np.ceil((config.data.window_s + MICRO_MAX_DURATION_S) * 30))} for a "
                         "micro-expression).")
    sessions = list(dict.fromkeys(i.session for i in kept))
    kept = [i for s in sessions for i in kept if i.session == s]          # the dataset's item order
    centres = [np.array([i.centre_s(anchor) for i in kept if i.session == s]) for s in sessions]
    dataset = make_clip_windows(sessions, centres, config)
    items = [dataset[k] for k in tqdm(range(len(dataset)), desc="clips", unit="clip", disable=not progress)]
    dataset.close()   # everything is in RAM now; an open handle would block writing to the sessions
    views = {m: torch.stack([it[m] for it in items]) for m in dataset.modalities}
    available = {m: torch.as_tensor([bool(it["available"][m]) for it in items]) for m in dataset.modalities}
    for m, ok in available.items():
        if not ok.all():
            logger.warning("%d of %d clips have no %s view: its block of the fused embedding is zero there.",
                           int((~ok).sum()), len(ok), m)
    return Clips(kept, views, available, dataset)


class EncoderSource:
    """Fresh encoders for each model: a pretraining run's weights, or a seeded random init of the same architecture.

    Parameters
    ----------
    run : path-like | None
        A pretraining output folder (``emosync pretrain --out``); None: from scratch.
    scratch_config : str
        ``configs/pretrain`` name (or path) whose encoders and clip geometry a run from scratch uses.
    """

    def __init__(self, run: str | os.PathLike | None, scratch_config: str = "tiny") -> None:
        self.run = Path(run) if run is not None else None
        if self.run is not None:
            from ..evaluate import load_run

            model, self.config = load_run(self.run)
            self.model_config = model.config
            self.state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            self.config, self.model_config, self.state = load_pretrain_config(scratch_config), None, None

    @property
    def pretrained(self) -> bool:
        """Whether the encoders start from pretrained weights."""
        return self.state is not None

    def build(self, dataset: SessionWindows, seed: int = 0) -> MultiModalEncoder:
        """Encoders for clips of ``dataset``: the pretrained weights (a copy), or random init seeded with ``seed``."""
        from ..train import build_model

        torch.manual_seed(seed)
        if self.state is None:
            return build_model(self.config, dataset)
        for m, spec in self.model_config["modalities"].items():
            if m in SIGNALS and m in dataset.modalities:
                want = (spec["encoder_kwargs"].get("n_chans"), spec["encoder_kwargs"].get("n_times"))
                have = (dataset.n_chans[m], dataset.n_times[m])
                if want != have:
                    raise ValueError(f"The {m} encoder of {self.run} takes {want[0]} channels x {want[1]} samples, "
                                     f"the sessions give {have[0]} x {have[1]}: recognize sessions recorded like the "
                                     "pretraining sessions (same channels and rate), or train from scratch.")
        model = MultiModalEncoder(**self.model_config)
        model.load_state_dict(self.state)
        return model


def stratified_subset(idx: np.ndarray, targets: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded ``fraction`` of ``idx``, per class: ``max(1, round(fraction * n_c))`` of each class present."""
    idx = np.asarray(idx)
    if fraction >= 1.0:
        return idx
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(targets[idx]):
        pool = idx[targets[idx] == c]
        chosen.append(rng.choice(pool, max(1, int(round(fraction * len(pool)))), replace=False))
    return np.sort(np.concatenate(chosen))


def new_model(source: EncoderSource, clips: Clips, config: RecognizeConfig, seed: int) -> RecognitionModel:
    """A recognizer for ``config`` (classes, modalities, dropout) on fresh encoders from ``source``."""
    encoders = source.build(clips.dataset, seed)
    missing = [m for m in config.modalities if m not in encoders.modalities or m not in clips.views]
    if missing:
        where = f"the encoders of {source.run}" if source.pretrained else "the sessions"
        raise ValueError(f"No {missing} in {where} (encoders: {encoders.modalities}, sessions: "
                         f"{sorted(clips.views)}); choose --modalities among those.")
    torch.manual_seed(seed)
    return RecognitionModel(encoders, config.modalities, class_names(config.classes), config.classes,
                            source.config.data.model_dump(mode="json"), config.anchor, config.dropout)


@torch.no_grad()
def predict_logits(model: RecognitionModel, clips: Clips, idx: Sequence[int] | np.ndarray | None = None,
                   batch_size: int = 64) -> torch.Tensor:
    """Logits (n, n_classes) of the clips ``idx`` (all by default), in eval mode."""
    idx = np.arange(len(clips)) if idx is None else np.asarray(idx)
    model.eval()
    parts = [model(clips.batch(idx[a:a + batch_size], model.modalities)) for a in range(0, len(idx), batch_size)]
    return torch.cat(parts) if parts else torch.zeros(0, len(model.classes))


@torch.no_grad()
def embed_clips(model: RecognitionModel, clips: Clips, batch_size: int = 64) -> torch.Tensor:
    """The fused embedding (:meth:`RecognitionModel.features`) of every clip, encoders in eval mode."""
    was_training = model.training
    model.eval()
    out = torch.cat([model.features(clips.batch(np.arange(a, min(a + batch_size, len(clips))), model.modalities))
                     for a in range(0, len(clips), batch_size)])
    model.train(was_training)
    return out


def fit(model: RecognitionModel, clips: Clips, idx: np.ndarray, targets: np.ndarray, config: RecognizeConfig,
        augment: AugmentConfig, *, seed: int = 0, features: torch.Tensor | None = None,
        progress: bool = False) -> RecognitionModel:
    """Train ``model`` on the clips ``idx`` with class indices ``targets[idx]`` (see the module docstring).

    ``features``: probe mode only, the frozen encoders' fused embedding of every clip
    (:func:`embed_clips`), when the caller has it already (leave-one-subject-out folds share it).

    Returns
    -------
    model : RecognitionModel, in eval mode.
    """
    from tqdm.auto import tqdm

    from ..augment import augment_batch, step_generator

    o = config.optim
    y = torch.as_tensor(targets[idx], dtype=torch.long)
    weight = balanced_class_weights(y, len(model.classes))
    generator = torch.Generator().manual_seed(seed)
    probe = config.mode == "probe"
    groups = [{"params": list(model.classifier.parameters()), "lr": o.lr_head}]
    if probe:
        model.encoders.requires_grad_(False)
        model.encoders.eval()
        feats = (features if features is not None else embed_clips(model, clips))[torch.as_tensor(idx)]
    else:
        groups.append({"params": [p for m in model.modalities for p in model.encoders.encoders[m].parameters()],
                       "lr": o.lr_encoder})
    params = [p for g in groups for p in g["params"]]
    optimizer = torch.optim.AdamW(groups, weight_decay=o.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, o.steps)
    model.train()
    if probe:
        model.encoders.eval()   # frozen BatchNorm statistics too
    window_s = float(model.data["window_s"])
    for step in tqdm(range(o.steps), desc=config.mode, unit="step", disable=not progress):
        pick = torch.randperm(len(idx), generator=generator)[:o.batch_size]
        if probe:
            logits = model.classifier(feats[pick])
        else:
            batch = clips.batch(idx[pick.numpy()], model.modalities)
            if config.augment:
                batch = augment_batch(batch, augment, window_s, step_generator(seed, step))
            logits = model(batch)
        loss = nn.functional.cross_entropy(logits, y[pick], weight=weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, o.grad_clip)
        optimizer.step()
        scheduler.step()
    return model.eval()


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (0: leave torch's setting), restored afterwards.

    On a busy machine, more threads than free cores slow small models down many times over.
    """
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def class_targets(clips: Clips, class_set: str) -> np.ndarray:
    """Class index of every clip (raises ValueError on a label outside the class set)."""
    names = class_names(class_set)
    return np.asarray([names.index(c) for c in map_labels(clips.labels, class_set)], dtype=np.int64)


@verbose
def train_recognizer(sessions: Sequence[str | os.PathLike], config: RecognizeConfig, out: str | os.PathLike, *,
                     encoders: str | os.PathLike | None = None, progress: bool = True,
                     verbose: bool | str | None = None) -> Path:
    """Train one recognizer on every interval of ``sessions`` and save it (``emosync recognize train``).

    Parameters
    ----------
    sessions : sequence of path-like
        Labelled sessions (the ``config.intervals`` marker stream).
    config : RecognizeConfig
    out : path-like
        Output folder: the model folder (``config.json``, ``weights/``) plus ``recognize.yaml`` (the
        config) and ``train.json`` (clips and class counts used).
    encoders : path-like | None
        A pretraining run folder; None trains from scratch (``config.scratch_config``'s encoders).
    progress : bool
        Progress bars.

    Returns
    -------
    out : Path
    """
    source = EncoderSource(encoders, config.scratch_config)
    intervals = read_all_intervals(sessions, config.intervals)
    clips = read_clips(intervals, source.config, anchor=config.anchor, progress=progress)
    targets = class_targets(clips, config.classes)
    idx = stratified_subset(np.arange(len(clips)), targets, config.label_fraction, config.seed)
    counts = np.bincount(targets[idx], minlength=len(class_names(config.classes)))
    if (counts > 0).sum() < 2:
        raise ValueError(f"The training clips hold one class only ({_counts(config.classes, counts)}); a classifier "
                         "needs at least two. Add sessions with other expressions.")
    model = new_model(source, clips, config, config.seed)
    logger.info("Training a %s recognizer (%s, %s encoders) on %d clips: %s", config.classes, config.mode,
                "pretrained" if source.pretrained else "scratch", len(idx), _counts(config.classes, counts))
    with torch_threads(config.threads):
        fit(model, clips, idx, targets, config, source.config.augment, seed=config.seed, progress=progress)
    out = Path(out)
    model.save_pretrained(out)
    (out / "recognize.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    (out / "train.json").write_text(json.dumps({
        "sessions": [str(s) for s in sessions], "encoders": str(encoders) if encoders else None,
        "n_clips": int(len(idx)), "class_counts": _counts(config.classes, counts)}, indent=2))
    return out


def _counts(class_set: str, counts: np.ndarray) -> dict[str, int]:
    return {c: int(n) for c, n in zip(class_names(class_set), counts)}
