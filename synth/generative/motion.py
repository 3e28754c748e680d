"""A learned AU motion model: what each Action Unit does to a face, as a flow field and a residual.

The diffusion generator of the CPU configs draws convincing new people but renders small, local
expression changes poorly: at 64 px an AU12 lip-corner pull moves a few pixels, and a denoiser
trained for minutes on a CPU spends its capacity on identity (the sampler-curve benchmark measured
r ~ 0 for AU12, AU06, AU04 and AU15). Expression, unlike identity, is nearly the same motion on
every face, so it is learned here separately and linearly, from the same training frames:

1. For every training subject, a *neutral* reference: the per-pixel median of the subject's frames
   whose AUs all stay below ``neutral_max_au`` (all of the subject's frames when too few do).
2. For every frame, the dense optical flow (OpenCV Farneback) that maps the reference onto it.
3. A ridge regression, within subjects (AUs and flows centred per subject, in stretches of at
   most 256 frames, so head pose and framing drop out), of the flow on the 17 AU intensities:
   one flow field per AU.
4. The same regression of what the warped reference still misses (shading, wrinkles, the mouth
   interior, depth), giving one RGB-D residual image per AU.

A frame is then ``warp(neutral, sum_a I_a F_a) + sum_a I_a R_a``: the generator draws one neutral
face of a (new) identity and the motion model animates it, so every frame of a sequence is the
same person and the expression follows the requested AU course exactly as learned.

Written here because no maintained library learns AU-driven flow bases (face-reenactment models
such as first-order motion need a driving video and pretrained weights, which we may not download);
OpenCV supplies the flow and the warp, numpy the regression. AUs shown in fewer than
:data:`synth.generative.coverage.MIN_ACTIVE_FRAMES` training frames get no basis (sampling refuses
them anyway). The fit sees every training frame, so a model trained with DP-SGD may not have one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from acquisition import logger
from acquisition.annotate.action_units import AU_IDS
from acquisition.utils.model_folder import WEIGHTS_DIR
from synth.generative.config import MotionConfig
from synth.generative.coverage import ACTIVE_INTENSITY, MIN_ACTIVE_FRAMES
from synth.generative.frames import FaceFrames

__all__ = ["MOTION_WEIGHTS", "AUMotionModel", "add_motion_model", "neutral_references"]

#: File (inside a model's ``weights/``) holding the flow and residual bases.
MOTION_WEIGHTS = "au_motion.safetensors"
# Frames processed together: bounds memory (a 64 px flow is 32 KiB; a residual 64 KiB).
_CHUNK = 256


def _gray(rgbd: np.ndarray) -> np.ndarray:
    """(4, H, W) in [-1, 1] -> the 8-bit grey image Farneback reads."""
    rgb = np.clip((rgbd[:3].transpose(1, 2, 0) + 1.0) * 127.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def neutral_references(frames: FaceFrames, *, neutral_max_au: float, min_frames: int) -> dict[str, np.ndarray]:
    """Per subject, the per-pixel median of its near-neutral frames: ``{subject_id: (4, H, W)}``.

    A subject with fewer than ``min_frames`` frames whose AUs all stay below ``neutral_max_au`` uses
    the median of all its frames (expressions are brief, so the median is still close to neutral).
    """
    refs = {}
    for subject in np.unique(frames.subject_ids):
        mine = frames.subject_ids == subject
        calm = mine & (frames.aus.max(axis=1) < neutral_max_au)
        refs[str(subject)] = np.median(frames.rgbd[calm if calm.sum() >= min_frames else mine], axis=0)
    return refs


@dataclass
class AUMotionModel:
    """Per-AU flow fields and RGB-D residuals that animate a neutral face.

    Parameters
    ----------
    flow : array of float32, shape (17, 2, H, W)
        Displacement (pixels, x then y) per unit of AU intensity, as a backward map: the output
        pixel ``p`` reads the neutral face at ``p + sum_a I_a flow[a]``.
    residual : array of float32, shape (17, 4, H, W)
        RGB-D change per unit of AU intensity left after the warp (in the [-1, 1] value range).
    fitted : dict
        What the fit saw and how well it explains the training frames (see :meth:`fit`); goes into
        the model card.
    """

    flow: np.ndarray
    residual: np.ndarray
    fitted: dict[str, Any]

    @property
    def image_size(self) -> int:
        """Side of the crops the bases apply to, in pixels."""
        return int(self.flow.shape[-1])

    @property
    def modelled_aus(self) -> list[int]:
        """The AUs with a basis (shown in enough training frames)."""
        return [int(a) for a in self.fitted["aus"]]

    @classmethod
    def fit(cls, frames: FaceFrames, config: MotionConfig) -> AUMotionModel:
        """Learn the bases from training frames (several subjects; see the module docstring).

        Raises
        ------
        ValueError
            If no AU reaches :data:`ACTIVE_INTENSITY` in :data:`MIN_ACTIVE_FRAMES` frames (nothing to learn).
        """
        aus = frames.aus.astype(np.float64)
        active = ((aus >= ACTIVE_INTENSITY).sum(axis=0) >= MIN_ACTIVE_FRAMES)
        if not active.any():
            raise ValueError(f"No AU is active (intensity >= {ACTIVE_INTENSITY:.1f}) in {MIN_ACTIVE_FRAMES} or more "
                             "training frames: the frames hold no expressions to learn motion from. Train on "
                             "sessions with expressions.")
        refs = neutral_references(frames, neutral_max_au=config.neutral_max_au, min_frames=config.min_neutral_frames)
        size = frames.image_size
        k = int(active.sum())
        gram = np.zeros((k, k))
        # Two passes over the subjects: the residual of step 4 needs the flow basis of step 3.
        cross_flow = np.zeros((k, 2 * size * size))
        for subject, idx in _by_subject(frames):
            a = _centred(aus[idx][:, active])
            gram += a.T @ a
            cross_flow += a.T @ _centred(cls._flows(frames.rgbd[idx], refs[subject], config).reshape(len(idx), -1))
        penalty = config.ridge * len(frames) * np.eye(k)
        flow_basis = np.linalg.solve(gram + penalty, cross_flow).astype(np.float32)
        flow_only = cls(_full(flow_basis, active, (2, size, size)),
                        np.zeros((len(AU_IDS), 4, size, size), np.float32), {})
        cross_res = np.zeros((k, 4 * size * size))
        for subject, idx in _by_subject(frames):
            a = _centred(aus[idx][:, active])
            warped = flow_only.animate(refs[subject], frames.aus[idx])
            cross_res += a.T @ _centred((frames.rgbd[idx] - warped).reshape(len(idx), -1))
        residual_basis = np.linalg.solve(gram + penalty, cross_res).astype(np.float32)
        model = cls(flow_only.flow, _full(residual_basis, active, (4, size, size)), {})
        model.fitted = {
            "method": "ridge regression of Farneback flow and warp residual on AU intensity, within subjects",
            "aus": [int(AU_IDS[i]) for i in np.flatnonzero(active)],
            "n_frames": len(frames), "subjects": sorted(refs),
            "explained_variance": model.explained_variance(frames, refs, neutral_max_au=config.neutral_max_au),
            "config": config.model_dump(),
        }
        logger.info("AU motion model: AUs %s from %d frames of %d subjects; explains %.0f %% of the expressive "
                    "frames' change from neutral", model.modelled_aus, len(frames), len(refs),
                    100 * model.fitted["explained_variance"])
        return model

    @staticmethod
    def _flows(rgbd: np.ndarray, reference: np.ndarray, config: MotionConfig) -> np.ndarray:
        """Backward flow from each frame to ``reference``: (n, 2, H, W), so ``frame(p) ~ reference(p + flow(p))``."""
        ref = _gray(reference)
        out = np.empty((len(rgbd), 2, *ref.shape), np.float32)
        for i, frame in enumerate(rgbd):
            flow = cv2.calcOpticalFlowFarneback(_gray(frame), ref, None, pyr_scale=0.5, levels=config.flow_levels,
                                                winsize=config.flow_window_px, iterations=3, poly_n=5,
                                                poly_sigma=1.1, flags=0)
            out[i] = flow.transpose(2, 0, 1)
        return out

    def animate(self, neutral: np.ndarray, aus: np.ndarray) -> np.ndarray:
        """Frames of ``neutral`` (4, H, W) showing each row of ``aus`` (n, 17): (n, 4, H, W) in [-1, 1].

        All-zero AUs return the neutral face unchanged.
        """
        neutral = np.asarray(neutral, dtype=np.float32)
        aus = np.atleast_2d(np.asarray(aus, dtype=np.float32))
        if neutral.shape != (4, self.image_size, self.image_size):
            raise ValueError(f"The neutral face must have shape (4, {self.image_size}, {self.image_size}) (RGB-D at "
                             f"the size the motion model was fitted at), got {neutral.shape}.")
        if aus.shape[1] != len(AU_IDS):
            raise ValueError(f"aus must have {len(AU_IDS)} columns (AU {', '.join(map(str, AU_IDS))}), "
                             f"got shape {aus.shape}.")
        size = self.image_size
        grid_y, grid_x = np.mgrid[0:size, 0:size].astype(np.float32)
        flows = np.tensordot(aus, self.flow, axes=(1, 0))
        residuals = np.tensordot(aus, self.residual, axes=(1, 0))
        channels = [np.ascontiguousarray(c) for c in neutral]
        out = np.empty((len(aus), 4, size, size), np.float32)
        for i in range(len(aus)):
            map_x, map_y = grid_x + flows[i, 0], grid_y + flows[i, 1]
            out[i] = [cv2.remap(c, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) for c in channels]
        return np.clip(out + residuals, -1.0, 1.0)

    def explained_variance(self, frames: FaceFrames, references: dict[str, np.ndarray], *,
                           neutral_max_au: float) -> float:
        """Share of the expressive frames' difference from their neutral reference that :meth:`animate` explains.

        ``1 - sum |frame - animate(ref, aus)|^2 / sum |frame - ref|^2`` over the frames with some AU at
        or above ``max(neutral_max_au, 1)``; 0: no better than the neutral face, 1: exact. NaN when no
        frame is expressive.
        """
        expressive = frames.aus.max(axis=1) >= max(neutral_max_au, 1.0)
        total = missed = 0.0
        for subject, idx in _by_subject(frames):
            idx = idx[expressive[idx]]
            if not len(idx):
                continue
            ref = references[subject]
            total += float(((frames.rgbd[idx] - ref) ** 2).sum())
            missed += float(((frames.rgbd[idx] - self.animate(ref, frames.aus[idx])) ** 2).sum())
        return float("nan") if total == 0 else 1.0 - missed / total

    def save(self, weights_dir: str | os.PathLike) -> None:
        """Write :data:`MOTION_WEIGHTS` into a model's ``weights/`` folder (safetensors, replaced atomically)."""
        from safetensors.numpy import save_file

        path = Path(weights_dir) / MOTION_WEIGHTS
        partial = path.with_suffix(".partial")
        save_file({"flow": np.ascontiguousarray(self.flow), "residual": np.ascontiguousarray(self.residual)},
                  str(partial))
        os.replace(partial, path)

    @classmethod
    def load(cls, weights_dir: str | os.PathLike, fitted: dict[str, Any]) -> AUMotionModel:
        """Read :data:`MOTION_WEIGHTS` back; ``fitted`` is the card's ``motion`` entry."""
        from safetensors.numpy import load_file

        path = Path(weights_dir) / MOTION_WEIGHTS
        if not path.is_file():
            raise FileNotFoundError(f"The model card describes an AU motion model, but {path} is missing; the "
                                    "folder is incomplete (run `emosync synth fit-motion` on it again).")
        arrays = load_file(str(path))
        return cls(arrays["flow"], arrays["residual"], dict(fitted))


def _by_subject(frames: FaceFrames) -> Iterator[tuple[str, np.ndarray]]:
    """``(subject_id, frame indices)`` per subject, in chunks of at most :data:`_CHUNK` frames."""
    for subject in np.unique(frames.subject_ids):
        idx = np.flatnonzero(frames.subject_ids == subject)
        for start in range(0, len(idx), _CHUNK):
            yield str(subject), idx[start:start + _CHUNK]


def _centred(x: np.ndarray) -> np.ndarray:
    return x - x.mean(axis=0, keepdims=True)


def _full(basis: np.ndarray, active: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Rows of ``basis`` (one per active AU) placed into a zero array of one row per AU in :data:`AU_IDS`."""
    out = np.zeros((len(AU_IDS), *shape), np.float32)
    out[active] = basis.reshape(-1, *shape)
    return out


def add_motion_model(model_dir: str | os.PathLike, config: MotionConfig | None = None) -> AUMotionModel:
    """Fit an AU motion model on a trained diffusion model's own training frames and add it to the folder.

    The training sessions are read from the card (and must still have their recorded SHA-256), with
    the card's frame selection. The motion file is written first and the card last, both atomically,
    so an interrupted fit leaves the model as it was. A model that already has one gets the new fit.

    Parameters
    ----------
    model_dir : path-like
        A diffusion model folder (``emosync synth train``).
    config : MotionConfig | None
        Fit settings; None: the model config's ``motion`` section (defaults for older models).

    Raises
    ------
    ValueError
        If the folder holds a GAN, the model was trained with DP-SGD (the fit would see every frame
        without noise), or a training session changed.
    FileNotFoundError
        If a training session is missing.
    """
    from synth.generative.base import load_generator, load_training_frames, read_model_card, save_generator_config

    card = read_model_card(model_dir)
    if card.get("kind") != "diffusion":
        raise ValueError(f"{model_dir} holds a {card.get('kind')} model; AU motion models animate the neutral faces "
                         "of diffusion models. Train one with a diffusion config.")
    if (card.get("privacy") or {}).get("dp_sgd"):
        raise ValueError(f"{model_dir} was trained with DP-SGD; an AU motion model is fitted on every training frame "
                         "without noise and would void its privacy guarantee. Sample it without one.")
    frames = load_training_frames(model_dir)
    gen = load_generator(model_dir)
    motion = AUMotionModel.fit(frames, config or gen.config.motion)
    gen.add_motion(motion)
    motion.save(Path(model_dir) / WEIGHTS_DIR)
    save_generator_config(model_dir, gen)
    return motion

