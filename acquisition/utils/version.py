"""The installed emosync version, recorded in sessions, model folders, corpora and cards."""

from __future__ import annotations


def software_version() -> str:
    """The installed ``emosync`` distribution's version, or ``"unknown"`` in a bare checkout."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("emosync")
    except PackageNotFoundError:
        return "unknown"
