"""The whole edge export: graphs, parity, int8 variants, timings, accuracy, the card (``emosync export-model``).

:func:`export_model` reads the model and calibration windows (:mod:`.source`), exports every
encoder (:mod:`.export`), checks it against PyTorch on the windows (max abs difference of every
output), makes and times the int8 variants and keeps the fastest (:mod:`.quantize`), measures what
quantization does to cross-modal retrieval R@1 on the same windows (and, for a recognizer, to
UF1 on the sessions' labelled expressions), and writes the folder and its card (:mod:`.card`).
Variants are built in a scratch folder inside ``out``; only the deployed graphs stay.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from acquisition import logger
from acquisition.utils.logs import verbose

from ..evaluate import retrieval_report
from .card import write_card
from .export import HEAD_INPUT, EncoderGraph, HeadGraph, export_graph, max_abs_diff, onnx_outputs, torch_outputs
from .quantize import VARIANTS, choose_variant, preprocess, quantize_dynamic_int8, quantize_static_int8
from .runtime import CONFIG_NAME, make_session, measure_latency, read_edge_config
from .source import ExportSource, Windows, load_source, read_windows

#: Values of ``quantize``.
QUANTIZE = ("int8", "none")


@verbose
def export_model(model: str | os.PathLike, out: str | os.PathLike, *, calibrate: Sequence[str | os.PathLike],
                 quantize: str = "int8", max_windows: int = 128, threads: Sequence[int] = (1, 2),
                 repeats: int = 5, overwrite: bool = False, verbose: bool | str | None = None) -> dict[str, Any]:
    """Export a pretraining run's encoders (or a recognizer) to an edge folder of ONNX graphs.

    Parameters
    ----------
    model : path-like
        A pretraining run folder (``emosync pretrain --out``) or a recognizer folder
        (``emosync recognize train --out``).
    out : path-like
        The edge folder to write.
    calibrate : sequence of path-like
        Session files: their windows check the graphs, calibrate static int8 and measure accuracy.
    quantize : ``"int8"`` | ``"none"``
        ``int8``: build static and dynamic int8 variants and deploy the fastest where it beats fp32;
        ``none``: fp32 only.
    max_windows : int
        Most calibration windows used.
    threads : sequence of int
        onnxruntime thread counts to time; the first decides the variant.
    repeats : int
        Timed runs per variant and thread count (median and range reported).
    overwrite : bool
        Replace an existing edge folder at ``out`` (never a folder of anything else).
    %(verbose)s

    Returns
    -------
    config : dict
        What was written to ``out/config.json`` (see :func:`fusion.edge.card.write_card`).

    Raises
    ------
    FileNotFoundError
        No such model folder or session file.
    FileExistsError
        ``out`` exists and ``overwrite`` is False, or it is not an edge folder.
    ValueError
        A model folder of another kind or a newer emosync; a session lacking a modality the model
        needs; bad ``quantize``, ``threads`` or ``repeats``.
    """
    if quantize not in QUANTIZE:
        raise ValueError(f"quantize must be one of {QUANTIZE}, got {quantize!r}.")
    threads = [int(t) for t in threads]
    if not threads or min(threads) < 1 or repeats < 1:
        raise ValueError(f"threads must be positive counts and repeats >= 1, got {threads} and {repeats}.")
    out = Path(out)
    _prepare_out(out, overwrite=overwrite)
    source = load_source(model)
    windows = read_windows(source, calibrate, max_windows=max_windows)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".export-") as scratch:
        work = Path(scratch)
        inputs, outputs, files = {}, {}, {}
        for m in source.modalities:
            inputs[m], outputs[m], files[m] = _export_encoder(source, m, windows, work, out, quantize=quantize,
                                                    threads=threads, repeats=repeats)
        accuracy = {"n_windows": len(windows), "retrieval_r1": _retrieval(source, windows, outputs, inputs)}
        head = None
        if source.recognizer is not None:
            head = _export_head(source, windows, outputs, out)
            accuracy["recognition"] = _recognition_scores(source, calibrate, inputs, files)
    config = write_card(out, source, windows, inputs, head, accuracy, quantize=quantize, threads=threads)
    logger.info("Exported %s to %s: %s", source.path, out,
                ", ".join(f"{m} {spec['quantization']}" for m, spec in inputs.items()))
    return config


def _prepare_out(out: Path, *, overwrite: bool) -> None:
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not overwrite:
        raise FileExistsError(f"{out} exists; choose another --out or pass --overwrite to replace the edge model "
                              "in it.")
    try:
        read_edge_config(out)
    except (FileNotFoundError, ValueError):
        raise FileExistsError(f"{out} exists and is not an edge model folder (no emosync-edge {CONFIG_NAME}); "
                              "refusing to replace it. Choose another --out.") from None
    shutil.rmtree(out)


def _export_encoder(source: ExportSource, m: str, windows: Windows, work: Path, out: Path, *, quantize: str,
                    threads: list[int], repeats: int
                    ) -> tuple[dict[str, Any], dict[str, list[np.ndarray]], dict[str, Path]]:
    """Export, check, quantize and time one encoder; copy the chosen variant to ``out/<m>.onnx``.

    Returns the card's entry for ``m``, every variant's outputs on the windows (``torch`` too), each a
    list of (n_windows, embed_dim) arrays in the graph's output order, and the files of the variants
    that run (in ``work``).
    """
    graph = EncoderGraph(source.encoders.encoders[m])
    x = windows.views[m]
    files = {"fp32": export_graph(graph, x, work / f"{m}.fp32.onnx", m)}
    results: dict[str, list[np.ndarray]] = {"torch": torch_outputs(graph, x)}
    variants: dict[str, dict[str, Any]] = {}
    if quantize == "int8":
        pre = preprocess(files["fp32"], work / f"{m}.pre.onnx")
        for variant, make in (("int8-static", lambda p: quantize_static_int8(pre, p, x)),
                              ("int8-dynamic", lambda p: quantize_dynamic_int8(pre, p))):
            try:
                files[variant] = make(work / f"{m}.{variant}.onnx")
            except Exception as err:  # noqa: BLE001 -- the quantizer's failures are many and untyped; fp32 stays
                logger.warning("%s %s quantization failed (%s); it is left out.", m, variant, err)
                variants[variant] = {"error": f"{type(err).__name__}: {err}"}
    for variant, fname in files.items():
        try:
            results[variant] = onnx_outputs(make_session(fname), x)
        except Exception as err:  # noqa: BLE001 -- e.g. an int8 kernel this onnxruntime build lacks
            logger.warning("%s %s does not run (%s); it is left out.", m, variant, err)
            variants[variant] = {"error": f"{type(err).__name__}: {err}"}
            continue
        variants[variant] = {
            "size_bytes": fname.stat().st_size,
            "max_abs_diff_vs_torch": max_abs_diff(results["torch"], results[variant]),
            "latency": {str(t): measure_latency(fname, x[:1], threads=t, repeats=repeats) for t in threads}}
    if "fp32" not in results:
        raise RuntimeError(f"The fp32 ONNX graph of the {m} encoder does not run in onnxruntime: "
                           f"{variants['fp32']['error']}")
    timed = {v: spec["latency"][str(threads[0])]["median_ms"] for v, spec in variants.items() if "latency" in spec}
    chosen, reason = choose_variant(timed) if quantize == "int8" else ("fp32", "fp32 asked for (--quantize none)")
    shutil.copyfile(files[chosen], out / f"{m}.onnx")
    entry = {"file": f"{m}.onnx", "input": m, "shape": ["batch", *x.shape[1:]], "dtype": "float32",
             "outputs": graph.output_names, "embed_dim": int(results["torch"][0].shape[1]),
             "quantization": chosen, "reason": reason,
             "max_abs_diff_fp32_vs_torch": variants["fp32"]["max_abs_diff_vs_torch"],
             "max_abs_diff_deployed_vs_torch": variants[chosen]["max_abs_diff_vs_torch"],
             "variants": {v: variants[v] for v in VARIANTS if v in variants}}
    logger.info("%s: fp32 vs PyTorch max abs diff %.2e; deployed %s (%s)", m, entry["max_abs_diff_fp32_vs_torch"],
                chosen, reason)
    return entry, results, {v: f for v, f in files.items() if v in results}


def _embeddings(source: ExportSource, outputs: dict[str, dict[str, list[np.ndarray]]],
                pick: dict[str, str]) -> dict[str, np.ndarray]:
    """``fusion.evaluate``-style embeddings (``m``, ``a->b``, ``available/m``) of the variant ``pick[m]``."""
    emb: dict[str, np.ndarray] = {}
    for m in source.modalities:
        partners = source.encoders.encoders[m].partners
        for name, z in zip(["", *partners], outputs[m][pick[m]]):
            emb[f"{m}->{name}" if name else m] = z
        emb[f"available/{m}"] = np.ones(len(z), bool)
    return emb


def _picks(source: ExportSource, outputs: dict, inputs: dict) -> dict[str, dict[str, str]]:
    """Which variant each encoder uses in each compared model: every variant everywhere, and the deployed mix."""
    picks = {"pytorch": {m: "torch" for m in source.modalities}}
    for variant in VARIANTS:
        if all(variant in outputs[m] for m in source.modalities):
            picks[variant] = {m: variant for m in source.modalities}
    picks["deployed"] = {m: inputs[m]["quantization"] for m in source.modalities}
    return picks


def _retrieval(source: ExportSource, windows: Windows, outputs: dict, inputs: dict) -> dict[str, Any]:
    """R@1 of every ordered pair for PyTorch, each variant and the deployed mix; changes against ONNX fp32."""
    if len(source.modalities) < 2:
        return {}
    table: dict[str, dict[str, float]] = {}
    for model, pick in _picks(source, outputs, inputs).items():
        for pair, r in retrieval_report(_embeddings(source, outputs, pick), source.modalities).items():
            table.setdefault(pair, {})[model] = r["R@1"]
    if not table:
        return {}
    change = {model: max(abs(row[model] - row["fp32"]) for row in table.values())
              for model in next(iter(table.values())) if model != "fp32"}
    return {"per_pair": table, "max_abs_change_vs_fp32": change, "chance": 1.0 / len(windows)}


def _fused(source: ExportSource, emb: dict[str, np.ndarray], available: dict[str, np.ndarray]) -> np.ndarray:
    """:meth:`RecognitionModel.features` from embeddings: scaled, zero where a view is unavailable."""
    rec = source.recognizer
    return np.concatenate([emb[m] * np.float32(rec.scale) * available[m][:, None] for m in rec.modalities],
                          1).astype(np.float32)


@torch.no_grad()
def _export_head(source: ExportSource, windows: Windows, outputs: dict, out: Path) -> dict[str, Any]:
    """Export the recognizer's head to ``out/head.onnx`` (fp32: one linear layer has nothing to gain from int8)."""
    rec = source.recognizer
    graph = HeadGraph(rec.classifier)
    ones = {m: np.ones(len(windows), bool) for m in rec.modalities}
    features = _fused(source, _embeddings(source, outputs, {m: "torch" for m in rec.modalities}), ones)
    fname = export_graph(graph, features, out / "head.onnx", HEAD_INPUT)
    diff = max_abs_diff(torch_outputs(graph, features), onnx_outputs(make_session(fname), features))
    head = {"file": fname.name, "input": HEAD_INPUT, "shape": ["batch", int(features.shape[1])],
            "outputs": graph.output_names, "classes": list(rec.classes), "class_set": rec.class_set,
            "modalities": list(rec.modalities), "embed_dim": int(rec.encoders.config["embed_dim"]),
            "scale": float(rec.scale), "anchor": rec.anchor, "quantization": "fp32",
            "reason": "one linear layer: int8 has nothing to gain", "max_abs_diff_fp32_vs_torch": diff,
            "size_bytes": fname.stat().st_size}
    return head


@torch.no_grad()
def _recognition_scores(source: ExportSource, calibrate: Sequence[str | os.PathLike], inputs: dict,
                        files: dict[str, dict[str, Path]]) -> dict[str, Any]:
    """MEGC UF1 on the calibration sessions' labelled expressions: PyTorch, each variant, the deployed mix.

    The head is the PyTorch classifier for every row (it is exported in fp32), so rows differ only by
    the encoders' variant.
    """
    from ..config import PretrainConfig
    from ..recognition.evaluate import confusion_matrix, megc_scores
    from ..recognition.intervals import read_all_intervals
    from ..recognition.train import class_targets, read_clips

    rec = source.recognizer
    try:
        clips = read_clips(read_all_intervals(calibrate), PretrainConfig(data=source.data), anchor=rec.anchor)
        targets = class_targets(clips, rec.class_set)
    except ValueError as err:
        logger.warning("UF1 not measured: %s", err)
        return {"n_clips": 0, "uf1": {}, "why_not": str(err)}
    views = {m: clips.views[m].numpy().astype(np.float32) for m in rec.modalities}
    available = {m: clips.available[m].numpy() for m in rec.modalities}
    outputs = {m: {"torch": torch_outputs(EncoderGraph(rec.encoders.encoders[m]), views[m])} for m in rec.modalities}
    for m in rec.modalities:
        for variant, fname in files[m].items():
            try:
                outputs[m][variant] = onnx_outputs(make_session(fname), views[m])
            except Exception:  # noqa: BLE001 -- a variant that does not run was reported by _export_encoder
                continue
    uf1 = {}
    for model, pick in _picks(source, outputs, inputs).items():
        features = _fused(source, _embeddings(source, outputs, pick), available)
        predicted = rec.classifier(torch.from_numpy(features)).argmax(1).numpy()
        uf1[model] = megc_scores(confusion_matrix(targets, predicted, len(rec.classes)))["uf1"]
    change = {model: abs(value - uf1["fp32"]) for model, value in uf1.items() if model != "fp32"}
    return {"n_clips": len(clips), "uf1": uf1, "max_abs_change_vs_fp32": change}
