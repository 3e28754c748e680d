"""Command-line front ends of fusion: ``pretrain``, ``evaluate`` and ``embed`` (registered by ``emosync``).

``pretrain`` is also the distributed entry point: ``torchrun --nproc-per-node N -m emosync pretrain ...``
runs one copy per rank (see docs/scaling-out.md); only rank 0 prints.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer

from acquisition.cli.common import console, fail


def pretrain(
    sessions: list[Path] = typer.Argument(..., help="Session files (.h5) to pretrain on."),
    config: str = typer.Option("default", "--config", "-c", help="configs/pretrain name or a .yaml path."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (checkpoint, model/, log.csv, loss.png)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its checkpoint."),
    overrides: list[str] = typer.Option([], "--set", help="Config override KEY=VALUE, repeatable."),
    amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="bf16 autocast on CUDA (no-op on CPU); "
                                                                    "default: the config's optim.amp."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Pretrain encoders that align RGB, depth, EMG and EEG (multi-view contrastive).

    Under torchrun every rank runs this command and training is distributed (DDP):
    torchrun --nproc-per-node 4 -m emosync pretrain s1.h5 s2.h5 --out runs/r4

    Example: emosync pretrain s1.h5 s2.h5 --config tiny --out runs/r1
    """
    from .config import load_pretrain_config
    from .train import pretrain as run

    try:
        run(sessions, load_pretrain_config(config, overrides), out, resume=resume, progress=progress, amp=amp)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError) as err:
        raise fail(str(err)) from None
    if int(os.environ.get("RANK", "0")) == 0:  # torchrun's other ranks wrote nothing to report
        console.print(f"Pretrained model in {out / 'model'}; loss log {out / 'log.csv'}, curve {out / 'loss.png'}")


def evaluate(
    run: Path = typer.Argument(..., help="A pretraining output folder (--out of pretrain)."),
    sessions: list[Path] = typer.Argument(..., help="Held-out session files (.h5)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    stride: float = typer.Option(0.0, help="Window stride in seconds (default: the window length)."),
) -> None:
    """Cross-modal retrieval R@1/5/10 (pooled and within each session), linear probes, missing modalities.

    Example: emosync evaluate runs/r1 heldout.h5 --json
    """
    from .evaluate import evaluate as run_eval

    try:
        report = run_eval(run, sessions, stride_s=stride or None)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise fail(str(err)) from None
    if as_json:
        typer.echo(json.dumps(report))
        return
    from rich.table import Table

    table = Table(title=f"Cross-modal retrieval ({report['n_windows']} windows of "
                        f"{len(report['sessions'])} session(s))")
    for col in ("pair", "R@1", "R@5", "R@10", "chance", "R@1 within session", "chance within session"):
        table.add_column(col)
    for pair, r in report["retrieval"].items():
        within = report["retrieval_within_session"][pair]
        table.add_row(pair, *(f"{r[k]:.3f}" for k in ("R@1", "R@5", "R@10", "chance")),
                      f"{within['R@1']:.3f}", f"{within['chance']:.3f}")
    console.print(table)
    console.print("Pooled: ranked against every evaluated window; within session: only against the query's own "
                  "session (identity alone cannot help there). Per session: --json.")
    for section in ("linear_probe", "missing_modality"):
        console.print(section + ": " + ", ".join(f"{k} R2={v['au_r2']:.3f}" for k, v in report[section].items()))


def embed(
    run: Path = typer.Argument(..., help="A pretraining output folder."),
    session: Path = typer.Argument(..., help="A session file (.h5)."),
    out: Path = typer.Option(..., "--out", "-o", help="HDF5 file to write (kept if it exists, unless --overwrite)."),
    stride: float = typer.Option(0.0, help="Window stride in seconds (default: the window length)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
) -> None:
    """Per-window embeddings of every modality (and, with pair heads, of every ordered pair) into an HDF5 file.

    Example: emosync embed runs/r1 session.h5 --out embeddings.h5
    """
    import h5py

    from .evaluate import embed_sessions, load_run

    if out.exists() and not overwrite:
        raise fail(f"{out} exists; choose another --out or pass --overwrite to replace it.")
    try:
        model, config = load_run(run)
        emb = embed_sessions(model, config, [session], stride_s=stride or None)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise fail(str(err)) from None
    with h5py.File(out, "w") as f:
        for key, value in emb.items():
            f[key] = value
        f.attrs["run"], f.attrs["session"] = str(run), str(session)
        f.attrs["window_s"] = config.data.window_s
    console.print(f"Wrote {len(emb['time_s'])} windows x {model.modalities} embeddings to {out}")
