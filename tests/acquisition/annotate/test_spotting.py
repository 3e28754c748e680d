"""Expression spotting: intervals from AU/landmark streams, the marker stream it writes, and the scoring."""

from __future__ import annotations

import json

import numpy as np
import pytest

from acquisition import SessionWriter, StreamSpec, open_session
from acquisition.annotate.spotting import (Interval, intervals_from_markers, interval_iou, load_spot_config, spot_eval,
                                           spot_expressions, spot_session)
from acquisition.annotate.action_units import AU_IDS
from synth.facs import AUTimeline, ExpressionEvent

FS = 30.0
T0 = 1000.0  # raw source clock of the fake camera, seconds
LABELS = [f"AU{au:02d}" for au in AU_IDS]


def _event(onset: float, duration: float, emotion: str, kind: str, peak: dict[int, float]) -> ExpressionEvent:
    return ExpressionEvent(onset, onset + 0.3 * duration, onset + 0.5 * duration, onset + duration, emotion, kind, peak)


def _timeline() -> AUTimeline:
    """A macro smile, a micro surprise, a macro anger, and blinks alone and during the smile."""
    events = [
        _event(2.0, 1.5, "happiness", "macro", {6: 3.0, 12: 3.0}),
        _event(6.0, 0.3, "surprise", "micro", {1: 2.0, 2: 2.0, 5: 1.6, 26: 2.0}),
        _event(10.0, 2.5, "anger", "macro", {4: 4.0, 5: 3.2, 7: 4.0, 23: 4.0}),
    ]
    events += [ExpressionEvent(t, t + 0.08, t + 0.1, t + 0.2, "blink", "blink", {45: 5.0}) for t in (2.6, 4.5, 8.3)]
    return AUTimeline(events, 15.0)


def _write_session(path, timeline: AUTimeline, *, noise: float = 0.0, seed: int = 0, nan_rows=None,
                   au_name: str = "cam-AU", with_truth: bool = True):
    t = np.arange(int(timeline.duration_s * FS)) / FS
    au = timeline.intensities(t).astype(np.float64)
    au += np.random.default_rng(seed).normal(0.0, noise, au.shape)
    if nan_rows is not None:
        au[nan_rows] = np.nan
    with SessionWriter(path, subject_id="sub-test") as w:
        st = w.add_stream(StreamSpec(au_name, "ActionUnits", len(LABELS), "float32", FS, "cam-1",
                                     channel_labels=LABELS))
        st.append(au.astype(np.float32), T0 + t)
        st.append_clock_offsets([T0, T0 + 10], [-900.0, -900.0], [1e-4, 1e-4])
        if with_truth:
            markers = timeline.markers()
            mk = w.add_stream(StreamSpec("Markers", "Markers", 1, "string", 0.0, "rig-markers"))
            mk.append([[m] for _, m in markers], [T0 + s for s, _ in markers])
            mk.append_clock_offsets([T0], [-900.0], [1e-4])
    return T0 + t


def _truth(timeline: AUTimeline, t0: float = 0.0) -> list[Interval]:
    return [Interval(t0 + e.onset_s, t0 + e.offset_s, e.kind, e.emotion) for e in timeline.expressions]


@pytest.mark.parametrize("noise", [0.0, 0.2])
def test_known_events_are_spotted_classified_and_blinks_ignored(noise):
    timeline = _timeline()
    t = np.arange(int(timeline.duration_s * FS)) / FS
    au = timeline.intensities(t) + np.random.default_rng(1).normal(0.0, noise, (t.size, len(AU_IDS)))
    spotted = spot_expressions(au, t, srate=FS, channel_labels=LABELS)
    truth = _truth(timeline)
    assert len(spotted) == 3, [(s.onset_s, s.offset_s) for s in spotted]
    for s, g in zip(spotted, truth):
        assert interval_iou(Interval(s.onset_s, s.offset_s, s.kind), g) >= 0.5
        assert s.kind == g.kind
        assert g.onset_s <= s.apex_s <= g.offset_s
        assert 45 not in s.aus
    assert [s.emotion for s in spotted] == ["happiness", "surprise", "anger"]
    assert spotted[0].aus == [6, 12] and spotted[0].label == "happiness"
    scores = spot_eval(spotted, truth)
    assert scores["overall"]["f1"] == 1.0 and scores["class_mismatches"] == 0


def test_blinks_alone_give_nothing():
    events = [ExpressionEvent(t, t + 0.08, t + 0.1, t + 0.2, "blink", "blink", {45: 5.0})
              for t in np.arange(1, 29, 1.3)]
    t = np.arange(int(30 * FS)) / FS
    assert spot_expressions(AUTimeline(events, 30).intensities(t), t, srate=FS, channel_labels=LABELS) == []


def test_marker_stream_is_written_with_source_timestamps(tmp_path):
    timeline = _timeline()
    path = tmp_path / "s.h5"
    stamps = _write_session(path, timeline)
    result = spot_session(path)
    assert result.source == "cam-AU" and "estimated" in result.reason and result.out_stream == "cam-AU-Spotted"
    with open_session(path) as s:
        st, src = s.streams["cam-AU-Spotted"], s.streams["cam-AU"]
        assert st.info["type"] == "Markers" and st.info["spotting_source"] == "cam-AU"
        assert st.info["derived_by"] == "emosync spot" and st.info["derived_from"] == "cam-AU"
        texts = st.data[:, 0].tolist()
        assert texts[:3] == ["onset/happiness/macro", "apex/happiness/macro", "offset/happiness/macro"]
        assert len(texts) == 9 and {x.split("/")[2] for x in texts} == {"micro", "macro"}
        # Every marker sits exactly on a frame of the source, so synchronized times align too.
        assert np.isin(st.timestamps, stamps).all()
        np.testing.assert_array_equal(st.clock_offsets.offsets, src.clock_offsets.offsets)
        rows = np.searchsorted(src.timestamps, st.timestamps)
        np.testing.assert_allclose(st.times, src.times[rows], atol=1e-9)
        truth = intervals_from_markers(s.streams["Markers"].times, s.streams["Markers"].data[:, 0])
        spotted = intervals_from_markers(st.times, texts)
        assert st.info["spotting_config"]["high"] == load_spot_config().high
        assert st.info["spotting_tuning"]["subjects"] == load_spot_config().tuning.subjects
    assert spot_eval(spotted, truth)["overall"]["f1"] == 1.0
    with pytest.raises(FileExistsError, match="--overwrite"):
        spot_session(path)
    assert spot_session(path, overwrite=True).out_stream == "cam-AU-Spotted"
    with pytest.raises(FileExistsError, match="not written by spotting"):
        spot_session(path, out_stream="Markers", overwrite=True)
    with open_session(path) as s:
        assert s.streams["cam-AU-Spotted"].n_samples == 9 and s.streams["Markers"].n_samples == 9


def test_eval_exact_numbers():
    truth = [(0.0, 1.0, "macro"), (2.0, 2.3, "micro"), (5.0, 6.0, "macro")]
    spotted = [(0.1, 1.0, "macro"),   # IoU 0.9: TP macro
               (2.0, 2.4, "micro"),   # IoU 0.75: TP micro
               (5.0, 5.3, "micro"),   # IoU 0.3: FP micro, and the 5-6 s macro is a FN
               (8.0, 9.0, "macro")]   # FP macro
    s = spot_eval(spotted, truth)
    assert (s["overall"]["tp"], s["overall"]["fp"], s["overall"]["fn"]) == (2, 2, 1)
    assert s["overall"]["precision"] == pytest.approx(0.5)
    assert s["overall"]["recall"] == pytest.approx(2 / 3)
    assert s["overall"]["f1"] == pytest.approx(4 / 7)
    assert (s["micro"]["precision"], s["micro"]["recall"], s["micro"]["f1"]) == pytest.approx((0.5, 1.0, 2 / 3))
    assert (s["macro"]["precision"], s["macro"]["recall"], s["macro"]["f1"]) == pytest.approx((0.5, 0.5, 0.5))
    # A spot classified micro that matches a macro truth is a macro TP and a class mismatch.
    s = spot_eval([(0.0, 0.45, "micro")], [(0.0, 0.6, "macro")])
    assert s["macro"]["tp"] == 1 and s["micro"]["fp"] == 0 and s["micro"]["precision"] == 0.0
    assert s["class_mismatches"] == 1 and s["overall"]["f1"] == 1.0
    # Each truth is matched once: two spots on one truth give one TP and one FP.
    s = spot_eval([(0, 1, "macro"), (0.05, 1, "macro")], [(0, 1, "macro")])
    assert (s["overall"]["tp"], s["overall"]["fp"]) == (1, 1)
    assert spot_eval([], [])["overall"]["f1"] == 0.0


def test_intervals_from_markers_pairs_onsets_with_offsets():
    got = intervals_from_markers([1, 1.2, 1.5, 3, 3.1, 3.4, 9], ["onset/fear/micro", "apex/fear/micro",
                                 "offset/fear/micro", "onset/anger/macro", "blink", "offset/anger/macro",
                                 "onset/sadness/macro"])
    assert got == [Interval(1, 1.5, "micro", "fear"), Interval(3, 3.4, "macro", "anger")]


def test_errors_name_the_streams(tmp_path):
    path = tmp_path / "no_au.h5"
    with SessionWriter(path) as w:
        w.add_stream(StreamSpec("EMG", "EMG", 2, "float32", 1000.0, "emg")).append(np.zeros((5, 2)), np.arange(5.0))
    with pytest.raises(ValueError, match=r"no ActionUnits stream.*EMG \(EMG\)"):
        spot_session(path)
    with pytest.raises(ValueError, match="No stream 'nope'.*EMG"):
        spot_session(path, stream="nope")
    with pytest.raises(ValueError, match="type 'EMG'"):
        spot_session(path, stream="EMG")
    empty = tmp_path / "empty.h5"
    with SessionWriter(empty) as w:
        w.add_stream(StreamSpec("cam-AU", "ActionUnits", 17, "float32", FS, "cam", channel_labels=LABELS))
    with pytest.raises(ValueError, match="empty"):
        spot_session(empty)
    t = np.arange(100) / FS
    with pytest.raises(ValueError, match="finite"):
        spot_expressions(np.full((100, 17), np.nan), t, srate=FS)


def test_nan_gaps_short_interpolated_long_never_spotted():
    timeline = _timeline()
    t = np.arange(int(timeline.duration_s * FS)) / FS
    au = timeline.intensities(t) + np.random.default_rng(3).normal(0.0, 0.2, (t.size, len(AU_IDS)))
    # A 0.1 s dropout inside the smile is bridged; the anger (10-12.5 s) falls in a 4 s gap with no face.
    au[int(2.5 * FS):int(2.6 * FS)] = np.nan
    au[int(9.5 * FS):int(13.5 * FS)] = np.nan
    spotted = spot_expressions(au, t, srate=FS, channel_labels=LABELS)
    assert [s.emotion for s in spotted] == ["happiness", "surprise"]
    assert interval_iou(Interval(spotted[0].onset_s, spotted[0].offset_s, "macro"), _truth(timeline)[0]) >= 0.5
    for s in spotted:
        assert s.offset_s < 9.5 or s.onset_s > 13.5


def test_landmark_motion_spots_deformation_not_head_motion():
    rng = np.random.default_rng(0)
    n_frames, fs = int(20 * FS), FS
    t = np.arange(n_frames) / fs
    face = rng.normal(0.0, 0.1, (478, 3))
    mouth = np.argsort(face[:, 1])[:40]  # a cluster of "lower face" points
    xyz = np.repeat(face[None], n_frames, axis=0)
    for onset, duration in ((4.0, 1.5), (12.0, 0.35)):
        xyz[:, mouth, 1] -= 0.03 * _event(onset, duration, "x", "x", {}).envelope(t)[:, None]
    # Slow nodding and translation: rigid, must not be spotted.
    angle = 0.2 * np.sin(2 * np.pi * 0.3 * t)
    rot = np.stack([np.stack([np.cos(angle), -np.sin(angle), 0 * angle], -1),
                    np.stack([np.sin(angle), np.cos(angle), 0 * angle], -1),
                    np.stack([0 * angle, 0 * angle, 1 + 0 * angle], -1)], 1)
    xyz = np.einsum("nij,nkj->nki", rot, xyz) + 0.05 * np.sin(t)[:, None, None]
    xyz += rng.normal(0.0, 0.0005, xyz.shape)
    spotted = spot_expressions(xyz.reshape(n_frames, -1), t, srate=fs, source_kind="landmarks")
    truth = [Interval(4.0, 5.5, "macro"), Interval(12.0, 12.35, "micro")]
    scores = spot_eval(spotted, truth)
    assert scores["overall"]["f1"] == 1.0, [(s.onset_s, s.offset_s) for s in spotted]
    assert [s.kind for s in spotted] == ["macro", "micro"] and spotted[0].label == "motion"


def test_cli_spot_json_and_errors(tmp_path):
    import typer
    from typer.testing import CliRunner

    from acquisition.cli.spot import spot

    app = typer.Typer()
    app.command()(spot)
    app.command("other")(lambda: None)  # two commands, so typer keeps "spot" as a subcommand
    path = tmp_path / "s.h5"
    _write_session(path, _timeline(), au_name="ActionUnits")
    runner = CliRunner()
    res = runner.invoke(app, ["spot", str(path), "--json", "--truth", "Markers"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["source"] == "ActionUnits" and out["reason"].startswith("first ActionUnits")
    assert out["out_stream"] == "ActionUnits-Spotted" and len(out["intervals"]) == 3
    assert out["overall"]["f1"] == 1.0 and out["micro"]["tp"] == 1 and out["macro"]["tp"] == 2
    res = runner.invoke(app, ["spot", str(path)])
    assert res.exit_code == 1 and "--overwrite" in res.output
    res = runner.invoke(app, ["spot", str(path), "--overwrite", "--out-stream", "mine"])
    assert res.exit_code == 0 and "Source: ActionUnits" in res.output and "Wrote marker stream mine" in res.output


def test_recorded_light_rig_session(tmp_path, light_rig_config):
    from tests.conftest import record_rig
    from synth.facs import TimelineConfig
    from synth.rig import SimulatedRig

    off = {"enabled": False}
    config = light_rig_config.model_copy(update={
        "rgb": light_rig_config.rgb.model_copy(update=off), "depth": light_rig_config.depth.model_copy(update=off),
        "emg": light_rig_config.emg.model_copy(update=off), "eeg": light_rig_config.eeg.model_copy(update=off),
        "timeline": TimelineConfig(expressions_per_minute=40, lead_in_s=0.5, min_gap_s=0.3)})
    rig = SimulatedRig(config, seed=3, duration_s=60, profile="light")
    path = tmp_path / "rig.h5"
    record_rig(rig, path, 8.0)
    au_name, marker_name = rig.stream_name("au"), rig.stream_name("markers")
    result = spot_session(path)
    assert result.source == au_name and result.out_stream == f"{au_name}-Spotted"
    with open_session(path) as s:
        au = s.streams[au_name]
        t_first, t_last = au.timestamps[0], au.timestamps[-1]
        everything = [Interval(rig.t0 + e.onset_s, rig.t0 + e.offset_s, e.kind) for e in rig.timeline.expressions]
        truth = [i for i in everything if i.onset_s > t_first + 0.5 and i.offset_s < t_last - 0.5]
        # Expressions cut by the start or end of the recording are seen partly: judge neither way.
        cut = [i for i in everything if i not in truth and i.offset_s > t_first and i.onset_s < t_last]
        spotted_stream = s.streams[f"{au_name}-Spotted"]
        spotted = intervals_from_markers(spotted_stream.timestamps, spotted_stream.data[:, 0])  # rig.t0: source clock
        assert np.isin(spotted_stream.timestamps, au.timestamps).all()
        assert s.streams[marker_name].n_samples > 0
    assert len(truth) >= 2
    inside = [i for i in spotted if not any(interval_iou(i, c) > 0 for c in cut)]
    scores = spot_eval(inside, truth)
    assert scores["overall"]["recall"] == 1.0 and scores["overall"]["precision"] == 1.0, scores
