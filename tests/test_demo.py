"""The README's first command: `emosync demo` runs every stage end to end on a machine without sensors."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from acquisition import open_session

from .conftest import emosync_command

#: Every stage, with sizes small enough for the test suite (the stages' own tests check quality).
TINY = ["--quick", "--duration", "3", "--set", "train_session_s=4", "--set", "pretrain_steps=3",
        "--set", "synth_steps=3", "--set", "corpus_sequences=2"]


def _demo(tmp_path, *args: str, timeout: float = 400, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(emosync_command("demo", "--out", str(tmp_path), *args), capture_output=True, text=True,
                          timeout=timeout, env=None if env is None else {**os.environ, **env})


def test_demo_runs_every_stage_then_resumes_without_redoing_them(tmp_path):
    result = _demo(tmp_path, *TINY)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    state = json.loads((tmp_path / "demo.json").read_text())
    assert list(state["stages"]) == ["record", "annotate", "pretrain", "synth", "card"]
    assert all(stage["done"] for stage in state["stages"].values())

    (session,) = (tmp_path / "recording").glob("*.h5")
    assert (tmp_path / "recording" / f"{session.stem}.timeline.png").stat().st_size > 20_000
    with open_session(session) as s:
        types = sorted(st.info["type"] for st in s.streams.values() if st.info["type"] != "FaceTracking")
        assert {"ActionUnits", "EEG", "EMG", "Markers", "VideoRaw"} <= set(types)
        for st in s.streams.values():
            if st.info["type"] in ("EEG", "EMG"):
                assert st.n_samples > 2 * st.nominal_srate, st.name
                assert st.sync.jitter_after_s < 1e-6, st.name

    evaluation = json.loads((tmp_path / "pretrain" / "evaluation.json").read_text())
    assert len(evaluation["retrieval"]) == 12
    corpus = json.loads((tmp_path / "synth" / "corpus" / "corpus.json").read_text())
    assert sorted(seq["kind"] for seq in corpus["sequences"]) == ["macro", "micro"]
    audit = json.loads((tmp_path / "synth" / "corpus" / "audit.json").read_text())
    assert isinstance(audit["passed"], bool) and 0 <= audit["membership_inference"]["auc"] <= 1
    for card in ("recording", "synthetic-corpus"):
        readme = (tmp_path / "cards" / card / "README.md").read_text()
        assert "  todo: []" in readme, card          # every required human field came from card.yaml
        assert (tmp_path / "cards" / card / "croissant.json").exists()
    corpus_card = (tmp_path / "cards" / "synthetic-corpus" / "README.md").read_text()
    assert "synthetic: true" in corpus_card and "audited: true" in corpus_card
    assert "Everything is under" in result.stdout

    again = _demo(tmp_path, *TINY, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("already done in an earlier run") == 5
    assert json.loads((tmp_path / "demo.json").read_text())["stages"] == state["stages"]


def test_demo_refuses_unknown_stages_and_other_settings_in_the_same_folder(tmp_path):
    result = _demo(tmp_path, "--skip", "pretrian", timeout=60)
    assert result.returncode == 1 and "pretrian" in result.stderr and "record" in result.stderr
    (tmp_path / "demo.json").write_text(json.dumps({"config": {"record_s": 99.0}}))
    result = _demo(tmp_path, "--quick", timeout=60)
    assert result.returncode == 1 and "other settings" in result.stderr
    result = _demo(tmp_path / "new", "--quick", "--set", "pretrain_stesp=3", timeout=60)
    assert result.returncode == 1 and "pretrain_stesp" in result.stderr
    assert not (tmp_path / "new").exists()


def test_running_a_stage_again_invalidates_the_stages_after_it(tmp_path):
    from rich.console import Console

    from emosync_demo import STAGES, DemoRun

    class CountingRun(DemoRun):
        """The real bookkeeping, with each stage replaced by a counter (the stages are tested above)."""

        calls: list[str] = []

        def __getattribute__(self, name):
            if name.startswith("_stage_"):
                return lambda: CountingRun.calls.append(name[len("_stage_"):]) or {"outputs": {}}
            return super().__getattribute__(name)

    def run_all(**kwargs):
        run = CountingRun(tmp_path, quick=True, record_s=None, seed=7, console=Console(quiet=True))
        for stage in STAGES:
            run.run_stage(stage, skip=False, redo=stage in kwargs.get("redo", ()))

    run_all()
    assert CountingRun.calls == list(STAGES)
    CountingRun.calls.clear()
    run_all()
    assert CountingRun.calls == []
    run_all(redo=("pretrain",))
    assert CountingRun.calls == ["pretrain", "synth", "card"]


def test_demo_without_a_face_model_stops_before_any_stage_with_the_reason(tmp_path):
    missing = tmp_path / "no" / "face_landmarker.task"
    result = _demo(tmp_path / "demo", "--quick", timeout=60,
                   env={"EMOSYNC_FACE_LANDMARKER": str(missing), "COLUMNS": "1000"})  # no line wrapping
    stderr = result.stderr
    assert result.returncode == 1, result.stdout[-2000:]
    assert "annotate stage cannot run" in stderr and str(missing) in stderr and "--skip annotate" in stderr
    assert "skipped" not in result.stdout
    assert not (tmp_path / "demo" / "recording").exists()  # it stopped before recording, not after


def test_annotate_stage_without_a_model_fails_instead_of_skipping(tmp_path, monkeypatch):
    from rich.console import Console

    from emosync_demo import DemoRun, DemoStageError

    monkeypatch.setenv("EMOSYNC_FACE_LANDMARKER", str(tmp_path / "missing.task"))
    run = DemoRun(tmp_path, quick=True, record_s=None, seed=7, console=Console(quiet=True))
    run.state["stages"] = {"record": {"done": True, "outputs": {"session": str(tmp_path / "s.h5")}}}
    run.check_ready(skip=["annotate"])  # skipping it on request is fine
    with pytest.raises(DemoStageError, match="annotate stage cannot run.*missing.task"):
        run.check_ready()
    with pytest.raises(DemoStageError, match="annotate stage cannot run.*missing.task"):
        run.run_stage("annotate")
    assert "annotate" not in run.state["stages"]  # never marked done
    run.state["stages"]["annotate"] = {"done": True, "outputs": {}}
    run.check_ready()  # done in an earlier run: the model is not needed again...
    with pytest.raises(DemoStageError, match="annotate stage cannot run"):
        run.check_ready(redo=["annotate"])  # ...unless it runs again
