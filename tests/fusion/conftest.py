"""Small sessions for the fusion tests, written straight from the rig's generators (no real-time recording)."""

from __future__ import annotations

import numpy as np
import pytest

from acquisition import SessionWriter, StreamSpec

# More expressions per window, and idle head motion / tonic AUs: more moments to tell apart.
RICH = ["timeline.expressions_per_minute=60", "idle.enabled=true"]


@pytest.fixture(scope="session")
def rig_sessions(tmp_path_factory):
    """Three 40 s light-rig sessions (seed i, face i: three subjects); the last is held out."""
    from synth.rig.offline import write_rig_session

    folder = tmp_path_factory.mktemp("rig")
    return [write_rig_session(folder / f"s{seed}.h5", duration_s=40, seed=seed,
                              overrides=[*RICH, f"identity_seed={seed}"]) for seed in range(3)]


def write_small_session(fname, *, duration_s=3.0, with_eeg=True, nan_emg_at=None):
    """A hand-made session: 24x32 RGB/depth at 30 fps, 4-channel EMG at 200 Hz, 3-channel EEG at 100 Hz."""
    rng = np.random.default_rng(0)
    n_v = int(duration_s * 30)
    rgb = rng.integers(0, 256, (n_v, 24, 32, 3), dtype=np.uint8)
    depth = np.full((n_v, 24, 32), 600, np.uint16)
    depth[:, :, :4] = 0  # no reading
    emg = (rng.normal(size=(int(duration_s * 200), 4)) * 1e-5 + 3e-5).astype(np.float32)
    if nan_emg_at is not None:
        emg[nan_emg_at] = np.nan
    eeg = rng.normal(size=(int(duration_s * 100), 3)).astype(np.float32) * 1e-5
    with SessionWriter(fname) as w:
        w.add_stream(StreamSpec("RGB", "VideoRaw", 24 * 32 * 3, "int8", 30.0, "c", frame_shape=(24, 32, 3),
                                encoding="RGB8")).append(rgb, np.arange(n_v) / 30)
        w.add_stream(StreamSpec("Depth", "VideoRaw", 24 * 32, "int16", 30.0, "d", frame_shape=(24, 32),
                                encoding="DEPTH16-mm")).append(depth, np.arange(n_v) / 30)
        w.add_stream(StreamSpec("EMG", "EMG", 4, "float32", 200.0, "e")).append(emg, np.arange(len(emg)) / 200)
        if with_eeg:
            w.add_stream(StreamSpec("EEG", "EEG", 3, "float32", 100.0, "g")).append(eeg, np.arange(len(eeg)) / 100)
    return fname
