"""Reading what the scorer compares: the corpus's sequences, the reference sessions and the training pool.

The scorer's one guarantee is independence: its estimator learns only from reference subjects the
generator never saw. :func:`generator_subjects` reads who the generator saw (the model folder the
corpus names in ``corpus.json``), and :func:`check_reference_subjects` refuses any overlap. The
reference sessions must carry AU truth (an ``ActionUnits`` stream, or ``emosync annotate``'s
``<video>-AU``), since the estimator is trained on it and the ceiling is measured against it.

Real reference sessions are continuous recordings; :func:`reference_episodes` cuts them into
expression sequences (runs where the summed scored AUs rise above the session's resting level,
padded with neutral frames as ``emosync synth sample`` pads its sequences), so the ceiling's timing
error and the real flicker are measured on sequences of the same kind as the synthetic ones.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from acquisition import logger, open_session


@dataclass
class CorpusSequences:
    """The frames of a corpus with what each sequence asked for.

    Attributes
    ----------
    rgbd : array of float32, shape (n_frames, 4, image_size, image_size)
        Generated RGB-D frames in [-1, 1].
    requested : array of float32, shape (n_frames, 17)
        The AUs each frame was conditioned on (its ``ActionUnits`` stream), FACS 0-5.
    bounds : list of (int, int)
        ``(start, stop)`` rows of each sequence, in corpus order.
    ids : list of str
        Each sequence's id in ``corpus.json``.
    records : list of dict
        Each read sequence's record in ``corpus.json`` (emotion, kind, identity, ...).
    manifest : dict
        ``corpus.json`` as read.
    """

    rgbd: np.ndarray
    requested: np.ndarray
    bounds: list[tuple[int, int]]
    ids: list[str]
    records: list[dict[str, Any]]
    manifest: dict[str, Any]


def read_corpus_sequences(corpus_dir: str | os.PathLike, image_size: int, *,
                          max_sequences: int | None = None) -> CorpusSequences:
    """Read a corpus folder (``emosync synth sample --out``) sequence by sequence.

    Parameters
    ----------
    corpus_dir : path-like
        The corpus folder (``corpus.json`` + ``sessions/``).
    image_size : int
        Side the frames are resized to (area interpolation), the estimator's input size.
    max_sequences : int | None
        Read only the first ``max_sequences`` sequences.

    Returns
    -------
    sequences : CorpusSequences

    Raises
    ------
    FileNotFoundError
        If the folder holds no ``corpus.json`` or a listed session is missing.
    ValueError
        If ``corpus.json`` lists no sequences, or a sequence has no ``ActionUnits`` stream.
    """
    from synth.generative.corpus import read_corpus
    from synth.generative.frames import load_face_frames

    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"The corpus folder {corpus_dir} does not exist; pass the --out folder of "
                                "`emosync synth sample`.")
    try:
        manifest = read_corpus(corpus_dir)
    except ValueError as err:  # JSONDecodeError
        raise ValueError(f"{corpus_dir} holds a corpus.json that is not valid JSON ({err}); it is not a corpus "
                         "written by `emosync synth sample`.") from None
    records = manifest.get("sequences") or []
    if not records:
        raise ValueError(f"{corpus_dir / 'corpus.json'} lists no sequences; there is nothing to score.")
    records = records[:max_sequences] if max_sequences else records
    files = [corpus_dir / r["file"] for r in records]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"Sequence file(s) listed in {corpus_dir / 'corpus.json'} are missing: "
                                f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}.")
    rgbd, requested, bounds, start = [], [], [], 0
    for fname in files:
        # One session at a time keeps the sequence boundaries; the crops are used whole (generator_kind).
        frames = load_face_frames([fname], image_size)
        rgbd.append(frames.rgbd)
        requested.append(frames.aus)
        bounds.append((start, start + len(frames)))
        start += len(frames)
    return CorpusSequences(np.concatenate(rgbd), np.concatenate(requested), bounds,
                           [str(r.get("id", Path(r["file"]).stem)) for r in records], list(records), manifest)


def session_subject(fname: str | os.PathLike) -> str:
    """The root ``subject_id`` of a session file."""
    with open_session(fname) as session:
        return str(session.info.get("subject_id", "sub-unknown"))


def generator_subjects(manifest: dict[str, Any]) -> tuple[list[str] | None, str]:
    """Subjects of the generator's training sessions, from the model folder named in ``corpus.json``.

    Parameters
    ----------
    manifest : dict
        ``corpus.json`` of the scored corpus.

    Returns
    -------
    subjects : list of str | None
        Sorted subject ids; None when the model folder cannot be read (then the check is skipped).
    note : str
        Where the list came from, or why it could not be read.
    """
    from synth.generative.base import read_model_card

    model_dir = (manifest.get("generator") or {}).get("model_dir")
    if not model_dir:
        return None, "corpus.json names no generator model folder"
    try:
        card = read_model_card(model_dir)
    except (FileNotFoundError, ValueError) as err:
        return None, f"model folder {model_dir} could not be read ({err})"
    records = card.get("training_sessions") or []
    if not records:
        return None, f"model folder {model_dir} lists no training sessions"
    return sorted({str(r.get("subject_id", "sub-unknown")) for r in records}), f"model folder {model_dir}"


def check_reference_subjects(reference: Sequence[str | os.PathLike], train_subjects: Sequence[str] | None, *,
                             source: str) -> list[str]:
    """Subject of each reference session, refusing any the generator was trained on.

    Parameters
    ----------
    reference : sequence of path-like
        The reference session files.
    train_subjects : sequence of str | None
        The generator's training subjects (None: unknown, the check is skipped with a warning).
    source : str
        Where ``train_subjects`` came from (for messages).

    Returns
    -------
    subjects : list of str
        The ``subject_id`` of each reference session, in order.

    Raises
    ------
    ValueError
        If a reference subject is among the generator's training subjects.
    """
    subjects = [session_subject(f) for f in reference]
    if train_subjects is None:
        logger.warning("Could not check that the reference subjects are new to the generator (%s); the score is "
                       "independent only if they are.", source)
        return subjects
    seen = sorted(set(subjects) & set(train_subjects))
    if seen:
        files = [str(f) for f, s in zip(reference, subjects) if s in seen]
        raise ValueError(f"Reference session(s) {', '.join(files)} are of subject(s) {', '.join(seen)}, whom the "
                         f"generator was trained on ({source}). The scorer's estimator must learn from people the "
                         "generator never saw; pass --reference sessions of other subjects.")
    return subjects


def load_reference_frames(reference: Sequence[str | os.PathLike], image_size: int) -> Any:
    """All frames of the reference sessions with their AU truth (a :class:`~synth.generative.FaceFrames`).

    Raises
    ------
    ValueError
        If a session has no AU stream (the message says how to add one) or no RGB/depth video.
    """
    from synth.generative.frames import load_face_frames

    for fname in reference:
        if not Path(fname).is_file():
            raise FileNotFoundError(f"Reference session {fname} does not exist.")
        with open_session(fname) as session:
            has_au = any(s.info.get("type") == "ActionUnits" for s in session.streams.values()) or any(
                name.endswith(("-AU", "-AUs")) for name in session.streams)
        if not has_au:
            raise ValueError(f"Reference session {fname} has no AU truth (no ActionUnits stream and no "
                             f"<video>-AU from `emosync annotate`); streams: {', '.join(session.streams)}. The "
                             "scorer trains its estimator on the reference AUs: record or annotate them first.")
    return load_face_frames(list(reference), image_size)


def reference_episodes(course: np.ndarray, groups: np.ndarray, times_s: np.ndarray, *, threshold: float,
                       pad_s: float, min_frames: int) -> list[tuple[int, int]]:
    """Expression sequences in continuous real recordings, as ``(start, stop)`` rows.

    Parameters
    ----------
    course : array of float, shape (n_frames,)
        The summed scored AUs of each frame (FACS units).
    groups : array, shape (n_frames,)
        Which recording each frame belongs to (e.g. its session file); rows of one recording are
        contiguous and in time order.
    times_s : array of float, shape (n_frames,)
        Frame times in seconds (for the padding).
    threshold : float
        A frame is active when its course exceeds the recording's minimum by more than this.
    pad_s : float
        Neutral time added on both sides of each active run, in seconds; overlapping padded runs merge.
    min_frames : int
        Shorter sequences are dropped.

    Returns
    -------
    bounds : list of (int, int)
    """
    course = np.asarray(course, dtype=np.float64)
    groups = np.asarray(groups)
    out: list[tuple[int, int]] = []
    change = np.flatnonzero(groups[1:] != groups[:-1]) + 1
    for lo, hi in zip(np.r_[0, change], np.r_[change, len(course)]):
        c, t = course[lo:hi], np.asarray(times_s[lo:hi], dtype=np.float64)
        if len(c) < min_frames:
            continue
        dt = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
        pad = int(round(pad_s / dt)) if dt > 0 else 0
        active = np.r_[False, (c - c.min()) > threshold, False].astype(np.int8)
        starts = np.flatnonzero(np.diff(active) == 1)
        stops = np.flatnonzero(np.diff(active) == -1)
        merged: list[list[int]] = []
        for s, e in zip(starts, stops):
            s, e = max(0, s - pad), min(len(c), e + pad)
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        out += [(int(lo + s), int(lo + e)) for s, e in merged if e - s >= min_frames]
    return out
