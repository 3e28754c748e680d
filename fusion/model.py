"""One encoder per modality + lightly projection heads -> L2-normalised moment embeddings.

:class:`MultiModalEncoder` is an ``nn.ModuleDict`` of :class:`ModalityEncoder` (backbone + lightly
``SimCLRProjectionHead``) returning ``{modality: (B, embed_dim)}``. Its constructor arguments are
its config: ``save_pretrained(dir)`` writes ``config.json`` and the weights, ``from_pretrained(dir)``
rebuilds it, and :meth:`ModalityEncoder.from_pretrained` loads one modality alone.

Pair heads (``pair_heads=True``): each modality gets one projection head per partner modality,
and the output also holds ``"a->b"``: modality ``a`` embedded to be compared with ``b``
(:func:`pair_embedding` picks the right one in either layout). With one shared head per
modality, the six pairs of four modalities compete for one space: RGB and depth share head pose,
which EMG and EEG cannot see, and that easy pair shapes the video embedding at the expense of
the others (measured in benchmarks/RESULTS.md). ``{modality: ...}`` is then the normalised mean
of the modality's pair embeddings, a moment embedding for probes and fusion.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightly.models.modules import SimCLRProjectionHead
from torch import nn

from .encoders import build_encoder

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TORCH_WEIGHTS_NAME = "model.pt"


class ModalityEncoder(nn.Module):
    """Backbone + projection head of one modality.

    Parameters
    ----------
    encoder : str
        Registered backbone name (see :mod:`fusion.encoders`).
    encoder_kwargs : dict
        Backbone arguments (``in_channels`` for video; ``n_chans``, ``n_times`` for signals).
    hidden_dim, embed_dim : int
        Projection head sizes.
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
    def from_pretrained(cls, directory: str | os.PathLike, modality: str) -> ModalityEncoder:
        """Load the encoder of one modality from a :meth:`MultiModalEncoder.save_pretrained` folder."""
        config = _read_config(directory)
        if modality not in config["modalities"]:
            raise KeyError(f"No {modality!r} encoder in {directory}; it has {sorted(config['modalities'])}.")
        spec = config["modalities"][modality]
        partners = [m for m in config["modalities"] if m != modality] if config.get("pair_heads") else []
        encoder = cls(spec["encoder"], spec["encoder_kwargs"], config["hidden_dim"], config["embed_dim"], partners)
        prefix = f"encoders.{modality}."
        state = {k[len(prefix):]: v for k, v in _read_weights(directory).items() if k.startswith(prefix)}
        encoder.load_state_dict(state)
        return encoder


class MultiModalEncoder(nn.Module):
    """Encoders of several modalities into one embedding space.

    Parameters
    ----------
    modalities : dict of str to dict
        Per modality ``{"encoder": name, "encoder_kwargs": {...}}``.
    hidden_dim, embed_dim : int
        Projection head sizes, shared by all modalities.
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

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` and the weights (safetensors if installed, else ``torch.save``)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_NAME).write_text(json.dumps(self.config, indent=2))
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        try:
            from safetensors.torch import save_file
        except ImportError:
            torch.save(state, directory / TORCH_WEIGHTS_NAME)
        else:
            save_file(state, directory / WEIGHTS_NAME)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> MultiModalEncoder:
        """Rebuild a model written by :meth:`save_pretrained`."""
        model = cls(**_read_config(directory))
        model.load_state_dict(_read_weights(directory))
        return model


def pair_embedding(z: dict, a: str, b: str):
    """Modality ``a``'s embedding for comparing with ``b``: ``z["a->b"]`` with pair heads, else ``z[a]``.

    Works on the output of :meth:`MultiModalEncoder.forward` (tensors) and of
    :func:`fusion.evaluate.embed_dataset` (arrays).
    """
    return z.get(f"{a}->{b}", z[a])


def _read_config(directory: str | os.PathLike) -> dict[str, Any]:
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"No {CONFIG_NAME} in {directory}; expected a MultiModalEncoder.save_pretrained "
                                "folder (e.g. runs/r1/model).")
    return json.loads(path.read_text())


def _read_weights(directory: str | os.PathLike) -> dict[str, torch.Tensor]:
    directory = Path(directory)
    if (directory / WEIGHTS_NAME).is_file():
        from safetensors.torch import load_file

        return load_file(directory / WEIGHTS_NAME)
    if (directory / TORCH_WEIGHTS_NAME).is_file():
        return torch.load(directory / TORCH_WEIGHTS_NAME, map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"No weights ({WEIGHTS_NAME} or {TORCH_WEIGHTS_NAME}) in {directory}.")
