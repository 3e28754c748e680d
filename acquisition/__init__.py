"""emosync acquisition: LSL streams, the recorder, the HDF5 session format and its readers.

This is the base package: :mod:`fusion` and :mod:`synth` read and write sessions
through it, and it imports neither of them.
"""

from ._logging import logger, set_log_level
from .clock import ClockOffsetTable
from .reader import Session, Stream, StreamData, open_session
from .session_format import SCHEMA_NAME, SCHEMA_VERSION, StreamSpec
from .writer import SessionWriter, StreamWriter

__all__ = [
    "ClockOffsetTable",
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "Session",
    "SessionWriter",
    "Stream",
    "StreamData",
    "StreamSpec",
    "StreamWriter",
    "logger",
    "open_session",
    "set_log_level",
]
