"""Command-line front end of edge export: ``emosync export-model`` (registered by ``emosync``).

The library is imported inside the command, so ``emosync --help`` loads neither torch nor onnxruntime;
library errors (bad input) become ``fail(...)`` (exit 1).
"""

from __future__ import annotations

from pathlib import Path

import typer

from acquisition.cli.common import console, fail


def export_model(
    paths: list[Path] = typer.Argument(..., help="A pretraining run folder (pretrain --out) or a recognizer folder "
                                                 "(recognize train --out), then optionally more calibration "
                                                 "sessions (so that --calibrate sessions/*.h5 works)."),
    out: Path = typer.Option(..., "--out", "-o", help="The edge folder to write (.onnx graphs, config.json, "
                                                      "README.md card)."),
    calibrate: list[Path] = typer.Option([], "--calibrate", help="Session files (.h5) whose windows check, "
                                                                 "calibrate and score the export; repeatable, or "
                                                                 "several after one --calibrate."),
    fmt: str = typer.Option("onnx", "--format", help="Export format (onnx)."),
    quantize: str = typer.Option("int8", "--quantize", help="int8 (static and dynamic variants, the faster kept "
                                                            "per encoder where it beats fp32) or none (fp32)."),
    max_windows: int = typer.Option(128, "--max-windows", help="Most calibration windows used."),
    threads: list[int] = typer.Option([1, 2], "--threads", help="onnxruntime thread counts to time, repeatable; "
                                                               "the first decides int8 or fp32."),
    repeats: int = typer.Option(5, "--repeats", help="Timed runs per variant and thread count."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing edge folder at --out."),
) -> None:
    """Export encoders (and a recognizer's head) to ONNX, int8 where it is faster, with a model card.

    Example: emosync export-model runs/r1 --format onnx --quantize int8 --calibrate sessions/*.h5 --out models/edge1
    """
    # The shell expands `--calibrate sessions/*.h5` into one option value and further positional arguments.
    model, calibrate = paths[0], [*calibrate, *paths[1:]]
    if not calibrate:
        raise fail("Pass calibration sessions: --calibrate s1.h5 [s2.h5 ...] (windows from sessions with every "
                   "modality of the model).")
    if fmt != "onnx":
        raise fail(f"--format must be onnx, got {fmt!r}.")
    try:
        from .build import export_model as run
    except ImportError as err:
        raise fail(str(err)) from None
    try:
        config = run(model, out, calibrate=calibrate, quantize=quantize, max_windows=max_windows, threads=threads,
                     repeats=repeats, overwrite=overwrite)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError, ImportError) as err:
        raise fail(str(err)) from None
    for m, e in config["inputs"].items():
        latency = e["variants"][e["quantization"]]["latency"][str(threads[0])]["median_ms"]
        console.print(f"{m}: {e['file']} {e['quantization']} ({latency:.3f} ms/window at {threads[0]} thread(s); "
                      f"fp32 vs PyTorch max abs diff {e['max_abs_diff_fp32_vs_torch']:.1e})")
    change = config["accuracy"]["retrieval_r1"].get("max_abs_change_vs_fp32", {}).get("deployed")
    if change is not None:
        console.print(f"Retrieval R@1 change (deployed vs fp32, {config['accuracy']['n_windows']} windows): "
                      f"{change:.3f}")
    console.print(f"Edge model in {out}; card {out / 'README.md'}")
