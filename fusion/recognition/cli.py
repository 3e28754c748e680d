"""Command-line front end of expression recognition: ``emosync recognize train|evaluate|predict``.

Registered by ``emosync`` as a sub-command group. Libraries are imported inside each command, so
``emosync --help`` stays light; library errors (bad input, bad config) become ``fail(...)`` (exit 1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from acquisition.cli.common import RepeatableOptionsGroup, console, fail

app = typer.Typer(help="Recognize expressions (MEGC 2019 classes) in expression intervals: train, evaluate "
                       "leave-one-subject-out, label spotted intervals.", no_args_is_help=True,
                  cls=RepeatableOptionsGroup)

ERRORS = (FileNotFoundError, FileExistsError, ValueError, KeyError)


def _config(config: str, overrides: list[str], **options):
    """The recognize config with ``--set`` overrides, then the explicit options (which win)."""
    from .config import load_recognize_config

    extra = [f"{k}={v}" for k, v in options.items() if v is not None]
    return load_recognize_config(config, [*overrides, *extra])


def _encoders(encoders: Optional[Path], scratch: bool) -> Optional[Path]:
    if scratch == (encoders is not None):
        raise fail("Pass either --encoders RUN (a `emosync pretrain --out` folder) or --scratch (the same "
                   "encoders from random init), not both and not neither.")
    return encoders


def _modalities(text: Optional[str]) -> Optional[str]:
    """``rgb,depth`` -> the OmegaConf list ``[rgb,depth]`` for an override."""
    return None if text is None else "[" + ",".join(m.strip() for m in text.split(",") if m.strip()) + "]"


ENCODERS_OPT = typer.Option(None, "--encoders", help="A pretraining run folder (`emosync pretrain --out`).")
SCRATCH_OPT = typer.Option(False, "--scratch", help="Same encoders from random init, same training budget.")
CLASSES_OPT = typer.Option(None, "--classes", help="Class set: megc3 (negative/positive/surprise) or basic7.")
MODE_OPT = typer.Option(None, "--mode", help="probe (frozen encoders) or finetune (default: the config's).")
MODALITIES_OPT = typer.Option(None, "--modalities", help="Comma-separated subset of rgb,depth,emg,eeg.")
FRACTION_OPT = typer.Option(None, "--label-fraction", help="Fraction of the training clips used (per class).")
SEED_OPT = typer.Option(None, "--seed", help="Training seed (init, batches, label subset).")
INTERVALS_OPT = typer.Option(None, "--intervals", help="Marker stream with the intervals (default: Markers).")
CONFIG_OPT = typer.Option("default", "--config", "-c", help="configs/recognize name or a .yaml path.")
SET_OPT = typer.Option([], "--set", help="Config override KEY=VALUE, repeatable.")


@app.command()
def train(
    sessions: list[Path] = typer.Argument(..., help="Labelled session files (.h5)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (the recognizer's model folder)."),
    encoders: Optional[Path] = ENCODERS_OPT, scratch: bool = SCRATCH_OPT,
    classes: Optional[str] = CLASSES_OPT, mode: Optional[str] = MODE_OPT, modalities: Optional[str] = MODALITIES_OPT,
    label_fraction: Optional[float] = FRACTION_OPT, seed: Optional[int] = SEED_OPT,
    intervals: Optional[str] = INTERVALS_OPT, config: str = CONFIG_OPT, overrides: list[str] = SET_OPT,
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Train a recognizer on every expression interval of the sessions and save it.

    Example: emosync recognize train s1.h5 s2.h5 --encoders runs/r1 --classes megc3 --out runs/rec1
    """
    from .train import train_recognizer

    run = _encoders(encoders, scratch)
    try:
        cfg = _config(config, overrides, classes=classes, mode=mode, modalities=_modalities(modalities),
                      label_fraction=label_fraction, seed=seed, intervals=intervals)
        train_recognizer(sessions, cfg, out, encoders=run, progress=progress, verbose="WARNING")
    except ERRORS as err:
        raise fail(str(err)) from None
    console.print(f"Recognizer ({cfg.classes}, {cfg.mode}, {'pretrained' if run else 'scratch'} encoders) in {out}")


@app.command()
def evaluate(
    sessions: list[Path] = typer.Argument(..., help="Labelled session files (.h5) of at least two subjects."),
    encoders: Optional[Path] = ENCODERS_OPT, scratch: bool = SCRATCH_OPT,
    protocol: str = typer.Option("loso", "--protocol", help="Evaluation protocol: loso (leave one subject out)."),
    classes: Optional[str] = CLASSES_OPT, mode: Optional[str] = MODE_OPT, modalities: Optional[str] = MODALITIES_OPT,
    label_fraction: Optional[float] = FRACTION_OPT, seed: Optional[int] = SEED_OPT,
    intervals: Optional[str] = INTERVALS_OPT, config: str = CONFIG_OPT, overrides: list[str] = SET_OPT,
    out: Path = typer.Option(Path("recognize-eval"), "--out", "-o", help="Folder for loso.json and confusion.png."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Leave-one-subject-out UF1 and UAR (MEGC 2019), chance UF1, per fold, and a confusion matrix PNG.

    Example: emosync recognize evaluate sessions/*.h5 --encoders runs/r1 --protocol loso --json
    """
    from .evaluate import evaluate_loso
    from .plots import plot_confusion

    run = _encoders(encoders, scratch)
    if protocol != "loso":
        raise fail(f"Unknown protocol {protocol!r}; the only protocol is loso (leave one subject out).")
    try:
        cfg = _config(config, overrides, classes=classes, mode=mode, modalities=_modalities(modalities),
                      label_fraction=label_fraction, seed=seed, intervals=intervals)
        report = evaluate_loso(sessions, cfg, encoders=run, progress=progress and not as_json, verbose="WARNING")
    except ERRORS as err:
        raise fail(str(err)) from None
    out.mkdir(parents=True, exist_ok=True)
    report["confusion_png"] = str(plot_confusion(report["confusion"], report["classes"], out / "confusion.png",
                                                 title=f"{cfg.classes}, {cfg.mode}, {report['init']} (LOSO)"))
    (out / "loso.json").write_text(json.dumps(report, indent=2))
    if as_json:
        typer.echo(json.dumps(report))
        return
    from rich.table import Table

    table = Table(title=f"Leave-one-subject-out, {report['n_clips']} clips, {cfg.classes}")
    for col in ("fold", "test clips", "UF1", "UAR"):
        table.add_column(col)
    for fold in report["per_fold"]:
        table.add_row(fold["subject"], str(fold["n_test"]), f"{fold['uf1']:.3f}", f"{fold['uar']:.3f}")
    table.add_row("overall", str(report["n_clips"]), f"{report['uf1']:.3f}", f"{report['uar']:.3f}")
    table.add_row("chance", "", f"{report['chance_uf1']:.3f}", f"{report['chance_uar']:.3f}")
    console.print(table)
    console.print(f"Confusion matrix: {report['confusion_png']}; report: {out / 'loso.json'}")


@app.command()
def predict(
    run: Path = typer.Argument(..., help="A recognizer folder (`emosync recognize train --out`)."),
    session: Path = typer.Argument(..., help="A session file (.h5); the labelled marker stream is added to it."),
    intervals: Optional[str] = typer.Option(None, "--intervals", help="Marker stream with the intervals "
                                            "(default: the session's one *-Spotted stream)."),
    out_stream: Optional[str] = typer.Option(None, "--out-stream", help="Stream to write "
                                             "(default: <intervals>-Recognized)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a stream an earlier predict wrote."),
    as_json: bool = typer.Option(False, "--json", help="Print the predictions as JSON."),
) -> None:
    """Label expression intervals (spotted ones by default) with the recognizer; writes a marker stream.

    Example: emosync recognize predict runs/rec1 session.h5 --intervals cam-AU-Spotted
    """
    from .intervals import default_spotted_stream
    from .predict import RECOGNIZED_SUFFIX, predict_session

    try:
        stream = intervals if intervals or not session.is_file() else default_spotted_stream(session)
        found = predict_session(run, session, intervals=stream, out_stream=out_stream, overwrite=overwrite,
                                verbose="WARNING")
    except ERRORS as err:
        raise fail(str(err)) from None
    if as_json:
        typer.echo(json.dumps(found))
        return
    name = out_stream or f"{stream}{RECOGNIZED_SUFFIX}"
    console.print(f"Labelled {len(found)} interval(s) of {session.name} ({name}): " + ", ".join(
        f"{p['onset_s']:.2f}-{p['offset_s']:.2f} s {p['class']}" for p in found[:10])
                  + (" ..." if len(found) > 10 else ""))
