"""Thin helpers over pylsl: stream descriptions, time correction with uncertainty.

Importing this package quiets liblsl's INFO lines on stderr (unless ``LSLAPICFG``
points to a configuration of the user's own): liblsl reads its log level only from
its configuration, once, before the first LSL call.
"""

import os

import pylsl

if not os.environ.get("LSLAPICFG"):
    try:
        pylsl.util.set_config_content("[log]\nlevel = -2\n")
    except NotImplementedError:  # liblsl < 1.17.7: keep its default logging
        pass

from acquisition.lsl.streaminfo import make_stream_info, spec_from_stream_info  # noqa: E402
from acquisition.lsl.time_correction import TimeCorrection, time_correction_ex  # noqa: E402

__all__ = ["make_stream_info", "spec_from_stream_info", "time_correction_ex", "TimeCorrection"]
