"""Settings of ``emosync live`` (``configs/live/*.yaml``), validated with pydantic.

Only numbers live in the YAML files; :class:`LiveConfig` rejects unknown keys and bad values with
a message naming them, and ``--set key=value`` overrides any of them. Times are in seconds, rates
in Hz, thresholds in robust standard deviations (1.4826 x MAD) above the running baseline.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from acquisition.utils.config import StrictModel, load_config


class SpotterConfig(StrictModel):
    """The online (causal) spotter: see :class:`fusion.live.spotter.OnlineSpotter`."""

    # emg: facial-EMG envelopes (default when an EMG stream is given); video: frame-difference motion energy.
    source: Literal["auto", "emg", "video"] = "auto"
    rate_hz: float = Field(100.0, gt=0)                  # rate of the activation signal (EMG envelopes)
    band_hz: tuple[float, float] = (20.0, 450.0)         # surface-EMG pass band (causal Butterworth)
    notch_hz: float | None = Field(50.0, ge=0)           # mains; null or 0: no notch
    envelope_window_s: float = Field(0.1, gt=0)          # causal moving-RMS window; events are stamped half earlier
    exclude_muscles: list[str] = ["orbicularis_oculi"]   # blinks are not expressions (as AU45 offline)
    baseline_window_s: float = Field(20.0, gt=0)         # running median = the neutral face / resting muscle
    noise_floor: float = Field(0.05, gt=0)               # smallest robust SD, as a fraction of the channel's median
    high: float = Field(6.0, gt=0)                       # hysteresis: runs above `low` that reach `high`
    low: float = Field(4.0, gt=0)
    edge_fraction: float = Field(0.2, ge=0, lt=1)        # onset/offset: where activation falls to this of the peak
    merge_gap_s: float = Field(0.2, ge=0)                # a dip shorter than this does not end an expression
    min_duration_s: float = Field(0.1, ge=0)
    max_duration_s: float = Field(4.0, gt=0)             # an expression still open this long is closed (bounded delay)
    video_step_px: int = Field(4, ge=1)                  # video motion: every n-th pixel of the grey frame

    @model_validator(mode="after")
    def _check(self) -> SpotterConfig:
        if self.low > self.high:
            raise ValueError(f"spotter.low ({self.low}) must not exceed spotter.high ({self.high})")
        if not 0 < self.band_hz[0] < self.band_hz[1]:
            raise ValueError(f"spotter.band_hz {self.band_hz} must be (low, high) Hz with 0 < low < high")
        if self.min_duration_s >= self.max_duration_s:
            raise ValueError(f"spotter.min_duration_s ({self.min_duration_s}) must be below max_duration_s "
                             f"({self.max_duration_s})")
        return self


class AUConfig(StrictModel):
    """AU estimates per hop from the EMG (``emosync emg-code``'s model made online)."""

    enabled: bool = True
    emg_code: str = "default"                            # configs/emg_code/<name>.yaml: muscles, AU curves
    baseline_window_s: float = Field(2.0, gt=0)          # resting power: the quietest stretch of this length so far
    range_history_s: float = Field(60.0, gt=0)           # the subject's range: a quantile of the last this many s


class LiveConfig(StrictModel):
    """Settings of ``emosync live`` (``configs/live/*.yaml``)."""

    hop_s: float = Field(0.1, gt=0)                      # one window, one AU sample, one latency sample per hop
    resolve_timeout_s: float = Field(10.0, gt=0)         # a named stream that does not appear by then is an error
    buffer_s: float = Field(5.0, ge=2)                   # ring buffer per stream: >= window + max_behind_s + 1 s
    warmup_s: float = Field(3.0, ge=0)                   # running normalisation statistics settle before windows run
    max_behind_s: float = Field(0.5, gt=0)               # further behind than this: skip windows to the newest
    threads: int = Field(1, ge=1)                        # onnxruntime intra-op threads per graph
    log_every_s: float = Field(10.0, gt=0)               # status line period
    spotter: SpotterConfig = SpotterConfig()
    au: AUConfig = AUConfig()


def load_live_config(name_or_path: str | os.PathLike = "default", overrides: Sequence[str] = ()) -> LiveConfig:
    """Load ``configs/live/<name>.yaml`` (or a path) with ``key=value`` overrides.

    Raises
    ------
    acquisition.utils.config.ConfigError
        If the file is missing, not YAML, or does not validate (unknown keys, bad values).
    """
    return load_config(LiveConfig, Path(name_or_path) if isinstance(name_or_path, os.PathLike) else name_or_path,
                       "live", overrides)
