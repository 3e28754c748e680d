"""The Action Unit vocabulary: the one list of AUs, their names and muscles, and the EMFACS emotion prototypes.

Every AU array in emosync (the rig's ground truth, ``emosync annotate``'s estimates, spotting,
generators, data cards) has one column per AU of :data:`AU_IDS`, in that order, named as in
:data:`AU_LABELS`. Intensities use the FACS A-E scale mapped to 1-5 (0 = absent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The 17 AUs of the OpenFace/GANimation vocabulary, in the order used by every AU array.
AU_IDS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45)
AU_INDEX: dict[int, int] = {au: i for i, au in enumerate(AU_IDS)}
#: Channel labels of AU streams, in :data:`AU_IDS` order (``"AU01"``, ``"AU02"``...).
AU_LABELS: list[str] = [f"AU{au:02d}" for au in AU_IDS]
#: Maximum FACS intensity (E).
MAX_INTENSITY = 5.0
#: Longest micro-expression, in seconds.
MICRO_MAX_DURATION_S = 0.5


@dataclass(frozen=True)
class ActionUnit:
    """One FACS Action Unit: number, name and the muscles (with weights) that produce it."""

    id: int
    name: str
    muscles: dict[str, float]


AU_CATALOGUE: dict[int, ActionUnit] = {
    au.id: au
    for au in (
        ActionUnit(1, "inner brow raiser", {"frontalis": 0.6}),
        ActionUnit(2, "outer brow raiser", {"frontalis": 0.6}),
        ActionUnit(4, "brow lowerer", {"corrugator": 1.0}),
        ActionUnit(5, "upper lid raiser", {"levator_palpebrae": 1.0}),
        ActionUnit(6, "cheek raiser", {"orbicularis_oculi": 1.0, "zygomaticus_major": 0.2}),
        ActionUnit(7, "lid tightener", {"orbicularis_oculi": 0.7}),
        ActionUnit(9, "nose wrinkler", {"levator_labii": 0.8}),
        ActionUnit(10, "upper lip raiser", {"levator_labii": 1.0}),
        ActionUnit(12, "lip corner puller", {"zygomaticus_major": 1.0}),
        ActionUnit(14, "dimpler", {"buccinator": 1.0}),
        ActionUnit(15, "lip corner depressor", {"depressor_anguli_oris": 1.0}),
        ActionUnit(17, "chin raiser", {"mentalis": 1.0}),
        ActionUnit(20, "lip stretcher", {"risorius": 1.0}),
        ActionUnit(23, "lip tightener", {"orbicularis_oris": 1.0}),
        ActionUnit(25, "lips part", {"orbicularis_oris": 0.2}),
        ActionUnit(26, "jaw drop", {"masseter": 0.3}),
        ActionUnit(45, "blink", {"orbicularis_oculi": 0.5}),
    )
}

#: EMFACS prototypes; each emotion has variants (AU -> relative intensity) to sample among.
#: AU16 (disgust) is not in the 17-AU vocabulary, so disgust uses its 9/10/15/17 variants;
#: contempt is unilateral in FACS but AU arrays here are bilateral.
EMOTION_PROTOTYPES: dict[str, tuple[dict[int, float], ...]] = {
    "happiness": ({6: 1.0, 12: 1.0}, {6: 1.0, 12: 1.0, 25: 0.6}),
    "sadness": ({1: 1.0, 4: 0.8, 15: 1.0},),
    "surprise": ({1: 1.0, 2: 1.0, 5: 0.8, 26: 1.0}, {1: 1.0, 2: 1.0, 5: 0.6, 25: 0.8}),
    "fear": ({1: 1.0, 2: 0.8, 4: 0.8, 5: 1.0, 7: 0.6, 20: 1.0, 26: 0.8},
             {1: 1.0, 2: 0.8, 4: 0.8, 5: 1.0, 20: 1.0, 25: 0.8}),
    "anger": ({4: 1.0, 5: 0.8, 7: 1.0, 23: 1.0},),
    "disgust": ({9: 1.0, 15: 0.8, 17: 0.5}, {4: 0.5, 9: 0.8, 10: 1.0, 17: 0.6}),
    "contempt": ({12: 0.6, 14: 1.0},),
}
EMOTIONS: tuple[str, ...] = tuple(EMOTION_PROTOTYPES)


def parse_au(name: str | int) -> int:
    """An AU number from ``"AU12"``, ``"au06"``, ``"12"`` or ``12``.

    Raises
    ------
    ValueError
        If the name is not an AU of :data:`AU_IDS` (the message lists them).
    """
    text = str(name).strip().upper().removeprefix("AU").strip()
    if text.isdigit() and int(text) in AU_INDEX:
        return int(text)
    raise ValueError(f"Unknown action unit {name!r}; known AUs: {', '.join(f'AU{a:02d}' for a in AU_IDS)}.")


def check_emotion(name: str) -> str:
    """``name`` if it is an emotion of :data:`EMOTION_PROTOTYPES`, else a ValueError listing them."""
    if name not in EMOTION_PROTOTYPES:
        raise ValueError(f"Unknown emotion {name!r}; known emotions: {', '.join(EMOTIONS)}.")
    return name


def check_intensities(aus: np.ndarray, what: str = "AU intensities") -> np.ndarray:
    """Validate AU intensities: shape (n, 17), finite, on the 0-5 scale; returns them as float32.

    Raises
    ------
    ValueError
        Naming the first offending AU and value.
    """
    aus = np.asarray(aus, dtype=np.float64)
    if aus.ndim != 2 or aus.shape[1] != len(AU_IDS):
        raise ValueError(f"{what} must have shape (n_frames, {len(AU_IDS)}), got {aus.shape}.")
    bad = ~np.isfinite(aus) | (aus < 0) | (aus > MAX_INTENSITY)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"{what}: AU{AU_IDS[col]:02d} = {float(aus[row, col])!r} at row {row} is outside the FACS "
                         f"0-{MAX_INTENSITY:g} scale (A-E = 1-5); {int(bad.sum())} value(s) out of range.")
    return aus.astype(np.float32)
