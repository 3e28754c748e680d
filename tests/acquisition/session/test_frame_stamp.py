"""Frame-index stamps: exact round trips, survival of PNG/JPEG, refusal of unstamped frames, drop reports."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from acquisition import SessionWriter, StreamSpec, open_session
from acquisition.session.frame_stamp import (STAMP_LAYOUT, frame_drop_report, read_frame_index, read_frame_indices,
                                             stamp_frame_index)
from acquisition.session.summary import summarize_session


def _frames(n, h=48, w=160, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_stamps_round_trip_exactly_and_leave_the_rest_of_the_frame():
    indices = np.array([0, 1, 2, 255, 256, 65535, 65536, 123_456_789, 2**32 - 1])
    frames = _frames(len(indices))
    before = frames.copy()
    stamp_frame_index(frames, indices)
    np.testing.assert_array_equal(read_frame_indices(frames), indices)
    assert [read_frame_index(f) for f in frames] == indices.tolist()
    np.testing.assert_array_equal(frames[:, 24:], before[:, 24:])  # only the 128x24 corner changes
    np.testing.assert_array_equal(frames[:, :, 128:], before[:, :, 128:])
    grey = _frames(3)[..., 0]
    stamp_frame_index(grey, [7, 8, 9])
    np.testing.assert_array_equal(read_frame_indices(grey), [7, 8, 9])


@pytest.mark.parametrize("ext, params", [(".png", [cv2.IMWRITE_PNG_COMPRESSION, 1]),
                                         (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 50])])
def test_stamps_survive_image_codecs(ext, params):
    frames = stamp_frame_index(_frames(20, h=96, w=200, seed=3), np.arange(1000, 1020))
    decoded = [cv2.imdecode(cv2.imencode(ext, f, params)[1], cv2.IMREAD_UNCHANGED) for f in frames]
    assert [read_frame_index(f) for f in decoded] == list(range(1000, 1020))


def test_unstamped_and_too_small_frames_are_refused():
    with pytest.raises(ValueError, match="no valid frame-index stamp"):
        read_frame_index(_frames(1)[0])
    assert read_frame_indices(np.zeros((2, 24, 128, 3), np.uint8)).tolist() == [-1, -1]
    with pytest.raises(ValueError, match="at least 128x24 pixels"):
        stamp_frame_index(np.zeros((1, 20, 200, 3), np.uint8), [0])
    with pytest.raises(ValueError, match="must be in"):
        stamp_frame_index(_frames(1), [2**32])
    with pytest.raises(ValueError, match="uint8"):
        stamp_frame_index(np.zeros((1, 48, 160), np.uint16), [0])


def test_drop_report_counts_gaps_repeats_and_unreadable_frames():
    report = frame_drop_report(np.array([10, 11, 14, 15, -1, 16, 16, 20]))
    assert report["n_frames"] == 8 and report["unreadable"] == 1
    assert (report["first_index"], report["last_index"]) == (10, 20)
    assert report["dropped_frames"] == 2 + 3  # 12, 13 and 17, 18, 19
    assert report["gaps"] == [{"after_frame": 1, "missing": 2}, {"after_frame": 6, "missing": 3}]
    assert report["repeated_or_backwards"] == 1
    assert frame_drop_report(np.array([-1, -1]))["first_index"] is None


@pytest.mark.parametrize("compression", ["none", "png"])
def test_info_reports_frames_dropped_in_a_file(tmp_path, compression):
    kept = np.array([0, 1, 2, 3, 6, 7, 8, 12])  # 4, 5 and 9, 10, 11 never reached the file
    frames = stamp_frame_index(_frames(len(kept), seed=1), kept)
    fname = tmp_path / "stamped.h5"
    with SessionWriter(fname) as w:
        spec = StreamSpec("RGB", "VideoRaw", 48 * 160 * 3, "int8", 100.0, "cam-1", frame_shape=(48, 160, 3),
                          encoding="RGB8", compression=compression, can_drop_samples=True,
                          extra={"frame_stamp": STAMP_LAYOUT})
        w.add_stream(spec).append(frames, kept / 100.0)
    with open_session(fname) as s:
        report = summarize_session(s, check_frame_stamps=True)["streams"]["RGB"]["frame_stamps"]
        default = summarize_session(s)["streams"]["RGB"]["frame_stamps"]
    assert report["dropped_frames"] == 5 and len(report["gaps"]) == 2 and report["unreadable"] == 0
    # by default PNG frames are not all decoded (minutes for a long recording); raw ones are checked
    assert default["checked"] == (compression == "none")
