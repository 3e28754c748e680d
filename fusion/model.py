"""One encoder per modality + lightly projection heads -> L2-normalised moment embeddings.

:class:`MultiModalEncoder` is an ``nn.ModuleDict`` of :class:`ModalityEncoder` (backbone + lightly
``SimCLRProjectionHead``) returning ``{modality: (B, embed_dim)}``. Its constructor arguments are
its config: ``save_pretrained(dir)`` writes emosync's model folder (``config.json`` with ``kind``
``"multimodal-encoder"`` and those arguments, ``weights/model.safetensors``; see
:mod:`acquisition.utils.model_folder`), ``from_pretrained(dir)`` rebuilds it, and
:meth:`ModalityEncoder.from_pretrained` loads one modality alone. Folders of the earlier layout
(``config.json`` and ``model.safetensors`` or ``model.pt`` side by side) load as they are.

Pair heads (``pair_heads=True``): each modality gets one projection head per partner modality,
and the output also holds ``"a->b"``: modality ``a`` embedded to be compared with ``b``
(:func:`pair_embedding` picks the right one in either layout). With one shared head per
modality, the six pairs of four modalities compete for one space: RGB and depth share head pose,
which EMG and EEG cannot see, and that easy pair shapes the video embedding at the expense of
the others (measured in benchmarks/RESULTS.md). ``{modality: ...}`` is then the normalised mean
of the modality's pair embeddings, a moment embedding for probes and fusion.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightly.models.modules import SimCLRProjectionHead
from torch import nn

from acquisition.utils.docs import add_doc, fill_doc
from acquisition.utils.model_folder import ModelFolder, load_weights, read_model_folder, save_state_dict_folder

from .encoders import build_encoder

add_doc("projection_head_dims", """
hidden_dim, embed_dim : int
    Sizes of the projection heads' hidden layer and of the embedding.
""")

#: The model folder's ``kind`` for a :class:`MultiModalEncoder`.
KIND = "multimodal-encoder"
#: The weights' name inside the folder (``weights/model.safetensors``).
WEIGHTS_NAME = "model"


@fill_doc
class ModalityEncoder(nn.Module):
    """Backbone + projection head of one modality.

    Parameters
    ----------
    encoder : str
        Registered backbone name (see :mod:`fusion.encoders`).
    encoder_kwargs : dict
        Backbone arguments (``in_channels`` for video; ``n_chans``, ``n_times`` for signals).
    %(projection_head_dims)s
    partners : sequence of str
        Pair heads: one head per partner modality (``heads[partner]``); empty: one shared ``head``.
    """

    def __init__(self, encoder: str, encoder_kwargs: dict[str, Any], hidden_dim: int = 256,
                 embed_dim: int = 128, partners: Sequence[str] = ()) -> None:
        super().__init__()
        self.backbone = build_encoder(encoder, **encoder_kwargs)
        self.partners = list(partners)
        if self.partners:
            self.heads = nn.ModuleDict({p: SimCLRProjectionHead(self.backbone.out_dim, hidden_dim, embed_dim)
                                        for p in self.partners})
        else:
            self.head = SimCLRProjectionHead(self.backbone.out_dim, hidden_dim, embed_dim)

    def projections(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """One view (B, ...) -> unnormalised head outputs: ``{partner: (B, embed_dim)}``, or ``{"": ...}``."""
        h = self.backbone(x)
        if self.partners:
            return {p: head(h) for p, head in self.heads.items()}
        return {"": self.head(h)}

    def embed(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """L2-normalised embeddings: ``""`` (the moment embedding) and, with pair heads, one per partner."""
        out = {k: F.normalize(v, dim=1) for k, v in self.projections(x).items()}
        if self.partners:
            out[""] = F.normalize(torch.stack(list(out.values())).mean(0), dim=1)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One view (B, ...) -> L2-normalised moment embedding (B, embed_dim)."""
        return self.embed(x)[""]

    @classmethod
    @fill_doc
    def from_pretrained(cls, model_dir: str | os.PathLike, modality: str) -> ModalityEncoder:
        """Load the encoder of one modality from a :meth:`MultiModalEncoder.save_pretrained` folder.

        Parameters
        ----------
        %(model_dir)s
        modality : str
            Which encoder (``"rgb"``, ``"depth"``, ``"emg"``, ``"eeg"``...).

        Raises
        ------
        KeyError
            If the model has no encoder for ``modality``.
        FileNotFoundError, ValueError
            If ``model_dir`` is not a :class:`MultiModalEncoder` folder (see :func:`read_model_folder`).
        """
        folder = read_model_folder(model_dir, kind=KIND)
        config = _arguments(folder)
        if modality not in config["modalities"]:
            raise KeyError(f"No {modality!r} encoder in {model_dir}; it has {sorted(config['modalities'])}.")
        spec = config["modalities"][modality]
        partners = [m for m in config["modalities"] if m != modality] if config["pair_heads"] else []
        encoder = cls(spec["encoder"], spec["encoder_kwargs"], config["hidden_dim"], config["embed_dim"], partners)
        prefix = f"encoders.{modality}."
        state = {k[len(prefix):]: v for k, v in load_weights(folder, WEIGHTS_NAME).items() if k.startswith(prefix)}
        encoder.load_state_dict(state)
        return encoder


@fill_doc
class MultiModalEncoder(nn.Module):
    """Encoders of several modalities into one embedding space.

    Parameters
    ----------
    modalities : dict of str to dict
        Per modality ``{"encoder": name, "encoder_kwargs": {...}}``.
    %(projection_head_dims)s
        Shared by all modalities.
    pair_heads : bool
        One projection head per (modality, partner) instead of one per modality (see the module docstring).
    """

    def __init__(self, modalities: dict[str, dict[str, Any]], hidden_dim: int = 256, embed_dim: int = 128,
                 pair_heads: bool = False) -> None:
        super().__init__()
        if not modalities:
            raise ValueError("MultiModalEncoder needs at least one modality.")
        self.config = {"modalities": {m: {"encoder": s["encoder"], "encoder_kwargs": dict(s.get("encoder_kwargs", {}))}
                                      for m, s in modalities.items()},
                       "hidden_dim": int(hidden_dim), "embed_dim": int(embed_dim), "pair_heads": bool(pair_heads)}
        names = list(self.config["modalities"])
        self.encoders = nn.ModuleDict({
            m: ModalityEncoder(s["encoder"], s["encoder_kwargs"], hidden_dim, embed_dim,
                               [p for p in names if p != m] if pair_heads else [])
            for m, s in self.config["modalities"].items()})

    @property
    def modalities(self) -> list[str]:
        """Modality names, in config order."""
        return list(self.encoders)

    def forward(self, views: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Embed every modality present in ``views``.

        Parameters
        ----------
        views : dict of str to Tensor
            ``rgb`` (B, T, 3, H, W), ``depth`` (B, T, 1, H, W), ``emg``/``eeg`` (B, n_chans, n_times).
            Keys that are not modalities of this model (``available``, ``au``...) are ignored.

        Returns
        -------
        embeddings : dict of str to Tensor, each (B, embed_dim), unit L2 norm
            ``{modality: moment embedding}``; with pair heads also ``{"a->b": a's embedding for pair (a, b)}``.
        """
        out: dict[str, torch.Tensor] = {}
        for m, enc in self.encoders.items():
            if m in views:
                for partner, z in enc.embed(views[m]).items():
                    out[f"{m}->{partner}" if partner else m] = z
        return out

    def save_pretrained(self, model_dir: str | os.PathLike) -> Path:
        """Write the model folder: ``weights/model.safetensors``, then ``config.json`` (kind and arguments)."""
        return save_state_dict_folder(model_dir, KIND, self.config, self.state_dict(), WEIGHTS_NAME)

    @classmethod
    @fill_doc
    def from_pretrained(cls, model_dir: str | os.PathLike) -> MultiModalEncoder:
        """Rebuild a model written by :meth:`save_pretrained`.

        Parameters
        ----------
        %(model_dir)s

        Raises
        ------
        FileNotFoundError
            If ``model_dir`` is not a model folder, or its weights are missing.
        ValueError
            If it holds another kind of model, was saved by a newer emosync, or its ``config.json``
            has keys :class:`MultiModalEncoder` does not take.
        """
        folder = read_model_folder(model_dir, kind=KIND)
        model = cls(**_arguments(folder))
        model.load_state_dict(load_weights(folder, WEIGHTS_NAME))
        return model


def pair_embedding(z: dict, a: str, b: str):
    """Modality ``a``'s embedding for comparing with ``b``: ``z["a->b"]`` with pair heads, else ``z[a]``.

    Works on the output of :meth:`MultiModalEncoder.forward` (tensors) and of
    :func:`fusion.evaluate.embed_dataset` (arrays).
    """
    return z.get(f"{a}->{b}", z[a])


def _arguments(folder: ModelFolder) -> dict[str, Any]:
    """:class:`MultiModalEncoder`'s arguments from a folder's ``config.json`` (a missing ``pair_heads`` is False)."""
    arguments = folder.arguments
    unknown = sorted(set(arguments) - {"modalities", "hidden_dim", "embed_dim", "pair_heads"})
    if unknown or "modalities" not in arguments:
        raise ValueError(f"{folder.path / 'config.json'} does not describe a MultiModalEncoder: "
                         f"{'unknown keys ' + str(unknown) if unknown else 'no modalities'}. Save it again with "
                         "MultiModalEncoder.save_pretrained.")
    # Folders saved before pair heads existed have no such key, and had none.
    return {"pair_heads": False, **arguments}
