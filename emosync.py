"""The ``emosync`` command: a thin dispatcher to acquisition, synth and fusion.

Each package owns its commands (``acquisition/cli.py``, ``synth/cli.py``); this
module only assembles them, and runs the end-to-end ``demo``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from acquisition import cli as acquisition_cli
from acquisition import cli_faces, cli_mne, cli_plot, cli_video, cli_xdf
from fusion import cli as fusion_cli
from synth import cli as synth_cli
from synth import cli_spot

app = typer.Typer(
    name="emosync",
    help="Record synchronized multimodal sessions over LSL, pretrain fusion encoders, synthesize expressions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("record")(acquisition_cli.record)
app.command("info")(acquisition_cli.info)
app.command("stream-device")(acquisition_cli.stream_device)
app.command("import-xdf")(cli_xdf.import_xdf)
app.command("replay")(cli_xdf.replay)
app.command("import-table")(cli_mne.import_table)
app.command("export")(cli_mne.export)
app.command("plot")(cli_plot.plot)
app.command("report")(cli_plot.report)
app.command("annotate")(cli_faces.annotate)
app.command("import-video")(cli_video.import_video)
app.command("import-depth")(cli_video.import_depth)
app.command("stream-camera")(cli_video.stream_camera)
app.command("spot")(cli_spot.spot)
app.command("pretrain")(fusion_cli.pretrain)
app.command("evaluate")(fusion_cli.evaluate)
app.command("embed")(fusion_cli.embed)
app.command("simulate")(synth_cli.simulate)

console = acquisition_cli.console


@app.command()
def demo(
    out: Path = typer.Option(Path("emosync-demo"), help="Folder for everything the demo writes."),
    quick: bool = typer.Option(False, help="Light rig (160x120 video) and a shorter recording."),
    duration: Optional[float] = typer.Option(None, help="Seconds to record (default 20, or 8 with --quick)."),
    seed: int = typer.Option(7, help="Seed of the simulated rig."),
) -> None:
    """Simulate the rig, record it over real LSL, summarize the session and draw its timeline.

    Example: emosync demo --quick
    """
    import uuid

    from acquisition import open_session
    from acquisition.plot import plot_timeline
    from acquisition.recorder import SessionRecorder
    from acquisition.summary import summarize_session

    out.mkdir(parents=True, exist_ok=True)
    record_s = duration if duration is not None else (8.0 if quick else 20.0)
    profile = "light" if quick else "default"
    prefix = f"demo{uuid.uuid4().hex[:6]}_"
    session_path = out / f"session_seed{seed}_{time.strftime('%Y%m%d-%H%M%S')}.h5"
    console.rule("[bold]emosync demo[/]: 1/2 simulate + record")
    console.print(f"Starting the simulated rig ('{profile}' profile, seed {seed}) in its own process...")
    sim = subprocess.Popen([sys.executable, "-m", "emosync", "simulate", "--profile", profile, "--seed", str(seed),
                            "--duration", str(record_s + 15), "--name-prefix", prefix],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        recorder = SessionRecorder(session_path, streams=[f"starts-with(name,'{prefix}')"],
                                   subject_id="sub-sim01", notes=f"emosync demo, rig seed {seed}")
        recorder.start()
        with console.status(f"Recording {record_s:g} s of RGB, depth, EMG, EEG, AUs and markers..."):
            recorder.wait(record_s)
            recorder.stop()
    except Exception as err:
        sim.terminate()
        _, sim_stderr = sim.communicate(timeout=30)
        acquisition_cli.err_console.print(f"[bold red]error:[/] {err}")
        if sim_stderr.strip():
            acquisition_cli.err_console.print("The simulated rig said:\n" + sim_stderr.strip()[-2000:])
        raise typer.Exit(1) from None
    sim.terminate()
    sim.communicate(timeout=30)
    console.rule("[bold]2/2 summary and timeline[/]")
    timeline_path = session_path.with_suffix(".timeline.png")
    with open_session(session_path) as session:
        acquisition_cli.print_summary(summarize_session(session))
        with console.status("Drawing the session timeline..."):
            plot_timeline(session, timeline_path)
    console.print(f"\nSession:  [bold]{session_path}[/]  (inspect with `emosync info {session_path}`)")
    console.print(f"Timeline: [bold]{timeline_path}[/]  (video, depth, markers, AU ground truth, EMG, EEG on one axis)")
    console.print("Samples lost: see the 'dropped' and 'gaps' columns (0 expected); 'jitter us' shows the stamp "
                  "jitter before (and after) dejitter.")


if __name__ == "__main__":
    app()
