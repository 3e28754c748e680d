"""The end-to-end demo behind ``emosync demo``: every stage of emosync on the simulated rig.

Each stage reads what earlier stages wrote under the demo folder and records what it made
(paths and headline figures) in ``demo.json`` there, so running the demo again skips the
finished stages and an interrupted stage starts over (pretraining and synthesizer training
resume from their checkpoints). Stages only call the public APIs the CLI commands use; the
sizes come from ``configs/demo/{full,quick}.yaml``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from acquisition.utils.config import StrictModel, load_config

REPO_ROOT = Path(__file__).resolve().parent
#: The demo's stages, in order.
STAGES = ("record", "annotate", "pretrain", "synth", "card")


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
    overrides : sequence of str
        ``key=value`` overrides of the demo config.
    console : rich.console.Console
        Where progress and results go.
    """

    def __init__(self, out: Path, *, quick: bool, record_s: float | None, seed: int, overrides: Sequence[str] = (),
                 console: Console) -> None:
        self.out = Path(out)
        overrides = [*overrides, *([f"record_s={record_s}"] if record_s is not None else [])]
        self.config = load_config(DemoConfig, "quick" if quick else "full", "demo", overrides)
        self.out.mkdir(parents=True, exist_ok=True)
        self.seed = seed
        self.console = console
        self.state_path = self.out / "demo.json"
        self.state: dict[str, Any] = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
        settings = {**self.config.model_dump(), "seed": seed}
        if self.state.get("config") not in (None, settings):
            raise DemoStageError(f"{self.out} holds a demo made with other settings (--quick, --duration, --seed or "
                                 "--set); use another --out, or delete the folder to start over.")
        self.state["config"] = settings

    # -- bookkeeping -------------------------------------------------------------------------------------------

    def _save(self) -> None:
        self.state_path.write_text(json.dumps(self.state, indent=2, default=str))

    def run_stage(self, name: str, *, skip: bool = False, redo: bool = False) -> None:
        """Run stage ``name`` unless skipped or already finished (and not ``redo``)."""
        stages = self.state.setdefault("stages", {})
        self.console.rule(f"[bold]emosync demo[/] {STAGES.index(name) + 1}/{len(STAGES)}: {name}")
        if skip:
            self.console.print("skipped (--skip)")
            return
        if stages.get(name, {}).get("done") and not redo:
            self.console.print(f"already done in an earlier run (--redo {name} to run it again): "
                               + ", ".join(f"{k}={v}" for k, v in stages[name].get("outputs", {}).items()))
            return
        # Later stages read what this one writes: once it runs again, their outputs are stale.
        for later in STAGES[STAGES.index(name) + 1:]:
            stages.pop(later, None)
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
                # identity 0 is the recorded session's face; training subjects are others. They express the
                # emotions the synth stage will ask for: a generator cannot render AUs it never saw (and refuses to).
                tmp = path.with_suffix(".partial.h5")
                tmp.unlink(missing_ok=True)
                emotions = f"timeline.emotions=[{','.join(self.config.corpus_emotions)}]"
                write_rig_session(tmp, duration_s=self.config.train_session_s, seed=100 + k, profile="light",
                                  overrides=[f"identity_seed={k + 1}", emotions, *self.config.train_overrides],
                                  modalities=("rgb", "depth", "emg", "eeg", "au", "markers"))
                tmp.rename(path)
            paths.append(path)
        return paths

    # -- stages ----------------------------------------------------------------------------------------------

    def _stage_record(self) -> dict:
        from acquisition import open_session
        from acquisition.cli.info import print_summary
        from acquisition.viz.plot import plot_timeline
        from acquisition.live.recorder import SessionRecorder
        from acquisition.session.summary import summarize_session

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

    def _face_model(self) -> Path:
        """The Face Landmarker model annotate will use; raises :class:`DemoStageError` saying why there is none."""
        from acquisition.annotate.face_model import FaceModelChecksumError, FaceModelNotFoundError, find_face_model

        try:
            return find_face_model()
        except (FaceModelNotFoundError, FaceModelChecksumError) as err:
            raise DemoStageError(f"the annotate stage cannot run. {err} To run the other stages without it, add "
                                 "--skip annotate.") from None

    def check_ready(self, *, skip: Sequence[str] = (), redo: Sequence[str] = ()) -> None:
        """Check, before anything runs, what the stages to run need and can be known now (the face model).

        Raises
        ------
        DemoStageError
            If a stage that will run cannot: the message says why and how to fix it.
        """
        done = {name for name, stage in self.state.get("stages", {}).items() if stage.get("done")}
        if "annotate" not in skip and ("annotate" not in done or "annotate" in redo):
            self._face_model()

    def _stage_annotate(self) -> dict:
        from acquisition.annotate.face_tracking import annotate_session

        session = self._require("record", "session")
        model = self._face_model()
        with self.console.status("Tracking the face in every frame (MediaPipe Face Landmarker)..."):
            summary = annotate_session(session, overwrite=True, min_confidence=0.3, model=model)
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
                           "its own moment among all windows of another. A short CPU run only shows the "
                           "direction; docs/pretraining.md has the full-length figures.")
        (run / "evaluation.json").write_text(json.dumps(report, indent=2))
        return {"outputs": {"run": str(run), "evaluation": str(run / "evaluation.json")},
                "figures": {"mean_R@1": r1, "chance": chance}}

    def _stage_synth(self) -> dict:
        import shutil

        from synth.generative.config import load_synth_config
        from synth.generative.corpus import sample_corpus
        from synth.generative.train import latest_checkpoint, train_generator
        from synth.privacy import NearestNeighbourFilter, audit_corpus

        c = self.config
        held_out = self._require("record", "session")
        with self.console.status(f"Writing {c.train_sessions} simulated training subjects..."):
            train = self._train_sessions()
        model = self.out / "synth" / "model"
        resume = model.exists() and latest_checkpoint(model) is not None
        self.console.print(f"Training the '{c.synth_config}' generator for {c.synth_steps} steps on the face crops "
                           f"of {len(train)} simulated subjects{' (resuming)' if resume else ''}...")
        train_generator(train, load_synth_config(c.synth_config, [f"optim.steps={c.synth_steps}"]), model,
                        resume=resume)
        corpus = self.out / "synth" / "corpus"
        if corpus.exists():  # left by an interrupted run of this stage: sampling is cheap, start it over
            shutil.rmtree(corpus)
        with self.console.status("Calibrating the rejection filter on the training frames..."):
            reject = NearestNeighbourFilter.from_model_dir(model, "auto")
        half = c.corpus_sequences // 2
        for kind, n, first_seed in (("micro", half, 0), ("macro", c.corpus_sequences - half, 1000)):
            self.console.print(f"Sampling {n} {kind}-expression sequences ({', '.join(c.corpus_emotions)})...")
            sample_corpus(model, corpus, n=n, seed=first_seed, emotions=c.corpus_emotions, kind=kind,
                          append=kind == "macro", reject=reject, progress=True)
        with self.console.status("Auditing the corpus (nearest neighbours, memorization, membership inference)..."):
            report = audit_corpus(model, corpus, train, [held_out])
            written = report.write(corpus)
        r = report.result
        nn = r["nearest_neighbour"]
        self.console.print(f"Privacy audit: [bold]{'PASSED' if report.passed else 'FAILED'}[/]. Nearest training frame "
                           f"(pixel RMS): synthetic median {nn['synthetic_to_train']['median']:.3f} vs held-out real "
                           f"{nn['holdout_to_train']['median']:.3f}; memorized frames {r['memorized_frames']}; "
                           f"membership-inference AUC {r['membership_inference']['auc']:.2f}.")
        if not report.passed:
            self.console.print("A tiny generator trained on two or three faces reproduces those faces, and the audit "
                               "says so: that is its job. See which checks failed in "
                               f"{written['markdown']} and docs/privacy-audit.md.")
        return {"outputs": {"model": str(model), "corpus": str(corpus),
                            "sample_grids": str(model / "samples"), "audit": str(corpus / "audit.md")},
                "figures": {"audit_passed": report.passed, "memorized_frames": r["memorized_frames"],
                            "mia_auc": r["membership_inference"]["auc"]}}

    def _stage_card(self) -> dict:
        import shutil

        from data_cards import check_card, write_card

        recording = self._require("record", "session").parent
        cards = self.out / "cards"
        made = {}
        templates = REPO_ROOT / "configs" / "card"
        sources = [("recording", recording, templates / "demo-recording.yaml")]
        if self.state["stages"].get("synth", {}).get("done"):
            sources.append(("synthetic-corpus", self._require("synth", "corpus"), templates / "demo-synthetic.yaml"))
        else:  # stages run in order and stop the demo when they fail: synth was skipped on request
            self.console.print("No card for a synthetic corpus: the synth stage was skipped (--skip synth).")
        for name, data, template in sources:
            card_yaml = data / "card.yaml"
            if not card_yaml.exists():  # the human part: the demo's data are simulated, so its answers are known
                shutil.copyfile(template, card_yaml)
            out = cards / name
            write_card([data], out, card_yaml=card_yaml, source_command=f"emosync card {data} --out {out}")
            problems = check_card([data], out, card_yaml=card_yaml)
            self.console.print(f"Data card of the {name}: [bold]{out / 'README.md'}[/] (+ croissant.json, "
                               f"sessions.csv); `emosync card {data} --out {out} --check`: "
                               + ("passes" if not problems else "; ".join(problems)))
            made[name] = str(out / "README.md")
        return {"outputs": made}

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
