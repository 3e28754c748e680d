"""PyTorch -> ONNX: one graph per modality encoder, one for a recognizer's head, each checked against PyTorch.

An encoder graph takes one view, batch first (``(batch, T, C, S, S)`` video, ``(batch, n_chans,
n_times)`` signals, as :class:`fusion.data.SessionWindows` makes them) and returns the unit-norm
moment embedding ``embedding`` (batch, embed_dim) and, with pair heads, ``to_<partner>``: the
embedding for comparing with that partner (what :func:`fusion.model.pair_embedding` picks). The
head graph takes the fused features of :meth:`fusion.recognition.head.RecognitionModel.features`
and returns the class logits.

Export uses ``torch.onnx.export(..., dynamo=True)``, the torch.export-based exporter (the default
since PyTorch 2.9; it needs onnxscript): the legacy TorchScript exporter fails on the encoders'
adaptive pooling when a clip has fewer frames than time bins, and is deprecated. The batch
dimension is dynamic; everything else is fixed by the model's window geometry.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..model import ModalityEncoder

#: ONNX opset of the exported graphs (onnxruntime >= 1.14 runs it; its quantizer handles it).
OPSET = 18
#: Name of the head graph's input.
HEAD_INPUT = "features"


class EncoderGraph(nn.Module):
    """One modality's encoder as exported: view -> (moment embedding, pair embeddings in partner order).

    Parameters
    ----------
    encoder : ModalityEncoder
        The encoder (backbone + projection head(s)); put in eval mode.
    """

    def __init__(self, encoder: ModalityEncoder) -> None:
        super().__init__()
        self.encoder = encoder.eval()

    @property
    def output_names(self) -> list[str]:
        """``embedding``, then ``to_<partner>`` for each pair head."""
        return ["embedding", *(f"to_{p}" for p in self.encoder.partners)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One view (B, ...) -> unit-norm embeddings, each (B, embed_dim)."""
        z = self.encoder.embed(x)
        return tuple(z[k] for k in ["", *self.encoder.partners])


class HeadGraph(nn.Module):
    """A recognizer's classifier as exported: fused features (B, n_modalities * embed_dim) -> logits (B, n_classes)."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier.eval()

    @property
    def output_names(self) -> list[str]:
        """``logits``."""
        return ["logits"]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        """(B, n_features) -> (logits (B, n_classes),)."""
        return (self.classifier(x),)


def export_graph(module: EncoderGraph | HeadGraph, example: np.ndarray, fname: str | os.PathLike,
                 input_name: str) -> Path:
    """Write ``module`` as one self-contained ONNX file with a dynamic batch dimension.

    Parameters
    ----------
    module : EncoderGraph | HeadGraph
        What to export.
    example : array of float32, shape (n, ...)
        Example inputs, n >= 2 (a batch of 1 would be specialised into the graph).
    fname : path-like
        The ``.onnx`` file to write (weights inside it, no external data file).
    input_name : str
        The graph input's name (the modality, or ``features``).
    """
    if len(example) < 2:
        raise ValueError(f"Export needs an example batch of >= 2 inputs, got {len(example)}.")
    fname = Path(fname)
    with torch.no_grad():
        program = torch.onnx.export(module.eval(), (torch.from_numpy(example[:2]),), dynamo=True, verbose=False,
                                    input_names=[input_name], output_names=module.output_names,
                                    dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, opset_version=OPSET)
    program.save(str(fname), external_data=False)
    return fname


@torch.no_grad()
def torch_outputs(module: EncoderGraph | HeadGraph, x: np.ndarray, batch_size: int = 32) -> list[np.ndarray]:
    """PyTorch's outputs for inputs ``x`` (n, ...), one array (n, d) per output, in eval mode."""
    module.eval()
    parts = [module(torch.from_numpy(x[a:a + batch_size])) for a in range(0, len(x), batch_size)]
    return [np.concatenate([p[k].numpy() for p in parts]) for k in range(len(parts[0]))]


def onnx_outputs(session, x: np.ndarray, batch_size: int = 32) -> list[np.ndarray]:
    """An onnxruntime ``InferenceSession``'s outputs for inputs ``x`` (n, ...), one array (n, d) per output."""
    name = session.get_inputs()[0].name
    parts = [session.run(None, {name: x[a:a + batch_size]}) for a in range(0, len(x), batch_size)]
    return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]


def max_abs_diff(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """Largest absolute difference between two lists of outputs of the same shapes."""
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        raise ValueError(f"Outputs differ in number or shape: {[x.shape for x in a]} vs {[y.shape for y in b]}.")
    return max(float(np.max(np.abs(x.astype(np.float64) - y))) for x, y in zip(a, b))
