"""Data cards generated from session files: a Hugging Face README, a Croissant file and a manifest.

Computed facts (streams, rates, durations, counts, AU and expression statistics, subjects,
hashes, a synthetic corpus's generator and privacy audit) come from the data
(:mod:`.stats`, :mod:`.inputs`); consent, legal basis, uses and limitations come from a
human-written ``card.yaml`` (:mod:`.human`). ``emosync card`` writes the card,
``emosync card --check`` tells whether it is complete and current. See ``docs/data-cards.md``.

The names below are loaded on first use, so that registering ``emosync card`` (and so
``emosync --help``) does not pay for h5py, numpy and the card builder.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module that defines it
_PUBLIC = {
    "CardResult": "data_cards.build",
    "check_card": "data_cards.build",
    "write_card": "data_cards.build",
    "REQUIRED_FIELDS": "data_cards.human",
    "HumanCard": "data_cards.human",
    "load_human_card": "data_cards.human",
    "CardInputs": "data_cards.inputs",
    "find_inputs": "data_cards.inputs",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    # PEP 562 lazy attributes, as in acquisition/__init__.py: the import cost is paid by the first user.
    if name not in _PUBLIC:
        raise AttributeError(f"module 'data_cards' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
