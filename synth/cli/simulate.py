"""Command-line front end of synth: ``simulate`` (the simulated rig)."""

from __future__ import annotations

import sys
import threading
import time
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

# Wide output when piped (logs, CI): rich would otherwise truncate tables to 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=160)


def simulate(
    profile: str = typer.Option("default",
                                help="Rig profile in configs/rig/ (default, light, realistic, highspeed) "
                                     "or a YAML path."),
    duration: Optional[float] = typer.Option(None, help="Seconds to run (default: until Ctrl-C)."),
    seed: int = typer.Option(0, help="Seed of the AU timeline and all signals (same seed, same samples)."),
    name_prefix: str = typer.Option("", help="Prefix for every stream name (to run several rigs at once)."),
    set_: list[str] = typer.Option([], "--set", help="Config override, repeatable: --set emg.srate_hz=1500."),
) -> None:
    """Run the simulated rig: real LSL outlets for RGB, depth, EMG, EEG, AUs and markers.

    Example: emosync simulate --profile default --duration 120 --seed 7

    The realistic profile adds head motion, talking, lighting changes, camera noise and subject
    differences (each switchable: --set talking.enabled=false); see docs/simulated-rig.md.
    """
    from acquisition.utils.config import ConfigError
    from acquisition.cli.common import install_stop_handlers

    from synth.rig import SimulatedRig, load_rig_config

    overrides = list(set_) + ([f"name_prefix={name_prefix}"] if name_prefix else [])
    try:
        config = load_rig_config(profile, overrides)
        rig = SimulatedRig(config, seed=seed, duration_s=duration, profile=profile)
    except (ConfigError, ValueError) as err:
        Console(stderr=True).print(f"[bold red]error:[/] {err}")
        raise typer.Exit(1) from None
    table = Table(title=f"Simulated rig '{profile}', seed {seed}")
    for column in ("stream", "LSL type", "rate (Hz)", "source_id"):
        table.add_column(column)
    types = {"rgb": "VideoRaw", "depth": "VideoRaw", "emg": "EMG", "eeg": "EEG", "au": "ActionUnits",
             "markers": "Markers"}
    for key in rig.enabled_streams:
        rate = {"rgb": config.rgb.fps, "depth": config.depth.fps, "emg": config.emg.srate_hz,
                "eeg": config.eeg.srate_hz, "au": config.au.srate_hz, "markers": 0}[key]
        table.add_row(rig.stream_name(key), types[key], f"{rate:g}", rig.source_id(key))
    console.print(table)
    confounds = [name for name in ("head_motion", "talking", "lighting", "camera_noise", "subjects")
                 if getattr(config, name).enabled]
    if confounds or config.face.family != "default":
        console.print(f"Confounds on: {', '.join(confounds) or 'none'}; face family {config.face.family}; "
                      f"{len(rig.talking_intervals())} talking bouts scheduled.")
    console.print(f"{len(rig.timeline.expressions)} expressions scheduled; "
                  f"{'Ctrl-C to stop' if duration is None else f'running {duration:g} s'}.")
    stop = threading.Event()
    install_stop_handlers(stop)
    started = time.monotonic()
    rig.run(duration, stop_event=stop)
    stats = rig.stats()
    console.print(f"Stopped after {time.monotonic() - started:.1f} s; pushed "
                  + ", ".join(f"{name}: {int(s['pushed'])}" for name, s in stats.items()))
    worst = max((s["max_lag_s"] for s in stats.values()), default=0.0)
    console.print(f"Largest lag behind real time: {worst * 1e3:.0f} ms (limit {config.max_lag_s * 1e3:.0f} ms).")
    if worst > config.max_lag_s:
        console.print("[yellow]warning:[/] the rig fell behind real time (machine too busy).")
