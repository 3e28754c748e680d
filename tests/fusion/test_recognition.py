"""Expression recognition: MEGC metrics and chance (known answers), class sets, clips, LOSO errors, learning, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from acquisition import SessionWriter, StreamSpec, open_session
from acquisition.annotate.action_units import EMOTIONS
from acquisition.utils.config import ConfigError
from fusion.data import SessionWindows
from fusion.recognition.classes import CLASS_SETS, class_names, map_label
from fusion.recognition.config import RecognizeConfig, load_recognize_config
from fusion.recognition.evaluate import chance_confusion, check_subjects, confusion_matrix, loso, megc_scores
from fusion.recognition.intervals import ExpressionInterval, read_intervals
from fusion.recognition.train import Clips, EncoderSource, read_clips, stratified_subset

from .conftest import write_small_session

RIG = ["idle.enabled=true", "timeline.expressions_per_minute=60"]
EMG_ONLY = ["modalities=[emg]", "threads=1"]


@pytest.fixture(scope="module")
def subjects3(tmp_path_factory):
    """Three simulated subjects (tuning identity seeds 0-2), 30 s each, RGB (the clock) + EMG + Markers."""
    from synth.rig.offline import write_rig_session

    folder = tmp_path_factory.mktemp("rec")
    return [write_rig_session(folder / f"sub{i}.h5", duration_s=30, seed=10 + i, overrides=[*RIG, f"identity_seed={i}"],
                              modalities=("rgb", "emg", "markers")) for i in range(3)]


def _with_markers(fname, texts, times):
    """A small hand-made session (no subject id) with a Markers stream holding ``texts`` at ``times``."""
    write_small_session(fname, duration_s=4.0)
    with SessionWriter.replace_derived(fname, [StreamSpec("Markers", "Markers", 1, "string", 0.0, "m")],
                                       derived_by="test") as new:
        new["Markers"].append([[t] for t in texts], times)
    return fname


# ---------------------------------------------------------------- metrics: known answers
def test_megc_scores_known_answer():
    # rows: true class, columns: predicted. TP = (3, 1, 2); FP = (2, 2, 0); FN = (1, 2, 1).
    confusion = np.array([[3, 1, 0], [2, 1, 0], [0, 1, 2]])
    scores = megc_scores(confusion)
    assert scores["uf1"] == pytest.approx(np.mean([6 / 9, 2 / 6, 4 / 5]))        # 0.6
    assert scores["uar"] == pytest.approx(np.mean([3 / 4, 1 / 3, 2 / 3]))        # 0.5833
    # A class without true clips is left out of both means (its false positives still cost the others nothing).
    absent = megc_scores(np.array([[2, 1, 0], [0, 1, 1], [0, 0, 0]]))
    assert absent["uf1"] == pytest.approx((4 / 5 + 2 / 4) / 2) and absent["uar"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert absent["n_classes_present"] == 2
    assert np.isnan(megc_scores(np.zeros((3, 3)))["uf1"])


def test_folds_are_summed_before_scoring():
    # MEGC sums TP/FP/FN over folds: fold A all right on class 0, fold B all wrong on class 1.
    a = confusion_matrix([0, 0], [0, 0], 2)
    b = confusion_matrix([1, 1], [0, 0], 2)
    assert a.tolist() == [[2, 0], [0, 0]] and b.tolist() == [[0, 0], [2, 0]]
    total = megc_scores(a + b)
    assert total["uf1"] == pytest.approx((2 * 2 / (4 + 2 + 0) + 0) / 2)     # class 0: TP 2, FP 2; class 1: 0
    assert total["uar"] == pytest.approx(0.5)
    assert total["uf1"] != pytest.approx(np.mean([megc_scores(a)["uf1"], megc_scores(b)["uf1"]]))


def test_chance_known_answer_and_simulation():
    # Uniform prior, balanced classes: 1 / n_classes.
    uniform = megc_scores(chance_confusion([10, 10, 10], [1, 1, 1]))
    assert uniform["uf1"] == pytest.approx(1 / 3) and uniform["uar"] == pytest.approx(1 / 3)
    # Prior (0.5, 0.25, 0.25), test counts (2, 1, 1), N = 4: F1_c = 2 n_c p_c / (N p_c + n_c) = (0.5, 0.25, 0.25).
    skewed = megc_scores(chance_confusion([2, 1, 1], [2, 1, 1]))
    assert skewed["uf1"] == pytest.approx(1 / 3) and skewed["uar"] == pytest.approx(1 / 3)
    # It is what a classifier guessing with the prior does, counts summed over many folds.
    rng = np.random.default_rng(0)
    truth = np.repeat([0, 1, 2], [6, 3, 1])
    prior = np.array([0.2, 0.5, 0.3])
    simulated = sum(confusion_matrix(truth, rng.choice(3, len(truth), p=prior), 3) for _ in range(20_000))
    expected = chance_confusion(np.bincount(truth), prior)
    assert megc_scores(simulated)["uf1"] == pytest.approx(megc_scores(expected)["uf1"], abs=2e-3)
    assert megc_scores(simulated)["uar"] == pytest.approx(megc_scores(expected)["uar"], abs=2e-3)


# ---------------------------------------------------------------- class sets
def test_class_mapping():
    assert class_names("megc3") == ["negative", "positive", "surprise"]
    assert [map_label(e, "megc3") for e in ("anger", "contempt", "disgust", "fear", "sadness")] == ["negative"] * 5
    assert map_label("happiness", "megc3") == "positive" and map_label(" Surprise ", "megc3") == "surprise"
    assert all(map_label(e, "basic7") == e for e in EMOTIONS)
    # every emotion the rig draws has a class in every set
    assert all(map_label(e, s) for e in EMOTIONS for s in CLASS_SETS)
    with pytest.raises(ValueError, match="'AU06\\+AU12' is in no class of 'megc3'"):
        map_label("AU06+AU12", "megc3")
    with pytest.raises(ValueError, match="Unknown class set 'megc5'.*megc3, basic7"):
        map_label("fear", "megc5")


def test_stratified_subset():
    targets = np.repeat([0, 1, 2], [20, 5, 5])
    idx = stratified_subset(np.arange(30), targets, 0.1, seed=3)
    assert np.bincount(targets[idx]).tolist() == [2, 1, 1]           # max(1, round(0.1 n_c)) per class
    assert np.array_equal(idx, stratified_subset(np.arange(30), targets, 0.1, seed=3))
    assert np.array_equal(stratified_subset(np.arange(30), targets, 1.0, seed=3), np.arange(30))


def test_config_defaults_are_default_yaml():
    assert load_recognize_config("default") == RecognizeConfig()
    with pytest.raises(ConfigError, match="classes"):
        load_recognize_config("default", ["classes=megc5"])
    with pytest.raises(ConfigError, match="unknown_key"):
        load_recognize_config("default", ["unknown_key=1"])


# ---------------------------------------------------------------- clips and intervals
def test_windows_centred_at_given_times(tmp_path):
    fname = write_small_session(tmp_path / "a.h5", duration_s=3.0)
    centres = np.array([2.0, 0.6, 2.9])            # out of order on purpose; the last reaches past the end
    ds = SessionWindows([fname], window_s=0.5, modalities=["rgb", "emg"], clip_frames=2, image_size=8,
                        centres=[centres])
    assert len(ds) == 3
    assert np.allclose(ds.labels()["time_s"], centres)
    assert [ds[k]["available"]["rgb"] for k in range(3)] == [True, True, False]
    with pytest.raises(ValueError, match="one array per session"):
        SessionWindows([fname], centres=[centres, centres])


def test_read_intervals_and_their_errors(subjects3, tmp_path):
    intervals = read_intervals(subjects3[0])
    with open_session(subjects3[0]) as s:
        texts = [row[0] for row in s.streams["Markers"].data[:]]
    assert len(intervals) == sum(t.startswith("offset/") and "blink" not in t for t in texts) > 5
    assert all(i.subject == "sub-id000" and i.onset_s <= i.apex_s <= i.offset_s for i in intervals)
    with pytest.raises(ValueError, match="no marker stream 'cam-Spotted'.*emosync spot"):
        read_intervals(subjects3[0], "cam-Spotted")
    bare = write_small_session(tmp_path / "bare.h5")
    with pytest.raises(ValueError, match="no marker stream 'Markers' \\(its marker streams: none\\)"):
        read_intervals(bare)
    only_blinks = _with_markers(tmp_path / "blinks.h5", ["blink", "onset/fear/micro"], [1.0, 2.0])
    with pytest.raises(ValueError, match="holds no complete expression"):
        read_intervals(only_blinks)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_intervals(tmp_path / "missing.h5")


def test_clips_that_fit_no_recording_name_the_fix(subjects3):
    """A corpus of short synthetic sequences has no room for a clip: the error says how to sample longer ones."""
    from fusion.config import load_pretrain_config

    intervals = read_intervals(subjects3[0])
    config = load_pretrain_config("tiny", ["data.window_s=40"])       # longer than the 30-s session
    with pytest.raises(ValueError, match=r"No expression interval of \d+ .* 40.0 s clip centred on its apex.*"
                                         r"--frames N.*1215 for a micro-expression"):
        read_clips(intervals, config)


def _interval(subject, label, session="s.h5"):
    return ExpressionInterval(Path(session), subject, 1.0, 1.2, 1.4, label, "micro")


def test_loso_input_errors():
    with pytest.raises(ValueError, match="without a subject id: \\['a.h5'\\]"):
        check_subjects([_interval("sub-unknown", "fear", "a.h5"), _interval("sub-1", "fear", "b.h5")])
    with pytest.raises(ValueError, match="at least two subjects"):
        check_subjects([_interval("sub-1", "fear"), _interval("sub-1", "happiness")])
    # Fold sub-C trains on A and B, which only show negative expressions.
    intervals = [_interval("sub-A", "fear"), _interval("sub-B", "anger"), _interval("sub-C", "happiness")]
    clips = Clips(intervals, {}, {}, None)
    with pytest.raises(ValueError, match="Fold 'sub-C'.*one class only.*'negative': 2, 'positive': 0"):
        loso(clips, None, RecognizeConfig())
    clips = Clips([*intervals, _interval("sub-A", "AU04")], {}, {}, None)
    with pytest.raises(ValueError, match="'AU04' is in no class"):
        loso(clips, None, RecognizeConfig())


# ---------------------------------------------------------------- learning (can fail)
@pytest.mark.slow
def test_emg_recognizer_beats_chance_on_held_out_subjects(subjects3):
    config = load_recognize_config("tiny", [*EMG_ONLY, "optim.steps=80"])
    source = EncoderSource(None, config.scratch_config)
    from fusion.recognition.intervals import read_all_intervals

    clips = read_clips(read_all_intervals(subjects3), source.config)
    report = loso(clips, source, config)
    assert len(report["per_fold"]) == 3 and sum(f["n_test"] for f in report["per_fold"]) == len(clips)
    assert report["chance_uf1"] < 0.4
    assert report["uf1"] > report["chance_uf1"] + 0.2, report
    assert report["uar"] > report["chance_uar"] + 0.2, report


# ---------------------------------------------------------------- model folder and CLI
def _cli(*args):
    from emosync import app

    return CliRunner().invoke(app, ["recognize", *map(str, args)])


def _text(result) -> str:
    """The command's output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def test_cli_train_predict_and_round_trip(subjects3, tmp_path):
    out = tmp_path / "rec"
    result = _cli("train", *subjects3[:2], "--scratch", "--classes", "megc3", "--out", out, "--modalities", "emg",
                  "--config", "tiny", "--set", "optim.steps=3", "--no-progress")
    assert result.exit_code == 0, result.output
    assert (out / "config.json").is_file() and (out / "weights" / "model.safetensors").is_file()
    assert json.loads((out / "config.json").read_text())["kind"] == "expression-recognizer"
    # save_pretrained / from_pretrained keep the logits
    from fusion.recognition.head import RecognitionModel
    from fusion.recognition.predict import predict_session

    model = RecognitionModel.from_pretrained(out)
    assert model.classes == ["negative", "positive", "surprise"] and model.modalities == ["emg"]
    kwargs = model.encoders.config["modalities"]["emg"]["encoder_kwargs"]
    batch = {"emg": torch.randn(2, kwargs["n_chans"], kwargs["n_times"]),
             "available": {"emg": torch.tensor([True, False])}}
    with torch.no_grad():
        assert torch.equal(model(batch), RecognitionModel.from_pretrained(out)(batch))
    # predict on a held-out subject: the ground-truth intervals, labelled as a marker stream
    target = subjects3[2]
    result = _cli("predict", out, target, "--intervals", "Markers", "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert found and all(p["class"] in model.classes for p in found)
    with open_session(target) as s:
        stream = s.streams["Markers-Recognized"]
        texts = [row[0] for row in stream.data[:]]
        assert stream.info["derived_by"] == "emosync recognize"
        assert np.allclose(sorted(stream.times[[t.startswith("onset/") for t in texts]]),
                           sorted(p["onset_s"] for p in found))
    assert len(texts) == 3 * len(found) and all(t.split("/")[1] in model.classes for t in texts)
    again = _cli("predict", out, target, "--intervals", "Markers")
    assert again.exit_code == 1 and "already has a stream 'Markers-Recognized'" in _text(again)
    assert _cli("predict", out, target, "--intervals", "Markers", "--overwrite").exit_code == 0
    no_spots = _cli("predict", out, target)
    assert no_spots.exit_code == 1 and "no spotted intervals" in _text(no_spots) and "emosync spot" in _text(no_spots)
    # a session without EMG is still labelled: the modality is missing, not refused
    predictions = predict_session(out, _rgb_only(tmp_path), intervals="Markers", write=False)
    assert predictions and all(p["class"] in model.classes for p in predictions)
    with pytest.raises(ValueError, match="holds a 'expression-recognizer' model, not 'multimodal-encoder'"):
        from fusion.model import MultiModalEncoder

        MultiModalEncoder.from_pretrained(out)


def _rgb_only(tmp_path):
    from synth.rig.offline import write_rig_session

    return write_rig_session(tmp_path / "rgb_only.h5", duration_s=12, seed=5, overrides=[*RIG, "identity_seed=5"],
                             modalities=("rgb", "markers"))


def test_cli_evaluate_json_and_confusion_png(subjects3, tmp_path):
    result = _cli("evaluate", *subjects3, "--scratch", "--protocol", "loso", "--json", "--config", "tiny",
                  "--modalities", "emg", "--set", "optim.steps=3", "--out", tmp_path / "ev")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {"uf1", "uar", "chance_uf1", "per_fold", "confusion"} <= set(report)
    assert [f["subject"] for f in report["per_fold"]] == ["sub-id000", "sub-id001", "sub-id002"]
    assert sum(map(sum, report["confusion"])) == report["n_clips"]
    assert Path(report["confusion_png"]).stat().st_size > 1000 and (tmp_path / "ev" / "loso.json").is_file()


def test_cli_bad_input(subjects3, tmp_path):
    bare = write_small_session(tmp_path / "bare.h5")
    result = _cli("evaluate", bare, "--scratch")
    assert result.exit_code == 1 and "no marker stream 'Markers'" in _text(result)
    result = _cli("evaluate", *subjects3, "--scratch", "--encoders", tmp_path)
    assert result.exit_code == 1 and "not both" in _text(result)
    result = _cli("evaluate", *subjects3, "--scratch", "--classes", "megc5")
    assert result.exit_code == 1 and "megc5" in _text(result)
    result = _cli("evaluate", *subjects3, "--scratch", "--protocol", "kfold")
    assert result.exit_code == 1 and "loso" in _text(result)
    result = _cli("train", *subjects3, "--encoders", tmp_path / "nope", "--out", tmp_path / "o")
    assert result.exit_code == 1 and "not a pretraining run" in _text(result)
    expression = ["onset/fear/micro", "apex/fear/micro", "offset/fear/micro"]
    anonymous = [_with_markers(tmp_path / f"anon{i}.h5", expression, [1.5, 1.7, 1.9]) for i in range(2)]
    result = _cli("evaluate", *anonymous, "--scratch")
    assert result.exit_code == 1 and "without a subject id: ['anon0.h5', 'anon1.h5']" in _text(result)


def test_pretrained_encoders_probe_frozen_finetune_trained(subjects3, tmp_path):
    from fusion.config import load_pretrain_config
    from fusion.model import MultiModalEncoder
    from fusion.train import pretrain

    from fusion.recognition.head import RecognitionModel

    run = tmp_path / "pre"
    pretrain(subjects3[:2], load_pretrain_config("tiny", ["data.modalities=[rgb,emg]", "optim.steps=2",
                                                          "optim.batch_size=4", "data.cache=false"]), run,
             progress=False)
    pretrained = MultiModalEncoder.from_pretrained(run / "model").state_dict()
    for mode in ("probe", "finetune"):
        result = _cli("train", *subjects3[:2], "--encoders", run, "--mode", mode, "--modalities", "emg", "--out",
                      tmp_path / mode, "--config", "tiny", "--set", "optim.steps=3", "--no-progress")
        assert result.exit_code == 0, result.output
        emg = {k: v for k, v in RecognitionModel.from_pretrained(tmp_path / mode).encoders.state_dict().items()
               if k.startswith("encoders.emg.") and v.is_floating_point()}
        same = all(torch.equal(v, pretrained[k]) for k, v in emg.items())
        assert same == (mode == "probe"), mode      # the probe never changes the encoders; fine-tuning does
    # sessions recorded differently from the pretraining sessions: a clear error, not a shape crash
    expression = ["onset/fear/micro", "apex/fear/micro", "offset/fear/micro"]
    happy = [t.replace("fear", "happiness") for t in expression]
    other = _with_markers(tmp_path / "other.h5", expression + happy, [1.5, 1.7, 1.9, 2.2, 2.4, 2.6])
    result = _cli("train", other, "--encoders", run, "--modalities", "emg", "--out", tmp_path / "x")
    assert result.exit_code == 1 and "takes 8 channels x 2000 samples, the sessions give 4 x 200" in _text(result)


def test_help_lists_commands():
    result = _cli("--help")
    assert result.exit_code == 0 and all(c in _text(result) for c in ("train", "evaluate", "predict"))
