"""The privacy audit of a synthetic corpus: :func:`audit_corpus` and the pass/fail rule.

Privacy is measured against a baseline, not asserted: held-out real frames (never trained on)
say how close genuinely new data comes to the training set, and the synthetic corpus must come
no closer. The audit

1. reads the training frames (the model's exact selection when the given sessions are the ones
   its card records), the held-out frames and the corpus, at the model's image size;
2. measures nearest-training-frame distances of synthetic and held-out frames in pixel space
   (RMS over RGB + depth in [-1, 1]) and in the embedding of a disclosed identity encoder
   trained here on the training subjects (:mod:`synth.privacy.identity`);
3. asks whether the corpus's *people* are new (:mod:`synth.privacy.identity_privacy`): each
   synthetic identity's distance to the nearest training subject against held-out subjects',
   and a re-identification attack ("which training subject is this?");
4. counts synthetic frames under a memorization threshold calibrated on the held-out distances,
   and draws the closest synthetic/training pairs;
5. runs a loss-threshold membership-inference attack on the generator (training vs held-out);
6. copies the rejection rate the sampler recorded in ``corpus.json``;
7. applies the rule (:func:`apply_rule`): every check must pass.

What the baseline means depends on the held-out sessions: held-out *subjects* ask "does the
corpus come closer to a training frame than a new person does" (identity-level, strict);
held-out sessions of the *training subjects* ask "... than a new recording of the same person
does" (frame-level copying). The report says which one was run.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from acquisition import logger
from acquisition.utils.docs import fill_doc
from synth.generative.frames import evenly_spaced  # importing synth.generative registers its docdict entries

from synth.privacy.config import AuditConfig
from synth.privacy.nearest import distance_summary, nearest_neighbours
from synth.privacy.reference_interval import ReferenceIntervals, verdict_is_stable

#: Base names of the files an audit writes into its output folder.
AUDIT_FILES = ("audit.json", "audit.md", "closest_pairs.png", "identity_distances.png")


@dataclass
class AuditReport:
    """The result of :func:`audit_corpus`.

    Attributes
    ----------
    result : dict
        The JSON object ``emosync synth audit --json`` prints (see docs/privacy-audit.md).
    closest_pairs : tuple of ndarray | None
        ``(synthetic, training, distance, index)`` for drawing the PNG.
    identity_plot : dict | None
        The identity block with its arrays, for drawing ``identity_distances.png`` (None when the
        identity checks did not run).
    """

    result: dict[str, Any]
    closest_pairs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    identity_plot: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        """Whether every check of the rule passed."""
        return bool(self.result["passed"])

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able result."""
        return self.result

    def write(self, out_dir: str | os.PathLike, *, n_pairs: int = 12) -> dict[str, Path]:
        """Write ``audit.json``, ``audit.md``, ``closest_pairs.png`` and ``identity_distances.png`` into ``out_dir``.

        An earlier audit there is never overwritten: the files get the first free suffix
        (``audit-2.json``, ``audit-2.md``, ``closest_pairs-2.png``, ``identity_distances-2.png``, ...).

        Returns
        -------
        files : dict of str to Path
            ``json``, ``markdown``, ``closest_pairs`` (absent when there were no pairs) and
            ``identity_distances`` (absent when the identity checks did not run).
        """
        from synth.privacy.identity_privacy import save_identity_figure
        from synth.privacy.memorization import save_closest_pairs
        from synth.privacy.summary import render_markdown

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        names = free_audit_names(out_dir)
        files = {"json": out_dir / names[0], "markdown": out_dir / names[1]}
        if self.closest_pairs is not None:
            synthetic, training, distance, index = self.closest_pairs
            files["closest_pairs"] = out_dir / names[2]
            self.result["memorization"]["closest_pairs"] = save_closest_pairs(
                files["closest_pairs"], synthetic, training, distance, index,
                threshold=self.result["memorization"]["threshold"], n_pairs=n_pairs)
        if self.identity_plot is not None:
            files["identity_distances"] = save_identity_figure(
                out_dir / names[3], self.identity_plot,
                tolerance=self.result["config"]["identity_privacy"]["tolerance"])
        self.result["files"] = {key: str(path) for key, path in files.items()}
        _write_new(files["json"], json.dumps(self.result, indent=2))
        _write_new(files["markdown"], render_markdown(self.result))
        return files


def _write_new(path: Path, text: str) -> None:
    # "x": fail rather than overwrite if another audit took the name in the meantime.
    with open(path, "x") as f:
        f.write(text)


def free_audit_names(out_dir: Path) -> tuple[str, ...]:
    """The first free set of audit file names in ``out_dir``.

    Parameters
    ----------
    out_dir : Path
        The audit's output folder.

    Returns
    -------
    names : tuple of str
        ``("audit.json", "audit.md", "closest_pairs.png", "identity_distances.png")``, or the same
        with the first suffix ``-N`` (N >= 2) for which none of the files exists.
    """
    n = 1
    while True:
        suffix = "" if n == 1 else f"-{n}"
        names = tuple(f"{Path(base).stem}{suffix}{Path(base).suffix}" for base in AUDIT_FILES)
        if not any((out_dir / name).exists() for name in names):
            return names
        n += 1


def _rejection_rate(manifest: dict[str, Any]) -> tuple[float | None, Any]:
    """The rejection rate from ``corpus.json``'s ``rejection`` record (None when no filter ran).

    The sampler writes ``{"n_generated", "n_rejected", "rate", "threshold"}`` or null.
    """
    record = manifest.get("rejection")
    if record is None:
        return None, record
    if not isinstance(record, dict) or "rate" not in record:
        raise ValueError(f"corpus.json's 'rejection' must be null or an object with 'n_generated', 'n_rejected', "
                         f"'rate' and 'threshold' (as `emosync synth sample` writes it), got {record!r}")
    return (None if record["rate"] is None else float(record["rate"])), record


def apply_rule(result: dict[str, Any], config: AuditConfig) -> dict[str, dict[str, Any]]:
    """The checks that decide ``passed``; each is ``{"passed", "value", "bound", "rule"}``.

    When the result holds intervals over held-out people (``reference_interval.enabled``), the
    checks that depend on the held-out frames also carry ``bound_interval`` (NN checks) or
    ``value_interval`` (memorized fraction, membership AUC) and ``stable``: whether the verdict is the
    same at both ends. They inform; ``passed`` is still decided on the point values.

    - ``nn_<space>_p01`` and ``nn_<space>_median`` for each space in ``rule.spaces``: the synthetic
      statistic must be at least ``(1 - tolerance)`` times the held-out one (synthetic no closer
      to training data than held-out data is).
    - ``memorized_fraction``: at most ``rule.max_memorized_fraction`` of synthetic frames under the
      memorization threshold.
    - ``membership_inference_auc``: below ``rule.max_mia_auc``.
    - ``identity_distance_median``, ``identity_distance_rank`` and ``reidentification_rate``
      (when ``identity_privacy.enabled``): see :func:`synth.privacy.identity_privacy.identity_checks`.

    A check whose input was not computed (identity encoder disabled, MIA disabled) is listed with
    ``passed: None`` and does not decide the outcome; the report says so.
    """
    tol = config.rule.tolerance
    checks: dict[str, dict[str, Any]] = {}
    spaces = {"pixel": result["nearest_neighbour"], "embedding": result.get("nearest_neighbour_embedding")}
    for space in config.rule.spaces:
        block = spaces[space]
        for stat in ("p01", "median"):
            name = f"nn_{space}_{stat}"
            if not block or block.get("synthetic_to_train") is None:
                reason = (block or {}).get("skipped", "disabled")
                checks[name] = {"passed": None, "value": None, "bound": None,
                                "rule": f"{space} NN distances not computed: {reason}"}
                continue
            value, reference = block["synthetic_to_train"][stat], block["holdout_to_train"][stat]
            bound = (1.0 - tol) * reference
            checks[name] = {"passed": bool(value >= bound), "value": value, "bound": bound,
                            "rule": f"synthetic {stat} >= (1 - {tol}) x held-out {stat} ({space} space)",
                            **_firmness(lambda b, v=value: v >= b, "bound", block.get("holdout_interval"), stat,
                                        scale=1.0 - tol)}
    memorization = result["memorization"]
    fraction, most = memorization["memorized_fraction"], config.rule.max_memorized_fraction
    checks["memorized_fraction"] = {
        "passed": bool(fraction <= most), "value": fraction, "bound": most,
        "rule": "fraction of synthetic frames under the memorization threshold <= bound",
        **_firmness(lambda f: f <= most, "value", memorization.get("interval"), "memorized_fraction")}
    mia = result["membership_inference"]
    auc = mia.get("auc")
    checks["membership_inference_auc"] = (
        {"passed": bool(auc < config.rule.max_mia_auc), "value": auc, "bound": config.rule.max_mia_auc,
         "rule": "loss-threshold attack AUC < bound",
         **_firmness(lambda a: a < config.rule.max_mia_auc, "value", mia.get("interval"), "auc")}
        if auc is not None else
        {"passed": None, "value": None, "bound": config.rule.max_mia_auc,
         "rule": f"not run: {mia.get('skipped')}"})
    if config.identity_privacy.enabled:
        from synth.privacy.identity_privacy import identity_checks

        checks.update(identity_checks(result.get("identity_privacy"), config.identity_privacy))
    return checks


def _firmness(passes: Any, which: str, interval: dict[str, Any] | None, key: str, *, scale: float = 1.0
              ) -> dict[str, Any]:
    """``<which>_interval`` (the bound's or the value's interval over held-out people) and ``stable``.

    ``stable`` is False when the check's verdict differs between the two ends of that interval: with
    other held-out people from the same population the audit could say the opposite. It is None with
    a single held-out unit, where nothing can be resampled and so nothing is known about others.
    """
    if not interval:
        return {}
    low, high = (scale * x for x in interval[key])
    return {f"{which}_interval": [low, high],
            "stable": verdict_is_stable(passes, low, high) if interval["n_units"] >= 2 else None}


def _session_hashes(paths: Sequence[Path]) -> list[str]:
    from acquisition.utils.hashing import file_sha256

    return [file_sha256(p) for p in paths]


def _subjects(frames: Any) -> list[str]:
    return sorted({str(s) for s in frames.subject_ids})


@fill_doc
def audit_corpus(model_dir: str | os.PathLike, corpus_dir: str | os.PathLike,
                 train_sessions: Sequence[str | os.PathLike] | None, holdout_sessions: Sequence[str | os.PathLike],
                 config: AuditConfig | None = None, *, progress: bool = False) -> AuditReport:
    """Audit a synthetic corpus against the generator's training data.

    Parameters
    ----------
    %(generator_dir)s
    corpus_dir : path-like
        The corpus folder (``emosync synth sample --out``).
    train_sessions : sequence of path-like | None
        The sessions the model was trained on; None reads them from the model card (checked by
        sha256). When they are exactly the card's, the model's own frame selection is used, so the
        membership "members" are frames it really trained on.
    holdout_sessions : sequence of path-like
        Real sessions the model never saw: the baseline.
    config : AuditConfig | None
        Thresholds and sizes (``configs/synth/audit.yaml`` when None).
    progress : bool
        Log each step at INFO level.

    Returns
    -------
    report : AuditReport
        ``report.result`` is the JSON object; ``report.write(out_dir)`` writes the files.

    Raises
    ------
    ValueError
        No held-out session, a held-out session that is also a training session, or bad inputs.
    """
    from synth.privacy.config import load_audit_config

    config = config or load_audit_config()
    with _torch_threads(config.threads):
        return _audit(model_dir, corpus_dir, train_sessions, holdout_sessions, config, progress=progress)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch CPU threads (0: leave as is), restoring the previous count."""
    import torch

    previous = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass
class _AuditInputs:
    """What is audited: the model's card, the session files, and whether they are the card's own."""

    card: dict[str, Any]
    train_paths: list[Path]
    holdout_paths: list[Path]
    exact_selection: bool


@dataclass
class _AuditFrames:
    """The frames compared: training (all, and the capped subset used), held-out, and the corpus."""

    train: Any
    train_used: Any
    holdout: Any
    corpus: Any

    @property
    def synthetic(self) -> np.ndarray:
        """The corpus frames, (n, 4, H, W) in [-1, 1]."""
        return self.corpus.rgbd


def _audit(model_dir: str | os.PathLike, corpus_dir: str | os.PathLike,
           train_sessions: Sequence[str | os.PathLike] | None, holdout_sessions: Sequence[str | os.PathLike],
           config: AuditConfig, *, progress: bool) -> AuditReport:
    """The numbered steps of the module docstring, in order; each fills its block of the result."""
    from synth.generative import load_generator
    from synth.generative.base import utc_now

    step = logger.info if progress else logger.debug
    model_dir, corpus_dir = Path(model_dir), Path(corpus_dir)
    inputs = _check_inputs(model_dir, train_sessions, holdout_sessions)

    # 1. Frames.
    step("Loading the generator and frames")
    generator = load_generator(model_dir)
    frames = _load_frames(model_dir, corpus_dir, inputs, int(generator.image_size), config)

    # 2. Pixel nearest neighbours.
    step("Pixel-space nearest neighbours (%d synthetic, %d held-out vs %d training frames)",
         len(frames.synthetic), len(frames.holdout), len(frames.train_used))
    chunk = config.nearest.chunk_size
    syn_nn = nearest_neighbours(frames.synthetic, frames.train_used.rgbd, chunk_size=chunk)
    hold_nn = nearest_neighbours(frames.holdout.rgbd, frames.train_used.rgbd, chunk_size=chunk)
    reference = ReferenceIntervals.of(frames.holdout, config.reference_interval, config.seed)
    result: dict[str, Any] = {
        "nearest_neighbour": {
            "space": "pixel: RMS distance over RGB + depth crops in [-1, 1] at the model's image size",
            "synthetic_to_train": distance_summary(syn_nn.distance),
            "holdout_to_train": distance_summary(hold_nn.distance),
            "holdout_interval": reference.distances(hold_nn.distance),
        },
    }

    # 3. Embedding nearest neighbours (the disclosed identity encoder), then identity privacy.
    result["nearest_neighbour_embedding"], embedded = _embedding_block(frames.train_used, frames.holdout,
                                                                       frames.synthetic, config, step, reference)
    result["identity_privacy"], identity_plot = _identity_privacy_block(embedded, frames, config, step)

    # 4. Memorization.
    threshold, memorization = _memorization_block(syn_nn.distance, hold_nn.distance, config, reference)
    result["memorized_frames"] = memorization["memorized_frames"]
    result["memorization"] = memorization

    # 5. Membership inference.
    result["membership_inference"] = _membership_block(generator, frames, config, step, reference)
    result["reference_interval"] = reference.describe()

    # 6. Rejection rate recorded by the sampler.
    rate, record = _rejection_rate(frames.corpus.manifest)
    result["rejection_rate"] = rate
    result["rejection"] = record

    # 7. The rule.
    _decide(result, config, threshold)
    result["n_frames"] = {"train": len(frames.train_used), "train_total": len(frames.train),
                          "holdout": len(frames.holdout), "synthetic": len(frames.synthetic),
                          "synthetic_sequences": len(frames.corpus.manifest["sequences"])}
    result["inputs"] = _inputs_block(model_dir, corpus_dir, inputs, frames, config, int(generator.image_size))
    result["config"] = config.model_dump()
    result["created"] = utc_now()
    return AuditReport(result, (frames.synthetic, frames.train_used.rgbd, syn_nn.distance, syn_nn.index),
                       identity_plot)


def _check_inputs(model_dir: Path, train_sessions: Sequence[str | os.PathLike] | None,
                  holdout_sessions: Sequence[str | os.PathLike]) -> _AuditInputs:
    """The card and session files, refused when a held-out session is a training one or a file is missing."""
    from synth.generative import read_model_card
    from synth.generative.base import training_sessions

    if not holdout_sessions:
        raise ValueError("No held-out sessions: the audit compares the corpus with real frames the model never "
                         "saw; pass them with --holdout H.h5 (other subjects, or other recordings).")
    card = read_model_card(model_dir)
    card_sessions = training_sessions(model_dir, verify=train_sessions is None)
    train_paths = [Path(p) for p in (train_sessions or card_sessions)]
    holdout_paths = [Path(p) for p in holdout_sessions]
    for path in (*train_paths, *holdout_paths):
        if not path.is_file():
            raise FileNotFoundError(f"Session file {path} does not exist.")
    train_hashes = _session_hashes(train_paths)
    card_hashes = [r.get("sha256") for r in card.get("training_sessions", [])]
    leaked = [str(p) for p, h in zip(holdout_paths, _session_hashes(holdout_paths))
              if h in set(train_hashes) | set(card_hashes)]
    if leaked:
        raise ValueError(f"Held-out sessions {leaked} are training sessions of {model_dir} (same sha256); the "
                         "baseline must be data the model never saw.")
    exact_selection = train_hashes == card_hashes
    if not exact_selection:
        logger.warning("The --train sessions differ from those recorded in %s; membership 'members' may include "
                       "frames the model did not train on (weakening the attack).", model_dir)
    return _AuditInputs(card, train_paths, holdout_paths, exact_selection)


def _load_frames(model_dir: Path, corpus_dir: Path, inputs: _AuditInputs, size: int,
                 config: AuditConfig) -> _AuditFrames:
    """Training frames (the model's own selection when the sessions are its card's), held-out and corpus frames."""
    from synth.generative import load_face_frames
    from synth.generative.base import training_frame_selection

    from synth.privacy.corpus_frames import load_corpus_frames

    cap = config.frames.max_frames
    if inputs.exact_selection:
        selection = training_frame_selection(model_dir)
        train = load_face_frames(inputs.train_paths, size, stride=int(selection.get("stride", 1)),
                                 max_frames=selection.get("max_frames"))
    else:
        train = load_face_frames(inputs.train_paths, size, stride=config.frames.stride)
    return _AuditFrames(train=train, train_used=train.subset(evenly_spaced(len(train), cap)),
                        holdout=load_face_frames(inputs.holdout_paths, size, stride=config.frames.stride,
                                                 max_frames=cap),
                        corpus=load_corpus_frames(corpus_dir, size, max_frames=cap))


def _memorization_block(synthetic_nn: np.ndarray, holdout_nn: np.ndarray, config: AuditConfig,
                        reference: ReferenceIntervals) -> tuple[float, dict[str, Any]]:
    """The memorization distance (calibrated on held-out NN distances) and the result's ``memorization`` block."""
    from synth.privacy.memorization import calibrate_threshold, count_memorized

    mc = config.memorization
    threshold = calibrate_threshold(holdout_nn, quantile=mc.quantile, scale=mc.scale, floor=mc.floor)
    # Measured, not assumed: when the floor sets the threshold, far more (or fewer) held-out frames
    # than the calibration quantile may fall under it.
    return threshold, {**count_memorized(synthetic_nn, threshold),
                       "holdout_fraction_under_threshold": float(np.mean(holdout_nn < threshold)),
                       "quantile": mc.quantile, "scale": mc.scale, "floor": mc.floor,
                       "calibration": f"{mc.scale} x the {mc.quantile:g} quantile of held-out-to-train pixel NN "
                                      f"distances, at least {mc.floor:.4g}",
                       "interval": reference.memorization(synthetic_nn, holdout_nn, mc)}


def _membership_block(generator: Any, frames: _AuditFrames, config: AuditConfig, step: Any,
                      reference: ReferenceIntervals) -> dict[str, Any]:
    """The loss-threshold membership-inference attack (training vs held-out frames), or why it was skipped."""
    from synth.privacy.membership import membership_inference, per_sample_losses

    if not config.membership.enabled:
        return {"auc": None, "tpr_at_1pct_fpr": None, "skipped": "membership.enabled=false"}
    step("Membership inference (loss threshold)")
    members = frames.train.subset(evenly_spaced(len(frames.train), config.membership.max_frames))
    other_rows = evenly_spaced(len(frames.holdout), config.membership.max_frames)
    others = frames.holdout.subset(other_rows)
    kwargs = {"repeats": config.membership.repeats, "batch_size": config.membership.batch_size, "seed": config.seed}
    member_losses = per_sample_losses(generator.per_sample_loss, members.rgbd, members.aus, **kwargs)
    other_losses = per_sample_losses(generator.per_sample_loss, others.rgbd, others.aus, **kwargs)
    return {**membership_inference(member_losses, other_losses),
            "interval": reference.membership(member_losses, other_losses, other_rows)}


def _decide(result: dict[str, Any], config: AuditConfig, threshold: float) -> None:
    """Apply the rule: ``passed``, ``checks`` and ``thresholds`` into ``result``."""
    checks = apply_rule(result, config)
    decided = [c["passed"] for c in checks.values() if c["passed"] is not None]
    result["passed"] = bool(decided) and all(decided)
    result["checks"] = checks
    result["thresholds"] = {"tolerance": config.rule.tolerance,
                            "max_memorized_fraction": config.rule.max_memorized_fraction,
                            "max_mia_auc": config.rule.max_mia_auc, "memorization_distance": threshold,
                            "spaces": list(config.rule.spaces),
                            "identity_privacy": ({key: getattr(config.identity_privacy, key) for key in
                                                  ("tolerance", "alpha", "reid_quantile", "max_reid_rate")}
                                                 if config.identity_privacy.enabled else None)}


def _baseline(train_subjects: list[str], holdout_subjects: list[str]) -> str:
    """What the held-out baseline measures, from whose frames it holds."""
    if not set(train_subjects) & set(holdout_subjects):
        return "held-out subjects"
    if set(holdout_subjects) <= set(train_subjects):
        return "held-out sessions of training subjects"
    return "mixed: some held-out subjects are training subjects"


def _inputs_block(model_dir: Path, corpus_dir: Path, inputs: _AuditInputs, frames: _AuditFrames,
                  config: AuditConfig, size: int) -> dict[str, Any]:
    """What was audited (model, corpus, sessions, subjects), warning when the corpus is another model's."""
    from acquisition.utils.hashing import file_sha256
    from synth.generative import model_sha256
    from synth.generative.corpus import CORPUS_FILE

    generator_record = frames.corpus.manifest.get("generator", {})
    sha = model_sha256(model_dir)
    train_subjects, holdout_subjects = _subjects(frames.train), _subjects(frames.holdout)
    block = {
        "model_dir": str(model_dir.resolve()), "model_kind": inputs.card.get("kind"), "model_sha256": sha,
        "corpus_dir": str(corpus_dir.resolve()),
        # What was audited, so a data card can tell that the corpus grew afterwards (synth sample --append).
        "corpus_sha256": file_sha256(corpus_dir / CORPUS_FILE),
        "sequence_ids": [str(seq.get("id")) for seq in frames.corpus.manifest["sequences"]],
        "corpus_generator_sha256": generator_record.get("model_sha256"),
        "corpus_matches_model": generator_record.get("model_sha256") == sha,
        "train_sessions": [str(p) for p in inputs.train_paths],
        "holdout_sessions": [str(p) for p in inputs.holdout_paths],
        "train_selection": "the model's own" if inputs.exact_selection else f"stride {config.frames.stride}",
        "train_subjects": train_subjects, "holdout_subjects": holdout_subjects,
        "baseline": _baseline(train_subjects, holdout_subjects), "image_size": size,
    }
    if not block["corpus_matches_model"]:
        logger.warning("corpus.json records generator sha256 %s but %s has %s: auditing a corpus against another "
                       "model.", generator_record.get("model_sha256"), model_dir, sha)
    return block


@dataclass
class _Embedded:
    """The trained identity encoder and the embeddings of the three frame sets, for the identity checks."""

    encoder: Any
    train: np.ndarray
    holdout: np.ndarray
    synthetic: np.ndarray
    trained_on: str


def _embedding_block(train: Any, holdout: Any, synthetic: np.ndarray, config: AuditConfig, step: Any,
                     reference: ReferenceIntervals) -> tuple[dict[str, Any], _Embedded | None]:
    """Identity-encoder NN distances (or ``{"skipped": reason}``) and the embeddings (None when skipped)."""
    from synth.privacy.identity import embed, train_identity_encoder

    if not config.identity.enabled:
        return {"skipped": "identity.enabled=false", "synthetic_to_train": None, "holdout_to_train": None}, None
    encoder_frames, labels, trained_on = train.rgbd, train.subject_ids, "training subjects"
    validation = _late_frames(train, config.identity.validation_fraction)
    if len(set(train.subject_ids)) < 2:
        # One training subject leaves nothing to tell apart: add the held-out subjects (disclosed).
        if set(holdout.subject_ids) <= set(train.subject_ids):
            return {"skipped": "fewer than two subjects in the training and held-out sessions",
                    "synthetic_to_train": None, "holdout_to_train": None}, None
        encoder_frames = np.concatenate([train.rgbd, holdout.rgbd])
        labels = np.concatenate([train.subject_ids, holdout.subject_ids])
        validation = np.concatenate([validation, _late_frames(holdout, config.identity.validation_fraction)])
        trained_on = "training and held-out subjects (only one training subject)"
    step("Training the identity encoder on %d frames of %d subjects", len(labels), len(set(labels)))
    ic = config.identity
    encoder, info = train_identity_encoder(encoder_frames, labels, steps=ic.steps, batch_size=ic.batch_size,
                                           width=ic.width, embed_dim=ic.embed_dim, lr=ic.lr,
                                           augment_shift_px=ic.augment_shift_px, augment_gain=ic.augment_gain,
                                           logit_scale=ic.logit_scale, validation=validation,
                                           seed=config.seed)
    train_emb, hold_emb, syn_emb = embed(encoder, train.rgbd), embed(encoder, holdout.rgbd), embed(encoder, synthetic)
    chunk = config.nearest.chunk_size
    syn = nearest_neighbours(syn_emb, train_emb, chunk_size=chunk).distance
    hold = nearest_neighbours(hold_emb, train_emb, chunk_size=chunk).distance
    # "Identity match": closer to a training identity than (1 - quantile) of held-out real faces are.
    match_threshold = float(np.quantile(hold, ic.match_quantile))
    block = {
        "space": "identity encoder: RMS distance between unit-norm embeddings "
                 "(x sqrt(dim) gives the Euclidean distance on the sphere)",
        "encoder": {**info, "trained_on": trained_on},
        "synthetic_to_train": distance_summary(syn),
        "holdout_to_train": distance_summary(hold),
        "holdout_interval": reference.distances(hold),
        "identity_match_threshold": match_threshold,
        "identity_match_quantile": ic.match_quantile,
        "validation_fraction": ic.validation_fraction,
        "identity_match_fraction": float(np.mean(syn < match_threshold)),
    }
    return block, _Embedded(encoder, train_emb, hold_emb, syn_emb, trained_on)


def _identity_privacy_block(embedded: _Embedded | None, frames: _AuditFrames, config: AuditConfig, step: Any
                            ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The ``identity_privacy`` block (None when disabled) and, when computed, its arrays for the figure."""
    from synth.privacy.identity import subject_probabilities
    from synth.privacy.identity_privacy import identity_labels, identity_privacy

    if not config.identity_privacy.enabled:
        return None, None
    labels = identity_labels(frames.corpus.sequence_ids, frames.corpus.identities)
    train_names = sorted({str(s) for s in frames.train_used.subject_ids})
    skipped = {"identity_source": labels.source, "train_subjects": train_names}
    if embedded is None:
        return {**skipped, "skipped": "the identity encoder did not run (identity.enabled=false, or fewer than two "
                                      "subjects)"}, None
    if embedded.trained_on != "training subjects":
        # Held-out subjects the encoder learned to tell apart are not new people to it.
        return {**skipped, "skipped": f"fewer than two training subjects (the identity encoder was trained on "
                                      f"{embedded.trained_on})"}, None
    step("Identity privacy: %d synthetic identities against %d training subjects", len(labels.kinds),
         len(train_names))
    encoder = embedded.encoder
    # Columns in the training subjects' sorted order, whatever order the head learned them in.
    columns = [encoder.subjects.index(s) for s in train_names]
    block = identity_privacy(
        train_emb=embedded.train, train_subjects=frames.train_used.subject_ids, holdout_emb=embedded.holdout,
        holdout_subjects=frames.holdout.subject_ids, synthetic_emb=embedded.synthetic, labels=labels,
        probabilities=lambda x: subject_probabilities(encoder, x)[:, columns], config=config.identity_privacy,
        seed=config.seed)
    plot = block.pop("_plot", None)
    return block, (None if plot is None else {**block, "_plot": plot})


def _late_frames(frames: Any, fraction: float) -> np.ndarray:
    """The last ``fraction`` of each session's frames (in time): held back to validate the encoder."""
    late = np.zeros(len(frames), bool)
    for fname in np.unique(frames.session_files):
        rows = np.flatnonzero(frames.session_files == fname)
        cut = np.quantile(frames.times_s[rows], 1.0 - fraction)
        late[rows[frames.times_s[rows] > cut]] = True
    return late
