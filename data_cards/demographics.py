"""Demographic tables with small cells suppressed, so a card cannot single out a participant.

Counts come from ``card.yaml``'s ``demographics`` (per pseudonymous subject) joined with the
subjects actually present in the sessions. A count below ``k`` is shown as ``"<k"``; when that
leaves exactly one suppressed cell in a table, the next-smallest cell is suppressed too,
because the subject total is public and one hidden cell could be recovered by subtraction.
An attribute whose only reported value is a hidden cell is left out altogether: "<5" beside the
public subject total would still say that every subject who reported it has that value.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from acquisition.utils.logs import logger
from data_cards.human import SubjectDemographics

NOT_REPORTED = "not reported"


def suppress_small_cells(counts: dict[str, int], k: int) -> dict[str, str]:
    """Counts as display strings, with cells below ``k`` shown as ``"<k"``.

    Parameters
    ----------
    counts : dict of str to int
        Category -> number of subjects (zero counts are dropped).
    k : int
        The smallest count shown as a number.

    Returns
    -------
    shown : dict of str to str
        Category -> ``"12"`` or ``"<5"``, in the order of ``counts``.
    """
    counts = {key: int(n) for key, n in counts.items() if n > 0}
    hidden = {key for key, n in counts.items() if n < k}
    visible = [key for key in counts if key not in hidden]
    if len(hidden) == 1 and visible:
        # Complementary suppression: total minus the shown cells would reveal the one hidden cell.
        hidden.add(min(visible, key=lambda key: counts[key]))
    return {key: (f"<{k}" if key in hidden else str(n)) for key, n in counts.items()}


def demographic_tables(demographics: dict[str, SubjectDemographics], subjects: Iterable[str], *,
                       k: int) -> dict[str, dict[str, str]]:
    """Per-attribute subject counts over the subjects in the data, small cells suppressed.

    Parameters
    ----------
    demographics : dict of str to SubjectDemographics
        From ``card.yaml``, keyed by pseudonymous subject id.
    subjects : iterable of str
        The subject ids found in the sessions (each counted once).
    k : int
        See :func:`suppress_small_cells`.

    Returns
    -------
    tables : dict of str to dict of str to str
        Attribute (``age_band``, ``sex``...) -> category -> shown count. Empty when
        ``card.yaml`` has no demographics. An attribute left out for privacy (its only reported
        category is below ``k``) maps to an empty dict, so the card can say it was left out.
    """
    subjects = sorted(set(subjects))
    if not demographics:
        return {}
    unknown = sorted(set(demographics) - set(subjects))
    if unknown:
        logger.warning("card.yaml has demographics for %d subject(s) not in the data (ignored): %s",
                       len(unknown), unknown[:5])
    standard = [name for name in SubjectDemographics.model_fields if name != "extra"]
    attributes = standard + sorted({key for record in demographics.values() for key in record.extra} - set(standard))
    tables: dict[str, dict[str, str]] = {}
    for attribute in attributes:
        counts: Counter = Counter()
        for subject in subjects:
            record = demographics.get(subject)
            value = None
            if record is not None:
                value = getattr(record, attribute) if attribute in standard else record.extra.get(attribute)
            counts[str(value) if value not in (None, "") else NOT_REPORTED] += 1
        if set(counts) == {NOT_REPORTED}:
            continue
        ordered = dict(sorted(counts.items(), key=lambda item: (item[0] == NOT_REPORTED, item[0])))
        shown = suppress_small_cells(ordered, k)
        reported = [key for key in shown if key != NOT_REPORTED]
        # One reported value, hidden: "<k" next to the public total still discloses it for everyone who reported.
        tables[attribute] = {} if len(reported) == 1 and shown[reported[0]].startswith("<") else shown
    return tables
