# ruff: noqa: T201  (benchmark scripts report by printing)
"""Drive ``emosync record --remote`` the way experiment software drives LabRecorder, and check the sessions.

1. Sources: two real LSL outlets in this process under a unique prefix: an 8-channel 1 kHz "EMG" stream
   whose channel 0 counts samples (so every lost or duplicated sample is visible) and a string marker
   stream (one marker every 0.25 s).
2. Server: ``emosync record --remote 127.0.0.1:PORT --root OUT`` in its own process (the real command).
3. Client: a plain TCP socket, as PsychoPy/MATLAB scripts do: connect, ``select all``, then per run
   ``filename {root:...} {participant:...} {session:...} {task:...} {run:N} {modality:emg}``, ``start``,
   wait ``--run-s`` seconds, ``stop``; ``--runs`` times. Reply latency of each command is measured.
4. Check: each run's file has LabRecorder's BIDS name (``.h5`` for ``.xdf``), was closed properly, holds a
   gap-free counter from the start reply to the stop command and every marker sent in that window; runs
   never share a sample. Then SIGTERM the server (exit status 0 expected).

Usage::

    python benchmarks/remote_control.py                 # 3 runs of 3 s
    python benchmarks/remote_control.py --runs 5 --run-s 10 --out-dir /tmp/emosync-remote

``select all`` records every stream visible on the network; on a machine where other programs publish
LSL streams, pass ``--no-select-all`` to record only this script's streams (selected with ``--stream``).
The result is printed as markdown and written as JSON in ``--out-dir``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pylsl

ROOT = Path(__file__).resolve().parent.parent
EMG_RATE_HZ = 1000.0
MARKER_PERIOD_S = 0.25


class Sources:
    """A counting 8-channel EMG outlet and a marker outlet, pushed from one thread."""

    def __init__(self, prefix: str) -> None:
        sys.path.insert(0, str(ROOT))
        from acquisition.lsl import make_stream_info

        self.emg_name, self.marker_name = f"{prefix}EMG", f"{prefix}Markers"
        self.emg = pylsl.StreamOutlet(make_stream_info(
            self.emg_name, "EMG", channel_count=8, nominal_srate=EMG_RATE_HZ, channel_format="float32",
            source_id=f"{prefix}emg", channel_labels=[f"ch{i}" for i in range(8)]))
        self.markers = pylsl.StreamOutlet(make_stream_info(
            self.marker_name, "Markers", channel_count=1, nominal_srate=0.0, channel_format="string",
            source_id=f"{prefix}markers", channel_labels=["marker"]))
        self.marker_times: list[float] = []  # LSL time of every marker pushed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sources:
        self._thread.start()
        return self

    def _run(self) -> None:
        t0, position, next_marker = pylsl.local_clock(), 0, 0
        while not self._stop.is_set():
            now = pylsl.local_clock()
            due = int((now - t0) * EMG_RATE_HZ)
            if due > position:
                k = np.arange(position, due)
                data = np.zeros((len(k), 8), dtype=np.float32)
                data[:, 0] = k
                self.emg.push_chunk(data, (t0 + k / EMG_RATE_HZ).tolist())
                position = due
            if now - t0 >= next_marker * MARKER_PERIOD_S:
                self.markers.push_sample([f"trial/{next_marker}"], now)
                self.marker_times.append(now)
                next_marker += 1
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def send(sock_file, sock: socket.socket, line: str) -> tuple[str, float]:
    """Send one command line; return the reply line and the round trip in seconds."""
    t = time.perf_counter()
    sock.sendall(line.encode("utf-8") + b"\n")
    reply = sock_file.readline().rstrip("\n")
    return reply, time.perf_counter() - t


def check_session(fname: Path, sources: Sources, window: tuple[float, float]) -> dict:
    """Open one session and report completeness: closed, counter gaps, markers inside ``window`` (LSL time)."""
    sys.path.insert(0, str(ROOT))
    from acquisition import open_session

    with open_session(fname) as s:
        emg = s.streams[sources.emg_name]
        counter = emg.data[:, 0].astype(np.int64)
        stamps = emg.timestamps[:]
        markers = s.streams[sources.marker_name]
        n_markers = markers.n_samples
        other = sorted(set(s.streams) - {sources.emg_name, sources.marker_name})
        closed = "stop_time" in s.info
    lost = int(counter[-1] - counter[0] + 1 - len(counter)) if len(counter) else -1
    expected_markers = sum(window[0] + 0.3 <= t <= window[1] - 0.1 for t in sources.marker_times)
    return {"file": str(fname), "closed": closed, "emg_samples": int(len(counter)), "emg_lost_inside": lost,
            "emg_first": int(counter[0]), "emg_last": int(counter[-1]),
            "covered_s": float(stamps[-1] - stamps[0]), "late_start_s": float(stamps[0] - window[0]),
            "early_stop_s": float(window[1] - stamps[-1]), "markers": int(n_markers),
            "markers_expected_min": int(expected_markers), "other_streams": other}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--run-s", type=float, default=3.0, help="Seconds between start and stop.")
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/emosync-remote-bench"))
    parser.add_argument("--no-select-all", action="store_true",
                        help="Record only this script's streams (skip 'select all').")
    args = parser.parse_args()
    if args.out_dir.exists():
        shutil.rmtree(args.out_dir)
    root = args.out_dir / "study"
    prefix = f"rc{uuid.uuid4().hex[:8]}_"
    sources = Sources(prefix).start()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "emosync", "record", "--remote", f"127.0.0.1:{port}",
                               "--root", str(args.out_dir), "--stream", f"starts-with(name,'{prefix}')"],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t_launch = time.perf_counter()
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            break
        except OSError:
            if server.poll() is not None or time.perf_counter() - t_launch > 30:
                print(server.communicate()[0])
                raise SystemExit("the server did not start") from None
            time.sleep(0.05)
    ready_s = time.perf_counter() - t_launch
    replies = sock.makefile("r", encoding="utf-8", newline="\n")
    latencies: dict[str, list[float]] = {"select all": [], "filename": [], "start": [], "stop": []}
    runs = []
    if not args.no_select_all:
        reply, dt = send(replies, sock, "select all")
        assert reply == "OK", reply
        latencies["select all"].append(dt)
    for run in range(1, args.runs + 1):
        line = (f"filename {{root:{root}}} {{participant:P001}} {{session:S01}} {{task:smile}} {{run:{run}}} "
                "{modality:emg}")
        for command in (line, "start"):
            reply, dt = send(replies, sock, command)
            assert reply == "OK", (command, reply)
            latencies[command.split()[0]].append(dt)
        t_started = pylsl.local_clock()
        time.sleep(args.run_s)
        t_stop = pylsl.local_clock()
        reply, dt = send(replies, sock, "stop")
        assert reply == "OK", reply
        latencies["stop"].append(dt)
        expected = root / f"sub-P001/ses-S01/emg/sub-P001_ses-S01_task-smile_run-{run:03d}_emg.h5"
        runs.append((expected, (t_started, t_stop)))
    sock.close()
    server.send_signal(signal.SIGTERM)
    server_out, _ = server.communicate(timeout=60)
    sources.stop()

    results = []
    for expected, window in runs:
        results.append({"exists": expected.exists(), **(check_session(expected, sources, window)
                                                         if expected.exists() else {"file": str(expected)})})
    disjoint = all(a["emg_last"] < b["emg_first"] for a, b in zip(results, results[1:]) if "emg_last" in a)
    h5_files = sorted(str(p.relative_to(args.out_dir)) for p in args.out_dir.rglob("*.h5"))
    ok = (all(r["exists"] and r["closed"] and r["emg_lost_inside"] == 0 and r["markers"] >= r["markers_expected_min"]
              for r in results) and disjoint and len(h5_files) == args.runs and server.returncode == 0)

    print(f"\n## Remote control: {args.runs} runs of {args.run_s:g} s (server ready in {ready_s:.2f} s)\n")
    print("| run | file | closed | EMG samples | lost inside | covered (s) | late start (s) | early stop (s) "
          "| markers (>= expected) |")
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for i, r in enumerate(results, 1):
        if not r["exists"]:
            print(f"| {i} | {Path(r['file']).name} MISSING | | | | | | | |")
            continue
        print(f"| {i} | {Path(r['file']).relative_to(args.out_dir)} | {r['closed']} | {r['emg_samples']} | "
              f"{r['emg_lost_inside']} | {r['covered_s']:.3f} | {r['late_start_s']:.3f} | {r['early_stop_s']:.3f} | "
              f"{r['markers']} (>= {r['markers_expected_min']}) |")
    print("\n| command | reply latency median (ms) | max (ms) |\n|---|---:|---:|")
    for command, values in latencies.items():
        if values:
            print(f"| {command} | {1000 * np.median(values):.1f} | {1000 * max(values):.1f} |")
    others = sorted({name for r in results for name in r.get("other_streams", [])})
    print(f"\nruns disjoint: {disjoint}; .h5 files under out-dir: {len(h5_files)}; server exit status "
          f"{server.returncode}; streams recorded besides ours ('select all'): {others}")
    print("RESULT:", "PASS" if ok else "FAIL")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "remote_control.json").write_text(json.dumps(
        {"runs": results, "latency_s": latencies, "server_ready_s": ready_s, "disjoint": disjoint,
         "files": h5_files, "server_exit": server.returncode, "pass": ok}, indent=2))
    if not ok:
        print(server_out[-4000:])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
