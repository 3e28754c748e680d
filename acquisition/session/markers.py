"""The expression-marker convention: ``"<phase>/<label>/<kind>"`` strings and the intervals they bound.

The simulated rig, ``emosync spot`` and imported annotations write markers such as
``onset/happiness/micro``, ``apex/...`` and ``offset/...``; fusion's labels and the spotting
evaluation read them back. One parser here keeps both sides in agreement.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from acquisition.utils.logs import logger


def expression_intervals(texts: Sequence[str], times: np.ndarray) -> list[tuple[float, float, str, str]]:
    """Expressions ``(onset_s, offset_s, emotion, kind)`` from ``onset/...`` and ``offset/...`` markers.

    Parameters
    ----------
    texts : sequence of str, length n
        Marker strings ``"<phase>/<emotion>/<kind>"``; other markers (``apex/...``, free text) are ignored.
    times : array of float, shape (n,)
        Marker times, seconds.

    Returns
    -------
    intervals : list of (onset_s, offset_s, emotion, kind), sorted by onset. An onset without a
    matching offset (recording stopped mid-expression) is dropped with a warning.
    """
    open_: dict[tuple[str, str], float] = {}
    out: list[tuple[float, float, str, str]] = []
    for text, t in sorted(zip(texts, np.asarray(times, dtype=np.float64)), key=lambda p: p[1]):
        parts = str(text).split("/")
        if len(parts) != 3 or parts[0] not in ("onset", "offset"):
            continue
        key = (parts[1], parts[2])
        if parts[0] == "onset":
            open_[key] = float(t)
        elif key in open_:
            out.append((open_.pop(key), float(t), *key))
    if open_:
        logger.warning("%d expression onset marker(s) without an offset: ignored.", len(open_))
    return sorted(out)
