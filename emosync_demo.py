"""The end-to-end demo behind ``emosync demo``: every stage of emosync on the simulated rig.

Each stage reads what earlier stages wrote under the demo folder and records what it made
(paths and headline figures) in ``demo.json`` there, so running the demo again skips the
finished stages and an interrupted stage starts over (pretraining and synthesizer training
resume from their checkpoints). Stages only call the public APIs the CLI commands use; the
sizes come from ``configs/demo/{full,quick}.yaml``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from acquisition._config import StrictModel, load_config

REPO_ROOT = Path(__file__).resolve().parent


class DemoConfig(StrictModel):
    """Sizes of the demo's stages (``configs/demo/*.yaml``)."""

    rig_profile: str
    record_s: float
    train_sessions: int
    train_session_s: float
    train_overrides: list[str]
    pretrain_config: str
    pretrain_steps: int
    synth_config: str
    synth_steps: int
    corpus_sequences: int
    corpus_emotions: list[str]


class DemoStageError(RuntimeError):
    """A stage failed; the message says which and what to do."""


class DemoRun:
    """One demo folder: runs stages in order and keeps ``demo.json`` up to date.

    Parameters
    ----------
    out : Path
        The demo folder (created).
    quick : bool
        Use ``configs/demo/quick.yaml`` instead of ``full.yaml``.
    record_s : float | None
        Seconds to record (None: the config's).
    seed : int
        Seed of the recorded rig.
    console : rich.console.Console
        Where progress and results go.
    """

    def __init__(self, out: Path, *, quick: bool, record_s: float | None, seed: int, console: Console) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        overrides = [f"record_s={record_s}"] if record_s is not None else []
        self.config = load_config(DemoConfig, "quick" if quick else "full", "demo", overrides)
        self.seed = seed
        self.console = console
        self.state_path = self.out / "demo.json"
        self.state: dict[str, Any] = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
        if self.state.get("config") not in (None, self.config.model_dump()):
            raise DemoStageError(f"{self.out} holds a demo made with other settings (quick/--duration); use another "
                                 "--out, or delete the folder to start over.")
        self.state["config"] = self.config.model_dump()

    # -- bookkeeping -------------------------------------------------------------------------------------------

    def _save(self) -> None:
        self.state_path.write_text(json.dumps(self.state, indent=2, default=str))

    def run_stage(self, name: str, *, skip: bool = False, redo: bool = False) -> None:
        """Run stage ``name`` unless skipped or already finished (and not ``redo``)."""
        stages = self.state.setdefault("stages", {})
        index = ("record", "annotate", "pretrain", "synth", "card").index(name) + 1
        self.console.rule(f"[bold]emosync demo[/] {index}/5: {name}")
        if skip:
            self.console.print("skipped (--skip)")
            return
        if stages.get(name, {}).get("done") and not redo:
            self.console.print(f"already done in an earlier run (--redo {name} to run it again): "
                               + ", ".join(f"{k}={v}" for k, v in stages[name].get("outputs", {}).items()))
            return
        started = time.monotonic()
        result = getattr(self, f"_stage_{name}")()
        result["done"] = True
        result["seconds"] = round(time.monotonic() - started, 1)
        stages[name] = result
        self._save()

    def _require(self, stage: str, key: str) -> Path:
        try:
            return Path(self.state["stages"][stage]["outputs"][key])
        except KeyError:
            raise DemoStageError(f"this stage needs the '{stage}' stage's output; run the demo without "
                                 f"--skip {stage}.") from None

    def _train_sessions(self) -> list[Path]:
        """Simulated subjects written straight from the rig's generators (one face identity each)."""
        from synth.rig.offline import write_rig_session

        folder = self.out / "simulated"
        folder.mkdir(exist_ok=True)
        paths = []
        for k in range(self.config.train_sessions):
            path = folder / f"train-sub{k + 1:02d}.h5"
            if not path.exists():
                # identity 0 is the recorded session's face; training subjects are others.
                tmp = path.with_suffix(".partial.h5")
                tmp.unlink(missing_ok=True)
                write_rig_session(tmp, duration_s=self.config.train_session_s, seed=100 + k, profile="light",
                                  overrides=[f"identity_seed={k + 1}", *self.config.train_overrides],
                                  modalities=("rgb", "depth", "emg", "eeg", "au", "markers"))
                tmp.rename(path)
            paths.append(path)
        return paths

    # -- stages ----------------------------------------------------------------------------------------------

    def _stage_record(self) -> dict:
        from acquisition import open_session
        from acquisition.cli import print_summary
        from acquisition.plot import plot_timeline
        from acquisition.recorder import SessionRecorder
        from acquisition.summary import summarize_session

        c = self.config
        folder = self.out / "recording"
        folder.mkdir(exist_ok=True)
        session_path = folder / f"session_seed{self.seed}_{time.strftime('%Y%m%d-%H%M%S')}.h5"
        prefix = f"demo{uuid.uuid4().hex[:6]}_"
        self.console.print(f"Starting the simulated rig ('{c.rig_profile}' profile, seed {self.seed}) in its own "
                           "process...")
        sim = subprocess.Popen([sys.executable, "-m", "emosync", "simulate", "--profile", c.rig_profile,
                                "--seed", str(self.seed), "--duration", str(c.record_s + 15), "--name-prefix", prefix],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            recorder = SessionRecorder(session_path, streams=[f"starts-with(name,'{prefix}')"],
                                       subject_id="sub-sim00", notes=f"emosync demo, rig seed {self.seed}")
            recorder.start()
            with self.console.status(f"Recording {c.record_s:g} s of RGB, depth, EMG, EEG, AUs and markers..."):
                recorder.wait(c.record_s)
                recorder.stop()
        except Exception as err:
            sim.terminate()
            _, sim_stderr = sim.communicate(timeout=30)
            said = f"\nThe simulated rig said:\n{sim_stderr.strip()[-2000:]}" if sim_stderr.strip() else ""
            raise DemoStageError(f"recording failed: {err}{said}") from err
        sim.terminate()
        sim.communicate(timeout=30)
        timeline_path = session_path.with_suffix(".timeline.png")
        with open_session(session_path) as session:
            summary = summarize_session(session)
            print_summary(summary)
            with self.console.status("Drawing the session timeline..."):
                plot_timeline(session, timeline_path)
        self.console.print(f"\nSession:  [bold]{session_path}[/]  (inspect with `emosync info {session_path}`)")
        self.console.print(f"Timeline: [bold]{timeline_path}[/]  (video, depth, markers, AU ground truth, EMG, EEG "
                           "on one axis)")
        self.console.print("Samples lost: see the 'dropped' and 'gaps' columns (0 expected); 'jitter us' shows the "
                           "stamp jitter before (and after) dejitter.")
        return {"outputs": {"session": str(session_path), "timeline_png": str(timeline_path)}}

    def _stage_annotate(self) -> dict:
        from acquisition.face_model import FaceModelNotFoundError, find_face_model
        from acquisition.face_tracking import annotate_session

        session = self._require("record", "session")
        model = None
        try:
            find_face_model()
        except FaceModelNotFoundError:
            # The project's offline data folder (what the tests use) also holds the model file.
            shared = Path(os.environ.get("EMOSYNC_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
            candidate = shared / "models" / "face_landmarker.task"
            model = candidate if candidate.exists() else None
        try:
            with self.console.status("Tracking the face in every frame (MediaPipe Face Landmarker)..."):
                summary = annotate_session(session, overwrite=True, min_confidence=0.3, model=model)
        except FaceModelNotFoundError as err:
            self.console.print(f"[yellow]annotate skipped:[/] {err}")
            return {"outputs": {}, "skipped": str(err)}
        self.console.print(f"Face found in {summary['n_frames_with_face']} of {summary['n_frames']} frames "
                           f"({100 * summary['detection_rate']:.0f} %), {summary['fps']:.1f} frames/s; added "
                           + ", ".join(summary["streams"]))
        return {"outputs": {"session": str(session)},
                "figures": {"detection_rate": summary["detection_rate"], "fps": summary["fps"]}}

    def _stage_pretrain(self) -> dict:
        from fusion.config import load_pretrain_config
        from fusion.evaluate import evaluate
        from fusion.train import pretrain

        c = self.config
        held_out = self._require("record", "session")
        with self.console.status(f"Writing {c.train_sessions} simulated training subjects..."):
            train = self._train_sessions()
        run = self.out / "pretrain"
        config = load_pretrain_config(c.pretrain_config, [f"optim.steps={c.pretrain_steps}"])
        resume = (run / "checkpoint.pt").exists()
        self.console.print(f"Pretraining '{c.pretrain_config}' for {c.pretrain_steps} steps on {len(train)} "
                           f"simulated subjects{' (resuming)' if resume else ''}...")
        pretrain(train, config, run, resume=resume)
        with self.console.status(f"Evaluating on the recorded session (held out: {held_out.name})..."):
            report = evaluate(run, [held_out])
        table = Table(title=f"Cross-modal retrieval on the held-out recording ({report['n_windows']} windows)")
        for col in ("pair", "R@1", "R@5", "chance"):
            table.add_column(col)
        for pair, r in report["retrieval"].items():
            table.add_row(pair, f"{r['R@1']:.2f}", f"{r['R@5']:.2f}", f"{r['chance']:.2f}")
        self.console.print(table)
        r1 = float(np.mean([r["R@1"] for r in report["retrieval"].values()]))
        chance = float(np.mean([r["chance"] for r in report["retrieval"].values()]))
        self.console.print(f"Mean R@1 {r1:.3f} vs chance {chance:.3f}: how often a window of one modality finds "
                           "its own moment among all windows of another. A few dozen CPU steps only show the "
                           "direction; docs/pretraining.md has the full-length figures.")
        (run / "evaluation.json").write_text(json.dumps(report, indent=2))
        return {"outputs": {"run": str(run), "evaluation": str(run / "evaluation.json")},
                "figures": {"mean_R@1": r1, "chance": chance}}

    def _stage_synth(self) -> dict:
        raise DemoStageError("synth stage: not wired yet")

    def _stage_card(self) -> dict:
        raise DemoStageError("card stage: not wired yet")

    # -- the end ---------------------------------------------------------------------------------------------

    def print_overview(self) -> None:
        """Where everything is, and the headline figures."""
        self.console.rule("[bold]emosync demo: what was made")
        table = Table(show_header=True)
        for col in ("stage", "seconds", "outputs", "figures"):
            table.add_column(col, overflow="fold")
        for name, st in self.state.get("stages", {}).items():
            figures = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                                for k, v in st.get("figures", {}).items())
            table.add_row(name, str(st.get("seconds", "")), "\n".join(st.get("outputs", {}).values()), figures)
        self.console.print(table)
        self.console.print(f"Everything is under [bold]{self.out}[/]; {self.state_path.name} lists it for scripts.")
