"""One encoder per modality + a lightly projection head -> L2-normalised moment embeddings.

:class:`MultiModalEncoder` is an ``nn.ModuleDict`` of :class:`ModalityEncoder` (backbone + lightly
``SimCLRProjectionHead``) returning ``{modality: (B, embed_dim)}``. Its constructor arguments are
its config: ``save_pretrained(dir)`` writes ``config.json`` and the weights, ``from_pretrained(dir)``
rebuilds it, and :meth:`ModalityEncoder.from_pretrained` loads one modality alone.
"""

from __future__ import annotations

import json
import os
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
    """

    def __init__(self, encoder: str, encoder_kwargs: dict[str, Any], hidden_dim: int = 256,
                 embed_dim: int = 128) -> None:
        super().__init__()
        self.backbone = build_encoder(encoder, **encoder_kwargs)
        self.head = SimCLRProjectionHead(self.backbone.out_dim, hidden_dim, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One view (B, ...) -> L2-normalised embedding (B, embed_dim)."""
        return F.normalize(self.head(self.backbone(x)), dim=1)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, modality: str) -> ModalityEncoder:
        """Load the encoder of one modality from a :meth:`MultiModalEncoder.save_pretrained` folder."""
        config = _read_config(directory)
        if modality not in config["modalities"]:
            raise KeyError(f"No {modality!r} encoder in {directory}; it has {sorted(config['modalities'])}.")
        spec = config["modalities"][modality]
        encoder = cls(spec["encoder"], spec["encoder_kwargs"], config["hidden_dim"], config["embed_dim"])
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
    """

    def __init__(self, modalities: dict[str, dict[str, Any]], hidden_dim: int = 256, embed_dim: int = 128) -> None:
        super().__init__()
        if not modalities:
            raise ValueError("MultiModalEncoder needs at least one modality.")
        self.config = {"modalities": {m: {"encoder": s["encoder"], "encoder_kwargs": dict(s.get("encoder_kwargs", {}))}
                                      for m, s in modalities.items()},
                       "hidden_dim": int(hidden_dim), "embed_dim": int(embed_dim)}
        self.encoders = nn.ModuleDict({m: ModalityEncoder(s["encoder"], s["encoder_kwargs"], hidden_dim, embed_dim)
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
        embeddings : dict of str to Tensor, each (B, embed_dim), unit L2 norm.
        """
        return {m: enc(views[m]) for m, enc in self.encoders.items() if m in views}

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
