"""Spotting on sessions: which streams it reads (estimates, never the rig's truth), provenance, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from acquisition import SessionWriter, StreamSpec, open_session
from acquisition.annotate.action_units import AU_IDS
from acquisition.annotate.spotting import choose_source, load_spot_config, score_session, spot_session
from synth.facs import AUTimeline, ExpressionEvent

FS = 30.0
LABELS = [f"AU{au:02d}" for au in AU_IDS]
COL = {au: k for k, au in enumerate(AU_IDS)}


def _timeline() -> AUTimeline:
    def event(onset, duration, emotion, kind, peak):
        return ExpressionEvent(onset, onset + 0.3 * duration, onset + 0.5 * duration, onset + duration, emotion,
                               kind, peak)

    events = [event(3.0, 1.5, "happiness", "macro", {6: 3.0, 12: 3.0}),
              event(9.0, 0.3, "anger", "micro", {4: 2.0, 7: 1.5, 23: 2.0}),
              event(15.0, 2.0, "sadness", "macro", {1: 3.0, 4: 2.0, 15: 3.0})]
    events += [ExpressionEvent(t, t + 0.08, t + 0.1, t + 0.2, "blink", "blink", {45: 5.0}) for t in (1.3, 6.1, 12.2)]
    return AUTimeline(events, 20.0)


def _write(path, *, estimated=True, landmarks=False, emg=False, truth_markers=True):
    """A rig-like session: the truth AUs and Markers, and what annotate / emg-code would have added."""
    timeline = _timeline()
    t = np.arange(int(timeline.duration_s * FS)) / FS
    truth = timeline.intensities(t)
    with SessionWriter(path, subject_id="sub-id000") as w:
        w.add_stream(StreamSpec("ActionUnits", "ActionUnits", 17, "float32", FS, "emosync-sim:ActionUnits:0",
                                channel_labels=LABELS)).append(truth.astype(np.float32), t)
        if truth_markers:
            mk = w.add_stream(StreamSpec("Markers", "Markers", 1, "string", 0.0, "emosync-sim:Markers:0"))
            markers = timeline.markers()
            mk.append([[m] for _, m in markers], [s for s, _ in markers])
        if estimated:
            est = truth + 0.3 + np.random.default_rng(0).normal(0, 0.05, truth.shape)
            est[:, COL[7]] += 0.5 * truth[:, COL[45]]  # the tracker reads each blink as a squint
            w.add_stream(StreamSpec("RGB-AU", "ActionUnits", 17, "float32", FS, "cam", channel_labels=LABELS,
                                    extra={"derived_by": "emosync annotate", "derived_from": "RGB"})
                         ).append(est.astype(np.float32), t)
            w.add_stream(StreamSpec("RGB-HeadPose", "HeadPose", 6, "float32", FS, "cam",
                                    extra={"derived_by": "emosync annotate", "derived_from": "RGB"})
                         ).append(np.zeros((t.size, 6), np.float32), t)
        if landmarks:
            points = np.random.default_rng(1).normal(0, 0.1, (1, 478 * 3)) + np.zeros((t.size, 1))
            w.add_stream(StreamSpec("RGB-Landmarks", "FaceLandmarks", 478 * 3, "float32", FS, "cam",
                                    extra={"derived_by": "emosync annotate", "derived_from": "RGB"})
                         ).append(points.astype(np.float32), t)
        if emg:
            te = np.arange(int(timeline.duration_s * 100)) / 100
            values = timeline.intensities(te)[:, [COL[4], COL[12]]]
            w.add_stream(StreamSpec("EMG-AU", "ActionUnits", 2, "float32", 100.0, "emg",
                                    channel_labels=["AU04", "AU12"],
                                    extra={"derived_by": "emosync emg-code", "derived_from": "EMG"})
                         ).append(values.astype(np.float32), te)


def test_estimates_are_chosen_never_the_truth_or_the_emg_coding(tmp_path):
    path = tmp_path / "s.h5"
    _write(path, landmarks=True, emg=True)
    with open_session(path) as s:
        assert choose_source(s)[0].name == "RGB-AU"
    only_landmarks = tmp_path / "lm.h5"
    _write(only_landmarks, estimated=False, landmarks=True, emg=True)
    with open_session(only_landmarks) as s:
        st, kind, reason = choose_source(s)
        assert (st.name, kind) == ("RGB-Landmarks", "landmarks")
    truth_only = tmp_path / "truth.h5"
    _write(truth_only, estimated=False, emg=True)
    with open_session(truth_only) as s:
        st, kind, reason = choose_source(s)
        assert st.name == "ActionUnits" and "ground-truth" in reason and "emosync annotate" in reason


def test_inputs_and_provenance(tmp_path):
    path = tmp_path / "s.h5"
    _write(path, landmarks=True, emg=True)
    result = spot_session(path, config=load_spot_config("default", ["emg.enabled=true"]))
    assert result.inputs == {"source": "RGB-AU", "head_pose": "RGB-HeadPose", "landmarks": "RGB-Landmarks",
                             "emg": "EMG-AU"}
    assert score_session(path, result, "Markers")["overall"]["f1"] == 1.0
    with open_session(path) as s:
        info = s.streams["RGB-AU-Spotted"].info
        assert info["spotting_inputs"]["emg"] == "EMG-AU" and info["spotting_config"]["emg"]["enabled"] is True
        assert info["spotting_tuning"] == load_spot_config().tuning.model_dump()
    # Video-only by default: the EMG stream is not read.
    assert "emg" not in spot_session(path, write=False).inputs
    with pytest.raises(ValueError, match="emg.stream 'nope'.*emg-code"):
        spot_session(path, write=False, config=load_spot_config("default", ["emg.enabled=true", "emg.stream=nope"]))


def _cli(*args):
    import emosync

    return CliRunner().invoke(emosync.app, ["spot", *map(str, args)])


def test_cli_json_has_scores_at_top_level(tmp_path):
    path = tmp_path / "s.h5"
    _write(path)
    res = _cli(path, "--truth", "Markers", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    for key in ("overall", "micro", "macro"):
        assert set(out[key]) == {"f1", "precision", "recall", "tp", "fp", "fn"}
    assert (out["micro"]["tp"], out["macro"]["tp"], out["overall"]["fp"]) == (1, 2, 0)
    assert out["source"] == "RGB-AU" and out["config"] == "default" and len(out["intervals"]) == 3
    assert out["tuning"]["subjects"] == load_spot_config().tuning.subjects
    # Today's spotter (no blink suppression) reads the squinting blinks as micro-expressions.
    res = _cli(path, "--truth", "Markers", "--json", "--config", "baseline", "--overwrite")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["micro"]["fp"] >= 2


def test_cli_bad_truth_fails_before_writing(tmp_path):
    path = tmp_path / "s.h5"
    _write(path)
    res = _cli(path, "--truth", "Marker")
    assert res.exit_code == 1
    assert "No stream 'Marker'" in res.output and "Marker streams: Markers" in res.output
    res = _cli(path, "--truth", "RGB-AU")
    assert res.exit_code == 1 and "not Markers" in res.output
    with open_session(path) as s:
        assert "RGB-AU-Spotted" not in s.streams  # nothing was written
    no_markers = tmp_path / "nm.h5"
    _write(no_markers, truth_markers=False)
    res = _cli(no_markers, "--truth", "Markers")
    assert res.exit_code == 1 and "Marker streams: none" in res.output


def test_cli_config_errors(tmp_path):
    path = tmp_path / "s.h5"
    _write(path)
    res = _cli(path, "--set", "talking.enabeld=false")
    assert res.exit_code == 1 and "enabeld" in res.output
    res = _cli(path, "--config", "nope")
    assert res.exit_code == 1 and "Unknown spot config 'nope'" in res.output
    res = _cli(path, "--set", "high=9", "--dry-run", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["overrides"] == ["high=9"]
