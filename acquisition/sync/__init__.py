"""Layer 1: clocks and synchronization, independent of the file format.

:class:`ClockOffsetTable` holds the measured offsets of one stream, :func:`synchronize`
maps raw LSL stamps onto the recorder's clock (pyxdf's method), and :mod:`.simulation`
makes recordings with known clock errors for tests and the accuracy benchmark.
"""

from acquisition.sync.clock import ClockOffsetTable
from acquisition.sync.synchronize import SyncOptions, SyncResult, find_clock_resets, synchronize

__all__ = ["ClockOffsetTable", "SyncOptions", "SyncResult", "find_clock_resets", "synchronize"]
