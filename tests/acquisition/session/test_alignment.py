"""Windows and resampling on synchronized times."""

from __future__ import annotations

import numpy as np
import pytest

from acquisition import SessionWriter, StreamSpec, open_session
from acquisition.session.alignment import common_time_base, resample, session_window, window


@pytest.fixture
def two_rate_session(tmp_path):
    fname = tmp_path / "s.h5"
    with SessionWriter(fname) as w:
        emg = w.add_stream(StreamSpec("EMG", "EMG", 2, "float32", 1000.0, "emg"))
        t = 10.0 + np.arange(5000) / 1000
        emg.append(np.column_stack([t, -t]).astype(np.float32), t)
        eeg = w.add_stream(StreamSpec("EEG", "EEG", 1, "double64", 250.0, "eeg"))
        t2 = 11.0 + np.arange(750) / 250
        eeg.append(np.sin(t2)[:, None], t2)
        rgb = w.add_stream(StreamSpec("RGB", "VideoRaw", 2 * 2 * 3, "int8", 10.0, "cam", frame_shape=(2, 2, 3),
                                      encoding="RGB8"))
        t3 = 10.0 + np.arange(40) / 10
        rgb.append(np.repeat(np.arange(40, dtype=np.uint8), 12).reshape(40, 2, 2, 3), t3)
        mk = w.add_stream(StreamSpec("Markers", "Markers", 1, "string", 0.0, "mk"))
        mk.append([["a"], ["b"], ["c"]], [10.5, 12.0, 16.0])
    with open_session(fname) as s:
        yield s


def test_window(two_rate_session):
    win = window(two_rate_session.streams["EMG"], 11.9995, 12.4995)  # off-grid edges: no float ties
    assert len(win.times) == 500 and win.times[0] == pytest.approx(12.0) and win.first_index == 2000
    np.testing.assert_allclose(win.data[:, 0], win.times, rtol=1e-6)
    all_streams = session_window(two_rate_session, 11.85, 12.15)
    assert all_streams["Markers"].data[:, 0].tolist() == ["b"]
    assert all_streams["RGB"].data[:, 0, 0, 0].tolist() == [19, 20, 21]
    with pytest.raises(KeyError, match="streams"):
        session_window(two_rate_session, 0, 1, ["Nope"])


def test_common_time_base_and_resample(two_rate_session):
    emg, eeg, rgb = (two_rate_session.streams[k] for k in ("EMG", "EEG", "RGB"))
    grid = common_time_base([emg, eeg], 100.0)
    assert grid[0] == pytest.approx(11.0) and grid[-1] <= 13.996 + 1e-9
    np.testing.assert_allclose(resample(emg, grid)[:, 0], grid, rtol=1e-6)     # linear in time -> exact
    np.testing.assert_allclose(resample(eeg, grid)[:, 0], np.sin(grid), atol=1e-4)
    frames = resample(rgb, [10.04, 10.06, 13.9])                                # nearest, never blended
    assert frames.dtype == np.uint8 and frames[:, 0, 0, 0].tolist() == [0, 1, 39]
    with pytest.raises(ValueError, match="outside"):
        resample(emg, [9.0])
    with pytest.raises(ValueError, match="strings"):
        resample(two_rate_session.streams["Markers"], [11.0])
