"""Keep native libraries' log lines (MediaPipe's absl and TFLite) off the user's terminal.

MediaPipe writes lines such as ``WARNING: All log messages before absl::InitializeLog() is
called are written to STDERR``, ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU`` and
``W0000 ... inference_feedback_manager.cc:114] ...`` from C++ straight to file descriptor 2,
while a landmarker is being created. A Python logging filter never sees them, and the
environment variables of older releases (``GLOG_minloglevel``, ``TF_CPP_MIN_LOG_LEVEL``) do not
silence mediapipe 0.10.33 (checked). So :func:`native_stderr_to_log` points descriptor 2 at a
temporary file for the duration of such a call and replays what was written to the
``emosync`` logger: at DEBUG on success (shown with ``emosync annotate --verbose`` or
``EMOSYNC_LOG_LEVEL=DEBUG``), at WARNING when the call failed (the native lines then often
say why).

The redirection is process-wide: anything else written to descriptor 2 during the call
(another thread's log line) is captured and replayed too. Keep the calls it wraps short.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from acquisition.utils.logs import logger


@contextmanager
def native_stderr_to_log(source: str) -> Iterator[None]:
    """Capture what native code writes to descriptor 2 inside the block and log it.

    Parameters
    ----------
    source : str
        Prefix of the replayed lines (``"mediapipe"``).
    """
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 at all (a windowed interpreter): nothing can reach a terminal
        yield
        return
    failed = False
    with tempfile.TemporaryFile() as capture:
        _flush_python_stderr()
        os.dup2(capture.fileno(), 2)
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            _flush_python_stderr()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            level = logging.WARNING if failed else logging.DEBUG
            for line in text.splitlines():
                if line.strip():
                    logger.log(level, "%s: %s", source, line.rstrip())


def _flush_python_stderr() -> None:
    """Flush Python's own buffered stderr so its text lands before or after the redirection, not inside."""
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError, OSError):  # replaced, closed or missing stderr
        pass
