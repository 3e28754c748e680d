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

import lazy_loader

# Public name -> the submodule that defines it; loaded on first use (PEP 562, as MNE does).
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "build": ["CardResult", "check_card", "write_card"],
        "human": ["REQUIRED_FIELDS", "HumanCard", "load_human_card"],
        "inputs": ["CardInputs", "find_inputs"],
    },
)
