"""Package logger and the ``verbose`` switch shared by acquisition, fusion and synth.

One logger (``emosync``) for the whole project, as MNE does with ``mne``: its level
comes from the ``EMOSYNC_LOG_LEVEL`` environment variable (default ``INFO``) and any
public function decorated with :func:`verbose` accepts ``verbose=`` to change it for
the duration of one call.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from typing import Any, TypeVar
from collections.abc import Callable

logger = logging.getLogger("emosync")

_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
F = TypeVar("F", bound=Callable[..., Any])


def _as_level(value: bool | int | str | None) -> int:
    if value is None:
        value = os.environ.get("EMOSYNC_LOG_LEVEL", "INFO")
    if isinstance(value, bool):
        return logging.INFO if value else logging.WARNING
    if isinstance(value, int):
        return value
    try:
        return _LEVELS[str(value).upper()]
    except KeyError:
        raise ValueError(
            f"Invalid log level {value!r}; use one of {sorted(_LEVELS)} or a bool/int."
        ) from None


def set_log_level(verbose: bool | int | str | None = None) -> None:
    """Set the level of the ``emosync`` logger.

    Parameters
    ----------
    verbose : bool | int | str | None
        ``True`` is ``INFO``, ``False`` is ``WARNING``; a level name or number is used
        as is; ``None`` reads ``EMOSYNC_LOG_LEVEL`` (default ``INFO``).
    """
    logger.setLevel(_as_level(verbose))


def verbose(function: F) -> F:
    """Decorate a function so that its ``verbose`` keyword sets the log level for the call."""
    if "verbose" not in inspect.signature(function).parameters:
        raise TypeError(f"{function.__qualname__} needs a 'verbose' parameter to use @verbose")

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        level = kwargs.get("verbose")
        if level is None:
            return function(*args, **kwargs)
        previous = logger.level
        logger.setLevel(_as_level(level))
        try:
            return function(*args, **kwargs)
        finally:
            logger.setLevel(previous)

    return wrapper  # type: ignore[return-value]


if not logger.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    logger.addHandler(_handler)
    logger.propagate = False
    set_log_level(None)
