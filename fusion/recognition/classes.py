"""Class sets of expression recognition: which emotion labels make up which class.

``megc3`` is the composite class set of the MEGC 2019 recognition challenge (See et al., 2019):
*negative* (anger, contempt, disgust, fear, sadness), *positive* (happiness) and *surprise*.
``basic7`` keeps the seven emotions of the simulated rig's EMFACS prototypes
(:data:`acquisition.annotate.action_units.EMOTIONS`) as they are. Labels are matched after
stripping and lower-casing; a label outside the set (``AU06+AU12`` from a spotter that found no
emotion, a typo) is an error, never a silent guess.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Class set name -> {class: the emotion labels it covers}, classes in logit order.
CLASS_SETS: dict[str, dict[str, tuple[str, ...]]] = {
    "megc3": {"negative": ("anger", "contempt", "disgust", "fear", "sadness"),
              "positive": ("happiness",),
              "surprise": ("surprise",)},
    "basic7": {e: (e,) for e in ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")},
}


def check_class_set(name: str) -> str:
    """Return ``name`` if it is a known class set.

    Raises
    ------
    ValueError
        If it is not one (the message lists the known sets).
    """
    if name not in CLASS_SETS:
        raise ValueError(f"Unknown class set {name!r}; known class sets: {', '.join(CLASS_SETS)} "
                         "(fusion.recognition.classes.CLASS_SETS).")
    return name


def class_names(class_set: str) -> list[str]:
    """The classes of a class set, in logit order."""
    return list(CLASS_SETS[check_class_set(class_set)])


def map_label(label: str, class_set: str) -> str:
    """The class of an emotion label, e.g. ``map_label("fear", "megc3") == "negative"``.

    Raises
    ------
    ValueError
        If the class set is unknown or no class of it covers ``label``.
    """
    text = str(label).strip().lower()
    for name, labels in CLASS_SETS[check_class_set(class_set)].items():
        if text in labels:
            return name
    covered = sorted(e for labels in CLASS_SETS[class_set].values() for e in labels)
    raise ValueError(f"Label {label!r} is in no class of {class_set!r}, which covers {covered}. Check the marker "
                     "labels (a spotted interval without an emotion is labelled with its AUs), or pick another "
                     "class set.")


def map_labels(labels: Iterable[str], class_set: str) -> list[str]:
    """:func:`map_label` of every label."""
    return [map_label(label, class_set) for label in labels]
