"""LabRecorder's remote-control protocol end to end: a real TCP client, real LSL outlets, real HDF5 sessions."""

from __future__ import annotations

import signal
import socket
import subprocess
import time

import numpy as np
import pylsl
import pytest

from acquisition import open_session
from acquisition.live.recorder import RecorderSettings
from acquisition.live.remote_control import RemoteControlServer, RemoteController

from tests.conftest import CounterSource, emosync_command

FAST = RecorderSettings(wait_timeout_s=3.0, resolve_interval_s=0.3, clock_offset_interval_s=1.0)


class LineClient:
    """What experiment software does: connect, send a command line, read the reply line."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.replies = self.sock.makefile("r", encoding="utf-8", newline="\n")

    def send(self, line: str) -> str:
        self.sock.sendall(line.encode("utf-8") + b"\n")
        return self.replies.readline().rstrip("\n")

    def close(self) -> None:
        self.replies.close()
        self.sock.close()


@pytest.fixture
def remote(tmp_path, counter_source):
    """A server on a free loopback port recording this test's counter stream into ``tmp_path``."""
    # allow_missing: after "select all", streams of other tests on this machine may vanish mid-recording.
    controller = RemoteController(tmp_path, streams=[f"name='{counter_source.name}'"], settings=FAST,
                                  allow_missing=True)
    server = RemoteControlServer(controller, port=0).start()
    client = LineClient(server.port)
    yield server, client
    client.close()
    server.close()


def _assert_complete(fname, source_name: str, *, min_s: float) -> np.ndarray:
    """The session was closed properly and holds a gap-free counter for at least ``min_s`` seconds."""
    with open_session(fname) as s:
        assert "stop_time" in s.info  # written at close: the recorder finished the file
        data = s.streams[source_name].data[:]
    assert len(data) >= min_s * 500 and np.all(np.diff(data[:, 0]) == 1)
    return data


def test_three_start_stop_cycles_give_three_sessions_with_the_expected_names(remote, tmp_path, counter_source):
    server, client = remote
    assert client.send("select all") == "OK"
    names = []
    for run in (1, 2, 3):
        assert client.send(f"filename {{root:{tmp_path / 'study'}}} {{participant:P007}} {{session:S01}} "
                           f"{{task:smile}} {{run:{run}}} {{modality:emg}}") == "OK"
        assert client.send("start") == "OK"
        time.sleep(0.8)
        assert client.send("stop") == "OK"
        names.append(tmp_path / f"study/sub-P007/ses-S01/emg/sub-P007_ses-S01_task-smile_run-{run:03d}_emg.h5")
    assert server.controller.recorded == names
    counters = [_assert_complete(name, counter_source.name, min_s=0.5)[:, 0] for name in names]
    # Consecutive runs never share a sample: three separate recordings, in order.
    assert counters[0][-1] < counters[1][0] and counters[1][-1] < counters[2][0]
    with open_session(names[2]) as s:
        assert s.info["subject_id"] == "sub-P007" and "task=smile" in s.info["notes"]


def test_repeated_start_without_new_filename_never_overwrites(remote, tmp_path, counter_source):
    server, client = remote
    # BIDS layout (a run number): the next start moves to the next free run, as LabRecorder's builder does.
    for _ in range(2):
        assert client.send("start") == "OK"
        time.sleep(0.3)
        assert client.send("stop") == "OK"
    bids = tmp_path / "sub-P001/ses-S001/eeg"
    assert server.controller.recorded == [bids / "sub-P001_ses-S001_task-Default_run-001_eeg.h5",
                                          bids / "sub-P001_ses-S001_task-Default_run-002_eeg.h5"]
    # A fixed name (no %n/%r): LabRecorder's rule, the earlier file is kept as <name>_old1.h5.
    assert client.send("filename {template:fixed.xdf}") == "OK"
    first_size = None
    for _ in range(2):
        assert client.send("start") == "OK"
        time.sleep(0.3)
        assert client.send("stop") == "OK"
        first_size = first_size or (tmp_path / "fixed.h5").stat().st_size
    assert (tmp_path / "fixed_old1.h5").stat().st_size == first_size
    for fname in (tmp_path / "fixed.h5", tmp_path / "fixed_old1.h5", *server.controller.recorded[:2]):
        _assert_complete(fname, counter_source.name, min_s=0.1)


def test_bad_commands_get_an_error_line_and_the_server_keeps_serving(remote, tmp_path, counter_source):
    server, client = remote
    assert client.send("stop") == "ERROR: Not recording: there is nothing to stop. Send 'start' to record."
    replies = {
        "record please": "ERROR: Unknown command 'record please'",
        "filename {root:/data {task:rest}": "ERROR: Missing '}' after '{root:/data '",
        "filename task:rest}": "ERROR: Unexpected text 'task:rest}' outside braces",
        "filename {subject:P1}": "ERROR: Unknown field 'subject' in 'filename'. Known fields: root, template",
        "filename {template:../../escape.xdf}": "ERROR: Template '../../escape.xdf' contains '..' and could leave "
                                                "the root folder",
        "filename {template:/tmp/abs.xdf}": "ERROR: Template '/tmp/abs.xdf' is an absolute path",
        "filename {run:x}": "ERROR: {run:x} is not a run number",
        "select some": "ERROR: 'select' needs 'all' or 'none'",
    }
    for line, expected in replies.items():
        assert client.send(line).startswith(expected), line
    assert server.controller.fields.template is None  # nothing of the refused lines was applied
    # Bytes that are not UTF-8 and an over-long line are refused too, and the connection goes on.
    client.sock.sendall(b"\xff\xfe start\n")
    assert client.replies.readline().startswith("ERROR: The line is not UTF-8 text")
    assert client.send("x" * 70_000).startswith("ERROR: Line longer than 65536 bytes")
    assert client.send("filename {task:rest}") == "OK"
    assert client.send("start") == "OK"
    time.sleep(0.3)
    assert client.send("stop") == "OK"
    _assert_complete(server.controller.recorded[0], counter_source.name, min_s=0.1)
    assert "task-rest" in server.controller.recorded[0].name and not list(tmp_path.glob("**/escape*"))


def test_start_twice_keeps_the_first_recording_going(remote, counter_source):
    server, client = remote
    assert client.send("start") == "OK"
    fname = server.controller.recording
    time.sleep(0.5)
    reply = client.send("start")
    assert reply.startswith(f"ERROR: Already recording to {fname} (for ") and "that recording goes on" in reply
    time.sleep(0.5)
    assert client.send("stop") == "OK"
    assert server.controller.recorded == [fname]  # no second file was started
    _assert_complete(fname, counter_source.name, min_s=0.9)


def test_client_disconnect_mid_recording_does_not_stop_it(remote, counter_source):
    server, client = remote
    assert client.send("start") == "OK"
    fname = server.controller.recording
    client.close()  # the experiment script crashed or simply exited
    time.sleep(1.2)
    assert server.controller.recording == fname
    other = LineClient(server.port)
    try:
        assert other.send("stop") == "OK"
    finally:
        other.close()
    _assert_complete(fname, counter_source.name, min_s=1.1)


def test_select_none_then_start_is_refused_until_select_all(remote, counter_source):
    server, client = remote
    assert client.send("select none") == "OK"
    assert client.send("start") == ("ERROR: No stream is selected (after 'select none'). Send 'select all', then "
                                    "'start'.")
    assert client.send("update") == "OK"
    assert client.send("select all") == "OK"
    assert client.send("start") == "OK"
    time.sleep(0.3)
    assert client.send("stop") == "OK"
    with open_session(server.controller.recorded[0]) as s:
        assert counter_source.name in s.streams  # "all" records every visible stream


def test_start_without_streams_is_an_error_and_nothing_is_created(tmp_path, unique_prefix):
    controller = RemoteController(tmp_path / "root", streams=[f"name='{unique_prefix}absent'"],
                                  settings=RecorderSettings(wait_timeout_s=0.5))
    reply = controller.handle_line("start")
    assert reply.startswith("ERROR: Could not start recording ") and "No LSL stream matched" in reply
    assert controller.recording is None and controller.recorded == []
    assert not list(tmp_path.glob("**/*.h5"))
    assert controller.handle_line("stop").startswith("ERROR: Not recording")


def test_a_recording_that_fails_is_closed_and_the_next_stop_says_why(tmp_path, unique_prefix):
    source = CounterSource(f"{unique_prefix}EMG").start()
    controller = RemoteController(tmp_path, streams=[f"starts-with(name,'{unique_prefix}')"], settings=FAST)
    bad = None
    try:
        assert controller.handle_line("start") == "OK"
        fname = controller.recording
        time.sleep(0.8)
        # A real outlet that joins late and cannot be recorded (a video encoding emosync does not store):
        # the recorder stops on its own, and the controller closes the file without waiting for 'stop'.
        info = pylsl.StreamInfo(f"{unique_prefix}Cam", "VideoRaw", 4 * 4 * 3, 30.0, pylsl.cf_int8,
                                f"{unique_prefix}Cam-src")
        info.desc().append_child_value("encoding", "YUV420")
        bad = pylsl.StreamOutlet(info)
        deadline = time.monotonic() + 10
        while controller.recording is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert controller.recording is None, "the failed recording was not closed"
        with open_session(fname) as s:  # closed properly, with what was recorded before the failure
            assert f"{unique_prefix}Cam" in s.info["failed_streams"]
        _assert_complete(fname, source.name, min_s=0.7)
        reply = controller.handle_line("stop")
        assert reply.startswith(f"ERROR: Not recording: the last recording already stopped on its own: The "
                                f"recording to {fname} stopped with a failure: Stream '{unique_prefix}Cam'")
        assert "YUV420" in reply
        assert controller.handle_line("stop").startswith("ERROR: Not recording: there is nothing to stop")
    finally:
        source.stop()
        controller.close()
        del bad


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_remote_records_and_sigterm_closes_the_recording(tmp_path, counter_source):
    port = _free_port()
    proc = subprocess.Popen(emosync_command("record", "--remote", f"127.0.0.1:{port}", "--root", str(tmp_path),
                                            "--template", "%p/%b_%n.xdf", "--stream", f"name='{counter_source.name}'"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                client = LineClient(port)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        assert client.send("filename {participant:P2} {task:smile} {run:4}") == "OK"
        assert client.send("start") == "OK"
        time.sleep(1.0)
        client.close()
        proc.send_signal(signal.SIGTERM)  # quit while recording: the file is closed properly
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    fname = tmp_path / "P2" / "smile_004.h5"
    assert "Sessions written: " in out and "smile_004.h5" in out
    _assert_complete(fname, counter_source.name, min_s=0.8)


def test_cli_remote_usage_errors(tmp_path):
    result = subprocess.run(emosync_command("record", "s.h5", "--remote", "22345"), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1 and "With --remote the client names the files" in result.stderr
    result = subprocess.run(emosync_command("record", "--remote", "nope:port"), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1 and "Cannot read the remote-control address 'nope:port'" in result.stderr
    result = subprocess.run(emosync_command("record"), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "Missing FNAME" in result.stderr
    result = subprocess.run(emosync_command("record", "s.h5", "--all", "--template", "%p.xdf"), capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 1 and "--root and --template name the files of remote" in result.stderr
    assert not (tmp_path / "s.h5").exists()
