"""The recorder on real LSL outlets (loopback) and real HDF5: lifecycle, failures, recovery, crashes."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pylsl
import pytest

from acquisition import open_session
from acquisition.live.recorder import (RecorderSettings, RecordingError, SessionRecorder, StreamNotFoundError,
                                       StreamOpenError)
from acquisition.session.summary import summarize_session

from tests.conftest import CounterSource, emosync_command

FAST = RecorderSettings(wait_timeout_s=5.0, resolve_interval_s=0.3, clock_offset_interval_s=1.0)


def _contiguous_counter(data: np.ndarray) -> bool:
    return bool(np.all(np.diff(data[:, 0]) == 1)) and bool(np.all(data[:, 1] == -data[:, 0]))


def test_records_counter_stream_without_loss(tmp_path, counter_source):
    fname = tmp_path / "s.h5"
    rec = SessionRecorder(fname, streams=[f"name='{counter_source.name}'"], subject_id="sub-02", settings=FAST)
    rec.start()
    rec.wait(2.5)
    counts = rec.stop()
    with open_session(fname) as s:
        st = s.streams[counter_source.name]
        data = st.data[:]
        assert counts[counter_source.name] == st.n_samples == len(data)
        assert st.n_samples > 0.8 * 2.5 * 500
        assert _contiguous_counter(data)
        assert st.info["source_id"] == counter_source.source_id
        assert st.info["channel_labels"] == ["ch0", "ch1", "ch2", "ch3"]
        assert len(st.clock_offsets) >= 2  # measured every second in FAST
        assert np.all(np.abs(st.clock_offsets.offsets) < 0.01)  # same host: offsets are tiny
        assert np.all(st.clock_offsets.uncertainties > 0)
        np.testing.assert_allclose(np.diff(st.timestamps), 1 / 500, atol=1e-9)
        assert s.info["subject_id"] == "sub-02" and "stop_time" in s.info


def test_source_restart_rejoins_with_visible_gap(tmp_path, counter_source):
    fname = tmp_path / "restart.h5"
    rec = SessionRecorder(fname, streams=[f"name='{counter_source.name}'"], settings=FAST)
    rec.start()
    rec.wait(1.5)
    counter_source.restart(downtime_s=1.5)
    rec.wait(3.0)
    rec.stop()
    with open_session(fname) as s:
        assert list(s.streams) == [counter_source.name]  # the same stream, not a second one
        st = s.streams[counter_source.name]
        counter = st.data[:, 0]
        jumps = np.flatnonzero(np.diff(counter) != 1)
        # LSL does not replay what a new outlet pushed before the inlet re-connected, so
        # the restart may cost a fraction of a second, but only at the restart, never a duplicate.
        assert len(jumps) <= 1 and np.all(np.diff(counter) >= 1)
        summary = summarize_session(s)["streams"][counter_source.name]
        assert len(summary["gaps"]) == 1 and summary["gaps"][0]["duration_s"] > 1.0
        # data after the restart arrived
        assert st.timestamps[-1] - summary["gaps"][0]["start_s"] > 1.0


def test_late_stream_joins(tmp_path, unique_prefix):
    first = CounterSource(f"{unique_prefix}A").start()
    late = None
    try:
        fname = tmp_path / "late.h5"
        rec = SessionRecorder(fname, streams=[f"starts-with(name,'{unique_prefix}')"], settings=FAST)
        rec.start()
        rec.wait(1.0)
        late = CounterSource(f"{unique_prefix}B", stream_type="EEG").start()
        rec.wait(3.0)
        rec.stop()
    finally:
        first.stop()
        if late:
            late.stop()
    with open_session(fname) as s:
        assert set(s.streams) == {f"{unique_prefix}A", f"{unique_prefix}B"}
        assert s.streams[f"{unique_prefix}B"].n_samples > 500
        assert _contiguous_counter(s.streams[f"{unique_prefix}B"].data[:])


def test_no_matching_stream_is_a_clear_error(tmp_path, counter_source, unique_prefix):
    fname = tmp_path / "none.h5"
    rec = SessionRecorder(fname, streams=[f"name='{unique_prefix}nothing'"],
                          settings=RecorderSettings(wait_timeout_s=1.0))
    with pytest.raises(StreamNotFoundError, match="No LSL stream matched") as info:
        rec.start()
    assert counter_source.name in str(info.value)  # lists what is visible
    assert not fname.exists()  # nothing half-made left behind


def test_invalid_query_and_nothing_to_record(tmp_path):
    with pytest.raises(ValueError, match="Invalid LSL stream query"):
        SessionRecorder(tmp_path / "x.h5", streams=["name=='x"])
    with pytest.raises(ValueError, match="Nothing to record"):
        SessionRecorder(tmp_path / "x.h5")


def test_existing_output_is_kept(tmp_path, counter_source):
    fname = tmp_path / "exists.h5"
    fname.write_bytes(b"precious")
    rec = SessionRecorder(fname, streams=[f"name='{counter_source.name}'"], settings=FAST)
    with pytest.raises(FileExistsError, match="never overwrites"):
        rec.start()
    assert fname.read_bytes() == b"precious"
    rec = SessionRecorder(fname, streams=[f"name='{counter_source.name}'"], settings=FAST, if_exists="rename")
    rec.start()
    rec.wait(0.5)
    rec.stop()
    assert (tmp_path / "exists_old1.h5").read_bytes() == b"precious"
    with open_session(fname) as s:
        assert s.streams[counter_source.name].n_samples > 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only directories")
def test_unwritable_directory(tmp_path, counter_source):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    with pytest.raises(PermissionError, match="not writable"):
        SessionRecorder(locked / "s.h5", streams=[f"name='{counter_source.name}'"], settings=FAST).start()


def test_missing_directory_cli_error(tmp_path, counter_source):
    result = subprocess.run(emosync_command("record", str(tmp_path / "no" / "dir" / "s.h5"), "--stream",
                                            f"name='{counter_source.name}'", "--duration", "1"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def _start_cli_recorder(fname, source_name, *extra, preexec=None):
    proc = subprocess.Popen(emosync_command("record", str(fname), "--stream", f"name='{source_name}'", *extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=preexec)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until the file holds data
        if fname.exists():
            try:
                with open_session(fname) as s:
                    if source_name in s.streams and s.streams[source_name].n_samples > 0:
                        return proc
            except (OSError, ValueError):
                pass
        if proc.poll() is not None:
            raise AssertionError(f"recorder exited early: {proc.communicate()}")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("recorder wrote nothing within 30 s")


def test_kill_9_keeps_everything_up_to_last_flush(tmp_path, counter_source):
    fname = tmp_path / "crash.h5"
    proc = _start_cli_recorder(fname, counter_source.name)
    time.sleep(2.0)
    killed_at = pylsl.local_clock()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    with open_session(fname) as s:
        assert "stop_time" not in s.info  # it really did not close cleanly
        st = s.streams[counter_source.name]
        data = st.data[:]
        assert _contiguous_counter(data)
        # at most 0.5 s (flush interval) lost, plus the pull interval and scheduling slack on a busy machine
        assert killed_at - st.timestamps[-1] < 0.5 + 0.5
        assert st.n_samples > 500


def test_sigterm_stops_cleanly_and_prints(tmp_path, counter_source):
    fname = tmp_path / "term.h5"
    proc = _start_cli_recorder(fname, counter_source.name)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Wrote" in out and counter_source.name in out
    with open_session(fname) as s:
        assert "stop_time" in s.info


def test_duration_and_info_json(tmp_path, counter_source):
    fname = tmp_path / "dur.h5"
    result = subprocess.run(emosync_command("record", str(fname), "--stream", f"name='{counter_source.name}'",
                                            "--duration", "2", "--subject", "sub-09"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    info = subprocess.run(emosync_command("info", str(fname), "--json"), capture_output=True, text=True, timeout=60)
    assert info.returncode == 0, info.stderr
    summary = json.loads(info.stdout)
    assert summary["subject_id"] == "sub-09" and summary["file_size_bytes"] == fname.stat().st_size
    st = summary["streams"][counter_source.name]
    assert st["type"] == "EMG" and st["nominal_srate"] == 500.0
    assert 1.5 < st["duration_s"] < 2.6
    assert abs(st["effective_srate"] - 500.0) < 1.0
    assert st["gaps"] == [] and st["dropped_samples_estimate"] == 0
    assert st["clock_offsets"]["n"] >= 1 and "median_uncertainty_s" in st["clock_offsets"]
    bad = subprocess.run(emosync_command("info", str(tmp_path / "missing.h5")), capture_output=True, text=True)
    assert bad.returncode == 1 and "No session file" in bad.stderr


def _limit_file_size() -> None:
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG from write() instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, 2_000_000))


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE semantics are Linux-specific here")
def test_full_disk_stops_with_clear_error_and_keeps_data(tmp_path, unique_prefix):
    source = CounterSource(f"{unique_prefix}Big", rate_hz=2000, n_channels=32).start()  # 256 kB/s
    try:
        fname = tmp_path / "full.h5"
        proc = _start_cli_recorder(fname, source.name, "--duration", "20", preexec=_limit_file_size)
        out, err = proc.communicate(timeout=60)
    finally:
        source.stop()
    assert proc.returncode == 2, (out, err)
    assert "stopped" in err and "kept" in err and "MB left" in err and "Traceback" not in err
    with open_session(fname) as s:
        assert "MB left" in s.info["error"]  # closed properly, with the reason on record
        st = s.streams[source.name]
        assert st.n_samples > 1000
        assert np.all(np.diff(st.data[:, 0]) == 1)


def test_recording_error_surface(tmp_path, counter_source):
    """A write failure inside the writer thread surfaces as RecordingError from stop()."""
    fname = tmp_path / "err.h5"
    rec = SessionRecorder(fname, streams=[f"name='{counter_source.name}'"], settings=FAST)
    rec.start()
    rec.wait(0.8)
    rec._put(("data", counter_source.name, np.zeros((3, 7), np.float32), np.zeros(3)))  # wrong channel count
    rec.wait(2.0)
    assert rec.failed
    with pytest.raises(RecordingError, match="kept in the file"):
        rec.stop()
    with open_session(fname) as s:
        assert s.streams[counter_source.name].n_samples > 0
        assert "error" in s.info


def _unrecordable_outlet(name: str) -> pylsl.StreamOutlet:
    """A real outlet the recorder finds but cannot record: its video encoding is one emosync does not store."""
    info = pylsl.StreamInfo(name, "VideoRaw", 4 * 4 * 3, 30.0, pylsl.cf_int8, f"{name}-src")
    info.desc().append_child_value("encoding", "YUV420")
    return pylsl.StreamOutlet(info)


def test_stream_that_fails_to_open_stops_the_recording_and_keeps_the_rest(tmp_path, unique_prefix):
    good = CounterSource(f"{unique_prefix}EMG").start()
    bad = None
    try:
        fname = tmp_path / "failed.h5"
        rec = SessionRecorder(fname, streams=[f"starts-with(name,'{unique_prefix}')"], settings=FAST)
        rec.start()
        rec.wait(1.5)
        bad = _unrecordable_outlet(f"{unique_prefix}Cam")  # joins late, so the good stream has data already
        started = time.monotonic()
        rec.wait(10.0)
        assert time.monotonic() - started < 6.0, "the failure did not stop the recording"
        assert rec.failed and f"{unique_prefix}Cam" in rec.failed_streams
        with pytest.raises(StreamOpenError, match=f"{unique_prefix}Cam.*YUV420.*allow-missing") as info:
            rec.stop()
    finally:
        good.stop()
        del bad  # the outlet lives until here
    assert list(info.value.failed_streams) == [f"{unique_prefix}Cam"]
    with open_session(fname) as s:
        assert "stop_time" in s.info  # closed properly
        failure = s.info["failed_streams"][f"{unique_prefix}Cam"]
        assert "YUV420" in failure["error"] and failure["source_id"] == f"{unique_prefix}Cam-src"
        assert failure["type"] == "VideoRaw"
        assert list(s.streams) == [good.name]
        st = s.streams[good.name]
        assert info.value.counts == {good.name: st.n_samples}
        assert st.n_samples > 0.8 * 1.5 * 500  # everything pulled before the failure was written
        assert _contiguous_counter(st.data[:])


def test_stream_that_does_not_answer_is_recorded_as_missing_with_allow_missing(tmp_path, unique_prefix,
                                                                               monkeypatch):
    good = CounterSource(f"{unique_prefix}EMG").start()
    gone = CounterSource(f"{unique_prefix}EEG", stream_type="EEG").start()
    fname = tmp_path / "missing.h5"
    settings = RecorderSettings(wait_timeout_s=5.0, resolve_interval_s=0.3, clock_offset_interval_s=1.0,
                                open_timeout_s=1.0)
    rec = SessionRecorder(fname, streams=[f"name='{good.name}'", f"name='{gone.name}'"], allow_missing=True,
                          settings=settings)
    resolve = rec._wait_for_streams

    def resolve_then_lose_one():  # the source dies between being found and its inlet opening
        found = resolve()
        gone.stop()
        gc.collect()
        return found

    monkeypatch.setattr(rec, "_wait_for_streams", resolve_then_lose_one)
    try:
        rec.start()
        rec.wait(3.0)
        assert not rec.failed  # allow_missing: the others go on
        counts = rec.stop()
    finally:
        good.stop()
    assert set(rec.failed_streams) == {gone.name} and "did not answer within 1 s" in rec.failed_streams[gone.name][
        "error"]
    with open_session(fname) as s:
        assert "did not answer" in s.info["failed_streams"][gone.name]["error"]
        assert list(s.streams) == [good.name] and counts == {good.name: s.streams[good.name].n_samples}
        assert s.streams[good.name].n_samples > 0.8 * 3.0 * 500
        assert _contiguous_counter(s.streams[good.name].data[:])


def test_cli_exits_non_zero_for_a_stream_that_failed_unless_allow_missing(tmp_path, unique_prefix, counter_source):
    bad = _unrecordable_outlet(f"{unique_prefix}Cam")
    query = f"starts-with(name,'{unique_prefix}')"
    result = subprocess.run(emosync_command("record", str(tmp_path / "a.h5"), "--stream", query, "--duration", "5"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    assert f"{unique_prefix}Cam" in result.stderr and "YUV420" in result.stderr and "Traceback" not in result.stderr
    assert "not recorded" in result.stdout  # the summary of what was written names it too
    result = subprocess.run(emosync_command("record", str(tmp_path / "b.h5"), "--stream", query, "--duration", "2",
                                            "--allow-missing"), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"{unique_prefix}Cam" in result.stdout and "not recorded" in result.stdout
    info = subprocess.run(emosync_command("info", str(tmp_path / "b.h5"), "--json"), capture_output=True, text=True,
                          timeout=60)
    summary = json.loads(info.stdout)
    assert "YUV420" in summary["failed_streams"][f"{unique_prefix}Cam"]["error"]
    st = summary["streams"][counter_source.name]
    assert st["n_samples"] > 0.8 * 2 * 500 and st["gaps"] == []
    del bad

