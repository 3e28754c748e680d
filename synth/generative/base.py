"""What every AU-conditioned generator provides, and the generator's model folder.

Both generators (:class:`synth.generative.diffusion.DiffusionGenerator` and
:class:`synth.generative.gan.GANGenerator`) implement :class:`AUGenerator`, so training,
sampling, the corpus writer and the privacy audit (``synth/privacy``) handle either
without knowing which it is.

A generator is saved in emosync's model folder (:mod:`acquisition.utils.model_folder`, shared
with the fusion encoders); ``emosync synth train --out DIR`` adds its training logs::

    DIR/config.json          kind ("diffusion" or "gan"), image_size, the full training config, the
                             training sessions (path + sha256 + subject_id), frame selection, steps,
                             privacy (DP-SGD): the model card
    DIR/weights/             the weights (a diffusers pipeline folder, or the GAN's safetensors)
    DIR/checkpoints/         training state for exact resume (not part of the model hash)
    DIR/loss.csv, loss.png, samples/step-*.png   training logs

Folders of the earlier layout (the card in ``emosync_model.json``) load as they are.
:func:`model_sha256` hashes ``weights/`` only, so a corpus records exactly which weights
produced it. :func:`training_sessions` gives the audit and the rejection filter the
training frames' files, checked against their recorded hashes.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from acquisition.utils.docs import add_doc, fill_doc
from acquisition.utils.hashing import file_sha256
from acquisition.utils.model_folder import read_model_folder, weights_sha256, write_model_config

#: Generator kinds and the classes that implement them (module, class), imported lazily.
KINDS: dict[str, tuple[str, str]] = {
    "diffusion": ("synth.generative.diffusion", "DiffusionGenerator"),
    "gan": ("synth.generative.gan", "GANGenerator"),
}

add_doc("generator_dir", """
model_dir : path-like
    A generator's model folder (``emosync synth train --out``).
""")
add_doc("generator_card", """
card : dict | None
    The model card (training sessions, config, privacy; see :func:`synth.generative.read_model_card`), saved
    with the weights.
""")
add_doc("num_inference_steps", """
num_inference_steps : int | None
    Denoising steps of the diffusion sampler (None: the model config's); ignored by the GAN.
""")
add_doc("progress_bar", """
progress : bool
    Show a progress bar.
""")


@runtime_checkable
class AUGenerator(Protocol):
    """An image generator conditioned on the 17 AU intensities.

    A diffusion model trained with ``model.identity.enabled`` also takes an identity vector
    (``sample(..., identity=v)``; ``has_identity``, ``prior``: see :mod:`synth.generative.identity`);
    AU-only models (and the GAN) have no such input, and callers check ``getattr(gen, "has_identity",
    False)`` before passing one.

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
        """Write ``weights/``, then the model card as ``config.json``, into ``model_dir``."""

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

    @fill_doc
    def sample(self, aus_sequence: np.ndarray, *, seed: int = 0, num_inference_steps: int | None = None
               ) -> np.ndarray:
        """Generate one temporally coherent sequence.

        Parameters
        ----------
        aus_sequence : array, shape (n_frames, 17)
            Requested AU intensities (0-5) per frame.
        seed : int
            Seed; the same model, seed and AUs give the same frames.
        %(num_inference_steps)s

        Returns
        -------
        rgbd : array of float32, shape (n_frames, 4, image_size, image_size)
            Frames in [-1, 1]; :func:`synth.generative.frames.rgbd_to_images` turns them into
            RGB uint8 and depth mm.
        """


@fill_doc
def read_model_card(model_dir: str | os.PathLike, *, kind: str | None = None) -> dict[str, Any]:
    """The model card of a generator folder: its ``config.json`` (``emosync_model.json`` in the earlier layout).

    Parameters
    ----------
    %(generator_dir)s
    kind : str | None
        If given, the generator kind the folder must hold (``"diffusion"`` or ``"gan"``).

    Returns
    -------
    card : dict
        ``kind``, ``image_size``, ``config`` (the training config), ``training_sessions``, ``frames``,
        ``steps``, ``privacy``, ``created``, ``emosync_version``, and the folder's ``format_version``.

    Raises
    ------
    FileNotFoundError
        If ``model_dir`` is not a model folder (or training never saved), or holds no weights.
    ValueError
        If the folder holds another model than a generator (of ``kind``), or a newer emosync saved it.
    """
    return read_model_folder(model_dir, kind=kind or tuple(KINDS)).config


def save_generator_config(model_dir: str | os.PathLike, gen: Any) -> None:
    """Finish both generators' ``save_pretrained``: the card with kind, image size and model config."""
    card = {**gen.card, "image_size": gen.image_size}
    card["config"] = {**card.get("config", {}), "model": gen.config.model_dump()}
    write_model_config(model_dir, gen.kind, card)


@fill_doc
def load_generator(model_dir: str | os.PathLike, *, device: str = "cpu") -> AUGenerator:
    """Load any generator from its model folder, dispatching on its ``kind``.

    Parameters
    ----------
    %(generator_dir)s
    device : str
        Where to put the weights (``"cpu"``, ``"cuda"``...).

    Returns
    -------
    generator : AUGenerator
        A :class:`~synth.generative.diffusion.DiffusionGenerator` or :class:`~synth.generative.gan.GANGenerator`.

    Examples
    --------
    >>> gen = load_generator("models/s1")  # doctest: +SKIP
    >>> frames = gen.sample(aus, seed=3)  # (n_frames, 4, H, W) in [-1, 1]
    """
    import importlib

    module, name = KINDS[read_model_folder(model_dir, kind=tuple(KINDS)).kind]
    return getattr(importlib.import_module(module), name).from_pretrained(model_dir, device=device)


def model_sha256(model_dir: str | os.PathLike) -> str:
    """SHA-256 over the files of ``model_dir/weights``: :func:`acquisition.utils.model_folder.weights_sha256`.

    Two folders with the same weights hash alike wherever they live, and a folder of the earlier
    layout hashes as it did; training logs and checkpoints do not enter the hash. JSON files
    enter canonicalized (sorted keys) without the bookkeeping keys diffusers adds
    (``_name_or_path``, ``_diffusers_version``), which change with where and by which version a
    pipeline was saved, not with the model.
    """
    return weights_sha256(model_dir)


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


@fill_doc
def training_sessions(model_dir: str | os.PathLike, *, verify: bool = True) -> list[Path]:
    """The session files a model was trained on, from its card.

    Parameters
    ----------
    %(generator_dir)s
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


@fill_doc
def load_training_frames(model_dir: str | os.PathLike) -> Any:
    """A model's own training frames, selected as training selected them.

    Parameters
    ----------
    %(generator_dir)s

    Returns
    -------
    frames : FaceFrames
        From the card's training sessions (each checked against its recorded SHA-256) with the card's
        ``image_size``, ``stride``, ``max_frames`` and ``data.require_face_boxes``.

    Raises
    ------
    ValueError
        If the card records no training sessions, or one changed since training.
    FileNotFoundError
        If a training session is missing.
    """
    from synth.generative.frames import load_face_frames

    sessions = training_sessions(model_dir)
    if not sessions:
        raise ValueError(f"{model_dir} records no training sessions, so its training frames cannot be read.")
    selection = training_frame_selection(model_dir)
    data = read_model_card(model_dir).get("config", {}).get("data", {})
    return load_face_frames(sessions, selection["image_size"], stride=int(selection.get("stride") or 1),
                            max_frames=selection.get("max_frames"),
                            require_face_boxes=bool(data.get("require_face_boxes", False)))


def utc_now() -> str:
    """The current time, ISO 8601 in UTC."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
