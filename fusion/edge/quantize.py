"""int8 variants of an exported graph (onnxruntime.quantization) and the choice between them by measured speed.

Two int8 variants are made of every graph. *Static* (``quantize_static``, QDQ format, uint8
activations and int8 per-channel weights): activation ranges are calibrated (min/max) on windows
from sessions, so convolutions run as int8 kernels. *Dynamic* (``quantize_dynamic``): int8 weights,
activation scales computed at run time, so no calibration. Which is faster depends on the graph
and the CPU: small 2D/3D convolutions can be slower in int8 than in fp32 (the quantize/dequantize
around each op costs more than the int8 kernel saves). So every variant is timed
(:func:`fusion.edge.runtime.measure_latency`, one window) and int8 is used only where it is at
least :data:`MIN_SPEEDUP` times faster than fp32; the card records the times and the reason.

The graph is first run through onnxruntime's ``quant_pre_process`` (shape inference and graph
optimization, as its documentation asks before quantizing).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from acquisition import logger

#: The variants made of each graph, in the card's order.
VARIANTS = ("fp32", "int8-static", "int8-dynamic")
#: int8 replaces fp32 only when its median latency is at least this much lower (timing noise must not decide).
MIN_SPEEDUP = 1.05


def _quantization():
    try:
        from onnxruntime import quantization
    except ImportError:
        raise ImportError('Quantization needs onnxruntime: pip install "emosync[edge]".') from None
    return quantization


def preprocess(fp32: str | os.PathLike, out: str | os.PathLike) -> Path:
    """``quant_pre_process`` of an fp32 graph into ``out`` (symbolic shape inference skipped if it fails)."""
    q = _quantization()
    try:
        q.quant_pre_process(str(fp32), str(out))
    except Exception as err:  # noqa: BLE001 -- onnxruntime raises bare Exceptions from its shape inference
        logger.debug("Symbolic shape inference failed on %s (%s); pre-processing without it.", Path(fp32).name, err)
        q.quant_pre_process(str(fp32), str(out), skip_symbolic_shape=True)
    return Path(out)


def quantize_static_int8(fp32: str | os.PathLike, out: str | os.PathLike, windows: np.ndarray, *,
                         batch_size: int = 8) -> Path:
    """Static int8 (QDQ; uint8 activations, int8 per-channel weights), calibrated on ``windows`` (n, ...)."""
    q = _quantization()

    class _Reader(q.CalibrationDataReader):
        """Feeds the windows to the calibrator in batches."""

        def __init__(self, name: str) -> None:
            self._batches = iter([{name: windows[a:a + batch_size]} for a in range(0, len(windows), batch_size)])

        def get_next(self) -> dict | None:
            return next(self._batches, None)

    import onnx

    name = onnx.load(str(fp32), load_external_data=False).graph.input[0].name
    q.quantize_static(str(fp32), str(out), _Reader(name), quant_format=q.QuantFormat.QDQ, per_channel=True,
                      activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                      calibrate_method=q.CalibrationMethod.MinMax)
    return Path(out)


def quantize_dynamic_int8(fp32: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Dynamic int8: int8 weights, activation scales computed per call."""
    q = _quantization()
    q.quantize_dynamic(str(fp32), str(out), weight_type=q.QuantType.QInt8)
    return Path(out)


def choose_variant(latency_ms: dict[str, float]) -> tuple[str, str]:
    """The variant to deploy from median latencies (ms) per variant, and why.

    Parameters
    ----------
    latency_ms : dict of str to float
        Median latency of one window per variant that was built (``fp32`` always).

    Returns
    -------
    variant : str
        ``fp32`` unless an int8 variant is :data:`MIN_SPEEDUP` times faster; then the fastest int8 one.
    reason : str
        The measured figures behind the choice, for the card.
    """
    fp32 = latency_ms["fp32"]
    int8 = {k: v for k, v in latency_ms.items() if k != "fp32"}
    if not int8:
        return "fp32", "no int8 variant could be built"
    best = min(int8, key=int8.get)
    speedup = fp32 / int8[best]
    figures = f"{best} {int8[best]:.3f} ms vs fp32 {fp32:.3f} ms per window ({speedup:.2f}x)"
    if speedup >= MIN_SPEEDUP:
        return best, f"int8 is faster: {figures}"
    return "fp32", f"int8 is not faster here: {figures}; kept fp32"
