"""The ``emosync`` command: a thin dispatcher to acquisition, synth, fusion and data cards.

Each package owns its commands, one module per command group as in ``mne/commands``
(``acquisition/cli/``, ``fusion/cli.py``, ``synth/cli/``, ``data_cards/cli.py``); this module only
registers them, and holds ``demo``, whose stages live in ``emosync_demo.py``. Command modules import
the library inside each command, so ``emosync --help`` loads none of numpy, h5py, scipy or torch.

Under torchrun every rank runs the same command: ``torchrun --nproc-per-node 4 -m emosync pretrain ...``
(see docs/scaling-out.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from acquisition.cli import annotate as cli_annotate
from acquisition.cli import emg_code as cli_emg_code
from acquisition.cli import export as cli_export
from acquisition.cli import imports as cli_imports
from acquisition.cli import info as cli_info
from acquisition.cli import plot as cli_plot
from acquisition.cli import record as cli_record
from acquisition.cli import spot as cli_spot
from acquisition.cli import stream as cli_stream
from acquisition.cli.common import RepeatableOptionsGroup, console, fail
from data_cards import cli as cli_card
from fusion import cli as fusion_cli
from fusion.edge import cli as edge_cli
from fusion.federated import cli as federate_cli
from fusion.live import cli as live_cli
from fusion.recognition import cli as recognize_cli
from synth.cli import audit as cli_audit
from synth.cli import score as cli_score
from synth.cli import simulate as cli_simulate
from synth.cli import synth as cli_synth

app = typer.Typer(
    name="emosync",
    cls=RepeatableOptionsGroup,
    help="Record synchronized multimodal sessions over LSL, pretrain fusion encoders, synthesize expressions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# acquisition: record, inspect, import, export, stream, annotate
app.command("record")(cli_record.record)
app.command("info")(cli_info.info)
app.command("import-xdf")(cli_imports.import_xdf)
app.command("import-video")(cli_imports.import_video)
app.command("import-depth")(cli_imports.import_depth)
app.command("import-table")(cli_imports.import_table)
app.command("import-brainflow")(cli_imports.import_brainflow)
app.command("export")(cli_export.export)
app.command("stream-device")(cli_stream.stream_device)
app.command("stream-camera")(cli_stream.stream_camera)
app.command("replay")(cli_stream.replay)
app.command("plot")(cli_plot.plot)
app.command("report")(cli_plot.report)
app.command("annotate")(cli_annotate.annotate)
app.command("spot")(cli_spot.spot)
app.command("emg-code")(cli_emg_code.emg_code)
# fusion, synth, data cards
app.command("pretrain")(fusion_cli.pretrain)
app.command("evaluate")(fusion_cli.evaluate)
app.command("embed")(fusion_cli.embed)
app.command("export-model")(edge_cli.export_model)
app.command("live")(live_cli.live)
app.command("simulate")(cli_simulate.simulate)
app.command("card")(cli_card.card)
cli_synth.app.command("audit")(cli_audit.audit)
cli_synth.app.command("score")(cli_score.score)
app.add_typer(cli_synth.app, name="synth")
app.add_typer(recognize_cli.app, name="recognize")
app.add_typer(federate_cli.app, name="federate")


@app.command()
def demo(
    out: Path = typer.Option(Path("emosync-demo"), help="Folder for everything the demo writes."),
    quick: bool = typer.Option(False, help="Light rig (160x120 video), shorter recordings, fewer training steps."),
    duration: Optional[float] = typer.Option(None, help="Seconds to record (default 20, or 8 with --quick)."),
    seed: int = typer.Option(7, help="Seed of the simulated rig."),
    skip: list[str] = typer.Option([], "--skip", help="Stage to skip, repeatable (stages: see above)."),
    redo: list[str] = typer.Option([], "--redo", help="Stage to run again although it finished before, repeatable."),
    overrides: list[str] = typer.Option([], "--set", help="configs/demo override KEY=VALUE, repeatable "
                                                         "(e.g. pretrain_steps=500)."),
) -> None:
    """The whole pipeline on a machine without sensors: record, annotate, pretrain, synthesize, audit, data cards.

    Stages: record (simulated rig over real LSL, summary, timeline PNG), annotate (MediaPipe faces),
    pretrain (multi-view contrastive, retrieval figures), synth (tiny AU-conditioned generator, a small
    micro/macro corpus, privacy audit), card (data cards). A stage that finished is skipped when the demo
    runs again with the same --out (an interrupted one resumes); --skip and --redo choose. A stage that
    cannot run stops the demo with the reason (exit 1), before any stage runs when that can be known.

    Example: emosync demo --quick --out demo1
    """
    from acquisition.utils.config import ConfigError
    from emosync_demo import STAGES, DemoRun, DemoStageError

    unknown = sorted((set(skip) | set(redo)) - set(STAGES))
    if unknown:
        raise fail(f"unknown stage(s) {unknown}; stages are {list(STAGES)}.")
    try:
        run = DemoRun(out, quick=quick, record_s=duration, seed=seed, overrides=overrides, console=console)
        run.check_ready(skip=skip, redo=redo)
        for stage in STAGES:
            run.run_stage(stage, skip=stage in skip, redo=stage in redo)
    except (DemoStageError, ConfigError) as err:
        raise fail(str(err)) from None
    run.print_overview()


if __name__ == "__main__":
    app()
