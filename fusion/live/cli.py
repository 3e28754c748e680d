"""Command-line front end of live inference: ``emosync live`` (registered by ``emosync``).

The library is imported inside the command, so ``emosync --help`` loads neither onnxruntime nor scipy;
bad input (a model folder, a stream that does not fit, a query that finds nothing) becomes
``fail(...)`` (exit 1) with the library's message.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import typer

from acquisition.cli.common import console, fail, install_stop_handlers


def live(
    model: Path = typer.Option(..., "--model", "-m", help="The edge folder (emosync export-model --out)."),
    video: str = typer.Option(None, "--video", help="LSL query of the video stream(s), e.g. \"type='VideoRaw'\" "
                                                    "(an RGB and a depth stream are told apart by encoding)."),
    emg: str = typer.Option(None, "--emg", help="LSL query of the facial EMG, e.g. \"type='EMG'\"; the spotter and "
                                                "the AU estimates use it."),
    eeg: str = typer.Option(None, "--eeg", help="LSL query of the EEG, e.g. \"type='EEG'\"."),
    name: str = typer.Option("Live", "--name", help="Prefix of the published streams: NAME-Expressions, NAME-AU, "
                                                    "NAME-Latency."),
    duration: float = typer.Option(None, "--duration", help="Stop after this many seconds (default: Ctrl-C)."),
    config: str = typer.Option("default", "--config", help="configs/live/<name>.yaml, or a path."),
    overrides: list[str] = typer.Option([], "--set", help="Override a setting, e.g. --set hop_s=0.2; repeatable."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Spot and label expressions on live LSL streams with an edge model, and publish them as LSL streams.

    Resolves the named streams, keeps sliding windows of the model's geometry, runs the ONNX encoders (and
    the recognizer head) every hop, spots expressions causally on the EMG (or video motion) and publishes
    NAME-Expressions markers, NAME-AU estimates and NAME-Latency, which `emosync record` captures.

    Example: emosync live --model models/edge1 --video "type='VideoRaw'" --emg "type='EMG'" --duration 60
    """
    try:
        from acquisition.utils.config import ConfigError

        from .config import load_live_config
        from .inputs import StreamNotFound
        from .runner import LiveRunner
    except ImportError as err:
        raise fail(str(err)) from None
    try:
        settings = load_live_config(Path(config) if Path(config).suffix in (".yaml", ".yml") else config, overrides)
    except ConfigError as err:
        raise fail(str(err)) from None
    try:
        runner = LiveRunner(model, video=video, emg=emg, eeg=eeg, name=name, config=settings)
    except (FileNotFoundError, ValueError, StreamNotFound, TimeoutError, ImportError) as err:
        raise fail(str(err)) from None
    stop = threading.Event()
    install_stop_handlers(stop)
    console.print(f"Live inference on {', '.join(str(s.description) for s in runner.inputs.values())}; publishing "
                  f"{', '.join(runner.outlets.names.values())}. Ctrl-C stops.")
    summary = runner.run(duration, stop_event=stop)
    if as_json:
        console.print_json(json.dumps(summary.to_dict()))
        return
    lat = summary.latency_ms
    console.print(f"{summary.windows} windows in {summary.duration_s:.1f} s ({summary.skipped} skipped to keep up, "
                  f"{summary.incomplete} incomplete); latency p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, "
                  f"max {lat['max']:.1f} ms; {len(summary.expressions)} expression(s) published")
    for e in summary.expressions:
        console.print(f"  {e['onset_s']:.2f}-{e['offset_s']:.2f} s {e['label']} ({e['kind']})")
