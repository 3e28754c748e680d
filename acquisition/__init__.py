"""emosync acquisition: the session format, LSL recording, devices, importers, analyses and plots.

This is the base package: :mod:`fusion`, :mod:`synth` and :mod:`data_cards` read and write
sessions through it, and it imports none of them. It is built in layers, each a subpackage
that imports only the layers below it (see ``docs/architecture.md``)::

    utils -> sync -> session -> lsl, devices, io -> annotate, viz -> live -> cli

The names below are the ones most users need. They are loaded on first use, so that
``import acquisition`` (and so ``emosync --help``) does not pay for h5py or scipy.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module that defines it
_PUBLIC = {
    "logger": "acquisition.utils.logs",
    "set_log_level": "acquisition.utils.logs",
    "ClockOffsetTable": "acquisition.sync.clock",
    "Session": "acquisition.session.reader",
    "Stream": "acquisition.session.reader",
    "StreamData": "acquisition.session.reader",
    "open_session": "acquisition.session.reader",
    "SCHEMA_NAME": "acquisition.session.format",
    "SCHEMA_VERSION": "acquisition.session.format",
    "StreamSpec": "acquisition.session.format",
    "SessionWriter": "acquisition.session.writer",
    "StreamWriter": "acquisition.session.writer",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    # PEP 562 lazy attributes, as lazy_loader does for MNE: the import cost is paid by the first user.
    if name not in _PUBLIC:
        raise AttributeError(f"module 'acquisition' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
