"""What an edge export reads: the model (a pretraining run or a recognizer) and windows from sessions.

A pretraining run folder (``emosync pretrain --out``: ``config.yaml`` + ``model/``) gives the encoders
and the window geometry they were trained on; a recognizer folder (``emosync recognize train --out``)
gives its own encoders, the geometry saved with it and the classifier head. A bare encoder folder
(``RUN/model``) has no geometry, so the run around it is read instead.

Calibration windows are the windows :class:`fusion.data.SessionWindows` makes for training
(same crop, normalisation and sizes), non-overlapping, kept only where every exported modality has
data; they calibrate static int8 quantization and measure the accuracy of every exported variant.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from acquisition import logger, open_session
from acquisition.utils.model_folder import read_model_folder

from ..config import DataConfig, PretrainConfig
from ..model import KIND as ENCODER_KIND
from ..model import MultiModalEncoder
from ..recognition.head import KIND as RECOGNIZER_KIND
from ..recognition.head import RecognitionModel


@dataclass
class ExportSource:
    """A model to export.

    Attributes
    ----------
    path : Path
        The folder given (a run or a recognizer folder).
    kind : ``"pretraining-run"`` | ``"expression-recognizer"``
        What it is.
    encoders : MultiModalEncoder
        The encoders, in eval mode.
    modalities : list of str
        The modalities exported (a recognizer's own subset; all of a run's encoders).
    data : DataConfig
        The window geometry the encoders expect.
    recognizer : RecognitionModel | None
        The recognizer (its head is exported too), or None for a run.
    """

    path: Path
    kind: str
    encoders: MultiModalEncoder
    modalities: list[str]
    data: DataConfig
    recognizer: RecognitionModel | None = None


@dataclass
class Windows:
    """Calibration windows held in memory.

    Attributes
    ----------
    views : dict of str to array of float32
        Per modality, ``(n_windows, T, C, S, S)`` for video, ``(n_windows, n_chans, n_times)`` for signals.
    session_index : array of int, shape (n_windows,)
        The session each window comes from (index into ``sessions``).
    time_s : array of float, shape (n_windows,)
        Window centres, seconds (synchronized recorder clock).
    sessions : list of Path
        The session files.
    rates_hz : dict of str to float
        Each modality's nominal sampling rate in the sessions (frames or samples per second).
    """

    views: dict[str, np.ndarray]
    session_index: np.ndarray
    time_s: np.ndarray
    sessions: list[Path]
    rates_hz: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.session_index)


def load_source(path: str | os.PathLike) -> ExportSource:
    """Read a pretraining run or a recognizer folder for export.

    Parameters
    ----------
    path : path-like
        A pretraining run folder (``emosync pretrain --out``), its ``model/`` folder, or a recognizer
        folder (``emosync recognize train --out``).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist or holds no model (the message names the file looked for).
    ValueError
        If it holds another kind of model, or one saved by a newer emosync (a higher ``format_version``
        in its ``config.json``).
    """
    from ..evaluate import load_run

    path = Path(path)
    if (path / "config.yaml").is_file():
        model, config = load_run(path)
        return ExportSource(path, "pretraining-run", model.eval(), model.modalities, config.data)
    folder = read_model_folder(path, kind=(ENCODER_KIND, RECOGNIZER_KIND))
    if folder.kind == ENCODER_KIND:
        if (path.parent / "config.yaml").is_file():
            return load_source(path.parent)
        raise ValueError(f"{path / 'config.json'} holds encoders but not the window geometry they were trained on "
                         f"(no {path.parent / 'config.yaml'}): pass the pretraining run folder (the --out of "
                         "`emosync pretrain`) that contains it.")
    recognizer = RecognitionModel.from_pretrained(path)
    return ExportSource(path, RECOGNIZER_KIND, recognizer.encoders.eval(), list(recognizer.modalities),
                        DataConfig.model_validate(recognizer.data), recognizer)


def check_sessions(sessions: Sequence[str | os.PathLike], modalities: Sequence[str]) -> dict[str, float]:
    """Check every session file exists and has every modality; return the modalities' nominal rates.

    Returns
    -------
    rates_hz : dict of str to float
        Per modality, the nominal sampling rate of the first session (frames or samples per second).

    Raises
    ------
    FileNotFoundError
        If a session file does not exist.
    ValueError
        If none is given, or one lacks a modality the model needs (the message names the file).
    """
    if not sessions:
        raise ValueError("Export needs calibration sessions (--calibrate s1.h5 ...): the exported graphs are checked "
                         "and quantized on their windows.")
    rates: dict[str, float] = {}
    for fname in map(Path, sessions):
        if not fname.is_file():
            raise FileNotFoundError(f"Calibration session {fname} does not exist.")
        with open_session(fname) as session:
            found: dict[str, float] = {}
            for stream in session.streams.values():
                found.setdefault(stream.modality, float(stream.nominal_srate))
        missing = [m for m in modalities if m not in found]
        if missing:
            raise ValueError(f"{fname} has no {missing} stream, which the model's encoders need (the model has "
                             f"{list(modalities)}; the file has {sorted(found)}). Calibrate on sessions recorded "
                             "with every modality of the model.")
        for m in modalities:
            rates.setdefault(m, found[m])
    return rates


def read_windows(source: ExportSource, sessions: Sequence[str | os.PathLike], *, max_windows: int = 128
                 ) -> Windows:
    """Non-overlapping windows of ``sessions`` with every exported modality, up to ``max_windows``.

    Windows are taken evenly spaced over all sessions' windows, as :func:`fusion.train.make_dataset`
    cuts them for the source's geometry.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`check_sessions`; also if no window has every modality.
    """
    from ..train import make_dataset

    rates = check_sessions(sessions, source.modalities)
    data = source.data.model_copy(update={"modalities": list(source.modalities), "num_workers": 0, "cache": False})
    dataset = make_dataset(list(sessions), PretrainConfig(data=data), stride_s=data.window_s)
    try:
        # Read about twice what is kept: some windows lack a modality (gaps, the session's edges).
        candidates = np.unique(np.linspace(0, len(dataset) - 1, min(len(dataset), 2 * max_windows)).astype(int))
        items = [dataset[int(k)] for k in candidates]
    finally:
        dataset.close()
    items = [it for it in items if all(it["available"][m] for m in source.modalities)]
    if len(items) < 2:
        raise ValueError(f"{len(items)} window(s) of {data.window_s} s in {[Path(s).name for s in sessions]} have "
                         f"all of {source.modalities}; export needs at least 2. Calibrate on longer sessions, or "
                         "ones without gaps.")
    keep = np.unique(np.linspace(0, len(items) - 1, min(len(items), max_windows)).astype(int))
    items = [items[k] for k in keep]
    logger.info("Calibration: %d windows of %.2f s from %d session(s)", len(items), data.window_s, len(sessions))
    return Windows({m: np.stack([it[m].numpy() for it in items]).astype(np.float32) for m in source.modalities},
                   np.array([it["session_index"] for it in items]), np.array([it["time_s"] for it in items]),
                   [Path(s) for s in sessions], rates)
