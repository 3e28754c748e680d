"""The sampling-time rejection filter: drop generated frames that are too close to a training frame.

:class:`NearestNeighbourFilter` holds the training frames (the exact selection the model was
trained on, read back from its model folder) and flags every generated frame whose RMS pixel
distance to its nearest training frame is under a threshold, the same distance the audit's
memorization check uses (:mod:`synth.privacy.nearest`). The corpus writer drops flagged
sequences and records the rejection rate in ``corpus.json``; the audit reports it.

``threshold="auto"`` calibrates on the training data alone (at sampling time no held-out set is
at hand): the 1st percentile of the distances from training frames to their nearest training
frame of a *different moment* (another session, or the same session at least ``min_gap_s``
away), and never less than one 8-bit grey level (:data:`synth.privacy.memorization.COPY_FLOOR`),
because a still face can give pixel-identical training frames. A generated frame closer to a
training frame than 99 % of the training set's own different-moment pairs are is a near-copy
rather than a new frame. This targets copies, not identity: frames of a training subject with a
new expression stay above it.

``scope="subject"`` calibrates for *people* instead (``synth sample --reject-identities-closer-than``):
the :data:`NEW_PERSON_QUANTILE` of the distances from training frames to their nearest frame of
another training subject. A new identity whose neutral face comes closer to a training frame than
all but that share of real people come to each other looks like that training person (the face
filter: run on each new identity's rendered neutral faces as identities are drawn, then on every
frame of their sequences).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from acquisition import logger
from acquisition.utils.docs import add_doc, fill_doc
from synth.generative.frames import evenly_spaced  # importing synth.generative registers its docdict entries

from synth.privacy.memorization import COPY_FLOOR
from synth.privacy.nearest import nearest_neighbours

#: Quantile of the leave-one-subject-out distances that ``scope="subject"`` calibrates on: a new face
#: closer to a training face than 95 % of real people come to another training subject is rejected.
#: A low quantile rather than the median because real people differ widely (two training subjects of
#: the benchmark's 20 are each other's near-twins in pixel space) and the filter should refuse
#: look-alikes, not demand that every new face be unusually far from everyone.
NEW_PERSON_QUANTILE = 0.05

add_doc("calibration_frames", """
rgbd : ndarray of float32, shape (n, 4, H, W)
    Training frames in [-1, 1].
""")
add_doc("calibration_queries", """
max_queries : int
    At most this many query frames (evenly spaced), to bound the ``queries x n`` mask.
""")


@fill_doc
def leave_moment_out_distances(rgbd: np.ndarray, session_files: np.ndarray, times_s: np.ndarray, *,
                               min_gap_s: float = 1.0, max_queries: int = 1000, chunk_size: int = 1024,
                               seed: int = 0) -> np.ndarray:
    """Distance of training frames to their nearest training frame of a different moment.

    Parameters
    ----------
    %(calibration_frames)s
    session_files : ndarray of str, shape (n,)
        Session of each frame.
    times_s : ndarray of float, shape (n,)
        Time of each frame in its session, in seconds.
    min_gap_s : float
        Frames of the same session closer in time than this are not "different moments".
    %(calibration_queries)s
    %(nn_chunk_size)s

    Returns
    -------
    distance : ndarray, shape (n_queries,)
        RMS distances; ``inf`` where no frame of a different moment exists.
    """
    n = len(rgbd)
    rows = evenly_spaced(n, max_queries)
    same_session = session_files[rows][:, None] == session_files[None, :]
    close_in_time = np.abs(times_s[rows][:, None] - times_s[None, :]) < min_gap_s
    result = nearest_neighbours(rgbd[rows], rgbd, chunk_size=chunk_size, exclude_same=same_session & close_in_time)
    return result.distance


@fill_doc
def leave_subject_out_distances(rgbd: np.ndarray, subject_ids: np.ndarray, *, max_queries: int = 1000,
                                chunk_size: int = 1024) -> np.ndarray:
    """Distance of training frames to their nearest frame of another training subject.

    Parameters
    ----------
    %(calibration_frames)s
    subject_ids : ndarray of str, shape (n,)
        Subject of each frame.
    %(calibration_queries)s
    %(nn_chunk_size)s

    Returns
    -------
    distance : ndarray, shape (n_queries,)
        RMS distances; ``inf`` where every frame is of one subject.
    """
    subject_ids = np.asarray(subject_ids)
    rows = evenly_spaced(len(rgbd), max_queries)
    same_subject = subject_ids[rows][:, None] == subject_ids[None, :]
    return nearest_neighbours(rgbd[rows], rgbd, chunk_size=chunk_size, exclude_same=same_subject).distance


@fill_doc
class NearestNeighbourFilter:
    """Flag generated frames closer than ``threshold`` (RMS pixel distance) to any training frame.

    Parameters
    ----------
    train_rgbd : ndarray of float32, shape (n_train, 4, H, W)
        The training frames in [-1, 1].
    threshold : float
        RMS distance in [-1, 1] pixel units; frames strictly closer are "too close".
    %(nn_chunk_size)s

    Examples
    --------
    >>> keep = ~NearestNeighbourFilter.from_model_dir("models/s1")(frames)  # doctest: +SKIP
    """

    def __init__(self, train_rgbd: np.ndarray, threshold: float, *, chunk_size: int = 1024) -> None:
        train_rgbd = np.asarray(train_rgbd, dtype=np.float32)
        if train_rgbd.ndim != 4 or len(train_rgbd) == 0:
            raise ValueError(f"train_rgbd must have shape (n_train > 0, channels, H, W), got {train_rgbd.shape}")
        if not np.isfinite(threshold) or threshold < 0:
            raise ValueError(f"threshold must be a finite distance >= 0, got {threshold}")
        self.train_rgbd = train_rgbd
        self.threshold = float(threshold)
        self.chunk_size = chunk_size
        #: How the threshold was set (``from_model_dir`` records its calibration here).
        self.calibration: dict[str, Any] = {"method": "given", "threshold": self.threshold,
                                            "n_train_frames": len(train_rgbd)}

    def distances(self, rgbd: np.ndarray) -> np.ndarray:
        """RMS distance of each frame to its nearest training frame, shape (n,)."""
        rgbd = np.asarray(rgbd, dtype=np.float32)
        if rgbd.shape[1:] != self.train_rgbd.shape[1:]:
            raise ValueError(f"frames have shape {rgbd.shape[1:]} per frame but the training frames "
                             f"{self.train_rgbd.shape[1:]}; generate at the model's image size.")
        return nearest_neighbours(rgbd, self.train_rgbd, chunk_size=self.chunk_size).distance

    def __call__(self, rgbd: np.ndarray) -> np.ndarray:
        """Boolean ``too_close`` per frame, shape (n,)."""
        return self.distances(rgbd) < self.threshold

    def __repr__(self) -> str:
        return f"<NearestNeighbourFilter {len(self.train_rgbd)} training frames, threshold={self.threshold:.4g}>"

    @classmethod
    @fill_doc
    def from_model_dir(cls, model_dir: str | os.PathLike, threshold: str | float = "auto", *,
                       scope: str = "moment", quantile: float | None = None, min_gap_s: float = 1.0,
                       chunk_size: int = 1024, frames: Any = None) -> NearestNeighbourFilter:
        """Build the filter from the training sessions a model folder records (checked by sha256).

        Parameters
        ----------
        %(generator_dir)s
        threshold : ``"auto"`` | float
            A distance, or ``"auto"``: ``quantile`` of the distances ``scope`` names, at least
            :data:`~synth.privacy.memorization.COPY_FLOOR`.
        scope : ``"moment"`` | ``"subject"``
            For ``"auto"``: calibrate on :func:`leave_moment_out_distances` (copies of training frames)
            or on :func:`leave_subject_out_distances` (faces as close as another person's).
        quantile : float | None
            For ``"auto"``; None: 0.01 for ``"moment"``, :data:`NEW_PERSON_QUANTILE` for ``"subject"``.
        min_gap_s : float
            For ``"auto"`` with ``"moment"``: see :func:`leave_moment_out_distances`.
        %(nn_chunk_size)s
        frames : FaceFrames | None
            ``load_training_frames(model_dir)`` if already loaded, so that two filters of one model
            share one copy of its training frames; None: load them.

        Returns
        -------
        filter : NearestNeighbourFilter
            With ``calibration`` (a dict saying how the threshold was set) as an attribute.
        """
        from synth.generative.base import load_training_frames

        if scope not in ("moment", "subject"):
            raise ValueError(f"scope must be 'moment' or 'subject', got {scope!r}")
        frames = load_training_frames(model_dir) if frames is None else frames
        if isinstance(threshold, str):
            if threshold != "auto":
                raise ValueError(f"threshold must be 'auto' or a number, got {threshold!r}")
            if scope == "moment":
                quantile = 0.01 if quantile is None else quantile
                distance = leave_moment_out_distances(frames.rgbd, frames.session_files, frames.times_s,
                                                      min_gap_s=min_gap_s, chunk_size=chunk_size)
                calibration = {"method": "leave-moment-out", "quantile": quantile, "min_gap_s": min_gap_s}
                empty = (f"{model_dir}'s training frames span less than {min_gap_s} s of one session, so no "
                         "threshold can be calibrated; pass a numeric threshold.")
            else:
                quantile = NEW_PERSON_QUANTILE if quantile is None else quantile
                distance = leave_subject_out_distances(frames.rgbd, frames.subject_ids, chunk_size=chunk_size)
                calibration = {"method": "leave-subject-out", "quantile": quantile}
                empty = (f"{model_dir} was trained on one subject, so how close two different people come cannot be "
                         "calibrated; pass a numeric threshold.")
            finite = distance[np.isfinite(distance)]
            if finite.size == 0:
                raise ValueError(empty)
            value = max(float(np.quantile(finite, quantile)), COPY_FLOOR)
            calibration.update({"floor": COPY_FLOOR, "n": int(finite.size)})
        else:
            value = float(threshold)
            calibration = {"method": "given"}
        filt = cls(frames.rgbd, value, chunk_size=chunk_size)
        filt.calibration = {"threshold": value, "n_train_frames": len(frames), **calibration}
        logger.info("Rejection filter: %d training frames of %s, threshold %.4g (%s)", len(frames),
                    Path(model_dir).name, value, calibration["method"])
        return filt
