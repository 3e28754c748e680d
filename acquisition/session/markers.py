"""The expression-marker convention, ``"<phase>/<label>/<kind>"``, and its one parser.

The simulated rig, ``emosync spot``, synthetic corpora and imported annotations mark each
expression with up to three markers: ``onset/happiness/micro``, ``apex/happiness/micro`` and
``offset/happiness/micro``. Plots, MNE/BIDS exports, data cards, fusion's window labels and the
spotting evaluation all read them back through :func:`parse_expression_markers`, so they agree
on what an expression is, including when markers are missing or out of place.

The pairing rule (also in ``docs/session-format.md``), applied per label and kind, to the
markers in time order (markers with equal times keep their recording order):

- **onset** opens an expression. If one of the same label and kind is still open, that one
  lost its offset: it stays unmatched (``offset_s = +inf``) and the new onset opens another.
  So an offset always closes the *latest* open onset, and expressions of one label and kind
  never overlap or nest (the convention has no id that could tell two of them apart);
  expressions of different labels or kinds overlap freely.
- **apex** belongs to the open expression of its label and kind. An apex with no open
  expression (before its onset, after its offset) or a second apex in one expression is
  outside its interval: it is kept as an *other* marker, not attached to anything.
- **offset** closes the open expression of its label and kind. An offset with none open
  (its onset came before the recording, or was lost) makes an expression whose onset is
  unknown (``onset_s = -inf``).
- An onset still open after the last marker (the recording stopped mid-expression) keeps
  ``offset_s = +inf``.
- Any other marker text (``blink``, ``trial start``, ``onset/two-parts``) is an *other*
  marker, returned as is.

Only :attr:`ExpressionMarker.complete` expressions (an onset and an offset) are used as
labels (fusion), counts (data cards) or reference intervals (spotting); plots draw an
unknown end to the edge of the window; exports turn each marker of an incomplete
expression into a zero-length annotation with its own text. Every parse that finds
unmatched or misplaced markers logs one warning that counts them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from acquisition.utils.logs import logger

#: An expression marker: phase, label (emotion, or AUs such as ``AU06+AU12``) and kind (``micro``/``macro``).
EXPRESSION_MARKER_RE = re.compile(r"^(onset|apex|offset)/([^/]+)/([^/]+)$")


@dataclass(frozen=True)
class ExpressionMarker:
    """One expression and the markers that bound it (times in seconds, the clock of the parsed times).

    Attributes
    ----------
    label : str
        The expression's label: an emotion (``"happiness"``) or AUs (``"AU06+AU12"``).
    kind : str
        ``"micro"`` or ``"macro"`` for the rig's markers; any text for others.
    onset_s : float
        Time of the onset marker; ``-inf`` when there was none (see the module's pairing rule).
    offset_s : float
        Time of the offset marker; ``+inf`` when there was none.
    apex_s : float
        Time of the apex marker inside the expression; ``nan`` when there was none.
    """

    label: str
    kind: str
    onset_s: float
    offset_s: float
    apex_s: float = math.nan

    @property
    def complete(self) -> bool:
        """True when both an onset and an offset marker bound the expression."""
        return math.isfinite(self.onset_s) and math.isfinite(self.offset_s)

    @property
    def duration_s(self) -> float:
        """Offset minus onset in seconds (``inf`` for an incomplete expression)."""
        return self.offset_s - self.onset_s

    @property
    def first_s(self) -> float:
        """Time of the expression's first marker (its onset, else its offset)."""
        return self.onset_s if math.isfinite(self.onset_s) else self.offset_s

    def markers(self) -> list[tuple[float, str]]:
        """The ``(time_s, text)`` markers this expression was made of, in time order."""
        times = (("onset", self.onset_s), ("apex", self.apex_s), ("offset", self.offset_s))
        return [(t, f"{phase}/{self.label}/{self.kind}") for phase, t in times if math.isfinite(t)]


@dataclass
class ParsedMarkers:
    """What :func:`parse_expression_markers` found in a list of markers.

    Attributes
    ----------
    expressions : list of ExpressionMarker
        Every expression, complete or not, in the order of its first marker.
    others : list of (float, str)
        Every marker that is not part of an expression (other texts, misplaced apexes),
        as ``(time_s, text)`` in time order.
    """

    expressions: list[ExpressionMarker] = field(default_factory=list)
    others: list[tuple[float, str]] = field(default_factory=list)

    @property
    def complete(self) -> list[ExpressionMarker]:
        """The expressions with both an onset and an offset, in onset order."""
        return [e for e in self.expressions if e.complete]


@dataclass
class _Open:
    """An expression whose onset has been seen and whose offset has not (yet)."""

    onset_s: float
    apex_s: float = math.nan


def parse_expression_markers(times: Sequence[float] | np.ndarray, texts: Sequence[str]) -> ParsedMarkers:
    """Pair expression markers into expressions, with the rule in this module's docstring.

    Parameters
    ----------
    times : array of float, shape (n_markers,)
        Marker times in seconds. Pass synchronized times (:attr:`Stream.times
        <acquisition.session.reader.Stream.times>`), as every emosync caller does: raw stamps
        of a source whose clock was reset are not in time order.
    texts : sequence of str, length n_markers
        Marker texts; leading and trailing white space is ignored.

    Returns
    -------
    parsed : ParsedMarkers
        The expressions (complete or not) and the other markers.

    Raises
    ------
    ValueError
        If ``times`` and ``texts`` differ in length, or a time is not finite.

    Examples
    --------
    >>> parsed = parse_expression_markers([1.0, 1.2, 1.5, 2.0], ["onset/fear/micro", "apex/fear/micro",
    ...                                                         "offset/fear/micro", "blink"])
    >>> parsed.expressions
    [ExpressionMarker(label='fear', kind='micro', onset_s=1.0, offset_s=1.5, apex_s=1.2)]
    >>> parsed.others
    [(2.0, 'blink')]
    """
    times = _checked_times(times, texts)
    open_: dict[tuple[str, str], _Open] = {}
    found: list[ExpressionMarker] = []
    others: list[tuple[float, str]] = []
    problems = {"onset without an offset": 0, "offset without an onset": 0, "apex outside its expression": 0}
    for i in np.argsort(times, kind="stable"):
        t, text = float(times[i]), str(texts[i]).strip()
        match = EXPRESSION_MARKER_RE.match(text)
        if match is None:
            others.append((t, text))
            continue
        phase, label, kind = match.groups()
        key = (label, kind)
        current = open_.get(key)
        if phase == "onset":
            if current is not None:
                found.append(ExpressionMarker(label, kind, current.onset_s, math.inf, current.apex_s))
                problems["onset without an offset"] += 1
            open_[key] = _Open(t)
        elif phase == "apex":
            if current is None or not math.isnan(current.apex_s):
                others.append((t, text))
                problems["apex outside its expression"] += 1
            else:
                current.apex_s = t
        elif current is None:
            found.append(ExpressionMarker(label, kind, -math.inf, t))
            problems["offset without an onset"] += 1
        else:
            found.append(ExpressionMarker(label, kind, current.onset_s, t, current.apex_s))
            del open_[key]
    for (label, kind), current in open_.items():
        found.append(ExpressionMarker(label, kind, current.onset_s, math.inf, current.apex_s))
        problems["onset without an offset"] += 1
    found.sort(key=lambda e: e.first_s)
    if any(problems.values()):
        logger.warning("Expression markers: %s; see acquisition.session.markers for how they are paired.",
                       ", ".join(f"{n} {what}" for what, n in problems.items() if n))
    return ParsedMarkers(found, others)


def _checked_times(times: Sequence[float] | np.ndarray, texts: Sequence[str]) -> np.ndarray:
    """Marker times as a float array, checked against the texts."""
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    if times.shape[0] != len(texts):
        raise ValueError(f"Got {times.shape[0]} marker times for {len(texts)} marker texts; pass one time per "
                         "marker (for a stream: its times and the texts of its samples).")
    if not np.all(np.isfinite(times)):
        bad = np.flatnonzero(~np.isfinite(times))
        raise ValueError(f"Marker times must be finite seconds; markers {bad[:5].tolist()} have "
                         f"{times[bad[:5]].tolist()}.")
    return times


def expression_intervals(texts: Sequence[str], times: Sequence[float] | np.ndarray
                         ) -> list[tuple[float, float, str, str]]:
    """Complete expressions as ``(onset_s, offset_s, label, kind)`` tuples, sorted.

    A shortcut over :func:`parse_expression_markers` for callers that only use whole
    expressions (window labels, counts); incomplete ones are left out (the parser warns).

    Parameters
    ----------
    texts : sequence of str, length n
        Marker texts.
    times : array of float, shape (n,)
        Marker times in seconds (synchronized: :attr:`Stream.times`).

    Returns
    -------
    intervals : list of (onset_s, offset_s, label, kind)
        Sorted by onset.
    """
    return sorted((e.onset_s, e.offset_s, e.label, e.kind) for e in parse_expression_markers(times, texts).complete)


def marker_text(value: Any) -> str:
    """One value of a marker sample as text: strings stripped, integral numbers without ``.0``."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def marker_texts(rows: Any) -> list[str]:
    """The text of each marker sample: its non-empty values joined with ``|``.

    Parameters
    ----------
    rows : array-like, shape (n_markers,) or (n_markers, n_channels)
        Marker samples as stored (one column for LSL marker streams; numbers are allowed).

    Returns
    -------
    texts : list of str, length n_markers
    """
    texts = []
    for row in rows:
        values = (marker_text(v) for v in np.atleast_1d(row))
        texts.append("|".join(v for v in values if v))
    return texts


def read_expression_markers(stream: Any) -> ParsedMarkers:
    """Parse a marker stream of a session on its synchronized times.

    Parameters
    ----------
    stream : Stream
        A marker stream (:class:`acquisition.session.reader.Stream`) of an open session.

    Returns
    -------
    parsed : ParsedMarkers
        As :func:`parse_expression_markers` on ``stream.times`` and the texts of its samples.
    """
    if stream.n_samples == 0:
        return ParsedMarkers()
    return parse_expression_markers(stream.times, marker_texts(stream.data[:]))
