"""Expression intervals to recognize, read from a session's marker stream.

Ground truth is the ``Markers`` stream (``onset/<emotion>/<kind>`` ... ``offset/...``, see
:mod:`acquisition.session.markers`, the one parser); spotted intervals are the
``<stream>-Spotted`` stream that ``emosync spot`` writes in the same convention (their label is
the spotter's guess, or AUs). Each complete expression becomes one :class:`ExpressionInterval`
on synchronized times; the clip that represents it is centred on its apex (``anchor="apex"``,
where the expression is strongest; its centre when it has no apex marker) or on its centre.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from acquisition import open_session
from acquisition.session.markers import read_expression_markers

#: Suffix of the marker streams ``emosync spot`` writes.
SPOTTED_SUFFIX = "-Spotted"


@dataclass(frozen=True)
class ExpressionInterval:
    """One expression of one session (times in seconds, synchronized recorder clock).

    Attributes
    ----------
    session : Path
        The session file.
    subject : str
        The session's root ``subject_id`` (``"sub-unknown"`` when absent).
    onset_s, apex_s, offset_s : float
        Onset, apex (``nan`` without an apex marker) and offset.
    label : str
        The marker label (an emotion, or AUs for a spotted interval without one).
    kind : str
        ``"micro"`` or ``"macro"`` (any text for other annotations).
    """

    session: Path
    subject: str
    onset_s: float
    apex_s: float
    offset_s: float
    label: str
    kind: str

    def centre_s(self, anchor: str = "apex") -> float:
        """Clip centre: the apex (``anchor="apex"``, falling back to the centre) or the interval's centre."""
        if anchor == "apex" and math.isfinite(self.apex_s):
            return self.apex_s
        return (self.onset_s + self.offset_s) / 2


def marker_stream_names(fname: str | os.PathLike) -> list[str]:
    """Names of the marker streams of a session, sorted."""
    with open_session(fname) as session:
        return sorted(name for name, s in session.streams.items() if s.modality == "markers")


def default_spotted_stream(fname: str | os.PathLike) -> str:
    """The one ``*-Spotted`` stream of a session (what ``emosync recognize predict`` labels by default).

    Raises
    ------
    ValueError
        If the session has none (run ``emosync spot`` first) or several (name one).
    """
    names = marker_stream_names(fname)
    spotted = [n for n in names if n.endswith(SPOTTED_SUFFIX)]
    if len(spotted) == 1:
        return spotted[0]
    if not spotted:
        raise ValueError(f"{Path(fname).name} has no spotted intervals (no '*{SPOTTED_SUFFIX}' marker stream; its "
                         f"marker streams: {names or 'none'}). Run `emosync spot {Path(fname).name}` first, or pass "
                         "--intervals with a marker stream (e.g. --intervals Markers).")
    raise ValueError(f"{Path(fname).name} has several spotted streams {spotted}; choose one with --intervals.")


def read_intervals(fname: str | os.PathLike, stream: str = "Markers") -> list[ExpressionInterval]:
    """The complete expressions of one marker stream of a session, in onset order.

    Parameters
    ----------
    fname : path-like
        A session file.
    stream : str
        The marker stream: ``"Markers"`` (ground truth) or a ``"<source>-Spotted"`` stream.

    Returns
    -------
    intervals : list of ExpressionInterval

    Raises
    ------
    FileNotFoundError
        If the session file does not exist.
    ValueError
        If the session has no marker stream of that name, or it holds no complete expression.
    """
    fname = Path(fname)
    if not fname.is_file():
        raise FileNotFoundError(f"Session file {fname} does not exist.")
    with open_session(fname) as session:
        markers = [name for name, s in session.streams.items() if s.modality == "markers"]
        if stream not in session.streams or stream not in markers:
            raise ValueError(f"{fname.name} has no marker stream {stream!r} (its marker streams: "
                             f"{sorted(markers) or 'none'}). Ground-truth labels are the 'Markers' stream of a "
                             "recording with expression markers; spotted intervals are written by "
                             f"`emosync spot {fname.name}` as '<stream>{SPOTTED_SUFFIX}'.")
        subject = str(session.info.get("subject_id", "sub-unknown"))
        parsed = read_expression_markers(session.streams[stream])
    intervals = [ExpressionInterval(fname, subject, e.onset_s, e.apex_s, e.offset_s, e.label, e.kind)
                 for e in parsed.complete]
    if not intervals:
        raise ValueError(f"{fname.name}: marker stream {stream!r} holds no complete expression (onset/<label>/<kind> "
                         "... offset/<label>/<kind>); there is nothing to recognize.")
    return intervals


def read_all_intervals(sessions: Sequence[str | os.PathLike], stream: str = "Markers") -> list[ExpressionInterval]:
    """:func:`read_intervals` of every session, concatenated in session order."""
    return [interval for fname in sessions for interval in read_intervals(fname, stream)]
