"""Synthetic recordings with known clock errors, to measure synchronization accuracy.

:func:`simulate_clock_recording` draws what a recorder would store for one regular
stream whose source clock is offset, drifts, jitters, may reset, and may drop chunks,
together with the ground truth. Used by the sync tests and
``benchmarks/sync_accuracy.py``; also handy to validate a pipeline end to end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from acquisition.sync.clock import ClockOffsetTable


@dataclass
class ClockRecording:
    """A simulated stream as recorded, with its ground truth.

    Attributes
    ----------
    true_times : array, shape (n_samples,)
        When each kept sample really happened, recorder clock (s).
    timestamps : array, shape (n_samples,)
        Raw stamps in the source's clock, with jitter (s).
    clock_offsets : ClockOffsetTable
        Offsets as a recorder would have measured them.
    srate : float
        Nominal rate (Hz).
    reset_index : int | None
        First sample after the clock reset, if any.
    """

    true_times: np.ndarray
    timestamps: np.ndarray
    clock_offsets: ClockOffsetTable
    srate: float
    reset_index: int | None


def simulate_clock_recording(*, duration_s: float = 300.0, srate: float = 1000.0, offset_s: float = 1234.5,
                             drift_ppm: float = 20.0, jitter_s: float = 0.002, offset_noise_s: float = 20e-6,
                             offset_interval_s: float = 5.0, reset_at_s: float | None = None,
                             reset_offset_s: float = -1000.0, drop_chunks: tuple[tuple[float, float], ...] = (),
                             start_s: float = 100.0, seed: int = 0) -> ClockRecording:
    """Draw a recording with a known clock error.

    The source clock runs ``S = (T - offset_s) * (1 + drift_ppm * 1e-6)`` against the
    recorder's clock ``T``; after ``reset_at_s`` (seconds into the recording) it restarts
    with ``offset_s + reset_offset_s``. Stamps get Gaussian jitter of ``jitter_s`` (SD);
    offsets are measured every ``offset_interval_s`` with Gaussian noise ``offset_noise_s``
    and a round-trip uncertainty. ``drop_chunks`` are ``(start, stop)`` seconds lost.
    """
    rng = np.random.default_rng(seed)
    rate = 1.0 + drift_ppm * 1e-6
    true = start_s + np.arange(int(duration_s * srate)) / srate

    def source_clock(t: np.ndarray) -> np.ndarray:
        off = np.full_like(t, offset_s)
        if reset_at_s is not None:
            off[t >= start_s + reset_at_s] += reset_offset_s
        return (t - off) * rate

    keep = np.ones(true.shape[0], bool)
    for a, b in drop_chunks:
        keep &= ~((true >= start_s + a) & (true < start_s + b))
    true = true[keep]
    stamps = source_clock(true) + rng.normal(0.0, jitter_s, true.shape[0])
    collected = start_s + np.arange(offset_interval_s / 2, duration_s, offset_interval_s)
    source_at = source_clock(collected)
    rtt = rng.uniform(50e-6, 200e-6, collected.shape[0])
    offsets = (collected - source_at) + rng.normal(0.0, offset_noise_s, collected.shape[0]) * rtt / 100e-6
    table = ClockOffsetTable(source_at, offsets, rtt)
    reset_index = None
    if reset_at_s is not None:
        reset_index = int(np.searchsorted(true, start_s + reset_at_s))
    return ClockRecording(true, stamps, table, srate, reset_index)
