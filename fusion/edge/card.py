"""An edge folder's description: ``config.json`` (read by :class:`.runtime.EdgeModel`) and ``README.md`` (the card).

The card is rendered from the same dictionary as ``config.json``, never written by hand: inputs and
their shapes, sample rates, window length and preprocessing; per encoder the deployed variant and
why (measured latency), every variant's size, latency and difference from PyTorch; retrieval R@1
(and a recognizer's UF1) of PyTorch, ONNX fp32, int8 and the deployed mix on the calibration windows.
``config.json`` is written last, so a folder with one is complete.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from acquisition.utils.model_folder import weights_sha256
from acquisition.utils.version import software_version

from .export import OPSET
from .quantize import MIN_SPEEDUP
from .runtime import CONFIG_NAME, EDGE_FORMAT, EDGE_VERSION
from .source import ExportSource, Windows


def preprocessing(source: ExportSource, m: str) -> str:
    """How the input of modality ``m`` is cut and normalised from a session (what SessionWindows does)."""
    d = source.data
    if m in ("rgb", "depth"):
        text = (f"{d.clip_frames} frames evenly spaced over the {d.window_s} s window (nearest frame), "
                f"{d.crop} crop to a square, bilinear resize to {d.image_size} px; ")
        if m == "rgb":
            text += "RGB scaled to [0, 1]"
        else:
            text += (f"depth (mm - median of the head's pixels) / {d.depth_scale_mm}, clipped to +-{d.depth_clip}, "
                     "0 where no reading")
        if d.video_norm == "session":
            text += "; minus the session's mean frame, divided by the pixel std of the deviations"
        return text
    lead = d.lead_s.get(m, 0.0)
    return (f"every channel z-scored with the session's mean and std; the window starts {lead * 1000:.0f} ms "
            "before the video window" if lead else "every channel z-scored with the session's mean and std")


def write_card(out: str | os.PathLike, source: ExportSource, windows: Windows, inputs: dict[str, dict],
               head: dict | None, accuracy: dict, *, quantize: str, threads: list[int]) -> dict[str, Any]:
    """Write ``README.md`` then ``config.json`` into ``out``; return the config.

    Parameters
    ----------
    out : path-like
        The edge folder (its graphs are written already).
    source : ExportSource
        What was exported.
    windows : Windows
        The calibration windows.
    inputs : dict of str to dict
        Per modality, the encoder's entry (file, shape, quantization, variants...).
    head : dict | None
        The recognizer head's entry.
    accuracy : dict
        ``n_windows``, ``retrieval_r1`` and, for a recognizer, ``recognition``.
    quantize : str
        What was asked (``int8`` or ``none``).
    threads : list of int
        The thread counts timed (the first decided the variant).
    """
    import onnxruntime
    import torch

    out = Path(out)
    model_dir = source.path / "model" if source.kind == "pretraining-run" else source.path
    for m, entry in inputs.items():
        entry["rate_hz"] = windows.rates_hz.get(m)
        entry["preprocessing"] = preprocessing(source, m)
    config = {
        "format": EDGE_FORMAT, "format_version": EDGE_VERSION,
        "source": {"path": str(source.path), "kind": source.kind, "weights_sha256": weights_sha256(model_dir)},
        "window_s": source.data.window_s, "data": source.data.model_dump(mode="json"),
        "inputs": inputs, "head": head,
        "quantize": quantize, "min_speedup": MIN_SPEEDUP, "decided_at_threads": threads[0], "threads_timed": threads,
        "calibration": {"sessions": [str(s) for s in windows.sessions], "n_windows": len(windows)},
        "accuracy": accuracy,
        "exported_with": {"emosync": software_version(), "torch": torch.__version__,
                          "onnxruntime": onnxruntime.__version__, "opset": OPSET, "cpu": platform.processor() or
                          platform.machine()},
    }
    (out / "README.md").write_text(render_markdown(config))
    tmp = out / (CONFIG_NAME + ".tmp")
    tmp.write_text(json.dumps(config, indent=2))
    os.replace(tmp, out / CONFIG_NAME)
    return config


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render_markdown(config: dict[str, Any]) -> str:
    """The card (Markdown) of an edge folder's config."""
    src, acc = config["source"], config["accuracy"]
    lines = [f"# Edge model: {Path(src['path']).name}", "",
             f"ONNX export of the {src['kind']} `{src['path']}` (weights SHA-256 `{src['weights_sha256'][:16]}...`), "
             f"made by emosync {config['exported_with']['emosync']} with torch {config['exported_with']['torch']} "
             f"(opset {config['exported_with']['opset']}), checked and timed with onnxruntime "
             f"{config['exported_with']['onnxruntime']} on `{config['exported_with']['cpu']}`. Load it with "
             "`fusion.edge.runtime.EdgeModel(folder)` (onnxruntime only).", "",
             "## Inputs", "",
             f"One window is {config['window_s']} s. Every graph takes float32, batch first, and returns unit-norm "
             "embeddings (`embedding`, and `to_<partner>` for comparing with a partner modality).", "",
             "| modality | file | input shape | rate (Hz) | outputs | preprocessing |", "|---|---|---|---|---|---|"]
    for m, e in config["inputs"].items():
        lines.append(f"| {m} | `{e['file']}` | ({', '.join(map(str, e['shape']))}) | {_fmt(e['rate_hz'], 1)} | "
                     f"{', '.join(e['outputs'])} (each {e['embed_dim']}) | {e['preprocessing']} |")
    head = config.get("head")
    if head:
        shape = ", ".join(map(str, head["shape"]))
        lines += ["", f"Recognizer head `{head['file']}`: input `{head['input']}` ({shape})"
                      f" = the moment embeddings of {head['modalities']} times {head['scale']:.3f}, zero for a missing "
                      f"view, concatenated; output logits over {head['classes']} ({head['class_set']}); clips "
                      f"centred on the {head['anchor']}. fp32 ({head['reason']}); max abs diff vs PyTorch "
                      f"{head['max_abs_diff_fp32_vs_torch']:.2e}."]
    threads = config["threads_timed"]
    lines += ["", "## Quantization and latency", "",
              f"Asked: `{config['quantize']}`. Each encoder keeps int8 only where it is at least "
              f"{config['min_speedup']}x faster than fp32 at {config['decided_at_threads']} thread(s) (one window, "
              "batch 1; median of timed runs, range in brackets).", "",
              "| modality | variant | deployed | size (kB) | max abs diff vs PyTorch | "
              + " | ".join(f"ms/window, {t} thread(s)" for t in threads) + " |",
              "|---|---|---|---|---|" + "---|" * len(threads)]
    for m, e in config["inputs"].items():
        for variant, v in e["variants"].items():
            if "error" in v:
                lines.append(f"| {m} | {variant} | | | failed: {v['error'][:80]} |" + " |" * len(threads))
                continue
            times = [v["latency"][str(t)] for t in threads]
            lines.append(f"| {m} | {variant} | {'yes' if variant == e['quantization'] else ''} | "
                         f"{v['size_bytes'] / 1000:.1f} | {v['max_abs_diff_vs_torch']:.2e} | "
                         + " | ".join(f"{t['median_ms']:.3f} [{t['min_ms']:.3f}, {t['max_ms']:.3f}]" for t in times)
                         + " |")
    lines += [""] + [f"- {m}: **{e['quantization']}**: {e['reason']}." for m, e in config["inputs"].items()]
    lines += ["", "## Accuracy", "",
              f"On the {acc['n_windows']} calibration windows of {len(config['calibration']['sessions'])} session(s) "
              "(the same windows calibrated static int8). Cross-modal retrieval R@1 (chance "
              f"{_fmt(acc['retrieval_r1'].get('chance'))}):", ""]
    table = acc["retrieval_r1"].get("per_pair", {})
    if table:
        models = list(next(iter(table.values())))
        lines += ["| pair | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
        lines += [f"| {pair} | " + " | ".join(_fmt(row[k]) for k in models) + " |" for pair, row in table.items()]
        lines += ["", "Largest R@1 change against ONNX fp32: " + ", ".join(
            f"{k} {v:.3f}" for k, v in acc["retrieval_r1"]["max_abs_change_vs_fp32"].items()) + "."]
    else:
        lines.append("(one modality: no retrieval pair)")
    rec = acc.get("recognition")
    if rec is not None:
        if rec["uf1"]:
            lines += ["", f"Recognition UF1 on {rec['n_clips']} labelled expressions of the calibration sessions: "
                      + ", ".join(f"{k} {v:.3f}" for k, v in rec["uf1"].items()) + "; largest change against ONNX "
                      "fp32: " + ", ".join(f"{k} {v:.3f}" for k, v in rec["max_abs_change_vs_fp32"].items()) + "."]
        else:
            lines += ["", f"Recognition UF1 not measured: {rec['why_not']}"]
    lines.append("")
    return "\n".join(lines)
