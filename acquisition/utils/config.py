"""YAML configuration: locate files under ``configs/``, apply overrides, validate.

Every YAML file in ``configs/`` is validated by a pydantic model with unknown keys
rejected (``extra="forbid"``), so a typo fails loudly instead of being ignored.
Command-line overrides are OmegaConf dotlists (``emg.srate_hz=1500``), the same
syntax Hydra users know, without Hydra's runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar
from collections.abc import Mapping, Sequence

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import BaseModel, ConfigDict, ValidationError

#: ``configs/`` sits beside the packages both in a checkout and in an installed wheel.
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every configuration model: unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ConfigError(ValueError):
    """A configuration file or override could not be read or did not validate."""


def resolve_config_path(name_or_path: str | Path, kind: str) -> Path:
    """Find a configuration file by path or by name under ``configs/<kind>/``.

    Parameters
    ----------
    name_or_path : str | Path
        A path to a YAML file, or a bare name such as ``"default"`` that is looked
        up as ``configs/<kind>/<name>.yaml``.
    kind : str
        The sub-folder of ``configs/`` (for example ``"rig"``).
    """
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"Config file {path} does not exist.")
        return path
    candidate = CONFIG_DIR / kind / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    known = sorted(p.stem for p in (CONFIG_DIR / kind).glob("*.yaml"))
    raise ConfigError(
        f"Unknown {kind} config {str(name_or_path)!r}. Known names: {known}; "
        f"or pass a path to a .yaml file."
    )


def load_config(model: type[M], name_or_path: str | Path, kind: str,
                overrides: Sequence[str] = ()) -> M:
    """Load a YAML config, apply ``key.sub=value`` overrides and validate it.

    Parameters
    ----------
    model : type of pydantic.BaseModel
        The model that validates the merged configuration.
    name_or_path : str | Path
        See :func:`resolve_config_path`.
    kind : str
        The sub-folder of ``configs/``.
    overrides : sequence of str
        OmegaConf dotlist entries, e.g. ``["rgb.width=320", "eeg.enabled=false"]``.

    Returns
    -------
    config : instance of ``model``
        The validated configuration.
    """
    path = resolve_config_path(name_or_path, kind)
    try:
        base = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"Config file {path} is not valid YAML: {err}") from None
    return validate_with_overrides(model, base, overrides, source=f"config {path}")


def validate_with_overrides(model: type[M], base: Mapping[str, Any], overrides: Sequence[str] = (), *,
                            source: str = "config") -> M:
    """Apply OmegaConf dotlist ``overrides`` to the mapping ``base`` and validate the result as ``model``.

    ``source`` names where ``base`` came from in the error message (a file, or a model card's section).

    Raises
    ------
    ConfigError
        If an override cannot be applied or the result does not validate.
    """
    try:
        merged = OmegaConf.merge(OmegaConf.create(dict(base)), OmegaConf.from_dotlist(list(overrides)))
        data = OmegaConf.to_container(merged, resolve=True)
    except (OmegaConfBaseException, TypeError, ValueError) as err:  # TypeError: e.g. list vs dict merges
        raise ConfigError(f"Could not apply overrides {list(overrides)}: {err}") from None
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"Invalid {source} (with overrides {list(overrides)}):\n{err}") from None
