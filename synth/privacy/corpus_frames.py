"""Read a synthetic corpus folder back as frames in the generators' value convention.

A corpus (``emosync synth sample --out CORPUS``) is ``CORPUS/corpus.json`` plus one session per
sequence under ``CORPUS/sessions/``. Generated frames are whole face crops, so unlike
:func:`synth.generative.load_face_frames` (which cuts a face out of a camera frame) nothing is
cropped here: each RGB/depth frame is converted with the same value maps and, only if its size
differs from the audited model's, resized with area interpolation. Each frame also carries its
sequence's ``identity`` (``corpus.json`` and the session's root metadata, which must agree), for
the audit's identity checks (:mod:`synth.privacy.identity_privacy`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from acquisition import open_session
from synth.generative.corpus import CORPUS_FILE
from synth.generative.frames import evenly_spaced


@dataclass
class CorpusFrames:
    """Frames of a corpus with where they came from.

    Attributes
    ----------
    rgbd : ndarray of float32, shape (n, 4, image_size, image_size)
        In [-1, 1] (see :mod:`synth.generative.frames`).
    sequence_ids : ndarray of str, shape (n,)
        The ``id`` of each frame's sequence in ``corpus.json``.
    frame_index : ndarray of int, shape (n,)
        Frame number within its sequence.
    manifest : dict
        ``corpus.json`` as read.
    identities : ndarray of str, shape (n,)
        The ``identity`` of each frame's sequence (``"new-0007"``, ``"train:<subject_id>"``), ``""``
        where neither ``corpus.json`` nor the session records one.
    """

    rgbd: np.ndarray
    sequence_ids: np.ndarray
    frame_index: np.ndarray
    manifest: dict[str, Any]
    identities: np.ndarray


def read_manifest(corpus_dir: str | os.PathLike) -> dict[str, Any]:
    """``corpus.json`` of a corpus folder (:func:`synth.generative.corpus.read_corpus`), refusing an empty one."""
    from synth.generative.corpus import read_corpus

    try:
        manifest = read_corpus(corpus_dir)
    except json.JSONDecodeError as err:
        raise ValueError(f"{Path(corpus_dir) / CORPUS_FILE} is not valid JSON: {err}") from None
    if not manifest.get("sequences"):
        raise ValueError(f"{Path(corpus_dir) / CORPUS_FILE} lists no sequences; there is nothing to audit.")
    return manifest


def _video_stream(session: Any, modality: str) -> Any:
    for stream in session.streams.values():
        if stream.modality == modality and stream.info.get("frame_shape"):
            return stream
    raise ValueError(f"{session.fname} has no {modality} video stream (streams: {', '.join(session.streams)}).")


def _fit(frames: np.ndarray, image_size: int, interpolation: int) -> np.ndarray:
    if frames.shape[1:3] == (image_size, image_size):
        return frames
    return np.stack([cv2.resize(f, (image_size, image_size), interpolation=interpolation) for f in frames])


def load_corpus_frames(corpus_dir: str | os.PathLike, image_size: int, *, max_frames: int | None = None
                       ) -> CorpusFrames:
    """All frames of a corpus (or ``max_frames`` of them, evenly spaced) as RGB + depth in [-1, 1].

    Parameters
    ----------
    corpus_dir : path-like
        The corpus folder.
    image_size : int
        The audited model's image size.
    max_frames : int | None
        Cap on the number of frames returned.

    Returns
    -------
    frames : CorpusFrames
    """
    from synth.generative.frames import depth_to_unit, rgb_to_unit

    corpus_dir = Path(corpus_dir)
    manifest = read_manifest(corpus_dir)
    files = [corpus_dir / record["file"] for record in manifest["sequences"]]
    counts = []
    for fname in files:
        with open_session(fname) as session:
            counts.append(_video_stream(session, "rgb").n_samples)
    total = int(np.sum(counts))
    if total == 0:
        raise ValueError(f"The corpus {corpus_dir} holds no frames.")
    # Choose the kept frames up front, so a large corpus is never decoded whole.
    keep = evenly_spaced(total, max_frames)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    parts, ids, index, identities = [], [], [], []
    for record, fname, start, count in zip(manifest["sequences"], files, starts, counts):
        rows = keep[(keep >= start) & (keep < start + count)] - start
        if rows.size == 0:
            continue
        with open_session(fname) as session:
            rgb_stream, depth_stream = _video_stream(session, "rgb"), _video_stream(session, "depth")
            if depth_stream.n_samples != count:
                raise ValueError(f"{fname}: {count} RGB frames but {depth_stream.n_samples} depth frames; a "
                                 "synthetic sequence holds one depth frame per RGB frame.")
            rgb = np.asarray(rgb_stream.data[rows])
            depth = np.asarray(depth_stream.data[rows])
            identity = _sequence_identity(record, session.info, fname)
        rgb = _fit(rgb, image_size, cv2.INTER_AREA)
        depth = _fit(depth.astype(np.float32), image_size, cv2.INTER_AREA)
        parts.append(np.concatenate([rgb_to_unit(rgb), depth_to_unit(depth)], axis=1).astype(np.float32))
        ids += [str(record.get("id", fname.stem))] * len(rows)
        index.append(rows)
        identities += [identity] * len(rows)
    return CorpusFrames(np.concatenate(parts), np.array(ids), np.concatenate(index), manifest,
                        np.array(identities, dtype=str))


def _sequence_identity(record: dict[str, Any], info: dict[str, Any], fname: Path) -> str:
    """A sequence's identity from ``corpus.json`` and its session's root metadata ("" when neither has one)."""
    listed = record.get("identity")
    stored = info.get("identity")
    listed = "" if listed is None else str(listed)
    stored = "" if stored is None else str(stored)
    if listed and stored and listed != stored:
        raise ValueError(f"{fname}: corpus.json gives sequence {record.get('id')!r} the identity {listed!r} but the "
                         f"session's root metadata says {stored!r}; the identity audit cannot tell which is right. "
                         "Re-sample the corpus (emosync synth sample) rather than editing corpus.json by hand.")
    return listed or stored


def write_reference_corpus(corpus_dir: str | os.PathLike, rgbd: np.ndarray, aus: np.ndarray, *,
                           model_dir: str | os.PathLike, note: str, frames_per_sequence: int = 30,
                           fps: float = 30.0, rejection: dict[str, Any] | None = None,
                           identities: np.ndarray | None = None) -> Path:
    """Write given frames in the corpus layout, to audit a reference "corpus" (copies, real held-out frames).

    The audit's calibration cases: training frames written as a corpus must fail it, real held-out
    frames must pass its distance checks. Sessions go through :class:`acquisition.SessionWriter`
    (RGB, Depth, ActionUnits, Markers, as the corpus writer's) and are marked ``synthetic: False``
    with ``note`` saying what they are, so nobody mistakes them for generated data.

    Parameters
    ----------
    corpus_dir : path-like
        New folder (must not exist or be empty).
    rgbd : ndarray of float32, shape (n, 4, H, W)
        Frames in [-1, 1].
    aus : ndarray, shape (n, 17)
        AU intensities of each frame.
    model_dir : path-like
        The model the corpus is audited against (its sha256 goes into ``corpus.json``).
    note : str
        What these frames are, e.g. ``"copies of training frames"``.
    frames_per_sequence : int
        Frames per session file.
    fps : float
        Frame rate written into the streams, in Hz.
    rejection : dict | None
        ``corpus.json``'s ``rejection`` record.
    identities : ndarray of str, shape (n,) | None
        The identity each frame is labelled with (``"new-0007"``, ``"train:<subject_id>"``), as an
        identity-conditioned generator records it: a sequence never spans two identities (a new
        sequence starts where the label changes), and each sequence's label goes into
        ``corpus.json`` and its session's root metadata. None: no identity recorded (an AU-only
        generator).

    Returns
    -------
    corpus_dir : Path
    """
    from acquisition import SessionWriter, StreamSpec
    from synth.generative import model_sha256
    from synth.generative.base import utc_now
    from synth.generative.frames import rgbd_to_images

    corpus_dir = Path(corpus_dir)
    if corpus_dir.exists() and any(corpus_dir.iterdir()):
        raise FileExistsError(f"{corpus_dir} exists and is not empty; choose a new folder.")
    if len(rgbd) != len(aus) or len(rgbd) == 0:
        raise ValueError(f"need as many AU rows as frames (> 0), got {len(rgbd)} frames and {len(aus)} AU rows")
    if identities is not None and len(identities) != len(rgbd):
        raise ValueError(f"need one identity per frame, got {len(identities)} identities for {len(rgbd)} frames")
    (corpus_dir / "sessions").mkdir(parents=True)
    rgb, depth = rgbd_to_images(rgbd)
    height, width = rgb.shape[1:3]
    sequences = []
    for k, (start, stop) in enumerate(_sequence_bounds(len(rgbd), frames_per_sequence, identities)):
        name, sid = f"sessions/seq-{k:05d}.h5", f"reference-{k:05d}"
        times = np.arange(stop - start) / fps
        identity = None if identities is None else str(identities[start])
        metadata = {"synthetic": False, "reference_corpus": note, **({"identity": identity} if identity else {})}
        with SessionWriter(corpus_dir / name, subject_id="sub-reference", notes=note, metadata=metadata) as w:
            w.add_stream(StreamSpec("RGB", "VideoRaw", height * width * 3, "int8", fps, f"{sid}-rgb",
                                    frame_shape=(height, width, 3), encoding="RGB8")).append(rgb[start:stop], times)
            w.add_stream(StreamSpec("Depth", "VideoRaw", height * width, "int16", fps, f"{sid}-depth",
                                    frame_shape=(height, width), encoding="DEPTH16-mm")
                         ).append(depth[start:stop], times)
            w.add_stream(StreamSpec("ActionUnits", "ActionUnits", aus.shape[1], "float32", fps, f"{sid}-au")
                         ).append(np.asarray(aus[start:stop], dtype=np.float32), times)
            w.add_stream(StreamSpec("Markers", "Markers", 1, "string", 0.0, f"{sid}-markers")
                         ).append([[f"reference/{note}/none"]], [0.0])
        sequences.append({"id": f"seq-{k:05d}", "file": name, "emotion": None, "kind": "reference", "seed": None,
                          "n_frames": stop - start, "fps": fps, **({"identity": identity} if identity else {})})
    manifest = {"synthetic": False, "reference_corpus": note,
                "generator": {"kind": None, "model_dir": str(model_dir), "model_sha256": model_sha256(model_dir),
                              "config": {}},
                "seeds": [], "sequences": sequences, "rejection": rejection,
                "created": utc_now()}
    (corpus_dir / CORPUS_FILE).write_text(json.dumps(manifest, indent=2))
    return corpus_dir


def _sequence_bounds(n_frames: int, frames_per_sequence: int, identities: np.ndarray | None) -> list[tuple[int, int]]:
    """``(start, stop)`` of each sequence: at most ``frames_per_sequence`` frames, one identity each."""
    cuts = set(range(0, n_frames, frames_per_sequence))
    if identities is not None:
        labels = np.asarray(identities).astype(str)
        cuts |= set((np.flatnonzero(labels[1:] != labels[:-1]) + 1).tolist())
    starts = sorted(cuts)
    return list(zip(starts, [*starts[1:], n_frames]))
