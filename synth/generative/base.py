"""What every AU-conditioned generator provides, and the model folder they share.

Both generators (:class:`synth.generative.diffusion.DiffusionGenerator` and
:class:`synth.generative.gan.GANGenerator`) implement :class:`AUGenerator`, so training,
sampling, the corpus writer and the privacy audit (``synth/privacy``) handle either
without knowing which it is.

A model folder (``emosync synth train --out DIR``) looks like::

    DIR/emosync_model.json   the model card: kind, image_size, full config, training sessions
                             (path + sha256 + subject_id), frame selection, steps, privacy (DP-SGD)
    DIR/weights/             the weights (a diffusers pipeline folder, or the GAN's safetensors)
    DIR/checkpoints/         training state for exact resume (not part of the model hash)
    DIR/loss.csv, loss.png, samples/step-*.png   training logs

:func:`model_sha256` hashes ``weights/`` only, so a corpus records exactly which weights
produced it. :func:`training_sessions` gives the audit and the rejection filter the
training frames' files, checked against their recorded hashes.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from acquisition.utils.hashing import file_sha256

#: The model card's file name inside a model folder.
MODEL_CARD = "emosync_model.json"
#: The weights' folder inside a model folder (the only part :func:`model_sha256` hashes).
WEIGHTS_DIR = "weights"
#: diffusers' bookkeeping keys in saved JSON configs, left out of :func:`model_sha256`.
_VOLATILE_JSON_KEYS = ("_name_or_path", "_diffusers_version")
#: Generator kinds and the classes that implement them (module, class), imported lazily.
KINDS: dict[str, tuple[str, str]] = {
    "diffusion": ("synth.generative.diffusion", "DiffusionGenerator"),
    "gan": ("synth.generative.gan", "GANGenerator"),
}


@runtime_checkable
class AUGenerator(Protocol):
    """An image generator conditioned only on the 17 AU intensities (never on identity).

    Attributes
    ----------
    kind : str
        ``"diffusion"`` or ``"gan"``.
    image_size : int
        Side of the generated square crops, in pixels.
    card : dict
        The model card (see :func:`read_model_card`); empty for an untrained model.
    """

    kind: str
    image_size: int
    card: dict[str, Any]

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike, *, device: str = "cpu") -> AUGenerator:
        """Load a model folder written by :meth:`save_pretrained` (offline, no downloads)."""

    def save_pretrained(self, model_dir: str | os.PathLike) -> None:
        """Write ``weights/`` and the model card into ``model_dir``."""

    def per_sample_loss(self, rgbd: torch.Tensor, aus: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
        """The membership-inference statistic, one value per frame (lower = fits the model better).

        Parameters
        ----------
        rgbd : Tensor, shape (n, 4, image_size, image_size)
            Frames in [-1, 1] (see :mod:`synth.generative.frames`).
        aus : Tensor, shape (n, 17)
            Their AU intensities (0-5).
        seed : int
            Seed of every random draw inside (the same seed gives the same values).

        Returns
        -------
        loss : Tensor of float32, shape (n,)
            Diffusion: the denoising MSE averaged over a fixed set of timesteps and noises.
            GAN: the discriminator's realness loss ``softplus(-D(x, au))``.
        """

    def sample(self, aus_sequence: np.ndarray, *, seed: int = 0, num_inference_steps: int | None = None
               ) -> np.ndarray:
        """Generate one temporally coherent sequence.

        Parameters
        ----------
        aus_sequence : array, shape (n_frames, 17)
            Requested AU intensities (0-5) per frame.
        seed : int
            Seed; the same model, seed and AUs give the same frames.
        num_inference_steps : int | None
            Denoising steps (diffusion; None = the config's); ignored by the GAN.

        Returns
        -------
        rgbd : array of float32, shape (n_frames, 4, image_size, image_size)
            Frames in [-1, 1]; :func:`synth.generative.frames.rgbd_to_images` turns them into
            RGB uint8 and depth mm.
        """


def read_model_card(model_dir: str | os.PathLike, *, kind: str | None = None) -> dict[str, Any]:
    """The model card (``emosync_model.json``) of a model folder.

    Parameters
    ----------
    model_dir : path-like
        A model folder.
    kind : str | None
        If given, the generator kind the folder must hold (``"diffusion"`` or ``"gan"``).

    Raises
    ------
    FileNotFoundError
        If ``model_dir`` holds no model card (not a model folder, or training never saved).
    ValueError
        If the folder holds a model of another kind than ``kind``.
    """
    path = Path(model_dir) / MODEL_CARD
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir} is not a generator model folder (no {MODEL_CARD}); train one with "
                                "`emosync synth train SESSION.h5 --config tiny-gan --out DIR`.")
    card = json.loads(path.read_text())
    if kind is not None and card.get("kind") != kind:
        raise ValueError(f"{model_dir} holds a {card.get('kind')!r} model, not a {kind!r} model.")
    return card


def write_generator_card(model_dir: str | os.PathLike, gen: Any) -> None:
    """Write ``gen``'s model card with its kind, image size and model config (both generators' ``save_pretrained``)."""
    card = {**gen.card, "kind": gen.kind, "image_size": gen.image_size}
    card.setdefault("config", {})["model"] = gen.config.model_dump()
    write_model_card(model_dir, card)


def write_model_card(model_dir: str | os.PathLike, card: dict[str, Any]) -> None:
    """Write the model card atomically (temporary file, then rename)."""
    path = Path(model_dir) / MODEL_CARD
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(card, indent=2, sort_keys=True, default=_json_default))
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def load_generator(model_dir: str | os.PathLike, *, device: str = "cpu") -> AUGenerator:
    """Load any generator from its model folder, dispatching on the card's ``kind``.

    Examples
    --------
    >>> gen = load_generator("models/s1")  # doctest: +SKIP
    >>> frames = gen.sample(aus, seed=3)  # (n_frames, 4, H, W) in [-1, 1]
    """
    import importlib

    card = read_model_card(model_dir)
    kind = card.get("kind")
    if kind not in KINDS:
        raise ValueError(f"{model_dir}/{MODEL_CARD} has kind {kind!r}; known kinds: {sorted(KINDS)}.")
    module, name = KINDS[kind]
    return getattr(importlib.import_module(module), name).from_pretrained(model_dir, device=device)


def model_sha256(model_dir: str | os.PathLike) -> str:
    """SHA-256 over the files of ``model_dir/weights`` (relative path and content hash of each, sorted).

    Two folders with the same weights hash alike wherever they live; training logs and
    checkpoints do not enter the hash. JSON files enter canonicalized (sorted keys) without
    the bookkeeping keys diffusers adds (``_name_or_path``, ``_diffusers_version``), which
    change with where and by which version a pipeline was saved, not with the model.
    """
    weights = Path(model_dir) / WEIGHTS_DIR
    files = sorted(p for p in weights.rglob("*") if p.is_file())
    if not files:
        raise FileNotFoundError(f"{weights} holds no weights; is {model_dir} a trained model folder?")
    digest = hashlib.sha256()
    for path in files:
        if path.suffix == ".json":
            content = {k: v for k, v in json.loads(path.read_text()).items() if k not in _VOLATILE_JSON_KEYS}
            file_hash = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
        else:
            file_hash = file_sha256(path)
        digest.update(f"{path.relative_to(weights).as_posix()}:{file_hash}\n".encode())
    return digest.hexdigest()


def session_records(sessions: list[str | os.PathLike]) -> list[dict[str, str]]:
    """``[{"path", "sha256", "subject_id"}]`` for the training sessions (absolute paths)."""
    from acquisition import open_session

    out = []
    for fname in sessions:
        path = Path(fname).resolve()
        with open_session(path) as session:
            subject = str(session.info.get("subject_id", "sub-unknown"))
        out.append({"path": str(path), "sha256": file_sha256(path), "subject_id": subject})
    return out


def training_sessions(model_dir: str | os.PathLike, *, verify: bool = True) -> list[Path]:
    """The session files a model was trained on, from its card.

    Parameters
    ----------
    model_dir : path-like
        A model folder.
    verify : bool
        Check that each file exists and still has the recorded SHA-256.

    Raises
    ------
    FileNotFoundError, ValueError
        With ``verify``, when a training session is missing or changed since training.
    """
    records = read_model_card(model_dir).get("training_sessions", [])
    paths = []
    for record in records:
        path = Path(record["path"])
        if verify:
            if not path.is_file():
                raise FileNotFoundError(f"Training session {path} of {model_dir} is missing; the audit needs the "
                                        "training frames (pass them explicitly if they moved).")
            if file_sha256(path) != record["sha256"]:
                raise ValueError(f"Training session {path} changed since {model_dir} was trained (sha256 differs).")
        paths.append(path)
    return paths


def training_frame_selection(model_dir: str | os.PathLike) -> dict[str, Any]:
    """How training frames were chosen: ``{"image_size", "stride", "max_frames", "n_frames"}``.

    ``load_face_frames(training_sessions(d), **{k: sel[k] for k in ("stride", "max_frames")},
    image_size=sel["image_size"])`` reproduces the training frames exactly.
    """
    card = read_model_card(model_dir)
    return {"image_size": int(card["image_size"]), **card.get("frames", {})}


def utc_now() -> str:
    """The current time, ISO 8601 in UTC."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
