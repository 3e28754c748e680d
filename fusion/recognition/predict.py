"""Label the expression intervals of a session with a trained recognizer, as a marker stream.

``emosync recognize predict RUN session.h5``: the intervals of a marker stream (by default the
session's one ``*-Spotted`` stream from ``emosync spot``) are cut into clips as the recognizer
was trained (its saved clip geometry and anchor), classified, and written as a derived marker
stream ``<intervals>-Recognized`` in the marker convention, ``onset/<class>/<kind>``,
``apex/...``, ``offset/...``, on the interval stream's own time stamps and clock offsets, so its
times equal those of the intervals. A modality the session lacks is classified as missing
(its block of the fused embedding is zero), not refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from acquisition import StreamSpec, logger, open_session
from acquisition.utils.docs import fill_doc
from acquisition.utils.logs import verbose

from ..config import DataConfig, PretrainConfig
from ..data import VIDEO
from .head import RecognitionModel
from .intervals import default_spotted_stream, read_intervals
from .train import Clips, predict_logits, read_clips

DERIVED_BY = "emosync recognize"
#: Suffix of the marker stream written by :func:`predict_session`.
RECOGNIZED_SUFFIX = "-Recognized"


def _fill_missing(clips: Clips, model: RecognitionModel) -> None:
    """Zero views, marked unavailable, for modalities the model uses and the session lacks."""
    for m in model.modalities:
        if m in clips.views:
            continue
        if m in VIDEO:
            shape = clips.dataset.shape(m)
        else:
            kwargs = model.encoders.config["modalities"][m]["encoder_kwargs"]
            shape = (kwargs["n_chans"], kwargs["n_times"])
        logger.warning("The session has no %s stream: classified without it.", m)
        clips.views[m] = torch.zeros((len(clips), *shape))
        clips.available[m] = torch.zeros(len(clips), dtype=torch.bool)


@verbose
@fill_doc
def predict_session(model_dir: str | os.PathLike, fname: str | os.PathLike, *, intervals: str | None = None,
                    out_stream: str | None = None, overwrite: bool = False, write: bool = True,
                    verbose: bool | str | None = None) -> list[dict]:
    """Classify the intervals of one session and (by default) write them as a marker stream.

    Parameters
    ----------
    model_dir : path-like
        A recognizer folder (``emosync recognize train --out``).
    fname : path-like
        The session file.
    intervals : str | None
        The marker stream holding the intervals; None: the session's one ``*-Spotted`` stream.
    out_stream : str | None
        Name of the stream to write (default ``"<intervals>-Recognized"``).
    overwrite : bool
        Replace an earlier stream of that name written by ``emosync recognize`` (never another).
    write : bool
        False to only classify.
    %(verbose)s

    Returns
    -------
    predictions : list of dict
        Per interval: ``onset_s``, ``apex_s``, ``offset_s`` (synchronized), ``kind``, ``label`` (the
        interval's own label), ``class`` and ``probabilities`` (class -> probability).

    Raises
    ------
    FileNotFoundError, ValueError
        No such model or session; no intervals stream; no interval with room for a clip.
    FileExistsError
        ``out_stream`` exists and ``overwrite`` is False, or it was not written by recognition.
    """
    from acquisition.session.writer import SessionWriter

    model = RecognitionModel.from_pretrained(model_dir)
    fname = Path(fname)
    if not fname.is_file():
        raise FileNotFoundError(f"Session file {fname} does not exist.")
    stream = intervals or default_spotted_stream(fname)
    found = read_intervals(fname, stream)
    clips = read_clips(found, PretrainConfig(data=DataConfig.model_validate(model.data)), anchor=model.anchor)
    _fill_missing(clips, model)
    probs = torch.softmax(predict_logits(model, clips), dim=1).numpy()
    predictions = [{"onset_s": i.onset_s, "apex_s": i.apex_s, "offset_s": i.offset_s, "kind": i.kind,
                    "label": i.label, "class": model.classes[int(np.argmax(p))],
                    "probabilities": dict(zip(model.classes, p.round(4).tolist()))}
                   for i, p in zip(clips.intervals, probs)]
    if not write:
        return predictions
    name = out_stream or f"{stream}{RECOGNIZED_SUFFIX}"
    with open_session(fname) as session:
        source = session.streams[stream]
        # Markers go out on the interval stream's raw stamps with its clock offsets: same synchronized times.
        raw = dict(zip(source.times.tolist(), np.asarray(source.timestamps).tolist()))
        offsets, info = source.clock_offsets, dict(source.info)
        replace = []
        if name in session.streams:
            if not overwrite:
                raise FileExistsError(f"{fname} already has a stream {name!r}. Pass --overwrite to replace it, or "
                                      "--out-stream to choose another name.")
            if session.streams[name].info.get("derived_by") != DERIVED_BY:
                raise FileExistsError(f"Stream {name!r} in {fname} was not written by recognition; refusing to "
                                      "replace it. Choose another --out-stream.")
            replace = [name]
    markers = sorted((raw[t], f"{phase}/{p['class']}/{p['kind']}") for p in predictions
                     for phase, t in (("onset", p["onset_s"]), ("apex", p["apex_s"]), ("offset", p["offset_s"]))
                     if t in raw)
    spec = StreamSpec(name, "Markers", 1, "string", 0.0, source_id=f"emosync-recognize:{info.get('source_id', '')}",
                      hostname=str(info.get("hostname", "")), channel_labels=["expression"], can_drop_samples=False,
                      extra={"derived_by": DERIVED_BY, "derived_from": stream, "recognizer": str(model_dir),
                             "recognizer_classes": json.dumps(model.classes),
                             "recognized_intervals": json.dumps(predictions)})
    with SessionWriter.replace_derived(fname, [spec], derived_by=DERIVED_BY, replace=replace) as new:
        if markers:
            new[name].append([[text] for _, text in markers], [t for t, _ in markers])
        if offsets.offsets.size:
            new[name].append_clock_offsets(offsets.collection_times, offsets.offsets, offsets.uncertainties)
    logger.info("Wrote %d recognized intervals (%d markers) to stream %r of %s", len(predictions), len(markers),
                name, fname.name)
    return predictions
