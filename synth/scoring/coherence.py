"""Temporal coherence of face sequences: how much a sequence flickers from frame to frame.

A generator that samples each frame of a sequence independently can match every requested AU
vector and still produce a sequence that shimmers (texture, lighting or identity changing
between neighbouring frames). Real faces moving through the same AU course change only as much
as the expression does. :func:`frame_flicker` gives one number per sequence so synthetic and
real sequences of the same AU course can be compared on the same scale; it lives here, apart
from the AU scorer, because the generators import it to report flicker at sampling time.
"""

from __future__ import annotations

import numpy as np


def frame_flicker(frames: np.ndarray) -> float:
    """Mean absolute frame-to-frame difference of one sequence.

    Parameters
    ----------
    frames : array of float, shape (n_frames, n_channels, height, width)
        One sequence in time order, values in [-1, 1] (the :mod:`synth.generative.frames`
        value map, e.g. RGB-D with ``n_channels=4`` or RGB with 3).

    Returns
    -------
    flicker : float
        ``mean(|frames[t + 1] - frames[t]|)`` over all ``t``, channels and pixels, in the units
        of the input (value-map units; 0 is a still sequence, 2 the largest possible: every pixel
        jumping between -1 and +1 every frame). A sequence of one frame has no transition and
        gives 0.0.

    Notes
    -----
    The value depends on how fast the requested expression changes, so compare a synthetic
    sequence with real sequences of the same AU course (or the same frame rate and kind of
    expression), never with an absolute threshold. NaN frames are refused rather than skipped,
    because a NaN from a generator is a bug to see, not a frame to ignore.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(
            f"frames must have shape (n_frames, n_channels, height, width), got shape {frames.shape}; "
            "pass one sequence at a time (index a batch of sequences first).")
    if not np.issubdtype(frames.dtype, np.floating):
        raise TypeError(
            f"frames must be floating point in [-1, 1], got dtype {frames.dtype}; convert uint8 images "
            "with synth.generative.frames.rgb_to_unit first.")
    if not np.all(np.isfinite(frames)):
        raise ValueError("frames contain NaN or infinite values; frame_flicker needs finite frames.")
    if len(frames) < 2:
        return 0.0
    # float64 accumulation: a long 128 px sequence sums ~1e8 small differences.
    return float(np.mean(np.abs(np.diff(frames.astype(np.float64, copy=False), axis=0))))
