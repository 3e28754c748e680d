"""What a person writes in ``card.yaml``: consent, legal basis, uses, limitations, demographics.

Everything a card states about people, law and intent comes from here and nothing else;
everything about the data (streams, rates, counts, hashes) is computed by
:mod:`data_cards.stats`. The file is validated with unknown keys rejected, so a
misspelt field fails loudly instead of silently leaving a hole in the card. The annotated
template is ``configs/card/card.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import yaml
from pydantic import Field, ValidationError

from acquisition.utils.config import ConfigError, StrictModel

#: The file a card's human part is read from, beside the data.
CARD_YAML = "card.yaml"

#: Fields without which a card must not pass ``emosync card --check``.
REQUIRED_FIELDS = ("consent", "legal_basis", "ethics_approval", "contact")


class SubjectDemographics(StrictModel):
    """Self-reported attributes of one pseudonymous subject; every field is optional.

    Bands, not exact values: ``age_band: "25-34"``, never a birth date.
    """

    age_band: Optional[str] = None
    sex: Optional[str] = None
    gender: Optional[str] = None
    handedness: Optional[str] = None
    ethnicity: Optional[str] = None
    skin_type: Optional[str] = None  # e.g. Fitzpatrick I-VI: face trackers and cameras are known to vary with it
    eyewear: Optional[str] = None
    extra: dict[str, str] = {}


class HumanCard(StrictModel):
    """The human-written part of a data card (``card.yaml``).

    Free-text fields are Markdown. List fields render as bullet lists in the README and as
    repeated values in the Croissant file.
    """

    title: Optional[str] = None
    summary: Optional[str] = None
    consent: Optional[str] = None
    legal_basis: Optional[str] = None
    ethics_approval: Optional[str] = None
    contact: Optional[str] = None
    license: Optional[str] = None  # SPDX id, e.g. "cc-by-4.0"; "other" with license_url
    license_url: Optional[str] = None
    version: str = "1.0.0"
    date_published: Optional[str] = None  # ISO date
    citation: Optional[str] = None
    creators: list[str] = []
    collection_process: Optional[str] = None
    de_identification: Optional[str] = None
    annotation_process: Optional[str] = None
    intended_uses: list[str] = []
    out_of_scope_uses: list[str] = []
    known_limitations: list[str] = []
    known_biases: list[str] = []
    social_impact: Optional[str] = None
    maintenance: Optional[str] = None
    task_categories: list[str] = ["video-classification"]
    tags: list[str] = []
    demographics: dict[str, SubjectDemographics] = {}
    min_cell_count: int = Field(5, ge=1)  # demographic counts below this are shown as "<k"

    def missing_required(self) -> list[str]:
        """The required fields (see :data:`REQUIRED_FIELDS`) that are absent or blank."""
        return [name for name in REQUIRED_FIELDS if not (getattr(self, name) or "").strip()]


def load_human_card(path: str | Path) -> HumanCard | None:
    """Read and validate ``card.yaml``; None when the file does not exist.

    Parameters
    ----------
    path : path-like
        The ``card.yaml`` file.

    Returns
    -------
    card : HumanCard | None
        The validated card, or None (the card is then generated with TODO markers).

    Raises
    ------
    ConfigError
        The file is not YAML, or has unknown keys or wrong types (the message names them).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of card fields, got a {type(data).__name__}.")
    try:
        return HumanCard.model_validate(data)
    except ValidationError as err:
        raise ConfigError(
            f"Invalid card file {path} (the annotated template is configs/card/card.yaml):\n{err}"
        ) from None
