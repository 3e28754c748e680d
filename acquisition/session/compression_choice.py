"""Choose how to store a video stream by measuring, on this machine, which forms keep up with it.

``--video-compression auto`` asks the recorder to pick the storage form of each video stream at
the start of a recording. What is fastest depends on the machine and on the pictures (a noisy
camera compresses worse and slower than a simulated face), so the choice is measured, not
assumed: :func:`choose_frame_compression` stores a stream's first frames in memory with each
lossless candidate, times the CPU each form costs per frame, and picks the most compact form that
keeps up with the stream's nominal rate with a margin (the recorder must also pull the frames,
and often shares the machine with the source). The choice, the reason and every trial are kept
in the session (stream attributes ``compression_requested`` and ``compression_choice``).

JPEG is never chosen automatically: it is lossy, and an automatic choice must not change the data.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import h5py
import numpy as np

from acquisition.session.format import FILTER_COMPRESSIONS, IMAGE_COMPRESSIONS, StreamSpec
from acquisition.session.frame_codec import encode_frame, open_frame_dataset

#: Lossless forms ``auto`` tries, in order of preference when two are equally compact.
AUTO_CANDIDATES = ("lz4", "blosc2", "png", "none")
#: The most CPU time a single trial may take, seconds (it stops early past this).
TRIAL_BUDGET_S = 0.25


@dataclass
class CompressionTrial:
    """How one storage form did on a stream's first frames.

    Attributes
    ----------
    compression : str
        The form.
    cpu_ms_per_frame : float
        CPU time to store one frame, milliseconds (encoding or filtering plus the HDF5 write).
    ratio : float
        Raw frame bytes over stored bytes (1 for ``none``).
    capacity_fps : float
        Frames per second this form can store with ``parallel`` threads.
    keeps_up : bool
        Whether ``capacity_fps >= margin * nominal rate``.
    error : str
        Why the form could not be tried (e.g. ``hdf5plugin`` missing); empty otherwise.
    """

    compression: str
    cpu_ms_per_frame: float = float("nan")
    ratio: float = float("nan")
    capacity_fps: float = 0.0
    keeps_up: bool = False
    error: str = ""


@dataclass
class CompressionChoice:
    """The outcome of :func:`choose_frame_compression`.

    Attributes
    ----------
    compression : str
        The chosen form.
    reason : str
        One sentence saying why, with the measured figures.
    nominal_srate : float
        The stream's nominal rate, Hz.
    margin : float
        Capacity needed, as a multiple of the nominal rate.
    n_frames : int
        Frames the trials ran on.
    trials : list of CompressionTrial
        One per candidate.
    """

    compression: str
    reason: str
    nominal_srate: float
    margin: float
    n_frames: int
    trials: list[CompressionTrial] = field(default_factory=list)

    def to_json(self) -> str:
        """The choice as JSON (the ``compression_choice`` stream attribute)."""
        return json.dumps(asdict(self))


def _trial(spec: StreamSpec, frames: np.ndarray, compression: str, parallel: int) -> CompressionTrial:
    """Store ``frames`` in memory as the writer would with ``compression``; time the CPU it takes."""
    from acquisition.session.writer import _create_datasets  # the writer's own datasets, so the trial is faithful

    trial = CompressionTrial(compression)
    raw_bytes = frames[0].nbytes
    test_spec = StreamSpec(spec.name, spec.type, spec.channel_count, spec.channel_format, spec.nominal_srate,
                           frame_shape=spec.frame_shape, encoding=spec.encoding, compression=compression)
    try:
        with h5py.File(f"trial-{uuid.uuid4().hex}.h5", "w", driver="core", backing_store=False) as f:
            group = f.create_group("s")
            _create_datasets(group, test_spec)
            data = group["data"] if compression in IMAGE_COMPRESSIONS else open_frame_dataset(group)
            used_cpu, stored = 0.0, 0
            for i, frame in enumerate(frames):
                cpu0 = time.thread_time()
                if compression in IMAGE_COMPRESSIONS:
                    encoded = encode_frame(frame, compression)
                    data.resize(i + 1, axis=0)
                    data[i] = encoded
                    stored += encoded.size
                else:
                    data.resize(i + 1, axis=0)
                    data[i] = frame
                    f.flush()  # filters run when a chunk leaves HDF5's cache: make each frame's cost count
                used = time.thread_time() - cpu0
                if i == 0 and len(frames) > 1:
                    continue  # the first frame pays one-time set-up (filter loading, caches)
                used_cpu += used
                if used_cpu > TRIAL_BUDGET_S and i >= 2:
                    break
            n_stored, n_timed = i + 1, max(1, i if len(frames) > 1 else 1)
            if compression not in IMAGE_COMPRESSIONS:
                stored = data.id.get_storage_size()
    except (ImportError, OSError, ValueError) as err:
        trial.error = str(err)
        return trial
    trial.cpu_ms_per_frame = 1e3 * max(used_cpu, 1e-6) / n_timed
    # Raw chunks hold several small frames, so their allocated size says nothing: raw is 1x by definition.
    trial.ratio = 1.0 if compression == "none" else raw_bytes * n_stored / max(stored, 1)
    trial.capacity_fps = parallel * 1e3 / trial.cpu_ms_per_frame
    return trial


def choose_frame_compression(spec: StreamSpec, frames: np.ndarray, *, candidates: tuple[str, ...] = AUTO_CANDIDATES,
                             margin: float = 2.0, image_workers: int = 2) -> CompressionChoice:
    """Pick the most compact lossless storage form that keeps up with a video stream on this machine.

    Parameters
    ----------
    spec : StreamSpec
        The video stream (its ``frame_shape``, ``encoding`` and ``nominal_srate`` are used).
    frames : array, shape (n_frames, height, width[, 3])
        The stream's first frames, as stored (uint8 RGB or uint16 depth); 4 to 30 are plenty.
    candidates : tuple of str
        The forms to try (lossless ones: ``lz4``, ``blosc2``, ``png``, ``none``).
    margin : float
        A form keeps up if it can store ``margin`` times the nominal rate (>= 1).
    image_workers : int
        Threads that encode PNG frames in the recorder (filters run in its one writer thread).

    Returns
    -------
    choice : CompressionChoice
        The form, the reason and every trial. If no form keeps up, the fastest is chosen and the
        reason says so.
    """
    if spec.encoding is None or spec.frame_shape is None:
        raise ValueError(f"Stream {spec.name!r} is not a video stream; only video frames have a storage form.")
    unknown = [c for c in candidates if c not in (*FILTER_COMPRESSIONS, *IMAGE_COMPRESSIONS, "none")]
    if unknown or "jpeg" in candidates or not candidates:
        raise ValueError(f"candidates must be lossless storage forms among {AUTO_CANDIDATES}, got {candidates}.")
    if margin < 1:
        raise ValueError(f"margin must be >= 1 (a multiple of the nominal rate), got {margin}.")
    frames = np.asarray(frames)
    if frames.shape[1:] != tuple(spec.frame_shape) or frames.shape[0] < 1:
        raise ValueError(f"frames must be shaped (n >= 1, *{tuple(spec.frame_shape)}), got {frames.shape}.")
    rate = float(spec.nominal_srate)
    needed = margin * rate
    trials = []
    for compression in candidates:
        parallel = image_workers if compression in IMAGE_COMPRESSIONS else 1
        trial = _trial(spec, frames, compression, parallel)
        trial.keeps_up = not trial.error and (rate <= 0 or trial.capacity_fps >= needed)
        trials.append(trial)
    fast = [t for t in trials if t.keeps_up]
    tried = [t for t in trials if not t.error]
    if not tried:
        raise RuntimeError(f"No storage form could be tried for stream {spec.name!r}: "
                           + "; ".join(f"{t.compression}: {t.error}" for t in trials))
    if fast:
        best = max(fast, key=lambda t: (round(t.ratio, 1), -candidates.index(t.compression)))
        reason = (f"{best.compression} is the most compact form that keeps up: {best.ratio:.1f}x smaller than raw at "
                  f"{best.cpu_ms_per_frame:.2f} ms of CPU per frame ({best.capacity_fps:.0f} fps, "
                  f"needs {needed:.0f} = {margin:g} x {rate:g} fps)")
    else:
        best = min(tried, key=lambda t: t.cpu_ms_per_frame)
        reason = (f"no form keeps up with {margin:g} x {rate:g} fps on this machine; {best.compression} is the "
                  f"fastest ({best.capacity_fps:.0f} fps): expect dropped frames")
    slower = [f"{t.compression} {t.ratio:.1f}x but {t.capacity_fps:.0f} fps" for t in trials
              if not t.error and not t.keeps_up]
    failed = [f"{t.compression}: {t.error}" for t in trials if t.error]
    if slower:
        reason += "; too slow: " + ", ".join(slower)
    if failed:
        reason += "; not available: " + "; ".join(failed)
    return CompressionChoice(best.compression, reason, rate, float(margin), int(frames.shape[0]), trials)


def describe_choice(choice: CompressionChoice) -> dict[str, Any]:
    """Stream attributes that record an automatic choice (stored with the stream)."""
    return {"compression_requested": "auto", "compression_choice": choice.to_json()}


__all__ = ["AUTO_CANDIDATES", "CompressionChoice", "CompressionTrial", "choose_frame_compression", "describe_choice"]
