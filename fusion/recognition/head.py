"""The recognizer: fusion encoders + one linear classifier on their concatenated embeddings.

:class:`RecognitionModel` embeds each modality of a clip with its encoder (the moment embedding of
:class:`fusion.model.ModalityEncoder`, unit norm), scales it by ``sqrt(embed_dim)`` so its entries
are of order 1 whatever the embedding size, zeroes the block of a modality the clip does not have
(the ``available`` mask: "no evidence", so a missing sensor is tolerated at test time), and
classifies the concatenation with dropout + a linear layer. The fusion is the same whether the
encoders were pretrained or randomly initialised.

Saved as an emosync model folder (:mod:`acquisition.utils.model_folder`): ``config.json`` (kind
``"expression-recognizer"``: classes, modalities, the encoders' config and the clip geometry
they were trained with) and ``weights/model.safetensors``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from acquisition.utils.docs import fill_doc
from acquisition.utils.model_folder import load_weights, read_model_folder, save_state_dict_folder

from ..model import MultiModalEncoder

#: The model folder's ``kind``.
KIND = "expression-recognizer"
WEIGHTS_NAME = "model"


class RecognitionModel(nn.Module):
    """Encoders + fused linear classifier.

    Parameters
    ----------
    encoders : MultiModalEncoder
        Encoders (pretrained or random); only those of ``modalities`` run.
    modalities : sequence of str
        Modalities the classifier sees, a subset of ``encoders.modalities``.
    classes : sequence of str
        Class names, logit order.
    class_set : str
        The class set they come from (:mod:`fusion.recognition.classes`).
    data : dict
        The clip geometry the encoders expect (a :class:`fusion.config.DataConfig` dump).
    anchor : str
        Where clips are centred (``"apex"`` or ``"centre"``).
    dropout : float
        Dropout on the fused embedding.
    """

    def __init__(self, encoders: MultiModalEncoder, modalities: Sequence[str], classes: Sequence[str],
                 class_set: str, data: dict[str, Any], anchor: str = "apex", dropout: float = 0.2) -> None:
        super().__init__()
        unknown = [m for m in modalities if m not in encoders.modalities]
        if unknown or not modalities:
            raise ValueError(f"Modalities {list(modalities)} must be a non-empty subset of the encoders' "
                             f"{encoders.modalities}.")
        self.encoders = encoders
        self.modalities = list(modalities)
        self.classes, self.class_set = list(classes), class_set
        self.data, self.anchor, self.dropout_p = dict(data), anchor, float(dropout)
        dim = encoders.config["embed_dim"]
        self.scale = math.sqrt(dim)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(len(self.modalities) * dim, len(self.classes)))

    @property
    def config(self) -> dict[str, Any]:
        """What :meth:`from_pretrained` needs besides the weights."""
        return {"encoders": self.encoders.config, "modalities": self.modalities, "classes": self.classes,
                "class_set": self.class_set, "data": self.data, "anchor": self.anchor, "dropout": self.dropout_p}

    def features(self, batch: dict) -> torch.Tensor:
        """Fused embedding (B, n_modalities * embed_dim): scaled moment embeddings, zero where unavailable."""
        blocks = []
        for m in self.modalities:
            z = self.encoders.encoders[m](batch[m]) * self.scale
            blocks.append(z * batch["available"][m].to(z.dtype)[:, None])
        return torch.cat(blocks, dim=1)

    def forward(self, batch: dict) -> torch.Tensor:
        """Class logits (B, n_classes) of a batch of clips (``available`` and one view per modality)."""
        return self.classifier(self.features(batch))

    def save_pretrained(self, model_dir: str | os.PathLike) -> Path:
        """Write the model folder (weights first, ``config.json`` last)."""
        return save_state_dict_folder(model_dir, KIND, self.config, self.state_dict(), WEIGHTS_NAME)

    @classmethod
    @fill_doc
    def from_pretrained(cls, model_dir: str | os.PathLike) -> RecognitionModel:
        """Rebuild a recognizer written by :meth:`save_pretrained`, in eval mode.

        Parameters
        ----------
        %(model_dir)s

        Raises
        ------
        FileNotFoundError, ValueError
            If ``model_dir`` is not a recognizer's model folder (see :func:`read_model_folder`).
        """
        folder = read_model_folder(model_dir, kind=KIND)
        config = folder.arguments
        missing = sorted({"encoders", "modalities", "classes", "class_set", "data"} - set(config))
        if missing:
            raise ValueError(f"{folder.path / 'config.json'} lacks {missing}; train the recognizer again.")
        model = cls(MultiModalEncoder(**config["encoders"]), config["modalities"], config["classes"],
                    config["class_set"], config["data"], config.get("anchor", "apex"), config.get("dropout", 0.0))
        model.load_state_dict(load_weights(folder, WEIGHTS_NAME))
        return model.eval()
