"""AU timelines: expression dynamics over the vocabulary of :mod:`acquisition.annotate.action_units`.

One implementation of expression dynamics serves both the simulated rig (which
drives its face, EMG and markers from an :class:`AUTimeline`) and, later, the
synthetic-corpus generators. Intensities use the FACS A-E scale mapped to 1-5
(0 = absent). Each expression follows onset-apex-offset with raised-cosine ramps
and an apex hold; micro-expressions last at most 0.5 s, macro-expressions 0.5-4 s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from acquisition.annotate.action_units import (AU_CATALOGUE, AU_IDS, AU_INDEX, EMOTION_PROTOTYPES, EMOTIONS,
                                              MAX_INTENSITY, MICRO_MAX_DURATION_S, check_emotion, check_intensities,
                                              parse_au)
from acquisition.utils.config import StrictModel

def raised_cosine_ramp(x: np.ndarray) -> np.ndarray:
    """Smooth 0 -> 1 ramp over ``x`` in [0, 1] (clipped outside): ``(1 - cos(pi x)) / 2``."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


@dataclass(frozen=True)
class ExpressionEvent:
    """One expression (or blink) with onset-apex-offset dynamics.

    Attributes
    ----------
    onset_s : float
        Start of the onset phase, in seconds from the timeline start.
    apex_s : float
        Time the apex intensity is reached (end of the onset ramp), in seconds.
    apex_end_s : float
        End of the apex hold, in seconds.
    offset_s : float
        End of the offset ramp (expression over), in seconds.
    emotion : str
        Emotion label, or ``"blink"``.
    kind : ``"micro"`` | ``"macro"`` | ``"blink"``
        Micro-expressions last at most 0.5 s.
    peak : dict of int to float
        Apex intensity of each AU, on the 0-5 scale.
    """

    onset_s: float
    apex_s: float
    apex_end_s: float
    offset_s: float
    emotion: str
    kind: str
    peak: dict[int, float] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        """Duration from onset to offset, in seconds."""
        return self.offset_s - self.onset_s

    def envelope(self, times_s: np.ndarray) -> np.ndarray:
        """Relative intensity (0-1) at ``times_s``: raised-cosine rise, hold, raised-cosine fall."""
        t = np.asarray(times_s, dtype=np.float64)
        rise = raised_cosine_ramp((t - self.onset_s) / max(self.apex_s - self.onset_s, 1e-9))
        fall = 1.0 - raised_cosine_ramp((t - self.apex_end_s) / max(self.offset_s - self.apex_end_s, 1e-9))
        return np.where(t < self.apex_end_s, rise, fall) * ((t >= self.onset_s) & (t <= self.offset_s))


class TimelineConfig(StrictModel):
    """How random expressions are drawn (all durations in seconds, intensities 0-5)."""

    expressions_per_minute: float = Field(8.0, ge=0)
    micro_fraction: float = Field(0.4, ge=0, le=1)
    micro_duration_s: tuple[float, float] = (0.2, 0.5)
    macro_duration_s: tuple[float, float] = (0.6, 4.0)
    micro_intensity: tuple[float, float] = (1.0, 2.5)
    macro_intensity: tuple[float, float] = (2.0, 5.0)
    onset_fraction: tuple[float, float] = (0.2, 0.4)
    apex_fraction: tuple[float, float] = (0.1, 0.3)
    min_gap_s: float = Field(0.5, ge=0)
    lead_in_s: float = Field(1.0, ge=0)
    emotions: list[str] = Field(default_factory=lambda: list(EMOTIONS))
    blinks_per_minute: float = Field(15.0, ge=0)
    blink_duration_s: tuple[float, float] = (0.1, 0.3)

    @model_validator(mode="after")
    def _check(self) -> TimelineConfig:
        unknown = sorted(set(self.emotions) - set(EMOTIONS))
        if unknown:
            raise ValueError(f"unknown emotions {unknown}; known: {list(EMOTIONS)}")
        if not self.emotions and self.expressions_per_minute > 0:
            raise ValueError("emotions is empty but expressions_per_minute > 0")
        for name in ("micro_duration_s", "macro_duration_s", "micro_intensity", "macro_intensity",
                     "onset_fraction", "apex_fraction", "blink_duration_s"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name} must be (low, high) with 0 <= low <= high, got {(low, high)}")
        if self.micro_duration_s[1] > MICRO_MAX_DURATION_S:
            raise ValueError(f"micro_duration_s may not exceed {MICRO_MAX_DURATION_S} s, got {self.micro_duration_s}")
        if self.macro_duration_s[0] <= MICRO_MAX_DURATION_S:
            raise ValueError(f"macro_duration_s must start above {MICRO_MAX_DURATION_S} s, got {self.macro_duration_s}")
        if max(self.micro_intensity[1], self.macro_intensity[1]) > MAX_INTENSITY:
            raise ValueError(f"intensities are on the 0-{MAX_INTENSITY:g} scale")
        if self.onset_fraction[1] + self.apex_fraction[1] >= 1:
            raise ValueError("onset_fraction + apex_fraction must leave room for the offset phase (< 1)")
        return self


class AUTimeline:
    """A ground-truth AU timeline: a sorted list of expressions and blinks.

    Parameters
    ----------
    events : list of ExpressionEvent
        The expressions and blinks; expressions do not overlap each other.
    duration_s : float
        Length of the timeline in seconds.
    """

    def __init__(self, events: list[ExpressionEvent], duration_s: float) -> None:
        self.events = sorted(events, key=lambda e: e.onset_s)
        self.duration_s = float(duration_s)
        self._onsets = np.array([e.onset_s for e in self.events])
        self._offsets = np.array([e.offset_s for e in self.events])

    @property
    def expressions(self) -> list[ExpressionEvent]:
        """Expressions only (no blinks)."""
        return [e for e in self.events if e.kind != "blink"]

    def intensities(self, times_s: np.ndarray) -> np.ndarray:
        """AU intensities at the given times.

        Parameters
        ----------
        times_s : array of float, shape (n,)
            Seconds from the timeline start.

        Returns
        -------
        au : array of float32, shape (n, 17)
            Intensities on the 0-5 scale, columns in :data:`AU_IDS` order.
        """
        t = np.asarray(times_s, dtype=np.float64).reshape(-1)
        out = np.zeros((t.size, len(AU_IDS)), dtype=np.float64)
        if t.size == 0 or not self.events:
            return out.astype(np.float32)
        active = np.flatnonzero((self._onsets <= t.max()) & (self._offsets >= t.min()))
        for index in active:
            event = self.events[index]
            envelope = event.envelope(t)
            for au, peak in event.peak.items():
                out[:, AU_INDEX[au]] += peak * envelope
        return np.clip(out, 0.0, MAX_INTENSITY).astype(np.float32)

    def markers(self) -> list[tuple[float, str]]:
        """Marker strings ``"<phase>/<emotion>/<kind>"`` (phase: onset, apex, offset) with times in seconds."""
        out: list[tuple[float, str]] = []
        for e in self.expressions:
            out += [(e.onset_s, f"onset/{e.emotion}/{e.kind}"), (e.apex_s, f"apex/{e.emotion}/{e.kind}"),
                    (e.offset_s, f"offset/{e.emotion}/{e.kind}")]
        return sorted(out, key=lambda m: m[0])


def _draw_expression(rng: np.random.Generator, config: TimelineConfig, onset_s: float, duration_s: float,
                     emotion: str, kind: str) -> ExpressionEvent:
    """One expression: a prototype variant, an apex intensity and the onset/apex phase lengths."""
    variants = EMOTION_PROTOTYPES[emotion]
    variant = variants[int(rng.integers(len(variants)))]
    apex = rng.uniform(*(config.micro_intensity if kind == "micro" else config.macro_intensity))
    onset_len = duration_s * rng.uniform(*config.onset_fraction)
    apex_len = duration_s * rng.uniform(*config.apex_fraction)
    return ExpressionEvent(onset_s=onset_s, apex_s=onset_s + onset_len, apex_end_s=onset_s + onset_len + apex_len,
                           offset_s=onset_s + duration_s, emotion=emotion, kind=kind,
                           peak={au: apex * w for au, w in variant.items()})


def generate_timeline(config: TimelineConfig, duration_s: float, seed: int) -> AUTimeline:
    """Draw a random AU timeline.

    Expressions arrive as a Poisson process (``expressions_per_minute``) without
    overlapping; each picks an emotion, one of its prototype variants, micro or
    macro (``micro_fraction``), a duration and an apex intensity. Blinks (AU45)
    are drawn independently and may overlap expressions.

    Parameters
    ----------
    config : TimelineConfig
        Rates, durations and intensities.
    duration_s : float
        Length of the timeline in seconds.
    seed : int
        Seed; the same seed gives the same timeline.

    Returns
    -------
    timeline : AUTimeline
    """
    rng = np.random.default_rng([seed, 0xFAC5])
    events: list[ExpressionEvent] = []
    t = config.lead_in_s
    rate_per_s = config.expressions_per_minute / 60.0
    while rate_per_s > 0:
        t += rng.exponential(1.0 / rate_per_s)
        kind: Literal["micro", "macro"] = "micro" if rng.random() < config.micro_fraction else "macro"
        duration = rng.uniform(*(config.micro_duration_s if kind == "micro" else config.macro_duration_s))
        if t + duration > duration_s:
            break
        emotion = str(rng.choice(config.emotions))
        events.append(_draw_expression(rng, config, t, duration, emotion, kind))
        t += duration + config.min_gap_s
    blink_rate = config.blinks_per_minute / 60.0
    t = 0.0
    while blink_rate > 0:
        t += rng.exponential(1.0 / blink_rate)
        duration = rng.uniform(*config.blink_duration_s)
        if t + duration > duration_s:
            break
        events.append(ExpressionEvent(t, t + 0.4 * duration, t + 0.5 * duration, t + duration,
                                      emotion="blink", kind="blink", peak={45: MAX_INTENSITY}))
        t += duration
    return AUTimeline(events, duration_s)


def muscle_activation(au_intensity: np.ndarray, muscle: str) -> np.ndarray:
    """Relative activation (0-1) of a muscle from AU intensities.

    Parameters
    ----------
    au_intensity : array, shape (n, 17)
        AU intensities (0-5) in :data:`AU_IDS` order.
    muscle : str
        A muscle named in :data:`AU_CATALOGUE` (e.g. ``"zygomaticus_major"``).

    Returns
    -------
    activation : array of float, shape (n,)
        Weighted sum of the AUs that recruit the muscle, scaled to 0-1 and clipped.
    """
    weights = np.zeros(len(AU_IDS))
    for au in AU_CATALOGUE.values():
        weights[AU_INDEX[au.id]] = au.muscles.get(muscle, 0.0)
    if not weights.any():
        known = sorted({m for au in AU_CATALOGUE.values() for m in au.muscles})
        raise ValueError(f"No AU recruits muscle {muscle!r}; known muscles: {known}")
    return np.clip(np.asarray(au_intensity, dtype=np.float64) @ weights / MAX_INTENSITY, 0.0, 1.0)


def frame_times(duration_s: float, fps: float, start_s: float = 0.0) -> np.ndarray:
    """Frame times ``start_s + k / fps`` for the ``floor(duration_s * fps)`` frames of a timeline (any fps, e.g. 200).

    Raises
    ------
    ValueError
        If ``fps`` is not positive or the timeline is shorter than one frame.
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}.")
    n = int(np.floor(duration_s * fps + 1e-9))
    if n < 1:
        raise ValueError(f"The timeline lasts {duration_s:.4g} s, shorter than one frame at {fps:g} fps "
                         f"({1 / fps:.4g} s); give a longer timeline or a higher --fps.")
    return start_s + np.arange(n) / float(fps)


def expression_timeline(emotion: str, kind: str, *, seed: int, config: TimelineConfig | None = None,
                        duration_s: float | None = None, margin_s: float = 0.1) -> AUTimeline:
    """A timeline holding one expression of ``emotion`` and ``kind``, drawn as the rig draws them.

    Parameters
    ----------
    emotion : str
        An emotion of :data:`EMOTION_PROTOTYPES`.
    kind : ``"micro"`` | ``"macro"``
        Duration class; its duration and intensity ranges come from ``config``.
    seed : int
        Seed of the draw.
    config : TimelineConfig | None
        Duration and intensity distributions (the defaults when None).
    duration_s : float | None
        Length of the timeline. The expression's duration is drawn from the part of its range
        that fits within ``duration_s - 2 * margin_s``, and the expression is centred in the
        timeline (equal neutral time on either side, so a window centred on the apex fits as
        well as it can); None: the drawn duration plus the margins.
    margin_s : float
        Least neutral time before the onset and after the offset, in seconds.

    Raises
    ------
    ValueError
        Unknown emotion or kind, or no expression of that kind fits in ``duration_s``.
    """
    check_emotion(emotion)
    config = config or TimelineConfig()
    if kind not in ("micro", "macro"):
        raise ValueError(f"Unknown expression kind {kind!r}; use 'micro' (<= {MICRO_MAX_DURATION_S} s) or 'macro'.")
    low, longest = config.micro_duration_s if kind == "micro" else config.macro_duration_s
    high = longest
    if duration_s is not None:
        high = min(high, duration_s - 2 * margin_s)
        if high < low:
            raise ValueError(f"A {kind} expression lasts {low:g}-{longest:g} s "
                             f"but the sequence is {duration_s:.3g} s long ({margin_s:g} s margins); "
                             "ask for more frames or a lower fps.")
    rng = np.random.default_rng([seed, 0x5E0])
    length = rng.uniform(low, high)
    total = duration_s if duration_s is not None else length + 2 * margin_s
    event = _draw_expression(rng, config, (total - length) / 2, length, emotion, kind)
    return AUTimeline([event], total)


class SampledAUTimeline:
    """Explicit AU curves (e.g. from a CSV), linearly interpolated; a drop-in for :class:`AUTimeline`.

    Parameters
    ----------
    times_s : array of float, shape (n,)
        Strictly increasing sample times, seconds.
    aus : array of float, shape (n, 17)
        AU intensities (0-5) in :data:`AU_IDS` order.
    """

    events: list[ExpressionEvent] = []

    def __init__(self, times_s: np.ndarray, aus: np.ndarray) -> None:
        times_s = np.asarray(times_s, dtype=np.float64)
        if times_s.ndim != 1 or len(times_s) == 0 or not np.all(np.isfinite(times_s)):
            raise ValueError("AU timeline times must be a non-empty 1-D array of finite seconds.")
        if np.any(np.diff(times_s) <= 0):
            raise ValueError("AU timeline times must be strictly increasing.")
        self.aus = check_intensities(aus, "AU timeline")
        if len(self.aus) != len(times_s):
            raise ValueError(f"{len(times_s)} times but {len(self.aus)} rows of AUs.")
        self.times_s = times_s
        self.start_s = float(times_s[0])
        self.duration_s = float(times_s[-1] - times_s[0])

    @property
    def expressions(self) -> list[ExpressionEvent]:
        """None: explicit curves carry no onset/apex/offset annotation."""
        return []

    def intensities(self, times_s: np.ndarray) -> np.ndarray:
        """Intensities at ``times_s`` (n,) -> (n, 17) float32, held constant beyond the ends."""
        t = np.asarray(times_s, dtype=np.float64).reshape(-1)
        return np.column_stack([np.interp(t, self.times_s, self.aus[:, j]) for j in range(len(AU_IDS))]
                               ).astype(np.float32)

    def markers(self) -> list[tuple[float, str]]:
        """No markers (see :attr:`expressions`)."""
        return []


def read_au_timeline_csv(path: str | os.PathLike) -> SampledAUTimeline:
    """Read explicit AU curves: a CSV with a ``time_s`` column and AU columns (``AU12``, ``AU06``...).

    Parameters
    ----------
    path : path-like
        The CSV file. The first row names the columns; blank rows are skipped. AUs without a
        column are 0.

    Returns
    -------
    timeline : SampledAUTimeline
        The curves at the file's times (seconds), one column per AU in :data:`AU_IDS`.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        Naming the row and column at fault: unknown or repeated columns, a row with another number
        of cells than the header, an empty or non-numeric cell, times that do not increase, or
        intensities outside 0-5.
    """
    import csv

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No AU timeline file at {path}.")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or "time_s" not in [c.strip() for c in rows[0]]:
        raise ValueError(f"{path}: the first row must name the columns, with 'time_s' and AUs such as AU12.")
    header = [c.strip() for c in rows[0]]
    columns = {}
    for k, name in enumerate(header):
        if name != "time_s":
            try:
                au = parse_au(name)
            except ValueError as err:
                raise ValueError(f"{path}: column {name!r}: {err}") from None
            if au in columns.values():
                raise ValueError(f"{path}: AU{au:02d} appears in two columns.")
            columns[k] = au
    # Row numbers as a spreadsheet shows them (the header is row 1).
    body = [(r, row) for r, row in enumerate(rows[1:], start=2) if any(c.strip() for c in row)]
    if not body:
        raise ValueError(f"{path} has a header but no rows.")
    values = np.zeros((len(body), len(header)), dtype=np.float64)
    for i, (r, row) in enumerate(body):
        if len(row) != len(header):
            raise ValueError(f"{path}: row {r} has {len(row)} cells but the header names {len(header)} columns "
                             f"({', '.join(header)}).")
        for k, cell in enumerate(row):
            if not cell.strip():
                raise ValueError(f"{path}: row {r}, column {header[k]!r} is empty; give a number (0 for an "
                                 "inactive AU).")
            try:
                values[i, k] = float(cell)
            except ValueError:
                raise ValueError(f"{path}: row {r}, column {header[k]!r}: {cell.strip()!r} is not a number."
                                 ) from None
    aus = np.zeros((len(values), len(AU_IDS)))
    for k, au in columns.items():
        aus[:, AU_INDEX[au]] = values[:, k]
    try:
        return SampledAUTimeline(values[:, header.index("time_s")], aus)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
