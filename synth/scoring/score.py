"""One scoring run: ``emosync synth score CORPUS --reference ... [--train ...]`` as a function.

:func:`score_corpus` reads the corpus and the reference sessions, refuses reference subjects the
generator was trained on, trains the AU estimator on all reference frames, measures the corpus
and the controls (:mod:`synth.scoring.controls`) and returns a :class:`ScoreReport`. The scored
AUs are those that vary in the reference data (``rendered.min_std``) *and* in the corpus's
requests (an AU never requested to move has no r); every set's mean r is over the same AUs.
:func:`scored_aus` and :func:`measure_sequences` are those two steps on their own, for callers that
score several corpora with one estimator (``benchmarks/synth_sampler_curve.py``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from acquisition import logger
from acquisition.annotate.action_units import AU_LABELS
from synth.scoring.config import ScoreConfig
from synth.scoring.controls import ceiling_predictions, fit_estimator, retrieve_by_aus, score_set, \
    sequence_groups, shuffled_requests
from synth.scoring.metrics import CONSTANT_STD, rendered_aus
from synth.scoring.reference import check_reference_subjects, generator_subjects, load_reference_frames, \
    read_corpus_sequences, reference_episodes, session_subject
from synth.scoring.grid import GridInputs
from synth.scoring.report import ScoreReport


def score_corpus(corpus_dir: str | os.PathLike, reference: Sequence[str | os.PathLike], *,
                 train: Sequence[str | os.PathLike] | None = None, config: ScoreConfig | None = None) -> ScoreReport:
    """Score a synthetic corpus's AU fidelity with an estimator trained only on reference subjects.

    Parameters
    ----------
    corpus_dir : path-like
        The corpus folder (``emosync synth sample --out``).
    reference : sequence of path-like
        Real sessions with AU truth, of subjects the generator never saw (at least one; two or more
        subjects for the ceiling).
    train : sequence of path-like | None
        The generator's training sessions, for the memorization baseline (None: not measured).
    config : ScoreConfig | None
        None: ``configs/synth/score.yaml``.

    Returns
    -------
    report : ScoreReport

    Raises
    ------
    ValueError
        No reference session; a reference subject the generator was trained on; a reference session
        without AU truth; a corpus whose requests vary in none of the AUs the reference renders.
    FileNotFoundError
        A corpus folder without ``corpus.json``, or a missing session file.
    """
    import torch

    from synth.scoring.config import load_score_config

    cfg = config or load_score_config()
    if not reference:
        raise ValueError("Scoring needs --reference sessions: real recordings with AU truth of subjects the "
                         "generator never saw. Without them there is nothing independent to score against.")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    corpus = read_corpus_sequences(corpus_dir, cfg.image_size, max_sequences=cfg.frames.max_sequences)
    gen_subjects, source = generator_subjects(corpus.manifest)
    ref_subjects = check_reference_subjects(reference, gen_subjects, source=source)
    train_subjects = [session_subject(f) for f in train or []]
    overlap = sorted(set(train_subjects) & set(ref_subjects))
    if overlap:
        raise ValueError(f"--train and --reference share subject(s) {', '.join(overlap)}; the reference must be "
                         "people the generator never saw, and the --train sessions are the generator's.")
    ref = load_reference_frames(reference, cfg.image_size)

    rendered, scored = scored_aus(ref.aus, corpus.requested, cfg)

    logger.info("Training the AU estimator on %d reference frames of %d subject(s)", len(ref),
                len(set(ref_subjects)))
    estimator = fit_estimator(ref.rgbd, ref.aus, cfg.estimator, seed=cfg.seed, groups=ref.session_files)
    seq_groups = sequence_groups(corpus.bounds, len(corpus.rgbd))
    measured, synthetic, floor = measure_sequences(estimator, corpus.requested, corpus.rgbd, corpus.bounds, scored,
                                                   seed=cfg.seed)
    sets = {"synthetic": synthetic}

    episodes = reference_episodes(ref.aus[:, scored].sum(1), ref.session_files, ref.times_s,
                                  threshold=cfg.episodes.threshold, pad_s=cfg.episodes.pad_s,
                                  min_frames=cfg.episodes.min_frames)
    notes: dict[str, str] = {}
    if len(set(ref_subjects)) >= 2 and episodes:
        # Measured per episode, as corpus sequences are measured per sequence; scored on episode frames only.
        episode_of_frame = sequence_groups(episodes, len(ref))
        ep_groups = np.where(episode_of_frame >= 0, episode_of_frame.astype(str), ref.session_files)
        ceiling, n_folds = ceiling_predictions(ref.rgbd, ref.aus, ref.subject_ids, cfg.estimator,
                                               n_folds=cfg.ceiling.folds, seed=cfg.seed + 1,
                                               train_groups=ref.session_files, predict_groups=ep_groups)
        rows = np.concatenate([np.arange(a, b) for a, b in episodes])
        ends = np.cumsum([b - a for a, b in episodes])
        local = list(zip(np.r_[0, ends[:-1]].tolist(), ends.tolist()))
        sets["ceiling"] = score_set(ref.aus[rows], ceiling[rows], local, scored, rgbd=ref.rgbd[rows])
        sets["ceiling"]["folds"] = n_folds
    else:
        sets["ceiling"] = None
        notes["ceiling"] = ("needs reference sessions of at least 2 subjects (k-fold by subject)" if episodes else
                            "no expression episodes found in the reference sessions (episodes.threshold)")

    if train:
        from synth.generative.frames import load_face_frames

        pool = load_face_frames(list(train), cfg.image_size, stride=cfg.frames.train_stride,
                                max_frames=cfg.frames.max_train_frames)
        index = retrieve_by_aus(corpus.requested, pool.aus, bounds=corpus.bounds, pool_groups=pool.subject_ids)
        copied = pool.rgbd[index]
        sets["memorization"] = score_set(corpus.requested, estimator.predict(copied, groups=seq_groups),
                                         corpus.bounds, scored,
                                         rgbd=copied)
        sets["memorization"]["pool_frames"] = len(pool)
    else:
        sets["memorization"] = None
        notes["memorization"] = "pass --train (the generator's training sessions) to measure it"

    sets["floor"] = floor
    return ScoreReport(
        corpus=str(Path(corpus_dir)), sequence_ids=corpus.ids, sets=sets, notes=notes,
        scored_aus=_labels(scored), rendered_aus=_labels(rendered),
        reference={"files": [str(f) for f in reference], "subjects": sorted(set(ref_subjects)),
                   "n_frames": len(ref), "n_episodes": len(episodes)},
        train={"files": [str(f) for f in train or []], "subjects": sorted(set(train_subjects))},
        generator_subjects=gen_subjects, subject_check=source if gen_subjects is not None else f"skipped: {source}",
        config=cfg, grid=GridInputs(corpus.rgbd, corpus.requested, measured, corpus.bounds, corpus.records, scored))


def scored_aus(reference_aus: np.ndarray, requested: np.ndarray, config: ScoreConfig) -> tuple[np.ndarray, np.ndarray]:
    """The AUs the reference renders (``rendered.min_std``) and, of those, the ones the requests vary (scored).

    Returns
    -------
    rendered, scored : arrays of bool, shape (17,)

    Raises
    ------
    ValueError
        No AU is both rendered by the reference and varied by the requests.
    """
    rendered = rendered_aus(reference_aus, min_std=config.rendered.min_std)
    requested_varies = np.asarray(requested).std(0) >= CONSTANT_STD
    scored = rendered & requested_varies
    if not scored.any():
        asked, shown = ", ".join(_labels(requested_varies)) or "none", ", ".join(_labels(rendered)) or "none"
        raise ValueError(f"None of the AUs the corpus requests to vary ({asked}) varies in the reference data by "
                         f"rendered.min_std={config.rendered.min_std} (reference varies: {shown}); pass reference "
                         "sessions that show those AUs.")
    return rendered, scored


def measure_sequences(estimator, requested: np.ndarray, rgbd: np.ndarray, bounds: Sequence[tuple[int, int]],
                      scored: np.ndarray, *, seed: int) -> tuple[np.ndarray, dict, dict]:
    """Measure frames sequence by sequence and score them against their requests and against shuffled ones.

    Returns
    -------
    measured : array, shape (n_frames, 17)
        The estimator's AUs (each sequence normalized by its own median frame).
    result, floor : dict
        :func:`~synth.scoring.controls.score_set` of the requests, and of requests shuffled with ``seed``.
    """
    measured = estimator.predict(rgbd, groups=sequence_groups(bounds, len(rgbd)))
    result = score_set(requested, measured, bounds, scored, rgbd=rgbd)
    floor = score_set(shuffled_requests(requested, seed=seed), measured, bounds, scored, timing=False)
    return measured, result, floor


def _labels(mask: np.ndarray) -> list[str]:
    return [label for label, m in zip(AU_LABELS, mask) if m]
