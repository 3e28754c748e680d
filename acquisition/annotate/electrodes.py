"""Which facial muscle lies under each EMG electrode, read from the channel labels.

Montages name their channels in many ways: the simulated rig says ``EMG_ZYG_R``, real
recordings ``Corrugator``, ``zygomaticus major``, ``Zyg``, ``OO`` or ``EXG3``. A label is split
into lower-case words (at anything that is not a letter or digit, and between letters and
digits), and a muscle matches when one of its aliases appears among them as consecutive words
(``"orbicularis oculi"``) or as one word written together (``"orbicularisoculi"``). Labels that
name no muscle (``EXG3``) are mapped explicitly. The muscle names are those of
:data:`acquisition.annotate.action_units.AU_CATALOGUE`, the one table of which muscle produces
which AU; the aliases and explicit maps live in ``configs/emg_code/*.yaml``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from acquisition.annotate.action_units import AU_CATALOGUE

#: Every muscle the AU vocabulary names, sorted.
KNOWN_MUSCLES: tuple[str, ...] = tuple(sorted({m for au in AU_CATALOGUE.values() for m in au.muscles}))
_SIDES = {"l": "L", "left": "L", "lh": "L", "r": "R", "right": "R", "rh": "R"}


def label_words(label: str) -> list[str]:
    """Lower-case words of a channel label: ``"EMG_ZygMaj2-L"`` -> ``["emg", "zygmaj", "2", "l"]``."""
    return re.findall(r"[a-z]+|[0-9]+", str(label).lower())


def check_aliases(aliases: Mapping[str, Sequence[str]], channels: Mapping[str, str]) -> None:
    """Raise ValueError unless every muscle is known and no alias names two muscles."""
    unknown = sorted((set(aliases) | set(channels.values())) - set(KNOWN_MUSCLES))
    if unknown:
        raise ValueError(f"Unknown muscles {unknown}; the AU vocabulary knows {list(KNOWN_MUSCLES)}.")
    owner: dict[str, str] = {}
    for muscle, names in aliases.items():
        for alias in names:
            key = " ".join(label_words(alias))
            if not key:
                raise ValueError(f"Alias {alias!r} of {muscle} has no letters or digits.")
            if owner.setdefault(key, muscle) != muscle:
                raise ValueError(f"Alias {alias!r} names two muscles: {owner[key]} and {muscle}.")


def _matches(words: list[str], alias: str) -> bool:
    alias_words = label_words(alias)
    k = len(alias_words)
    if any(words[i:i + k] == alias_words for i in range(len(words) - k + 1)):
        return True
    return k > 1 and "".join(alias_words) in words


def channel_side(label: str) -> str:
    """``"L"``, ``"R"`` or ``""`` from the words of a label (``l``, ``left``, ``r``, ``right``...)."""
    sides = {_SIDES[w] for w in label_words(label) if w in _SIDES}
    return sides.pop() if len(sides) == 1 else ""


def muscle_of(label: str, aliases: Mapping[str, Sequence[str]],
              channels: Mapping[str, str] | None = None) -> str | None:
    """The muscle a channel label names, or None.

    Parameters
    ----------
    label : str
        A channel label, e.g. ``"EMG_CORR_L"`` or ``"zygomaticus major"``.
    aliases : dict of str to list of str
        Muscle -> names it goes by (words, matched case-insensitively).
    channels : dict of str to str | None
        Explicit label -> muscle maps; they win over aliases (labels compared case-insensitively).

    Returns
    -------
    muscle : str | None

    Raises
    ------
    ValueError
        If the label matches aliases of more than one muscle (map it in ``channels`` then).
    """
    explicit = {str(k).strip().lower(): v for k, v in (channels or {}).items()}
    if label.strip().lower() in explicit:
        return explicit[label.strip().lower()]
    words = label_words(label)
    found = sorted({muscle for muscle, names in aliases.items() if any(_matches(words, a) for a in names)})
    if len(found) > 1:
        raise ValueError(f"Channel {label!r} matches several muscles {found}. Map it explicitly, e.g. "
                         f"--set channels.{label}={found[0]}.")
    return found[0] if found else None


def channel_muscles(labels: Sequence[str], aliases: Mapping[str, Sequence[str]],
                    channels: Mapping[str, str] | None = None) -> dict[str, str]:
    """Label -> muscle for every channel that names a known muscle, in channel order.

    Raises
    ------
    ValueError
        If no channel names a muscle: the message lists the labels and how to name or map them.
    """
    check_aliases(aliases, channels or {})
    mapping = {}
    for label in labels:
        muscle = muscle_of(str(label), aliases, channels)
        if muscle is not None:
            mapping[str(label)] = muscle
    if not mapping:
        example = str(labels[0]) if len(labels) else "EXG1"
        raise ValueError(
            f"No EMG channel names a known facial muscle: the channel labels are {list(map(str, labels))}. "
            f"Label channels by muscle (e.g. 'EMG_CORR_L', 'Zygomaticus major R', 'Frontalis'; known muscles: "
            f"{', '.join(KNOWN_MUSCLES)}), or map them: --set channels.{example}=corrugator "
            "(or add an alias under 'muscles' in the config).")
    return mapping
