"""Real federations: a SuperLink and SuperNodes as processes on 127.0.0.1, the emosync apps run by `flwr run`.

Slow by nature (Flower starts a fresh ClientApp process per message, each importing torch): each test
is one short run, about a minute on 2 busy cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from fusion.evaluate import evaluate
from fusion.federated.config import load_federated_config
from fusion.federated.launch import run_local
from fusion.federated.processes import descendants, free_port

from .test_train import SMALL


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    """Three site folders of one 6 s light-rig session each; site_c has no EEG. And a held-out session."""
    from synth.rig.offline import write_rig_session

    root = tmp_path_factory.mktemp("federation")
    for name, seed in (("site_a", 0), ("site_b", 1), ("site_c", 2)):
        (root / name).mkdir()
        kept = ("rgb", "depth", "emg", "au", "markers") + (() if name == "site_c" else ("eeg",))
        write_rig_session(root / name / f"{name}.h5", duration_s=6, seed=seed, modalities=kept)
    heldout = write_rig_session(root / "heldout.h5", duration_s=6, seed=3)
    return root, heldout


def _config_file(tmp_path: Path, **changes) -> Path:
    config = load_federated_config("tiny", ["local_steps=3", f"port={free_port()}"]).model_dump(mode="json")
    config.update(pretrain_overrides=[*SMALL, "threads=1"], **changes)
    path = tmp_path / "federated.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _open_files(pid: int) -> list[str]:
    out = []
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            out.append(os.readlink(fd))
        except OSError:
            pass
    return out


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads open files from /proc (Linux)")
def test_two_site_federation_in_real_processes(sites, tmp_path):
    """2 sites train, the site without EEG is excluded by name, the server opens no session, evaluate works."""
    root, heldout = sites
    config = load_federated_config(_config_file(tmp_path, rounds=1))
    server_files: dict[int, set[str]] = {}
    site_files: set[str] = set()
    done = threading.Event()

    def watch():  # the SuperLink's process tree (SuperExec, ServerApp) vs the sites' trees, every 50 ms
        while not done.is_set():
            for entry in Path("/proc").glob("[0-9]*"):
                cmd = _cmdline(int(entry.name))
                if "flower-superlink" in cmd and f"--port {config.port}" in cmd:
                    for pid in [int(entry.name), *descendants(int(entry.name))]:
                        server_files.setdefault(pid, set()).update(_open_files(pid))
                elif "flower-supernode" in cmd and f"127.0.0.1:{config.port}" in cmd:
                    for pid in descendants(int(entry.name)):
                        site_files.update(_open_files(pid))
            time.sleep(0.05)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        rows = run_local([root / "site_a", root / "site_b", root / "site_c"], config, tmp_path / "run")
    finally:
        done.set()
        watcher.join()
    assert len(rows) == 1 and rows[0]["sites"] == 2 and sorted(rows[0]["site_names"]) == ["site_a", "site_b"]
    assert rows[0]["n_windows"] > 0 and rows[0]["loss"] > 0
    status = json.loads((tmp_path / "run" / "sites.json").read_text())
    assert status["site_a"]["status"] == status["site_b"]["status"] == "ok"
    assert status["site_c"]["status"] == "excluded" and "['eeg']" in status["site_c"]["reason"]
    # the server side: SuperLink, SuperExec and the ServerApp (which imports torch: many fds) were seen
    assert len(server_files) >= 3, f"saw only {len(server_files)} server-side processes"
    assert not [f for files in server_files.values() for f in files if f.endswith(".h5")]
    assert any(f.endswith(".h5") for f in site_files), "the fd scan never saw a site read its sessions"
    report = evaluate(tmp_path / "run", [heldout])  # what `emosync evaluate RUN heldout.h5 --json` prints
    assert report["n_windows"] > 0 and len(report["retrieval"]) == 12  # every ordered pair of 4 modalities
    assert not [p for p in descendants(os.getpid()) if "flower" in _cmdline(p) or "flwr" in _cmdline(p)]


def test_fedbuff_run_ctrl_c_leaves_no_process_and_resumes(sites, tmp_path):
    """`federate local --strategy fedbuff`: versions advance; SIGINT stops every Flower process; --resume goes on."""
    root, _ = sites
    config = _config_file(tmp_path, rounds=50, strategy="fedbuff", buffer_size=2)
    out = tmp_path / "run"
    cmd = [sys.executable, "-c", "from fusion.federated.cli import app; app()", "local", "--sites",
           str(root / "site_a"), str(root / "site_b"), "--config", str(config), "--out", str(out)]
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen: dict[int, str] = {}  # pid -> command line, read while the process lives
    deadline = time.monotonic() + 150
    try:
        while time.monotonic() < deadline and process.poll() is None:
            seen.update({pid: _cmdline(pid) for pid in descendants(process.pid) if pid not in seen})
            if (out / "rounds.jsonl").is_file() and (out / "rounds.jsonl").read_text().strip():
                break
            time.sleep(0.2)
        assert process.poll() is None, process.stdout.read().decode()[-3000:]
        seen.update({pid: _cmdline(pid) for pid in descendants(process.pid) if pid not in seen})
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=60)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
    assert "Interrupted" in output and process.returncode == 1, output[-3000:]
    first = json.loads((out / "rounds.jsonl").read_text().splitlines()[0])
    assert first["strategy"] == "fedbuff" and first["sites"] == 2 and first["staleness"] == [0, 0], first
    names = {pid: cmd for pid, cmd in seen.items() if cmd}
    assert any("flower-superlink" in c for c in names.values()), names
    for site in ("site_a", "site_b"):  # (a SuperNode's forked workers share its command line)
        assert any("flower-supernode" in c and f'site-name="{site}"' in c for c in names.values()), names
    time.sleep(0.5)
    alive = {pid: c for pid, c in names.items() if _cmdline(pid) and _cmdline(pid) == c}
    assert not alive, f"processes left after Ctrl-C: {alive}"
    # the interruption was a crash for the server: --resume continues after the last version written
    done = len((out / "rounds.jsonl").read_text().splitlines())
    res = subprocess.run([*cmd, "--resume", "--set", f"rounds={done + 1}"], capture_output=True, text=True,
                         timeout=240)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    versions = [json.loads(line)["version"] for line in (out / "rounds.jsonl").read_text().splitlines()]
    assert versions == list(range(1, done + 2))
