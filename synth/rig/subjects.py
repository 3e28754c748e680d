"""Subjects of the simulated rig differ beyond their face: EMG, EEG and expressiveness.

Real subjects differ in skin impedance and fat (EMG amplitude and noise floor), in where the
electrodes end up over each muscle (gain and crosstalk from neighbouring muscles), in their
individual alpha peak frequency and artefact load, and in how strongly they express. A
:class:`SubjectProfile` holds these parameters; :func:`draw_subject` draws them from the ranges in
:class:`~synth.rig.config.SubjectsConfig`, keyed by ``identity_seed`` alone, so one subject (one
rendered face, ``subject_id`` ``sub-idNNN``) keeps the same body in every session.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synth.rig.config import EMGChannelConfig, SubjectsConfig

#: Muscles whose activity a surface electrode over the key muscle also picks up (anatomical neighbours).
NEIGHBOUR_MUSCLES: dict[str, tuple[str, ...]] = {
    "corrugator": ("frontalis", "orbicularis_oculi"),
    "frontalis": ("corrugator", "orbicularis_oculi"),
    "orbicularis_oculi": ("zygomaticus_major", "frontalis", "corrugator"),
    "zygomaticus_major": ("levator_labii", "orbicularis_oculi", "risorius", "buccinator"),
    "levator_labii": ("zygomaticus_major", "orbicularis_oris", "orbicularis_oculi"),
    "mentalis": ("depressor_anguli_oris", "orbicularis_oris"),
    "depressor_anguli_oris": ("mentalis", "orbicularis_oris", "risorius"),
    "orbicularis_oris": ("mentalis", "levator_labii", "depressor_anguli_oris"),
    "risorius": ("zygomaticus_major", "buccinator", "depressor_anguli_oris"),
    "buccinator": ("zygomaticus_major", "risorius", "orbicularis_oris"),
}


@dataclass(frozen=True)
class SubjectProfile:
    """Body parameters of one simulated subject.

    Attributes
    ----------
    identity_seed : int
        The subject (the rendered face).
    emg_gain : numpy.ndarray, shape (n_channels,)
        Amplitude factor of each EMG channel (subject gain times electrode placement).
    emg_noise_scale : float
        Factor on the EMG noise floor.
    emg_crosstalk : dict of str to dict of str to float
        Per channel label: activation picked up from each neighbouring muscle (added to its own).
    eeg_alpha_hz : float
        Individual alpha peak frequency in Hz.
    eeg_artifact_scale : float
        Factor on EEG muscle and blink artefacts.
    expressiveness : float
        Factor on the intensities of emotional expressions (not blinks, talking or tone).
    """

    identity_seed: int
    emg_gain: np.ndarray
    emg_noise_scale: float
    emg_crosstalk: dict[str, dict[str, float]]
    eeg_alpha_hz: float
    eeg_artifact_scale: float
    expressiveness: float


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float], size: int | None = None) -> np.ndarray:
    return np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]), size))


def draw_subject(identity_seed: int, config: SubjectsConfig, channels: list[EMGChannelConfig]) -> SubjectProfile:
    """Draw the body parameters of subject ``identity_seed`` (deterministic per subject).

    Parameters
    ----------
    identity_seed : int
        The subject; the same seed always gives the same parameters for the same ranges.
    config : SubjectsConfig
        Ranges of each parameter.
    channels : list of EMGChannelConfig
        The EMG montage (gain and crosstalk are per electrode).

    Returns
    -------
    subject : SubjectProfile
    """
    # The draw order is part of each subject's definition: append, never reorder.
    rng = np.random.default_rng([int(identity_seed), 0x5B1EC7])
    gain = float(_log_uniform(rng, config.emg_gain))
    channel_gain = _log_uniform(rng, config.emg_channel_gain, len(channels))
    noise = float(_log_uniform(rng, config.emg_noise_scale))
    crosstalk = {}
    for ch in channels:
        neighbours = NEIGHBOUR_MUSCLES.get(ch.muscle, ())
        total = rng.uniform(*config.emg_crosstalk)
        weights = rng.dirichlet(np.ones(len(neighbours))) * total if neighbours else np.zeros(0)
        crosstalk[ch.label] = {m: float(w) for m, w in zip(neighbours, weights)}
    alpha = float(rng.uniform(*config.eeg_alpha_hz))
    artifact = float(_log_uniform(rng, config.eeg_artifact_scale))
    expressiveness = float(rng.uniform(*config.expressiveness))
    return SubjectProfile(identity_seed=int(identity_seed), emg_gain=gain * channel_gain, emg_noise_scale=noise,
                          emg_crosstalk=crosstalk, eeg_alpha_hz=alpha, eeg_artifact_scale=artifact,
                          expressiveness=expressiveness)
