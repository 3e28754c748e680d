"""Which AUs a generator was trained on: measured on its training frames, kept in the card, checked before sampling.

A generator conditioned on 17 AU intensities only learns what its training frames show: asked
for an AU that never moved in them (a lab that recorded smiles only, asked for disgust's AU09),
it returns a face that ignores the request while the corpus claims otherwise. An emotion is checked
on its core AUs, those every one of its prototypes moves (surprise: AU01, AU02, AU05); AUs that
only some prototypes add (surprise's AU25 or AU26) get a warning. :func:`au_coverage`
counts, per AU, the training frames at or above :data:`ACTIVE_INTENSITY`; ``emosync synth train``
writes it into the model card (``frames.au_coverage``), and :func:`check_requested_aus` refuses a
request that moves an AU with fewer than :data:`MIN_ACTIVE_FRAMES` such frames, before anything is
sampled or written. Cards written before this check existed have no coverage and are not checked.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from acquisition import logger
from acquisition.annotate.action_units import AU_IDS, AU_LABELS, EMOTION_PROTOTYPES

#: An AU counts as shown in a frame at this FACS intensity or more (0.5: halfway to trace, A = 1).
ACTIVE_INTENSITY = 0.5
#: An AU counts as trained on when at least this many training frames show it: one micro-expression
#: (0.3 s at 30 fps, every 3rd frame) is enough; one or two frames are noise of an AU estimate.
MIN_ACTIVE_FRAMES = 3


def au_coverage(aus: np.ndarray) -> dict[str, Any]:
    """Per-AU training coverage of frames ``aus`` (n, 17): the card's ``frames.au_coverage``.

    Returns
    -------
    coverage : dict
        ``active_intensity`` (:data:`ACTIVE_INTENSITY`), ``active_frames`` ({AU label: frames at or
        above it}) and ``max`` ({AU label: largest intensity}).
    """
    aus = np.asarray(aus, dtype=np.float64).reshape(-1, len(AU_IDS))
    active = (aus >= ACTIVE_INTENSITY).sum(0) if len(aus) else np.zeros(len(AU_IDS), int)
    peak = aus.max(0) if len(aus) else np.zeros(len(AU_IDS))
    return {"active_intensity": ACTIVE_INTENSITY,
            "active_frames": {label: int(n) for label, n in zip(AU_LABELS, active)},
            "max": {label: round(float(v), 3) for label, v in zip(AU_LABELS, peak)}}


def emotion_aus(emotion: str) -> tuple[list[int], list[int]]:
    """An emotion's core AUs (moved by every one of its prototypes) and optional ones (by some)."""
    variants = [{au for au, w in v.items() if w > 0} for v in EMOTION_PROTOTYPES[emotion]]
    core = set.intersection(*variants)
    return sorted(core), sorted(set.union(*variants) - core)


def timeline_aus(aus: np.ndarray) -> list[int]:
    """The AUs an explicit AU timeline (n, 17) moves above 0."""
    moved = np.asarray(aus, dtype=np.float64).reshape(-1, len(AU_IDS)).max(0) > 0
    return [au for au, m in zip(AU_IDS, moved) if m]


def untrained_aus(card: Mapping[str, Any], requested: Iterable[int]) -> list[int] | None:
    """The ``requested`` AU numbers the card's model was not trained on; None when the card has no coverage."""
    coverage = (card.get("frames") or {}).get("au_coverage")
    if not coverage:
        return None
    frames = coverage["active_frames"]
    return [au for au in requested if frames.get(f"AU{au:02d}", 0) < MIN_ACTIVE_FRAMES]


def check_requested_aus(card: Mapping[str, Any], model_dir: str | os.PathLike, *,
                        emotions: Iterable[str] = (), timeline: np.ndarray | None = None) -> None:
    """Refuse a sampling request that moves AUs the model was not trained on.

    Parameters
    ----------
    card : mapping
        The model card (``read_model_card``); not checked when it has no ``frames.au_coverage``.
    model_dir : path-like
        The model folder, for the message.
    emotions : iterable of str
        Requested emotions (the AUs every prototype of the emotion moves must be trained on).
    timeline : array, shape (n, 17) | None
        An explicit AU timeline's intensities.

    Raises
    ------
    ValueError
        Naming each AU, what asked for it, and how many training frames showed it. An emotion is
        refused for its core AUs; optional AUs of some of its prototypes only get a warning (those
        sequences will not show them).
    """
    asks: dict[str, list[int]] = {}
    for emotion in emotions:
        asks[emotion], optional = emotion_aus(emotion)
        missing = untrained_aus(card, optional)
        if missing:
            logger.warning("%s was not trained on %s, which some prototypes of %s move; those sequences will not "
                           "show %s.", model_dir, ", ".join(f"AU{a:02d}" for a in missing), emotion,
                           "it" if len(missing) == 1 else "them")
    if timeline is not None:
        asks["the AU timeline"] = timeline_aus(timeline)
    problems = []
    for source, aus in asks.items():
        missing = untrained_aus(card, aus)
        if missing:
            problems.append(f"{source} moves {', '.join(f'AU{a:02d}' for a in missing)}")
    if not problems:
        return
    frames = card["frames"]["au_coverage"]["active_frames"]
    shown = ", ".join(f"{label} ({n})" for label, n in frames.items() if n >= MIN_ACTIVE_FRAMES) or "none"
    raise ValueError(f"{model_dir} was not trained on every AU the request moves: {'; '.join(problems)}. Its "
                     f"training frames show an AU (>= {ACTIVE_INTENSITY} in >= {MIN_ACTIVE_FRAMES} frames) only "
                     f"for: {shown}. A generator cannot render an AU it never saw; request other emotions or AUs, "
                     "or train on sessions that show these.")
