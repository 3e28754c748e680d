"""emosync acquisition: the session format, LSL recording, devices, importers, analyses and plots.

This is the base package: :mod:`fusion`, :mod:`synth` and :mod:`data_cards` read and write
sessions through it, and it imports none of them. It is built in layers, each a subpackage
that imports only the layers below it (see ``docs/architecture.md``)::

    utils -> sync -> session -> lsl, devices, io -> annotate, viz -> live -> cli

The names below are the ones most users need. They are loaded on first use, so that
``import acquisition`` (and so ``emosync --help``) does not pay for h5py or scipy.
"""

from __future__ import annotations

import lazy_loader

# Public name -> the submodule that defines it; loaded on first use (PEP 562, as MNE does).
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "utils.logs": ["logger", "set_log_level"],
        "sync.clock": ["ClockOffsetTable"],
        "session.reader": ["Session", "Stream", "StreamData", "open_session"],
        "session.format": ["SCHEMA_NAME", "SCHEMA_VERSION", "StreamSpec"],
        "session.writer": ["SessionWriter", "StreamWriter"],
    },
)
