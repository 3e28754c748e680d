"""``time_correction`` with its round-trip uncertainty, which pylsl does not wrap.

liblsl's ``lsl_time_correction_ex`` returns the offset together with the remote
time and the round-trip time of the winning probe; we store the latter as the
offset's uncertainty, so bad measurements can be down-weighted offline.
"""

from __future__ import annotations

import ctypes
from typing import NamedTuple

import pylsl
from pylsl.util import handle_error

_lib = pylsl.lib.lib
_lib.lsl_time_correction_ex.restype = ctypes.c_double
_lib.lsl_time_correction_ex.argtypes = [
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_double),
    ctypes.POINTER(ctypes.c_double),
    ctypes.c_double,
    ctypes.POINTER(ctypes.c_int32),
]


class TimeCorrection(NamedTuple):
    """One clock-offset measurement (all in seconds)."""

    offset: float
    remote_time: float
    uncertainty: float


def time_correction_ex(inlet: pylsl.StreamInlet, timeout: float = 2.0) -> TimeCorrection:
    """Measure the clock offset of an inlet's source, with its uncertainty.

    Parameters
    ----------
    inlet : pylsl.StreamInlet
        An open inlet.
    timeout : float
        Seconds to wait; the first call on an inlet takes about 0.64 s.

    Returns
    -------
    correction : TimeCorrection
        ``offset`` to add to the source's time stamps, ``remote_time`` of the
        measurement in the source's clock, ``uncertainty`` (round-trip time).

    Raises
    ------
    pylsl.util.TimeoutError
        When no estimate arrived in time; nothing must be stored then.
    pylsl.util.LostError
        When the source is gone.
    """
    remote = ctypes.c_double()
    uncertainty = ctypes.c_double()
    errcode = ctypes.c_int32()
    offset = _lib.lsl_time_correction_ex(inlet.obj, ctypes.byref(remote), ctypes.byref(uncertainty),
                                         ctypes.c_double(timeout), ctypes.byref(errcode))
    handle_error(errcode.value)
    return TimeCorrection(float(offset), float(remote.value), float(uncertainty.value))
