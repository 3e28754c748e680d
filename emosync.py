"""The ``emosync`` command: a thin dispatcher to acquisition, synth and fusion.

Each package owns its commands (``acquisition/cli.py``, ``synth/cli.py``); this
module only assembles them; the end-to-end ``demo`` lives in ``emosync_demo.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from acquisition import cli as acquisition_cli
from acquisition import cli_card, cli_faces, cli_mne, cli_plot, cli_video, cli_xdf
from fusion import cli as fusion_cli
from synth import cli as synth_cli
from synth import cli_audit, cli_spot, cli_synth
from emosync_demo import STAGES, DemoRun, DemoStageError

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
app.command("card")(cli_card.card)
cli_synth.app.command("audit")(cli_audit.audit)
app.add_typer(cli_synth.app, name="synth")

console = acquisition_cli.console


@app.command()
def demo(
    out: Path = typer.Option(Path("emosync-demo"), help="Folder for everything the demo writes."),
    quick: bool = typer.Option(False, help="Light rig (160x120 video), shorter recordings, fewer training steps."),
    duration: Optional[float] = typer.Option(None, help="Seconds to record (default 20, or 8 with --quick)."),
    seed: int = typer.Option(7, help="Seed of the simulated rig."),
    skip: list[str] = typer.Option([], "--skip", help=f"Stage to skip, repeatable: {', '.join(STAGES)}."),
    redo: list[str] = typer.Option([], "--redo", help="Stage to run again although it finished before, repeatable."),
    overrides: list[str] = typer.Option([], "--set", help="configs/demo override KEY=VALUE, repeatable "
                                                         "(e.g. pretrain_steps=500)."),
) -> None:
    """The whole pipeline on a machine without sensors: record, annotate, pretrain, synthesize, audit, data cards.

    Stages: record (simulated rig over real LSL, summary, timeline PNG), annotate (MediaPipe faces),
    pretrain (multi-view contrastive, retrieval figures), synth (tiny AU-conditioned generator, a small
    micro/macro corpus, privacy audit), card (data cards). A stage that finished is skipped when the demo
    runs again with the same --out (an interrupted one resumes); --skip and --redo choose.

    Example: emosync demo --quick --out demo1
    """
    from acquisition._config import ConfigError

    unknown = sorted((set(skip) | set(redo)) - set(STAGES))
    if unknown:
        raise acquisition_cli._fail(f"unknown stage(s) {unknown}; stages are {list(STAGES)}.")
    try:
        run = DemoRun(out, quick=quick, record_s=duration, seed=seed, overrides=overrides, console=console)
        for stage in STAGES:
            run.run_stage(stage, skip=stage in skip, redo=stage in redo)
    except (DemoStageError, ConfigError) as err:
        raise acquisition_cli._fail(str(err)) from None
    run.print_overview()


if __name__ == "__main__":
    app()
