"""Leave-one-subject-out evaluation of recognizers with the MEGC 2019 metrics.

Metrics (See et al., "MEGC 2019 - the second facial micro-expressions grand challenge"): the
confusion matrices of all folds are summed, then per class ``c`` with ``N_c > 0`` true clips

- ``F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)`` and **UF1** = the mean of ``F1_c`` over those classes;
- ``recall_c = TP_c / N_c`` and **UAR** = the mean of ``recall_c`` over those classes.

Per fold the same formulas run on that fold's matrix (over the classes the held-out subject
shows), for reading only: the overall figures are never a mean of fold figures.

Chance (``chance_uf1``, ``chance_uar``): the scores of a classifier that ignores the clip and
draws each answer at random with the class prior of the fold's training clips. Its expected
confusion matrix is exact: in a fold with ``n_c`` test clips of class ``c`` and training prior
``p``, ``E[C[c, k]] = n_c p_k``; these are summed over folds like the real matrices and scored
with the same formulas (UF1 and UAR of the expected counts). With a uniform prior and balanced
classes both are ``1 / n_classes``; UAR chance is always the mean prior-weighted recall.

Protocol: one fold per subject (the session root's ``subject_id``; every session of the held-out
subject is tested, none of them trained on); the training part is the other subjects' clips,
subsampled to ``label_fraction`` per class (:func:`~fusion.recognition.train.stratified_subset`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from acquisition import logger
from acquisition.utils.logs import verbose

from .classes import class_names
from .config import RecognizeConfig
from .intervals import ExpressionInterval, read_all_intervals
from .train import Clips, EncoderSource, class_targets, embed_clips, fit, new_model, predict_logits, read_clips, \
    stratified_subset, torch_threads

UNKNOWN_SUBJECT = "sub-unknown"


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``C[i, j]`` of clips of true class ``i`` predicted as ``j``, shape (n_classes, n_classes)."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return matrix


def megc_scores(confusion: np.ndarray) -> dict[str, float]:
    """UF1 and UAR (MEGC 2019) of a confusion matrix (counts, or expected counts), over classes with true clips.

    Parameters
    ----------
    confusion : array, shape (n_classes, n_classes)
        ``confusion[i, j]``: clips of true class ``i`` predicted as ``j`` (summed over folds).

    Returns
    -------
    scores : dict
        ``uf1``, ``uar`` (NaN when no class has a true clip), ``n_classes_present``.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(confusion)
    n_true = confusion.sum(1)
    fp, fn = confusion.sum(0) - tp, n_true - tp
    present = n_true > 0
    if not present.any():
        return {"uf1": float("nan"), "uar": float("nan"), "n_classes_present": 0}
    f1 = 2 * tp[present] / (2 * tp[present] + fp[present] + fn[present])
    recall = tp[present] / n_true[present]
    return {"uf1": float(f1.mean()), "uar": float(recall.mean()), "n_classes_present": int(present.sum())}


def chance_confusion(test_counts: np.ndarray, train_prior: np.ndarray) -> np.ndarray:
    """Expected confusion matrix of a classifier guessing with ``train_prior``: ``outer(test_counts, prior)``."""
    prior = np.asarray(train_prior, dtype=np.float64)
    return np.outer(np.asarray(test_counts, dtype=np.float64), prior / prior.sum())


def check_subjects(intervals: Sequence[ExpressionInterval]) -> list[str]:
    """The subjects of the intervals, sorted, after checking that leave-one-subject-out can run.

    Raises
    ------
    ValueError
        If a session has no ``subject_id`` (naming those sessions), or there is only one subject.
    """
    unknown = sorted({i.session.name for i in intervals if i.subject in ("", UNKNOWN_SUBJECT)})
    if unknown:
        raise ValueError(f"Sessions without a subject id: {unknown}. Leave-one-subject-out needs the root "
                         "attribute subject_id of every session (set it when recording: `emosync record "
                         "--subject ...`, SessionWriter(subject_id=...)).")
    subjects = sorted({i.subject for i in intervals})
    if len(subjects) < 2:
        raise ValueError(f"Leave-one-subject-out needs at least two subjects; the sessions all belong to {subjects}.")
    return subjects


def loso(clips: Clips, source: EncoderSource, config: RecognizeConfig, *, progress: bool = False) -> dict:
    """Leave-one-subject-out over read clips (see the module docstring for the metrics and chance).

    Parameters
    ----------
    clips : Clips
        From :func:`~fusion.recognition.train.read_clips`.
    source : EncoderSource
        Pretrained or scratch encoders.
    config : RecognizeConfig
        Classes, mode, modalities, label fraction, seed and training budget.

    Returns
    -------
    report : dict
        ``uf1``, ``uar``, ``chance_uf1``, ``chance_uar``, ``classes``, ``confusion`` (summed, list of
        lists), ``per_fold`` (``subject``, ``n_train``, ``n_test``, ``uf1``, ``uar``, ``train_counts``,
        ``test_counts``), ``n_clips``, ``protocol``, ``mode``, ``init`` (``pretrained``/``scratch``),
        ``modalities``, ``label_fraction``, ``seed``.

    Raises
    ------
    ValueError
        Sessions without subject ids; a fold whose training part holds one class (naming the fold
        and its class counts); labels outside the class set.
    """

    subjects = check_subjects(clips.intervals)
    classes = class_names(config.classes)
    targets = class_targets(clips, config.classes)
    owner = clips.subjects.astype(str)
    folds = []
    for subject in subjects:
        train = stratified_subset(np.flatnonzero(owner != subject), targets, config.label_fraction, config.seed)
        counts = np.bincount(targets[train], minlength=len(classes))
        if (counts > 0).sum() < 2:
            raise ValueError(f"Fold {subject!r} (held out): its training part holds one class only "
                             f"({dict(zip(classes, counts.tolist()))}) with label_fraction {config.label_fraction}; "
                             "a classifier needs two. Add subjects with other expressions or raise label_fraction.")
        folds.append((subject, train, np.flatnonzero(owner == subject), counts))
    with torch_threads(config.threads):
        return _run_folds(clips, source, config, folds, targets, progress)


def _run_folds(clips: Clips, source: EncoderSource, config: RecognizeConfig, folds: list, targets: np.ndarray,
               progress: bool) -> dict:
    """Train and test every fold ``(subject, train, test, train class counts)``; the report of :func:`loso`."""
    from tqdm.auto import tqdm

    classes = class_names(config.classes)
    features = None
    total = np.zeros((len(classes), len(classes)), dtype=np.int64)
    expected = np.zeros((len(classes), len(classes)))
    per_fold = []
    for subject, train, test, counts in tqdm(folds, desc="LOSO", unit="fold", disable=not progress):
        model = new_model(source, clips, config, config.seed)
        if config.mode == "probe" and features is None:
            features = embed_clips(model, clips)   # frozen encoders: the same embedding in every fold
        fit(model, clips, train, targets, config, source.config.augment, seed=config.seed, features=features)
        pred = predict_logits(model, clips, test).argmax(1).numpy()
        matrix = confusion_matrix(targets[test], pred, len(classes))
        total += matrix
        expected += chance_confusion(matrix.sum(1), counts)
        scores = megc_scores(matrix)
        per_fold.append({"subject": subject, "n_train": int(len(train)), "n_test": int(len(test)),
                         "uf1": scores["uf1"], "uar": scores["uar"],
                         "train_counts": dict(zip(classes, counts.tolist())),
                         "test_counts": dict(zip(classes, matrix.sum(1).tolist()))})
        logger.info("LOSO fold %s: %d test clips, UF1 %.3f, UAR %.3f", subject, len(test), scores["uf1"],
                    scores["uar"])
    overall, chance = megc_scores(total), megc_scores(expected)
    return {"uf1": overall["uf1"], "uar": overall["uar"], "chance_uf1": chance["uf1"], "chance_uar": chance["uar"],
            "classes": classes, "confusion": total.tolist(), "per_fold": per_fold, "n_clips": int(len(clips)),
            "protocol": "leave-one-subject-out", "mode": config.mode,
            "init": "pretrained" if source.pretrained else "scratch",
            "encoders": str(source.run) if source.run else None,
            "modalities": list(config.modalities), "label_fraction": config.label_fraction, "seed": config.seed}


@verbose
def evaluate_loso(sessions: Sequence[str | os.PathLike], config: RecognizeConfig, *,
                  encoders: str | os.PathLike | None = None, progress: bool = True,
                  verbose: bool | str | None = None) -> dict:
    """Leave-one-subject-out evaluation of ``sessions`` (``emosync recognize evaluate --protocol loso``).

    Parameters
    ----------
    sessions : sequence of path-like
        Labelled sessions of at least two subjects.
    config : RecognizeConfig
    encoders : path-like | None
        A pretraining run folder; None: encoders from scratch (``config.scratch_config``).
    progress : bool
        Progress bars.

    Returns
    -------
    report : dict
        See :func:`loso`.
    """
    source = EncoderSource(encoders, config.scratch_config)
    intervals = read_all_intervals(sessions, config.intervals)
    check_subjects(intervals)   # before reading any clip
    clips = read_clips(intervals, source.config, anchor=config.anchor, progress=progress)
    return loso(clips, source, config, progress=progress)
