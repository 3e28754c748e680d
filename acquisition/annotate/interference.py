"""Interference elimination for expression spotting: blinks, head motion, talking, and EMG fusion.

Estimated AUs (``emosync annotate``) move for reasons other than emotion: the face tracker reads a
blink as a squint (AU7 rises with every blink), a head turn changes the 2-D appearance the
blendshape model sees, and speech moves the mouth at syllable rate. Each function here removes
one such confound from the per-frame AU channels before :mod:`acquisition.annotate.spotting`
thresholds them, and each is switched by its own block of :class:`~acquisition.annotate.spot_config.SpotConfig`
so that its effect can be measured:

- :func:`blink_frames` + :func:`bridge_frames`: frames where the blink AU rises briefly are
  interpolated across in the eye-region AUs, so blinks never become expressions;
- :func:`compensate_head_motion`: the part of each AU channel that head pose (angles, their
  squares and products, translation, angular velocity) explains over the session is removed,
  fitted robustly so that expressions (rare, pose-independent) do not bias the fit;
  :func:`head_speed_deg_s` and :func:`nonrigid_motion_z` support the veto of intervals that
  coincide with fast rigid head motion without non-rigid facial motion;
- :func:`talking_frames`: sustained syllable-rate (3-8 Hz) oscillation of the mouth AUs (and,
  EMG-assisted, of the lower-face EMG AUs) marks speech; spotting then leaves the mouth AUs out
  of the activation there;
- :func:`stouffer_fuse`: video and EMG z-scores of an AU both estimate are combined as a weighted
  Stouffer sum, so an expression seen by both gains and an artefact seen by one is diluted.

All functions take arrays with one row per video frame (NaN already interpolated) and never read
the rig's ground truth: inputs are what a user has.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

from acquisition.annotate.spot_config import BlinkConfig, HeadMotionConfig, TalkingConfig


def robust_sd(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """1.4826 x median absolute deviation (the SD for Gaussian data), ignoring NaN."""
    med = np.nanmedian(x, axis=axis, keepdims=True)
    return 1.4826 * np.nanmedian(np.abs(x - med), axis=axis)


def _dilate(mask: np.ndarray, n_frames: int) -> np.ndarray:
    return ndimage.binary_dilation(mask, iterations=n_frames) if n_frames > 0 and mask.any() else mask


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` (stop exclusive) of the True runs of a boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def blink_frames(blink_au: np.ndarray, srate_hz: float, config: BlinkConfig) -> np.ndarray:
    """Frames of blinks: brief rises of the blink AU above its neutral level, with a margin.

    Parameters
    ----------
    blink_au : array, shape (n_frames,)
        The estimated blink AU (AU45, 0-5).
    srate_hz : float
        Frame rate.
    config : BlinkConfig
        ``threshold`` (intensity above the median), ``max_duration_s`` (longer closures are
        not blinks and are left alone), ``margin_s`` (frames added on each side).

    Returns
    -------
    mask : array of bool, shape (n_frames,)
    """
    rise = blink_au - np.median(blink_au)
    above = rise > config.threshold
    mask = np.zeros_like(above)
    max_len = int(round(config.max_duration_s * srate_hz))
    for start, stop in true_runs(above):
        if stop - start <= max_len:
            mask[start:stop] = True
    return _dilate(mask, int(round(config.margin_s * srate_hz)))


def bridge_frames(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Replace masked frames by linear interpolation between the unmasked frames around them (per column).

    Parameters
    ----------
    x : array, shape (n_frames, n_channels)
    mask : array of bool, shape (n_frames,)

    Returns
    -------
    bridged : array, shape (n_frames, n_channels)
        A copy; unchanged where ``mask`` is False (or where every frame is masked).
    """
    out = np.array(x, dtype=np.float64, copy=True)
    good = np.flatnonzero(~mask)
    if good.size == 0 or good.size == mask.size:
        return out
    bad = np.flatnonzero(mask)
    for c in range(out.shape[1]):
        out[bad, c] = np.interp(bad, good, out[good, c])
    return out


def head_speed_deg_s(pose: np.ndarray, srate_hz: float) -> np.ndarray:
    """Angular head speed (deg/s): the norm of the yaw, pitch and roll rates (columns 0-2 of ``pose``)."""
    rates = np.gradient(np.asarray(pose, dtype=np.float64)[:, :3], 1.0 / srate_hz, axis=0)
    return np.linalg.norm(rates, axis=1)


def _pose_features(pose: np.ndarray, srate_hz: float, config: HeadMotionConfig) -> np.ndarray:
    """Regressors of pose-driven estimation error, centred and in units of the config's ridge scales.

    Angles, their squares and products, angular rates and their magnitudes, and translation.
    A feature that varies by less than one unit (``ridge_deg`` degrees, ``ridge_deg_s`` deg/s,
    ``ridge_cm`` cm) over the session is mostly shrunk away by the unit ridge penalty: a still
    head's pose jitter, which the tracker derives from the expression itself, is not regressed.
    """
    pose = np.asarray(pose, dtype=np.float64)
    angles = pose[:, :3] - np.median(pose[:, :3], axis=0)
    rates = np.gradient(angles, 1.0 / srate_hz, axis=0)
    yaw, pitch, roll = angles.T
    deg, deg2 = config.ridge_deg, config.ridge_deg**2
    columns = [angles / deg, angles**2 / deg2, np.column_stack([yaw * pitch, yaw * roll, pitch * roll]) / deg2,
               rates / config.ridge_deg_s, np.abs(rates) / config.ridge_deg_s]
    if pose.shape[1] >= 6:
        columns.append(pose[:, 3:6] / config.ridge_cm)
    feats = np.column_stack(columns)
    return feats - feats.mean(axis=0)


def compensate_head_motion(x: np.ndarray, pose: np.ndarray, srate_hz: float, config: HeadMotionConfig,
                           valid: np.ndarray | None = None) -> np.ndarray:
    """Remove the part of each AU channel that head pose explains.

    A linear model of each channel on pose features (yaw, pitch, roll, their squares and
    products, translation, angular rates and their magnitudes) is fitted by ridge regression
    over the session (see ``ridge_deg``: pose changes smaller than that are left alone); frames
    whose residual exceeds ``config.robust_z`` robust SDs (expressions, which are brief and
    pose-independent) are left out of a second fit. The fitted pose part (without the
    intercept) is subtracted.

    Parameters
    ----------
    x : array, shape (n_frames, n_channels)
        AU channels (NaN-free).
    pose : array, shape (n_frames, 3 | 6)
        Yaw, pitch, roll in degrees (and translation, cm) of the same frames (``<video>-HeadPose``).
    srate_hz : float
        Frame rate.
    config : HeadMotionConfig
    valid : array of bool, shape (n_frames,) | None
        Frames usable for the fit (default all).

    Returns
    -------
    compensated : array, shape (n_frames, n_channels)
    """
    x = np.asarray(x, dtype=np.float64)
    feats = _pose_features(pose, srate_hz, config)
    valid = np.ones(x.shape[0], dtype=bool) if valid is None else valid
    design = np.column_stack([np.ones(x.shape[0]), feats])
    if valid.sum() <= 2 * design.shape[1]:
        return x
    weights = np.repeat(valid[:, None].astype(np.float64), x.shape[1], axis=1)
    for iteration in range(2):
        beta = _ridge(design, x, weights)
        if iteration:
            break
        resid = x - design @ beta
        for c in range(x.shape[1]):
            r = resid[valid, c]
            sd = max(float(robust_sd(r)), 1e-9)
            keep = valid & (np.abs(resid[:, c] - np.median(r)) <= config.robust_z * sd)
            # Too few frames left: keep the first fit's frames (a channel made of outliers has no pose part to learn).
            if keep.sum() > 2 * design.shape[1]:
                weights[:, c] = keep
    return x - feats @ beta[1:]


def _ridge(design: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-column weighted ridge regression (unit penalty per frame used, intercept free)."""
    beta = np.empty((design.shape[1], y.shape[1]))
    penalty = np.eye(design.shape[1])
    penalty[0, 0] = 0.0
    for c in range(y.shape[1]):
        xw = design * weights[:, c:c + 1]
        beta[:, c] = np.linalg.solve(design.T @ xw + weights[:, c].sum() * penalty, xw.T @ y[:, c])
    return beta


def nonrigid_motion_z(motion: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-frame non-rigid facial motion, robustly standardized over the session.

    Parameters
    ----------
    motion : array, shape (n_frames, n_landmarks)
        Per-landmark distance from the neutral shape after rigid alignment
        (:func:`acquisition.annotate.spotting.landmark_motion`), NaN-free.
    valid : array of bool, shape (n_frames,)
        Frames used for the statistics.

    Returns
    -------
    z : array, shape (n_frames,)
        The frame's mean landmark distance, minus the session median, over its robust SD.
    """
    mean = np.mean(motion, axis=1)
    med = float(np.median(mean[valid]))
    return (mean - med) / max(float(robust_sd(mean[valid])), 1e-12)


def band_rms(x: np.ndarray, srate_hz: float, band_hz: tuple[float, float], window_s: float) -> np.ndarray:
    """RMS over ``window_s`` of each channel band-passed to ``band_hz`` (zero-phase Butterworth), per frame.

    Returns
    -------
    rms : array, shape (n_frames, n_channels)
        Zero where the band lies above Nyquist or the signal is too short to filter.
    """
    x = np.asarray(x, dtype=np.float64)
    low, high = band_hz
    high = min(high, 0.45 * srate_hz)
    if low >= high or x.shape[0] < 30:
        return np.zeros_like(x)
    sos = signal.butter(2, [low, high], btype="bandpass", fs=srate_hz, output="sos")
    band = signal.sosfiltfilt(sos, x, axis=0)
    size = max(1, int(round(window_s * srate_hz)))
    return np.sqrt(np.maximum(ndimage.uniform_filter1d(band**2, size=size, axis=0, mode="nearest"), 0.0))


def talking_frames(mouth: np.ndarray, srate_hz: float, config: TalkingConfig) -> np.ndarray:
    """Frames of speech: sustained syllable-rate oscillation of the mouth channels (their mean band RMS).

    Parameters
    ----------
    mouth : array, shape (n_frames, n_channels)
        Mouth AUs (AU25, AU26; EMG-assisted also the lower-face EMG AUs), 0-5.
    srate_hz : float
        Frame rate.
    config : TalkingConfig
        ``band_hz`` (syllable rate), ``window_s`` (RMS window), ``threshold`` (mean band RMS,
        intensity), ``margin_s`` (added on each side). Runs shorter than ``min_duration_s``,
        such as the single fast rise of a surprised jaw drop, are not speech.

    Returns
    -------
    mask : array of bool, shape (n_frames,)
    """
    if mouth.shape[1] == 0:
        return np.zeros(mouth.shape[0], dtype=bool)
    rms = band_rms(mouth, srate_hz, config.band_hz, config.window_s).mean(axis=1)
    above = rms > config.threshold
    mask = np.zeros_like(above)
    min_len = int(round(config.min_duration_s * srate_hz))
    for start, stop in true_runs(above):
        if stop - start >= min_len:
            mask[start:stop] = True
    return _dilate(mask, int(round(config.margin_s * srate_hz)))


def stouffer_fuse(z_video: np.ndarray, z_emg: np.ndarray, video_weight: float, emg_weight: float) -> np.ndarray:
    """Weighted Stouffer combination of two z-scores of one AU: ``(w_v z_v + w_e z_e) / sqrt(w_v^2 + w_e^2)``.

    Independent unit-variance noise stays unit-variance; a signal both see grows.
    """
    norm = float(np.hypot(video_weight, emg_weight))
    if norm == 0:
        raise ValueError("emg.video_weight and emg.emg_weight cannot both be 0.")
    return (video_weight * z_video + emg_weight * z_emg) / norm
