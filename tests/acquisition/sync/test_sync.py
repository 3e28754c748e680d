"""Offline synchronization against a known ground truth, and against pyxdf's method on the same data."""

from __future__ import annotations

import numpy as np
import pytest

from acquisition import SessionWriter, StreamSpec, open_session
from acquisition.sync.clock import ClockOffsetTable
from acquisition.sync.simulation import simulate_clock_recording
from acquisition.sync.synchronize import SyncOptions, find_clock_resets, synchronize


def _pyxdf_times(rec) -> np.ndarray:
    """pyxdf 1.17's own clock sync + dejitter, run on the same arrays (its private functions)."""
    pyxdf_impl = pytest.importorskip("pyxdf.pyxdf")

    class Stream:
        pass

    st = Stream()
    st.time_stamps = rec.timestamps.copy()
    st.clock_times, st.clock_values = list(rec.clock_offsets.collection_times), list(rec.clock_offsets.offsets)
    st.clock_segments, st.segments, st.srate, st.tdiff, st.effective_srate = [], [], rec.srate, 1 / rec.srate, 0
    pyxdf_impl._clock_sync({1: st})
    pyxdf_impl._jitter_removal({1: st})
    return st.time_stamps


@pytest.mark.parametrize("scenario", [{}, {"reset_at_s": 60.0}, {"drop_chunks": ((100.0, 102.5),)}],
                         ids=["offset+drift+jitter", "clock-reset", "dropped-chunk"])
def test_accuracy_matches_or_beats_pyxdf(scenario):
    ours, theirs = [], []
    for seed in range(3):
        rec = simulate_clock_recording(duration_s=120, seed=seed, **scenario)
        result = synchronize(rec.timestamps, rec.clock_offsets, nominal_srate=rec.srate, can_drop_samples=False)
        ours.append(np.median(np.abs(result.times - rec.true_times)))
        theirs.append(np.median(np.abs(_pyxdf_times(rec) - rec.true_times)))
        assert np.max(np.abs(result.times - rec.true_times)) < 100e-6
        if "reset_at_s" in scenario:
            assert len(result.clock_segments) == 2
            assert result.sample_clock_segment[rec.reset_index - 1] == 0
            assert result.sample_clock_segment[rec.reset_index] == 1
        if "drop_chunks" in scenario:
            assert len(result.jitter_segments) == 2
    assert np.mean(ours) <= np.mean(theirs) * 1.02
    assert np.mean(ours) < 20e-6


def test_drift_is_recovered():
    rec = simulate_clock_recording(duration_s=120, drift_ppm=20.0, seed=4)
    result = synchronize(rec.timestamps, rec.clock_offsets, nominal_srate=rec.srate, can_drop_samples=False)
    (segment,) = result.clock_segments
    # offset = T - S with S = (T - 1234.5)(1 + d): its slope against S is about -d
    assert segment.slope == pytest.approx(-20e-6, abs=1e-6)
    # in the recorder's clock the samples are exactly 1 kHz again (the source clock ran 20 ppm fast)
    assert result.effective_srate == pytest.approx(1000.0, rel=2e-6)
    assert result.jitter_before_s > 1e-3 and result.jitter_after_s < 1e-6


def test_options_mirror_pyxdf_and_can_switch_parts_off():
    rec = simulate_clock_recording(duration_s=60, seed=1)
    raw = synchronize(rec.timestamps, rec.clock_offsets, nominal_srate=1000, can_drop_samples=False,
                      options=SyncOptions(synchronize_clocks=False, dejitter_timestamps=False))
    np.testing.assert_array_equal(raw.times, rec.timestamps)
    no_dejitter = synchronize(rec.timestamps, rec.clock_offsets, nominal_srate=1000, can_drop_samples=False,
                              options=SyncOptions(dejitter_timestamps=False))
    assert np.median(np.abs(no_dejitter.times - rec.true_times)) > 1e-3  # jitter is still there
    with pytest.raises(ValueError):
        SyncOptions(dejiter_timestamps=False)  # typo rejected


def test_streams_that_can_drop_samples_are_not_dejittered():
    rec = simulate_clock_recording(duration_s=30, srate=30.0, jitter_s=0.003, seed=2)
    result = synchronize(rec.timestamps, rec.clock_offsets, nominal_srate=30.0, can_drop_samples=True)
    assert not result.dejittered
    fitted = result.clock_segments[0]
    np.testing.assert_allclose(result.times, rec.timestamps + fitted.offset_at(rec.timestamps))


def test_irregular_and_empty_and_offsetless_streams():
    empty = synchronize(np.zeros(0), ClockOffsetTable.from_array(np.zeros((0, 3))), nominal_srate=100,
                        can_drop_samples=False)
    assert empty.times.shape == (0,)
    stamps = np.array([1.0, 1.5, 4.0])
    markers = synchronize(stamps, ClockOffsetTable.from_array([[0.0, 2.0, 1e-4]]), nominal_srate=0,
                          can_drop_samples=True)
    np.testing.assert_allclose(markers.times, stamps + 2.0)
    local = synchronize(stamps, ClockOffsetTable.from_array(np.zeros((0, 3))), nominal_srate=0, can_drop_samples=True)
    np.testing.assert_array_equal(local.times, stamps)


def test_reset_detection_ranges():
    times = np.array([0.0, 5, 10, 15, 3, 8, 13])  # collection times go backwards at index 4
    offsets = np.array([1.0, 1, 1, 1, 50, 50, 50])
    ranges = find_clock_resets(ClockOffsetTable(times, offsets, np.full(7, 1e-4)), SyncOptions())
    assert ranges == [(0, 3), (4, 6)]


def test_backwards_stamps_warn(emosync_log):
    stamps = np.array([0.0, 0.01, 0.02, 0.015, 0.04])
    synchronize(stamps, ClockOffsetTable.from_array(np.zeros((0, 3))), nominal_srate=0, can_drop_samples=True,
                name="Bad")
    assert "go backwards" in emosync_log.text and "Bad" in emosync_log.text


def test_session_stream_times_use_sync(tmp_path):
    rec = simulate_clock_recording(duration_s=30, seed=3)
    with SessionWriter(tmp_path / "s.h5") as w:
        st = w.add_stream(StreamSpec("EEG", "EEG", 1, "float32", rec.srate, "eeg"))
        st.append(np.zeros((rec.timestamps.shape[0], 1), np.float32), rec.timestamps)
        st.append_clock_offsets(rec.clock_offsets.collection_times, rec.clock_offsets.offsets,
                                rec.clock_offsets.uncertainties)
    with open_session(tmp_path / "s.h5") as s:
        stream = s.streams["EEG"]
        direct = synchronize(rec.timestamps, rec.clock_offsets, nominal_srate=rec.srate, can_drop_samples=False)
        np.testing.assert_array_equal(stream.times, direct.times)
        assert np.median(np.abs(stream.times - rec.true_times)) < 100e-6  # 30 s of 2 ms jitter: ~25 us floor
        raw = stream.synchronize(synchronize_clocks=False, dejitter_timestamps=False).times
        np.testing.assert_array_equal(raw, stream.timestamps)
        assert stream.sync.effective_srate == pytest.approx(1000.0, rel=1e-5)
