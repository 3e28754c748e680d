"""Tests of the independent AU-fidelity scorer (``synth.scoring``, ``emosync synth score``)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from synth.scoring.coherence import frame_flicker


def test_frame_flicker_known_answers():
    """Still sequence -> 0; alternating -1/+1 -> 2; a ramp of step s -> s."""
    still = np.zeros((5, 4, 8, 8), np.float32)
    assert frame_flicker(still) == 0.0
    alternating = np.where(np.arange(6)[:, None, None, None] % 2 == 0, -1.0, 1.0) * np.ones((6, 3, 4, 4))
    assert frame_flicker(alternating) == pytest.approx(2.0)
    ramp = (np.arange(10, dtype=np.float64) * 0.05 - 0.25)[:, None, None, None] * np.ones((10, 4, 2, 2))
    assert frame_flicker(ramp) == pytest.approx(0.05)
    # Only one pixel of one channel changes: the mean spreads it over all values.
    one = np.zeros((2, 4, 2, 2))
    one[1, 0, 0, 0] = 1.0
    assert frame_flicker(one) == pytest.approx(1.0 / 16)
    assert frame_flicker(still[:1]) == 0.0


def test_frame_flicker_order_matters():
    """Shuffling frames of a smooth sequence raises flicker (time order is what is measured)."""
    t = np.linspace(0, 1, 20)
    smooth = np.sin(2 * np.pi * t)[:, None, None, None] * np.ones((20, 4, 4, 4))
    shuffled = smooth[np.random.default_rng(0).permutation(20)]
    assert frame_flicker(shuffled) > 3 * frame_flicker(smooth)


def test_frame_flicker_bad_input():
    with pytest.raises(ValueError, match="shape"):
        frame_flicker(np.zeros((2, 4, 8)))
    with pytest.raises(TypeError, match="floating point"):
        frame_flicker(np.zeros((2, 4, 8, 8), np.uint8))
    bad = np.zeros((3, 4, 8, 8))
    bad[1, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        frame_flicker(bad)


# --- metrics: known answers -------------------------------------------------------------------------------

from synth.scoring.controls import retrieve_by_aus, shuffled_requests, subject_folds  # noqa: E402
from synth.scoring.metrics import (expression_timing, mae_per_au, pearson_per_au, rendered_aus,  # noqa: E402
                                   summarize_timing, timing_errors)
from synth.scoring.reference import reference_episodes  # noqa: E402


def _bump(n: int, centre: float, width: float, height: float = 3.0) -> np.ndarray:
    t = np.arange(n, dtype=np.float64)
    return height * np.exp(-0.5 * ((t - centre) / width) ** 2)


def test_pearson_and_mae_known_answers():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 5, (200, 3))
    measured = np.column_stack([2 * a[:, 0] + 1, -a[:, 1], np.full(200, 2.0)])
    r = pearson_per_au(a, measured)
    assert r[0] == pytest.approx(1.0) and r[1] == pytest.approx(-1.0)
    assert r[2] == 0.0                             # constant measurement while the request varies: no tracking
    assert np.isnan(pearson_per_au(np.ones((5, 1)), np.arange(5.0)[:, None]))[0]   # nothing requested to vary
    # Reference implementation: numpy's corrcoef.
    b = a[:, 0] + rng.normal(0, 1, 200)
    assert pearson_per_au(a[:, :1], b[:, None])[0] == pytest.approx(np.corrcoef(a[:, 0], b)[0, 1])
    assert mae_per_au(a, a + np.array([0.5, -1.0, 0.0]))[:2] == pytest.approx([0.5, 1.0])
    with pytest.raises(ValueError, match="shape"):
        pearson_per_au(np.zeros((4, 2)), np.zeros((4, 3)))


def test_expression_timing_half_maximum_rule():
    course = np.array([0, 0, 1, 2, 4, 3, 2, 1.9, 0, 0], dtype=float)
    t = expression_timing(course)
    # peak 4 at frame 4; >= 2 from frame 3 through frame 6 (1.9 < 2 ends the run).
    assert (t.onset, t.apex, t.offset) == (3, 4, 6)
    assert expression_timing(np.full(6, 1.5)) is None


@pytest.mark.parametrize("k", [-3, 0, 1, 4])
def test_timing_error_of_a_shift_is_exactly_k_frames(k):
    requested = _bump(60, 25.0, 4.0)
    measured = _bump(60, 25.0 + k, 4.0) + 0.7     # an offset must not matter (course minus its minimum)
    assert timing_errors(requested, measured) == {"onset": k, "apex": k, "offset": k}
    summary = summarize_timing([timing_errors(requested, measured), None])
    assert summary["n_sequences"] == 1 and summary["mean_abs_frames"] == abs(k)


def test_timing_flat_cases():
    assert timing_errors(np.zeros(10), _bump(10, 5, 1)) is None          # nothing requested: not timed
    errors = timing_errors(_bump(30, 15, 2), np.zeros(30))               # nothing rendered: penalized
    assert errors["apex"] == -15


def test_floor_is_near_zero_on_shuffled_requests():
    rng = np.random.default_rng(1)
    requested = np.cumsum(rng.normal(0, 0.2, (3000, 4)), axis=0) % 5   # smooth, autocorrelated courses
    measured = requested + rng.normal(0, 0.3, requested.shape)
    assert np.all(pearson_per_au(requested, measured) > 0.9)
    floor = pearson_per_au(shuffled_requests(requested, seed=0), measured)
    assert np.all(np.abs(floor) < 0.08)


def test_rendered_aus_rule():
    aus = np.zeros((100, 3))
    aus[:, 0] = np.linspace(0, 5, 100)      # std ~1.46
    aus[::10, 1] = 0.5                      # std 0.15
    assert rendered_aus(aus, min_std=0.2).tolist() == [True, False, False]
    assert rendered_aus(aus, min_std=0.1).tolist() == [True, True, False]


def test_grid_caption_names_the_strongest_scored_aus():
    from synth.scoring.grid import au_caption

    requested, measured = np.zeros(17), np.zeros(17)
    requested[[0, 4, 8]] = [1.0, 3.0, 4.0]    # AU01, AU06 (scored), AU12 (not scored)
    measured[[0, 4, 8]] = [0.5, 2.3, 4.0]
    scored = np.ones(17, bool)
    scored[8] = False
    assert au_caption(requested, measured, scored, 2) == "AU06 3.0/2.3\nAU01 1.0/0.5"
    assert au_caption(np.zeros(17), measured, scored, 2) == "neutral"


def test_retrieval_by_aus_and_folds():
    pool = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    requested = np.array([[4.0, 1.0], [0.2, 0.1], [1.0, 4.5]])
    assert retrieve_by_aus(requested, pool, chunk_size=2).tolist() == [1, 0, 2]
    # By sequence: subject "x" holds rows 0-2, "y" rows 3-4. The first sequence (2 frames) fits y
    # best in sum (0.1 + 0.1 vs 0.0 + 1.0) although its first frame alone fits x exactly.
    pool = np.array([[0.0, 0.0], [1.0, 0.0], [9.0, 9.0], [0.0, 0.1], [2.0, 0.1]])
    groups = np.array(["x", "x", "x", "y", "y"])
    requested = np.array([[0.0, 0.0], [2.0, 0.0], [9.0, 9.0]])
    index = retrieve_by_aus(requested, pool, bounds=[(0, 2), (2, 3)], pool_groups=groups)
    assert index.tolist() == [3, 4, 2]
    with pytest.raises(ValueError, match="pool_groups"):
        retrieve_by_aus(requested, pool, bounds=[(0, 3)])
    folds = subject_folds(np.array(["b", "a", "c", "a", "d"]), 3)
    assert [f.tolist() for f in folds] == [["a", "d"], ["b"], ["c"]]


def test_reference_episodes_cut_and_pad():
    course = np.zeros(40)
    course[10:15] = 2.0       # one expression
    course[30:32] = 2.0       # a short one
    groups = np.array(["s1"] * 40)
    times = np.arange(40) / 10.0      # 10 Hz: pad 0.2 s = 2 frames
    assert reference_episodes(course, groups, times, threshold=0.5, pad_s=0.2, min_frames=5) == [(8, 17), (28, 34)]
    assert reference_episodes(course, groups, times, threshold=0.5, pad_s=0.0, min_frames=5) == [(10, 15)]
    # A second recording starts its own episodes (never one spanning two sessions).
    two = np.r_[course, course]
    assert len(reference_episodes(two, np.array(["s1"] * 40 + ["s2"] * 40), np.r_[times, times], threshold=0.5,
                                  pad_s=0.2, min_frames=5)) == 4


# --- the whole scorer on real rig sessions ------------------------------------------------------------------

SMALL = ["image_size=16", "estimator.steps=30", "estimator.width=4", "ceiling.folds=2", "threads=1"]


def _rig_session(path, identity: int, seed: int, modalities=("rgb", "depth", "au")):
    from synth.rig.offline import write_rig_session

    return write_rig_session(path, duration_s=4.0, seed=seed, profile="light",
                             overrides=[f"identity_seed={identity}", "timeline.expressions_per_minute=90",
                                        "timeline.emotions=[happiness,surprise]"],
                             modalities=modalities)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    """Reference subjects (faces 3 and 5) and another subject (face 9) whose real frames make a 'corpus'."""
    root = tmp_path_factory.mktemp("score-sessions")
    return {"reference": [_rig_session(root / "ref-a.h5", 3, 3), _rig_session(root / "ref-b.h5", 5, 5)],
            "other": _rig_session(root / "other.h5", 9, 9)}


def _copy_corpus(out, rgbd, aus, bounds, *, fps=30.0):
    """Frames written in the corpus layout (corpus.json + one session per sequence), requests = ``aus``."""
    import json

    from synth.facs import SampledAUTimeline
    from synth.generative.corpus import CORPUS_FILE, SequenceRequest, write_sequence

    (out / "sessions").mkdir(parents=True)
    records = []
    for k, (a, b) in enumerate(bounds):
        t = np.arange(b - a) / fps
        request = SequenceRequest(SampledAUTimeline(t, aus[a:b]), t, aus[a:b], None, None, fps)
        write_sequence(out / "sessions" / f"seq-{k:05d}.h5", request, rgbd[a:b],
                       metadata={"generator_kind": "copy-of-real-frames"})
        records.append({"id": f"seq-{k:05d}", "file": f"sessions/seq-{k:05d}.h5", "n_frames": b - a, "fps": fps})
    (out / CORPUS_FILE).write_text(json.dumps({"synthetic": False, "generator": {"kind": "copy", "model_dir": None},
                                               "sequences": records}))
    return out


@pytest.fixture(scope="module")
def other_frames(sessions):
    from synth.generative.frames import load_face_frames

    frames = load_face_frames([sessions["other"]], 16)
    bounds = [(0, 30), (30, 60), (60, 90)]
    return frames, bounds


def test_score_real_frames_as_corpus_and_constant_corpus(sessions, other_frames, tmp_path):
    """Real frames of an unseen subject as the corpus: retrieval from that subject's own session copies exactly
    the same frames, so the memorization baseline matches the synthetic score; a corpus of one constant frame
    measures the same AUs everywhere, so its r is exactly 0."""
    from synth.scoring.config import load_score_config
    from synth.scoring.score import score_corpus

    frames, bounds = other_frames
    cfg = load_score_config("score", SMALL)
    perfect = _copy_corpus(tmp_path / "perfect", frames.rgbd, frames.aus, bounds)
    report = score_corpus(perfect, sessions["reference"], train=[sessions["other"]], config=cfg)
    result = report.to_dict()
    syn, mem = result["sets"]["synthetic"], result["sets"]["memorization"]
    assert syn["n_frames"] == 90 and syn["n_sequences"] == 3
    assert result["sets"]["ceiling"]["folds"] == 2 and result["sets"]["ceiling"]["mean_r"] is not None
    # Not bit-equal: neutral frames share one AU vector (retrieval takes the first), and the corpus went through
    # the uint8/uint16 session format.
    assert mem["mean_r"] == pytest.approx(syn["mean_r"], abs=0.05)
    assert mem["mean_mae"] == pytest.approx(syn["mean_mae"], abs=0.05)
    assert abs(result["sets"]["floor"]["mean_r"]) < 0.35
    files = report.write(tmp_path / "out")
    assert files["json"].name == "score.json" and files["figure"].stat().st_size > 0
    assert files["grid"].name == "score_grid.png"
    with Image.open(files["grid"]) as grid:
        assert grid.width > 300 and grid.height > 300
    again = report.write(tmp_path / "out")                                     # never overwritten
    assert again["json"].name == "score-2.json" and again["grid"].name == "score-2_grid.png"

    constant = np.repeat(frames.rgbd[:1], 90, axis=0)
    flat = _copy_corpus(tmp_path / "constant", constant, frames.aus, bounds)
    result = score_corpus(flat, sessions["reference"], config=cfg).to_dict()
    assert result["sets"]["synthetic"]["mean_r"] == 0.0
    assert result["sets"]["synthetic"]["flicker"] == 0.0
    assert result["sets"]["memorization"] is None and "train" in result["notes"]["memorization"]


def test_score_bad_input(sessions, other_frames, tmp_path):
    from synth.scoring.config import load_score_config
    from synth.scoring.reference import check_reference_subjects
    from synth.scoring.score import score_corpus

    cfg = load_score_config("score", SMALL)
    frames, bounds = other_frames
    corpus = _copy_corpus(tmp_path / "c", frames.rgbd, frames.aus, bounds[:1])
    with pytest.raises(ValueError, match="--reference"):
        score_corpus(corpus, [], config=cfg)
    (tmp_path / "notacorpus").mkdir()
    with pytest.raises(FileNotFoundError, match="not a corpus folder"):
        score_corpus(tmp_path / "notacorpus", sessions["reference"], config=cfg)
    no_au = _rig_session(tmp_path / "noau.h5", 11, 11, modalities=("rgb", "depth"))
    with pytest.raises(ValueError, match="no AU truth"):
        score_corpus(corpus, [no_au], config=cfg)
    with pytest.raises(ValueError, match="generator was trained on"):
        check_reference_subjects(sessions["reference"], ["sub-id005"], source="model folder m")
    with pytest.raises(ValueError, match="share subject"):
        score_corpus(corpus, sessions["reference"], train=[sessions["reference"][0]], config=cfg)
    from acquisition.utils.config import ConfigError
    from synth.scoring.config import load_score_config as load

    with pytest.raises(ConfigError, match="Extra inputs"):
        load("score", ["estimator.bogus=1"])


def test_cli_score(sessions, other_frames, tmp_path):
    import json

    import typer
    from typer.testing import CliRunner

    from synth.cli.score import score

    app = typer.Typer()
    app.command()(score)
    app.command("other")(lambda: None)      # two commands: typer keeps "score" as a sub-command name
    frames, bounds = other_frames
    corpus = _copy_corpus(tmp_path / "c", frames.rgbd, frames.aus, bounds[:2])
    runner = CliRunner()
    result = runner.invoke(app, ["score", str(corpus), "--json"] + [a for s in SMALL for a in ("--set", s)])
    assert result.exit_code == 1 and "--reference" in result.output
    args = ["score", str(corpus), "--json", "--out", str(tmp_path / "o")]
    args += [a for f in sessions["reference"] for a in ("--reference", str(f))]
    args += [a for s in SMALL for a in ("--set", s)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["n_sequences"] == 2 and set(payload["sets"]) == {"synthetic", "ceiling", "memorization", "floor"}
    assert (tmp_path / "o" / "score.png").is_file()
