"""Run an exported edge folder with onnxruntime alone: :class:`EdgeModel`, sessions and latency.

An edge folder (``emosync export-model --out``) holds ``config.json`` (what :mod:`.card` writes:
format, version, inputs, shapes, rates, quantization), ``README.md`` (the card), one
``<modality>.onnx`` per encoder and, for a recognizer, ``head.onnx``. :class:`EdgeModel` needs
numpy and onnxruntime only (no torch), so it is what a live pipeline on a small CPU loads.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

#: ``config.json``'s ``format`` value of an edge folder.
EDGE_FORMAT = "emosync-edge"
#: The layout this code writes; folders with a higher version are refused.
EDGE_VERSION = 1
#: The description file of an edge folder.
CONFIG_NAME = "config.json"


def make_session(fname: str | os.PathLike, *, threads: int = 1):
    """An onnxruntime CPU ``InferenceSession`` on ``threads`` intra-op threads (1 inter-op thread).

    Raises
    ------
    ImportError
        If onnxruntime is not installed (the message names the extra to install).
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise ImportError('Edge models run with onnxruntime: pip install "emosync[edge]".') from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3   # onnxruntime's own warnings (unused initializers...) are not the user's
    return ort.InferenceSession(str(fname), options, providers=["CPUExecutionProvider"])


def measure_latency(fname: str | os.PathLike, window: np.ndarray, *, threads: int = 1, repeats: int = 5,
                    min_time_s: float = 0.05) -> dict[str, float]:
    """CPU latency of one window (batch of 1): median, min and max over ``repeats`` timed runs, in ms.

    Each timed run averages as many calls as fill ``min_time_s`` (at least one), after warm-up calls,
    so that millisecond graphs are not timed at the clock's resolution.

    Parameters
    ----------
    fname : path-like
        An ONNX file.
    window : array of float32
        One input, with its batch dimension of 1.
    threads : int
        onnxruntime intra-op threads.
    repeats : int
        Timed runs (>= 3 for a range).
    min_time_s : float
        Least duration of one timed run, seconds.
    """
    session = make_session(fname, threads=threads)
    feed = {session.get_inputs()[0].name: window}
    start = time.perf_counter()
    session.run(None, feed)
    calls = 0
    while time.perf_counter() - start < min_time_s or calls < 2:   # warm-up, and the calls per timed run
        session.run(None, feed)
        calls += 1
    per_run = max(1, math.ceil(calls * min_time_s / (time.perf_counter() - start)))
    times_ms = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(per_run):
            session.run(None, feed)
        times_ms.append((time.perf_counter() - t0) * 1000 / per_run)
    return {"median_ms": float(np.median(times_ms)), "min_ms": float(np.min(times_ms)),
            "max_ms": float(np.max(times_ms)), "repeats": int(repeats), "threads": int(threads)}


def read_edge_config(folder: str | os.PathLike) -> dict:
    """An edge folder's ``config.json``, checked.

    Raises
    ------
    FileNotFoundError
        If ``folder`` has no ``config.json``.
    ValueError
        If it is not an edge folder's, or was written by a newer emosync.
    """
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {folder} is not an edge model folder. Write one with "
                                "`emosync export-model RUN --calibrate SESSIONS --out FOLDER`.")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); export the model again.") from None
    if not isinstance(config, dict) or config.get("format") != EDGE_FORMAT:
        got = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"{path} has format {got!r}, not {EDGE_FORMAT!r}: not an edge model folder (a PyTorch model "
                         "folder is exported with `emosync export-model`).")
    version = config.get("format_version")
    if not isinstance(version, int) or version > EDGE_VERSION:
        raise ValueError(f"{path} has format_version {version!r}; this emosync reads up to {EDGE_VERSION}. It was "
                         "written by a newer emosync: upgrade emosync, or export the model again with this one.")
    return config


class EdgeModel:
    """An exported edge folder, run with onnxruntime.

    Parameters
    ----------
    folder : path-like
        The folder ``emosync export-model --out`` wrote.
    threads : int
        onnxruntime intra-op threads per graph.

    Attributes
    ----------
    config : dict
        The folder's ``config.json`` (inputs, shapes, rates, quantization, accuracy).
    modalities : list of str
        The encoders' modalities.
    classes : list of str
        The recognizer's classes (empty without a head).

    Notes
    -----
    Inputs are the views :class:`fusion.data.SessionWindows` makes (float32, batch first, normalised as
    the card says); ``config["inputs"][m]["shape"]`` gives each, with ``"batch"`` first.
    """

    def __init__(self, folder: str | os.PathLike, *, threads: int = 1) -> None:
        self.folder = Path(folder)
        self.config = read_edge_config(self.folder)
        self.modalities = list(self.config["inputs"])
        self._sessions = {}
        for m, spec in self.config["inputs"].items():
            fname = self.folder / spec["file"]
            if not fname.is_file():
                raise FileNotFoundError(f"{fname} is missing; {self.folder / CONFIG_NAME} lists it. Export the model "
                                        "again.")
            self._sessions[m] = make_session(fname, threads=threads)
        head = self.config.get("head")
        self.classes = list(head["classes"]) if head else []
        self._head = make_session(self.folder / head["file"], threads=threads) if head else None

    def __repr__(self) -> str:
        head = f", head over {len(self.classes)} classes" if self.classes else ""
        return f"<EdgeModel {self.folder.name}: {self.modalities}{head}>"

    @property
    def window_s(self) -> float:
        """Window length, seconds."""
        return float(self.config["window_s"])

    def input_shape(self, modality: str) -> tuple[int, ...]:
        """One window's input shape for ``modality`` (without the batch dimension)."""
        return tuple(self.config["inputs"][modality]["shape"][1:])

    def embed(self, views: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Embed every modality present in ``views``, as :meth:`fusion.model.MultiModalEncoder.forward` does.

        Parameters
        ----------
        views : dict of str to array of float32
            Per modality, a batch (B, ...) of :meth:`input_shape` views. Other keys are ignored.

        Returns
        -------
        embeddings : dict of str to array, each (B, embed_dim), unit L2 norm
            ``{modality: moment embedding}`` and, with pair heads, ``{"a->b": ...}``.
        """
        out: dict[str, np.ndarray] = {}
        for m, session in self._sessions.items():
            if m not in views:
                continue
            x = np.ascontiguousarray(views[m], dtype=np.float32)
            if x.shape[1:] != self.input_shape(m):
                raise ValueError(f"{m} views must have shape (batch, {', '.join(map(str, self.input_shape(m)))}), "
                                 f"got {x.shape}: cut them as the card ({self.folder / 'README.md'}) says.")
            names = [o.name for o in session.get_outputs()]
            for name, z in zip(names, session.run(None, {session.get_inputs()[0].name: x})):
                out[m if name == "embedding" else f"{m}->{name[len('to_'):]}"] = z
        return out

    def classify(self, views: Mapping[str, np.ndarray], available: Mapping[str, np.ndarray] | None = None
                 ) -> np.ndarray:
        """Class logits (B, n_classes), fused as :class:`fusion.recognition.head.RecognitionModel` does.

        Parameters
        ----------
        views : dict of str to array of float32
            The head's modalities' views; a missing modality counts as unavailable (zeros).
        available : dict of str to array of bool, each (B,) | None
            Which clips have each view; None: all that are in ``views``.
        """
        if self._head is None:
            raise ValueError(f"{self.folder} holds encoders only (no head.onnx): export a recognizer folder "
                             "(`emosync recognize train --out`) to classify.")
        head = self.config["head"]
        z = self.embed(views)
        n = len(next(iter(z.values()))) if z else 0
        if not n:
            raise ValueError(f"classify needs a view of at least one of {head['modalities']}, got {sorted(views)}.")
        blocks = []
        for m in head["modalities"]:
            block = z.get(m, np.zeros((n, head["embed_dim"]), np.float32)) * np.float32(head["scale"])
            mask = np.ones(n, bool) if available is None or m not in available else np.asarray(available[m], bool)
            blocks.append(block * (mask & (m in z))[:, None])
        return self._head.run(None, {self._head.get_inputs()[0].name:
                                     np.concatenate(blocks, 1).astype(np.float32)})[0]
