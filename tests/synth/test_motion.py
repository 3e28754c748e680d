"""The learned AU motion model (synth.generative.motion) on frames whose motion is known exactly.

Faces here are smooth random textures (one per subject) moved by a known displacement per unit of
one AU, with a known depth change on a patch: the fit must recover both, explain the frames, and
leave AUs it never saw alone. The model-folder path (fit-motion, sampling, the card) is tested with
the tiny identity model in ``test_identity_generator.py``.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from acquisition.annotate.action_units import AU_INDEX
from synth.generative.config import MotionConfig, load_synth_config
from synth.generative.frames import FaceFrames
from synth.generative.motion import AUMotionModel

SIZE = 40
SHIFT_PX_PER_UNIT = (0.5, -0.25)  # backward map per unit of AU12: x then y
DEPTH_PER_UNIT = 0.05             # AU26 raises depth by this per unit on the patch below
PATCH = (slice(24, 34), slice(12, 28))


def _texture(rng: np.random.Generator) -> np.ndarray:
    noise = rng.normal(size=(4, SIZE, SIZE)).astype(np.float32)
    return np.stack([cv2.GaussianBlur(c, (0, 0), 2.0) * 2.5 for c in noise]).clip(-0.9, 0.9)


def _move(reference: np.ndarray, au12: float, au26: float) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    mx, my = xx + SHIFT_PX_PER_UNIT[0] * au12, yy + SHIFT_PX_PER_UNIT[1] * au12
    out = np.stack([cv2.remap(c, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) for c in reference])
    out[3][PATCH] += DEPTH_PER_UNIT * au26
    return out


def _frames(n_subjects: int = 3, n_per: int = 60, seed: int = 0, expressive: bool = True) -> FaceFrames:
    rng = np.random.default_rng(seed)
    rgbd, aus, subjects = [], [], []
    for s in range(n_subjects):
        ref = _texture(rng)
        for k in range(n_per):
            a = np.zeros(17, np.float32)
            if expressive and k >= 20:  # 20 neutral frames, then independent AU12 and AU26 courses
                a[AU_INDEX[12]], a[AU_INDEX[26]] = rng.uniform(0, 3), rng.uniform(0, 3)
            rgbd.append(_move(ref, a[AU_INDEX[12]], a[AU_INDEX[26]]))
            aus.append(a)
            subjects.append(f"sub-{s:02d}")
    n = len(rgbd)
    return FaceFrames(np.asarray(rgbd, np.float32), np.asarray(aus), np.asarray(subjects), np.full(n, "x.h5"),
                      np.arange(n) / 30.0)


@pytest.fixture(scope="module")
def fitted():
    return AUMotionModel.fit(_frames(), MotionConfig(ridge=1e-4))


def test_fit_recovers_the_known_motion_and_depth_change(fitted):
    inner = (slice(8, SIZE - 8), slice(8, SIZE - 8))
    flow = fitted.flow[AU_INDEX[12]]
    assert abs(np.median(flow[0][inner]) - SHIFT_PX_PER_UNIT[0]) < 0.08
    assert abs(np.median(flow[1][inner]) - SHIFT_PX_PER_UNIT[1]) < 0.08
    # AU26 moves nothing; it changes depth on the patch only
    assert np.abs(np.median(fitted.flow[AU_INDEX[26]][:, inner[0], inner[1]])) < 0.05
    assert abs(np.median(fitted.residual[AU_INDEX[26], 3][PATCH]) - DEPTH_PER_UNIT) < 0.01
    assert abs(np.median(fitted.residual[AU_INDEX[26], 3][:20])) < 0.01
    # AUs the frames never show get no basis at all
    assert fitted.modelled_aus == [12, 26]
    assert not fitted.flow[AU_INDEX[4]].any() and not fitted.residual[AU_INDEX[4]].any()
    assert fitted.fitted["subjects"] == ["sub-00", "sub-01", "sub-02"] and fitted.fitted["n_frames"] == 180
    assert fitted.fitted["explained_variance"] > 0.8


def test_animate_reproduces_unseen_faces(fitted):
    rng = np.random.default_rng(99)  # a new texture: the motion is the same on every face
    ref = _texture(rng)
    aus = np.zeros((5, 17), np.float32)
    aus[:, AU_INDEX[12]] = [0, 0.5, 1.5, 2.5, 1.0]
    aus[:, AU_INDEX[26]] = [0, 2.0, 1.0, 0.0, 2.5]
    out = fitted.animate(ref, aus)
    truth = np.stack([_move(ref, a[AU_INDEX[12]], a[AU_INDEX[26]]) for a in aus])
    inner = (slice(None), slice(None), slice(6, SIZE - 6), slice(6, SIZE - 6))
    change = np.abs(truth - ref)[inner][1:].mean()
    assert np.abs(out - truth)[inner][1:].mean() < 0.3 * change
    np.testing.assert_array_equal(out[0], ref)  # all AUs 0: the neutral face itself


def test_shuffled_aus_explain_nothing():
    # the floor: the same frames with AU rows shuffled across frames leave nothing to learn
    frames = _frames(seed=1)
    rng = np.random.default_rng(0)
    frames.aus = frames.aus[rng.permutation(len(frames))]
    model = AUMotionModel.fit(frames, MotionConfig(ridge=1e-4))
    assert model.fitted["explained_variance"] < 0.2


def test_save_and_load_round_trip(fitted, tmp_path):
    fitted.save(tmp_path)
    back = AUMotionModel.load(tmp_path, fitted.fitted)
    np.testing.assert_array_equal(back.flow, fitted.flow)
    np.testing.assert_array_equal(back.residual, fitted.residual)
    assert not list(tmp_path.glob("*.partial"))
    with pytest.raises(FileNotFoundError, match="synth fit-motion"):
        AUMotionModel.load(tmp_path / "nowhere", fitted.fitted)


def test_bad_input_is_refused(fitted):
    with pytest.raises(ValueError, match="no expressions to learn motion from"):
        AUMotionModel.fit(_frames(n_per=25, expressive=False), MotionConfig())
    with pytest.raises(ValueError, match=r"neutral face must have shape \(4, 40, 40\)"):
        fitted.animate(np.zeros((4, 32, 32)), np.zeros((2, 17)))
    with pytest.raises(ValueError, match="aus must have 17 columns"):
        fitted.animate(np.zeros((4, SIZE, SIZE)), np.zeros((2, 5)))


def test_motion_and_dp_sgd_are_refused_together():
    with pytest.raises(ValueError, match="model.motion.enabled and privacy.dp_sgd cannot be combined"):
        load_synth_config("tiny-diffusion", ["model.motion.enabled=true", "privacy.dp_sgd=true",
                                             "privacy.noise_multiplier=1.0"])
    with pytest.raises(ValueError, match="flow_window_px"):
        load_synth_config("tiny-diffusion", ["model.motion.flow_window_px=1"])
