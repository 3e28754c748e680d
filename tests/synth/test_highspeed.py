"""The highspeed rig (frame bank, stamped frames) recorded over real LSL in every storage form, and ``auto``."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from acquisition import open_session
from acquisition.live.recorder import RecorderSettings, SessionRecorder, parse_compression
from acquisition.session.frame_stamp import read_frame_indices
from acquisition.session.summary import summarize_session
from synth.rig import SimulatedRig, load_rig_config

from ..conftest import emosync_command

#: The highspeed profile at test size: small frames, so a 2-core test machine records them at ease.
SMALL = ["rgb.width=160", "rgb.height=120", "rgb.fps=60", "rgb.frame_bank=24", "start_delay_s=0.3",
         "emg.enabled=false", "eeg.enabled=false"]


@pytest.fixture
def small_highspeed(unique_prefix):
    return load_rig_config("highspeed", [f"name_prefix={unique_prefix}", *SMALL])


def test_highspeed_profile_is_vga_200fps_with_stamped_frame_bank():
    config = load_rig_config("highspeed")
    assert (config.rgb.width, config.rgb.height, config.rgb.fps) == (640, 480, 200)
    assert config.rgb.stamp_frame_index and config.rgb.frame_bank > 0
    assert (config.emg.srate_hz, config.eeg.srate_hz) == (2000, 500)
    assert config.markers.enabled and not config.depth.enabled


def test_frame_bank_cycles_stamps_and_does_not_depend_on_chunking(small_highspeed):
    rig = SimulatedRig(small_highspeed, seed=2, duration_s=30)
    a, b = rig.make_generator("rgb"), rig.make_generator("rgb")
    chunked = np.concatenate([a.next_samples(m)[0] for m in (1, 30, 19)])
    whole = b.next_samples(50)[0]
    np.testing.assert_array_equal(chunked, whole)
    np.testing.assert_array_equal(read_frame_indices(whole), np.arange(50))
    # frame 24 is bank frame 0 again, but stamped 24: the stamp is the only difference
    np.testing.assert_array_equal(whole[24, 24:], whole[0, 24:])
    assert not np.array_equal(whole[24, :24, :128], whole[0, :24, :128])


def _record(rig, fname, seconds, compression, **kwargs):
    rig.start()
    try:
        recorder = SessionRecorder(fname, streams=[f"name='{rig.stream_name('rgb')}'"],
                                   video_compression=f"{rig.stream_name('rgb')}={compression}",
                                   settings=RecorderSettings(wait_timeout_s=10, clock_offset_interval_s=1.0), **kwargs)
        recorder.start()
        recorder.wait(seconds)
        recorder.stop()
    finally:
        rig.stop()


def _check_exact(rig, stream):
    """Every recorded frame equals what the rig sent, no frame is missing, and the stamps say so too."""
    k = np.round((stream.timestamps - rig.t0) * stream.nominal_srate).astype(int)
    assert stream.n_samples > 60 and np.all(np.diff(k) == 1), "frames lost or duplicated"
    frames = stream.data[:]
    np.testing.assert_array_equal(frames, rig.regenerate("rgb", int(k[-1]) + 1)[k])
    np.testing.assert_array_equal(read_frame_indices(frames), k)


@pytest.mark.parametrize("compression", ["none", "lz4", "blosc2", "png"])
def test_each_lossless_form_round_trips_a_live_recording(tmp_path, small_highspeed, compression):
    rig = SimulatedRig(small_highspeed, seed=3, duration_s=60, profile="highspeed")
    fname = tmp_path / f"{compression}.h5"
    _record(rig, fname, 2.0, compression)
    with open_session(fname) as s:
        stream = s.streams[rig.stream_name("rgb")]
        assert stream.info["compression"] == compression
        _check_exact(rig, stream)
        report = summarize_session(s, check_frame_stamps=True)["streams"][stream.name]["frame_stamps"]
        assert report["dropped_frames"] == 0 and report["unreadable"] == 0 and report["n_frames"] == stream.n_samples


def test_auto_picks_a_lossless_form_and_stores_why(tmp_path, small_highspeed, emosync_log):
    rig = SimulatedRig(small_highspeed, seed=4, duration_s=60, profile="highspeed")
    fname = tmp_path / "auto.h5"
    _record(rig, fname, 2.0, "auto")
    with open_session(fname) as s:
        stream = s.streams[rig.stream_name("rgb")]
        choice = json.loads(stream.info["compression_choice"]) if isinstance(stream.info["compression_choice"], str) \
            else stream.info["compression_choice"]
        assert stream.info["compression_requested"] == "auto"
        assert stream.info["compression"] == choice["compression"] in ("lz4", "blosc2", "png", "none")
        assert {t["compression"] for t in choice["trials"]} == {"lz4", "blosc2", "png", "none"}
        assert choice["nominal_srate"] == 60 and choice["reason"]
        _check_exact(rig, stream)  # the calibration frames are recorded too: nothing missing at the start
    assert f"video compression auto -> {choice['compression']}" in emosync_log.text


def test_filtered_recording_can_be_followed_live(tmp_path, small_highspeed):
    """SWMR: another process reads the lz4 stream while it is being recorded."""
    rig = SimulatedRig(small_highspeed, seed=5, duration_s=60, profile="highspeed")
    fname = tmp_path / "live.h5"
    name = rig.stream_name("rgb")
    code = ("import sys; from acquisition import open_session; "
            "from acquisition.session.frame_stamp import read_frame_indices; s = open_session(sys.argv[1]); "
            "st = s.streams[sys.argv[2]]; idx = read_frame_indices(st.data[:]); "
            "print(s.live, st.n_samples, int((idx[1:] - idx[:-1] == 1).all()))")
    rig.start()
    try:
        recorder = SessionRecorder(fname, streams=[f"name='{name}'"], video_compression="lz4",
                                   settings=RecorderSettings(wait_timeout_s=10))
        recorder.start()
        recorder.wait(2.0)
        out = subprocess.run([sys.executable, "-c", code, str(fname), name], capture_output=True, text=True,
                             timeout=60)
        recorder.stop()
    finally:
        rig.stop()
    live, n, contiguous = out.stdout.split()
    assert live == "True" and int(n) > 30 and contiguous == "1", out.stderr


def test_bad_compression_value_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="Invalid video compression 'zip' for RGB: allowed values are none, png"):
        parse_compression("RGB=zip")
    assert parse_compression("RGB=auto,Depth=png") == ("none", {"RGB": "auto", "Depth": "png"})
    started = time.monotonic()
    out = subprocess.run(emosync_command("record", str(tmp_path / "x.h5"), "--all", "--video-compression", "gzip"),
                         capture_output=True, text=True)
    assert out.returncode == 1 and "Invalid video compression 'gzip'" in out.stdout + out.stderr
    assert "lz4, blosc2, auto" in (out.stdout + out.stderr).replace("\n", " ")
    assert time.monotonic() - started < 30 and not (tmp_path / "x.h5").exists()


def test_killed_filtered_recording_keeps_its_frames(tmp_path, small_highspeed):
    """kill -9 of a recorder writing lz4 frames: the file opens, holding exact frames up to the last flush."""
    import os
    import signal

    rig = SimulatedRig(small_highspeed, seed=6, duration_s=60, profile="highspeed")
    fname = tmp_path / "killed.h5"
    name = rig.stream_name("rgb")
    rig.start()
    try:
        proc = subprocess.Popen(emosync_command("record", str(fname), "--stream", f"name='{name}'",
                                                "--video-compression", "lz4"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not fname.exists():
            time.sleep(0.1)
        time.sleep(2.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        rig.stop()
    with open_session(fname) as s:
        assert "stop_time" not in s.info  # it really was killed
        stream = s.streams[name]
        assert stream.info["compression"] == "lz4"
        _check_exact(rig, stream)
