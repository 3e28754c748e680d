"""Shared fixtures: unique LSL names per test, the light rig, the real data folder."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

# Two xdist workers share the 2 cores: one math thread each (and in the processes they start), or the
# workers' thread pools fight over the cores and torch-heavy tests run several times slower.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import acquisition.lsl  # noqa: E402, F401  -- quiets liblsl before any test touches LSL

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Real test data lives beside the checkout (../shared/data); tests that need it skip without it.
SHARED_DATA = Path(os.environ.get("EMOSYNC_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture
def unique_prefix() -> str:
    """A stream-name prefix no other test (or concurrent run) uses: LSL discovery is machine-wide."""
    return f"t{uuid.uuid4().hex[:10]}_"


@pytest.fixture
def light_rig_config(unique_prefix: str):
    """The light rig profile with this test's unique stream names."""
    from synth.rig import load_rig_config

    return load_rig_config("light", [f"name_prefix={unique_prefix}"])


@pytest.fixture
def emosync_log(caplog):
    """Capture the emosync logger (which does not propagate to the root logger)."""
    import logging

    logger = logging.getLogger("emosync")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="emosync")
    yield caplog
    logger.removeHandler(caplog.handler)


@pytest.fixture
def shared_data() -> Path:
    """The real data folder; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA} (set EMOSYNC_SHARED_DATA)")
    return SHARED_DATA


def emosync_command(*args: str) -> list[str]:
    """The command line that runs ``emosync`` with this interpreter (works without the console script on PATH)."""
    return [sys.executable, "-m", "emosync", *args]


class CounterSource:
    """A real LSL outlet whose channel 0 counts samples, so drops and duplicates are visible.

    Pushes ``rate_hz`` samples per second in chunks with explicit time stamps; ``restart``
    destroys the outlet and creates a new one with the same ``source_id``, as a device
    app that crashed and came back.
    """

    def __init__(self, name: str, *, rate_hz: float = 500.0, n_channels: int = 4, stream_type: str = "EMG") -> None:
        import threading

        self.name, self.rate_hz, self.n_channels, self.stream_type = name, rate_hz, n_channels, stream_type
        self.source_id = f"{name}-src"
        self.position = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._outlet = self._make_outlet()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _make_outlet(self):
        import pylsl

        from acquisition.lsl import make_stream_info

        info = make_stream_info(self.name, self.stream_type, channel_count=self.n_channels, nominal_srate=self.rate_hz,
                                channel_format="float32", source_id=self.source_id,
                                channel_labels=[f"ch{i}" for i in range(self.n_channels)])
        return pylsl.StreamOutlet(info)

    def start(self) -> CounterSource:
        self._thread.start()
        return self

    def _run(self) -> None:
        import time

        import numpy as np
        import pylsl

        t_start, k_start = pylsl.local_clock(), 0
        while not self._stop.is_set():
            with self._lock:
                if self._outlet is None:
                    t_start, k_start = None, self.position
                else:
                    if t_start is None:
                        t_start = pylsl.local_clock()
                    due = k_start + int((pylsl.local_clock() - t_start) * self.rate_hz)
                    n = due - self.position
                    if n > 0:
                        k = np.arange(self.position, due)
                        data = np.repeat(k[:, None], self.n_channels, axis=1).astype(np.float32)
                        data[:, 1:] *= -1
                        stamps = (t_start + (k - k_start) / self.rate_hz).tolist()
                        self._outlet.push_chunk(data, stamps)
                        self.position = due
            time.sleep(0.01)

    def restart(self, downtime_s: float) -> None:
        import gc
        import time

        with self._lock:
            self._outlet = None
        gc.collect()
        time.sleep(downtime_s)
        with self._lock:
            self._outlet = self._make_outlet()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._outlet = None


@pytest.fixture
def counter_source(unique_prefix):
    """A started :class:`CounterSource` named ``<prefix>EMG`` (500 Hz, 4 channels)."""
    source = CounterSource(f"{unique_prefix}EMG").start()
    yield source
    source.stop()


def record_rig(rig, fname, seconds: float, **recorder_kwargs) -> None:
    """Run a :class:`SimulatedRig` and record every stream it publishes for ``seconds`` (real LSL, real HDF5)."""
    from acquisition.live.recorder import RecorderSettings, SessionRecorder

    recorder_kwargs.setdefault("settings", RecorderSettings(wait_timeout_s=10, clock_offset_interval_s=1.0))
    rig.start()
    try:
        recorder = SessionRecorder(fname, streams=[f"starts-with(name,'{rig.config.name_prefix}')"],
                                   **recorder_kwargs)
        recorder.start()
        recorder.wait(seconds)
        recorder.stop()
    finally:
        rig.stop()
