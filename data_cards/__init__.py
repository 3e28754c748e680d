"""Data cards generated from session files: a Hugging Face README, a Croissant file and a manifest.

Computed facts (streams, rates, durations, counts, AU and expression statistics, subjects,
hashes, a synthetic corpus's generator and privacy audit) come from the data
(:mod:`.stats`, :mod:`.inputs`); consent, legal basis, uses and limitations come from a
human-written ``card.yaml`` (:mod:`.human`). ``emosync card`` writes the card,
``emosync card --check`` tells whether it is complete and current. See ``docs/data-cards.md``.
"""

from data_cards.build import CardResult, check_card, write_card
from data_cards.human import REQUIRED_FIELDS, HumanCard, load_human_card
from data_cards.inputs import CardInputs, find_inputs

__all__ = ["REQUIRED_FIELDS", "CardInputs", "CardResult", "HumanCard", "check_card", "find_inputs",
           "load_human_card", "write_card"]
