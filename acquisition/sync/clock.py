"""Clock offsets between a stream's source and the recorder, and what they correct.

LSL stamps every sample with the source machine's monotonic clock. The recorder
measures the offset to its own clock every few seconds (``time_correction``) and
stores the measurements raw in a :class:`ClockOffsetTable`. Mapping time stamps to
the recorder's clock happens on read (:mod:`acquisition.sync.synchronize`), so it can be redone
with a better method without touching the recording.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClockOffsetTable:
    """Clock-offset measurements of one stream.

    Attributes
    ----------
    collection_times : array of float, shape (n,)
        When each offset was measured, in seconds of the source's clock.
    offsets : array of float, shape (n,)
        Seconds to add to a source time stamp to obtain recorder time.
    uncertainties : array of float, shape (n,)
        Round-trip time of the measurement in seconds (NaN when unknown, as in XDF imports).
    """

    collection_times: np.ndarray
    offsets: np.ndarray
    uncertainties: np.ndarray

    @classmethod
    def from_array(cls, rows: np.ndarray) -> ClockOffsetTable:
        """Build from an array of shape (n, 3): collection time, offset, uncertainty."""
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, 3)
        return cls(rows[:, 0].copy(), rows[:, 1].copy(), rows[:, 2].copy())

    def __len__(self) -> int:
        return int(self.offsets.shape[0])

    def as_array(self) -> np.ndarray:
        """The table as an array of shape (n, 3)."""
        return np.column_stack([self.collection_times, self.offsets, self.uncertainties])

    def summary(self) -> dict[str, float | int]:
        """Statistics for reports: count, span and spread of offsets, median uncertainty (seconds)."""
        if len(self) == 0:
            return {"n": 0}
        unc = self.uncertainties[np.isfinite(self.uncertainties)]
        return {
            "n": len(self),
            "span_s": float(np.ptp(self.collection_times)),
            "mean_offset_s": float(np.mean(self.offsets)),
            "std_offset_s": float(np.std(self.offsets)),
            "min_offset_s": float(np.min(self.offsets)),
            "max_offset_s": float(np.max(self.offsets)),
            "median_uncertainty_s": float(np.median(unc)) if unc.size else float("nan"),
        }
