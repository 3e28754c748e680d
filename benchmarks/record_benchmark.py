# ruff: noqa: T201  (benchmark scripts report by printing)
"""Benchmark the emosync recorder against the physical floor and against LabRecorder.

One run does, on this machine and within the same invocation (so ratios are not
spoiled by a noisy machine drifting between runs):

1. Physical floors: LSL loopback throughput of VGA frames (a pusher process, the
   receiving side measured here with a preallocated ``dest_obj`` as the recorder
   does) and HDF5 chunked append throughput (h5py, one frame per append, flush
   every 15 frames), each as MB/s and CPU-s per MB.
2. The simulated rig (``SimulatedRig`` in its own process, exactly what
   ``emosync simulate`` runs) publishing real LSL outlets under a unique prefix.
3. ``emosync record`` (our recorder, own process) and, at the same time,
   LabRecorder's Python binding (``labrecorder.Recording``, own process) recording
   the same streams for ``--duration`` seconds.
4. Analysis: per stream, lost samples counted exactly from the recorded stamps
   (sample ``k`` is stamped ``t0 + k / rate``, ``t0`` is in the stream's info XML),
   CPU per recorded second (psutil / wait4, children included), bytes per second,
   ratio to the LSL+HDF5 floor, and the LabRecorder comparison (counts in the
   overlapping window, stamps and samples of identical ``k``).

Usage::

    python benchmarks/record_benchmark.py --duration 60
    python benchmarks/record_benchmark.py --duration 60 --profile light
    python benchmarks/record_benchmark.py --duration 60 --set rgb.enabled=false --set depth.enabled=false

Large files go under ``--out-dir`` (default ``/tmp/emosync-bench``); the result
is printed as markdown and written as JSON next to the recordings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve()
STREAM_KEYS = ("rgb", "depth", "emg", "eeg", "au", "markers")
VGA_RGB_VALUES = 640 * 480 * 3


# ----------------------------------------------------------------------------------------------
# Worker modes (each runs in its own process, started by the driver below)
# ----------------------------------------------------------------------------------------------
def _emit(event: str, **fields: Any) -> None:
    """Report an event with its LSL time, to a side file (native code shares stdout and may interleave)."""
    import pylsl

    line = json.dumps({"event": event, "lsl_time": pylsl.local_clock(), **fields})
    path = os.environ.get("BENCH_EVENTS")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")
    print("BENCH " + line, flush=True)


def worker_sim(argv: list[str]) -> None:
    """The simulated rig, as ``emosync simulate`` runs it, printing its stats (max lag) as JSON."""
    p = argparse.ArgumentParser()
    p.add_argument("--profile", default="default")
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prefix", required=True)
    p.add_argument("--set", action="append", default=[])
    a = p.parse_args(argv)
    from acquisition.cli.common import install_stop_handlers
    from synth.rig import SimulatedRig, load_rig_config

    config = load_rig_config(a.profile, list(a.set) + [f"name_prefix={a.prefix}"])
    rig = SimulatedRig(config, seed=a.seed, duration_s=a.duration, profile=a.profile)
    stop = threading.Event()
    install_stop_handlers(stop)
    started = time.monotonic()
    done = threading.Event()

    def progress() -> None:  # cumulative max lag once a second, so lag can be cut to the recording window
        while not done.wait(1.0):
            if rig.t0 is not None:
                _emit("sim_progress", stats=rig.stats())

    threading.Thread(target=progress, daemon=True).start()
    rig.run(a.duration, stop_event=stop)
    done.set()
    _emit("sim_stats", stats=rig.stats(), t0=rig.t0, ran_s=time.monotonic() - started,
          markers=[[float(w), str(t)] for w, t in rig.timeline.markers()],
          max_lag_threshold_s=config.max_lag_s)


def worker_labrecorder(argv: list[str]) -> None:
    """Record with LabRecorder's Python binding (resolved StreamInfo objects, as documented)."""
    p = argparse.ArgumentParser()
    p.add_argument("--pred", required=True)
    p.add_argument("--n-streams", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--duration", type=float, required=True)
    a = p.parse_args(argv)
    import pylsl

    import labrecorder

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    infos = pylsl.resolve_bypred(a.pred, a.n_streams, 30.0)
    _emit("lr_resolved", names=sorted(i.name() for i in infos))
    rec = labrecorder.Recording(a.out, infos)
    _emit("lr_recording")
    stop.wait(a.duration)
    _emit("lr_stopping")
    rec.stop()
    _emit("lr_stopped")


def worker_lsl_push(argv: list[str]) -> None:
    """Push VGA RGB frames (int8, 921600 values) as fast as the consumer takes them."""
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--chunk", type=int, default=1)
    a = p.parse_args(argv)
    import pylsl

    info = pylsl.StreamInfo(a.name, "VideoRaw", VGA_RGB_VALUES, 30.0, "int8", a.name)
    # 2 s (60 frames) of send buffer: a slower consumer makes the outlet drop, not grow.
    outlet = pylsl.StreamOutlet(info, max_buffered=2)
    frames = np.random.default_rng(0).integers(-128, 127, (a.chunk, VGA_RGB_VALUES), dtype=np.int8)
    if not outlet.wait_for_consumers(30.0):
        _emit("push_done", pushed=0)
        return
    time.sleep(0.5)
    k = 0
    t_end = time.monotonic() + a.seconds
    while time.monotonic() < t_end and outlet.have_consumers():
        outlet.push_chunk(frames, [float(k + i) for i in range(a.chunk)])
        k += a.chunk
    _emit("push_done", pushed=k)
    time.sleep(1.0)


def _thread_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds (user+sys) of every thread of this process, by native id, with its kernel name."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
            comm = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(tid)] = (comm, (int(fields[11]) + int(fields[12])) / tick)
    return out


def worker_record_threads(argv: list[str]) -> None:
    """``emosync record`` without the CLI around it (same SessionRecorder), reporting CPU per thread."""
    p = argparse.ArgumentParser()
    p.add_argument("--pred", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--duration", type=float, required=True)
    a = p.parse_args(argv)
    from acquisition.live.recorder import RecorderSettings, SessionRecorder

    rec = SessionRecorder(a.out, streams=[a.pred], settings=RecorderSettings(wait_timeout_s=10.0))
    rec.start()
    print("Recording (in-process thread breakdown)", flush=True)
    names: dict[int, str] = {}
    time.sleep(2.0)
    for t in threading.enumerate():
        names[t.native_id] = t.name  # type: ignore[index]
    before, t_a = _thread_cpu(), time.monotonic()
    rec.wait(a.duration - 2.0)
    for t in threading.enumerate():
        names[t.native_id] = t.name  # type: ignore[index]
    after, t_b = _thread_cpu(), time.monotonic()
    rec.stop()
    rows = []
    for tid, (comm, c) in after.items():
        used = c - before.get(tid, (comm, 0.0))[1]
        rows.append((names.get(tid, f"[native] {comm}"), used / (t_b - t_a)))
    grouped: dict[str, float] = {}
    for name, v in rows:
        key = name.split("-", 1)[0] if not name.startswith("[native]") else name
        grouped[key] = grouped.get(key, 0.0) + v
    _emit("thread_cpu", window_s=t_b - t_a, threads=sorted(rows, key=lambda r: -r[1]),
          grouped=sorted(grouped.items(), key=lambda r: -r[1]), total=sum(v for _, v in rows))


WORKERS = {"_record_threads": worker_record_threads, "_sim": worker_sim, "_labrecorder": worker_labrecorder,
           "_lslpush": worker_lsl_push}


# ----------------------------------------------------------------------------------------------
# Driver helpers
# ----------------------------------------------------------------------------------------------
class Proc:
    """A child process whose output lines are timestamped (LSL clock) and whose CPU is sampled."""

    def __init__(self, name: str, cmd: list[str], log_path: Path) -> None:
        import psutil
        import pylsl

        self.name = name
        self.cmd = cmd
        self.lines: list[tuple[float, str]] = []
        self.samples: list[tuple[float, float]] = []  # (lsl time, cpu seconds incl. children)
        self.rusage_cpu: float | None = None
        self.max_rss_MB: float | None = None
        self.exit_code: int | None = None
        self._log = open(log_path, "w")
        self.events_path = log_path.with_suffix(".events.jsonl")
        self.popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                      env={**os.environ, "PYTHONUNBUFFERED": "1",
                                           "BENCH_EVENTS": str(self.events_path)})
        self.started = pylsl.local_clock()
        self._ps = psutil.Process(self.popen.pid)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._waiter = threading.Thread(target=self._wait, daemon=True)
        self._waiter.start()

    def _read(self) -> None:
        import pylsl

        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append((pylsl.local_clock(), line.rstrip("\n")))
            self._log.write(line)
        self._log.flush()

    def _wait(self) -> None:
        # wait4 gives the exact final CPU time (threads and reaped children included).
        _, status, usage = os.wait4(self.popen.pid, 0)
        self.rusage_cpu = usage.ru_utime + usage.ru_stime
        self.exit_code = os.waitstatus_to_exitcode(status)
        self.popen.returncode = self.exit_code

    def sample_cpu(self) -> None:
        import psutil
        import pylsl

        if self.rusage_cpu is not None:
            return
        try:
            t = self._ps.cpu_times()
            rss = self._ps.memory_info().rss / 1e6
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            return
        self.samples.append((pylsl.local_clock(), t.user + t.system + t.children_user + t.children_system))
        # (wait4's ru_maxrss is useless here: it inherits the driver's RSS at fork time.)
        self.max_rss_MB = max(self.max_rss_MB or 0.0, rss)

    def cpu_between(self, t_a: float, t_b: float) -> float:
        """CPU seconds used between two LSL times (linear interpolation of the 0.25 s samples)."""
        if len(self.samples) < 2:
            return float("nan")
        ts, cs = np.array(self.samples).T
        return float(np.interp(t_b, ts, cs) - np.interp(t_a, ts, cs))

    def cpu_at(self, t: float) -> float:
        """CPU seconds used from the process start until LSL time ``t`` (0 at its start)."""
        if not self.samples:
            return float("nan")
        ts, cs = np.array([(self.started, 0.0), *self.samples]).T
        return float(np.interp(t, ts, cs))

    def events(self, name: str) -> list[dict[str, Any]]:
        if not self.events_path.exists():
            return []
        return [d for d in map(json.loads, self.events_path.read_text().splitlines()) if d["event"] == name]

    def event(self, name: str) -> dict[str, Any] | None:
        found = self.events(name)
        return found[0] if found else None

    def first_line_time(self, needle: str) -> float | None:
        return next((t for t, line in self.lines if needle in line), None)

    def alive(self) -> bool:
        return self.exit_code is None

    def join(self, timeout: float | None = None) -> bool:
        self._waiter.join(timeout)
        if not self._waiter.is_alive():
            self._reader.join(5)
            return True
        return False

    def stop(self, grace_s: float = 10.0) -> None:
        """Terminate, then kill, this process only (by its pid)."""
        if self.alive():
            try:
                self.popen.terminate()
            except ProcessLookupError:
                pass
            if not self.join(grace_s) and self.alive():
                try:
                    self.popen.kill()
                except ProcessLookupError:
                    pass
                self.join(5)
        self._reader.join(5)
        self._log.close()


def lsl_floor(seconds: float, workdir: Path) -> dict[str, float]:
    """LSL loopback of VGA RGB frames: receiving side (inlet + pull_chunk into dest_obj), CPU and MB/s."""
    import pylsl

    name = f"floor{uuid.uuid4().hex[:8]}"
    pusher = Proc("lslpush", [sys.executable, str(HERE), "_lslpush", "--name", name, "--seconds", str(seconds)],
                  workdir / "floor_lslpush.log")
    try:
        infos = pylsl.resolve_bypred(f"name='{name}'", 1, 30.0)
        if not infos:
            raise RuntimeError("LSL floor: pusher stream not found")
        # Exactly what the recorder opens: 360 s buffer, no post-processing, 16-frame dest_obj.
        inlet = pylsl.StreamInlet(infos[0], max_buflen=360, recover=False, processing_flags=0)
        inlet.open_stream(timeout=10.0)
        buf = np.empty((16, VGA_RGB_VALUES), dtype=np.int8)
        n = 0
        while n == 0:
            _, stamps = inlet.pull_chunk(timeout=0.0, max_samples=16, dest_obj=buf)
            n = len(stamps)
            time.sleep(0.001)
        cpu0, wall0, n = time.process_time(), time.perf_counter(), 0
        idle_since, last = None, wall0
        while True:
            _, stamps = inlet.pull_chunk(timeout=0.0, max_samples=16, dest_obj=buf)
            got = len(stamps)
            n += got
            if got:
                idle_since = None
                last = time.perf_counter()
            else:
                idle_since = idle_since or time.perf_counter()
                if time.perf_counter() - idle_since > 0.5:
                    break
            if got < 16:
                time.sleep(0.02)  # the recorder's pull_interval_s
        cpu, wall = time.process_time() - cpu0, last - wall0
        inlet.close_stream()
        del inlet
    finally:
        pusher.stop(grace_s=5)
    pusher_cpu = pusher.rusage_cpu
    mb = n * VGA_RGB_VALUES / 1e6
    return {"frames": n, "MB": mb, "wall_s": wall, "MB_per_s": mb / wall, "recv_cpu_s": cpu,
            "recv_cpu_s_per_MB": cpu / mb, "pusher_cpu_s_total": pusher_cpu or float("nan")}


def hdf5_floor(n_frames: int, workdir: Path) -> dict[str, float]:
    """h5py append of VGA RGB frames (one per append, chunk = 1 frame, SWMR, flush every 15 frames)."""
    import h5py

    path = workdir / f"floor_{uuid.uuid4().hex[:8]}.h5"
    frame = np.random.default_rng(1).integers(0, 255, (1, 480, 640, 3), dtype=np.uint8)
    try:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        with h5py.File(path, "w-", libver="latest") as f:
            d = f.create_dataset("data", shape=(0, 480, 640, 3), maxshape=(None, 480, 640, 3),
                                 chunks=(1, 480, 640, 3), dtype=np.uint8)
            ts = f.create_dataset("timestamps", shape=(0,), maxshape=(None,), chunks=(4096,), dtype=np.float64)
            f.swmr_mode = True
            for i in range(n_frames):
                d.resize(i + 1, axis=0)
                d[i : i + 1] = frame
                ts.resize(i + 1, axis=0)
                ts[i : i + 1] = float(i)
                if i % 15 == 14:
                    f.flush()
            f.flush()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        size = path.stat().st_size
    finally:
        path.unlink(missing_ok=True)
    mb = n_frames * frame.nbytes / 1e6
    return {"frames": n_frames, "MB": mb, "file_MB": size / 1e6, "wall_s": wall, "MB_per_s": mb / wall,
            "cpu_s": cpu, "cpu_s_per_MB": cpu / mb}


def raw_write_floor(n_frames: int, workdir: Path) -> dict[str, float]:
    """Plain unbuffered file append of the same frames (what an XDF writer does), flush every 15 frames."""
    path = workdir / f"floor_{uuid.uuid4().hex[:8]}.bin"
    frame = np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8).tobytes()
    try:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        with open(path, "xb", buffering=0) as f:
            for i in range(n_frames):
                f.write(frame)
                f.write(np.float64(i).tobytes())
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        path.unlink(missing_ok=True)
    mb = n_frames * len(frame) / 1e6
    return {"frames": n_frames, "MB": mb, "wall_s": wall, "MB_per_s": mb / wall, "cpu_s": cpu, "cpu_s_per_MB": cpu / mb}


def _t0_from_xml(xml: str) -> float:
    node = ET.fromstring(xml).find("desc/emosync_simulation/t0")
    return float(node.text)  # type: ignore[union-attr]


def _analyze_regular(ts: np.ndarray, t0: float, rate: float) -> dict[str, Any]:
    k = np.rint((ts - t0) * rate).astype(np.int64)
    unique = np.unique(k)
    out: dict[str, Any] = {"n": int(ts.size)}
    if ts.size:
        out.update(
            k_first=int(k[0]), k_last=int(k[-1]), first_ts=float(ts[0]), last_ts=float(ts[-1]),
            span_expected=int(unique[-1] - unique[0] + 1),
            lost=int(unique[-1] - unique[0] + 1 - unique.size),
            duplicates=int(k.size - unique.size),
            non_increasing=int(np.sum(np.diff(k) <= 0)),
            max_stamp_residual_s=float(np.max(np.abs(ts - (t0 + k / rate)))),
        )
    return out


def _marker_analysis(ts: np.ndarray, expected: np.ndarray, window: tuple[float, float]) -> dict[str, Any]:
    in_window = expected[(expected >= window[0]) & (expected <= window[1])]
    found = np.isin(np.round(in_window, 9), np.round(ts, 9))
    out: dict[str, Any] = {"n": int(ts.size), "expected_in_window": int(in_window.size),
                           "lost": int(np.sum(~found))}
    if ts.size:
        out.update(first_ts=float(ts[0]), last_ts=float(ts[-1]))
    return out


def load_ours(path: Path, prefix: str) -> dict[str, dict[str, Any]]:
    from acquisition import open_session

    out: dict[str, dict[str, Any]] = {}
    with open_session(path) as s:
        for name, st in s.streams.items():
            out[name[len(prefix):]] = {
                "ts": np.asarray(st.timestamps, dtype=np.float64), "t0": _t0_from_xml(st.info["info_xml"]),
                "rate": st.nominal_srate, "n_offsets": len(st.clock_offsets),
                "sample_bytes": int(np.prod(st.data.shape[1:])) * st.data.dtype.itemsize
                if st.data.dtype != object else 0,
            }
    return out


def load_lr(path: Path, prefix: str) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    import pyxdf

    streams, _ = pyxdf.load_xdf(str(path), synchronize_clocks=False, dejitter_timestamps=False)
    out, series = {}, {}
    for st in streams:
        info = st["info"]
        name = info["name"][0][len(prefix):]
        t0 = float(info["desc"][0]["emosync_simulation"][0]["t0"][0])
        out[name] = {"ts": np.asarray(st["time_stamps"], dtype=np.float64), "t0": t0,
                     "rate": float(info["nominal_srate"][0]), "n_offsets": len(st.get("clock_times", []))}
        series[name] = st["time_series"]
    return out, series


def compare_data(h5: Path, prefix: str, name: str, k_ours: np.ndarray, k_lr: np.ndarray, lr_series: Any) -> bool:
    """Are the samples of identical k identical in both files? (video read in slices to bound memory)"""
    from acquisition import open_session

    common, i_ours, i_lr = np.intersect1d(k_ours, k_lr, assume_unique=False, return_indices=True)
    if common.size == 0:
        return True
    with open_session(h5) as s:
        st = s.streams[prefix + name]
        if st.data.dtype == object:
            ours = np.asarray(st.data[:])[i_ours]
            theirs = np.asarray(lr_series, dtype=object)[i_lr]
            return bool(np.all(ours.astype(str) == theirs.astype(str)))
        step = 128
        for a in range(0, common.size, step):
            rows = i_ours[a : a + step]
            if rows[-1] - rows[0] + 1 == rows.size and np.all(np.diff(rows) == 1):
                ours = np.asarray(st.data[int(rows[0]) : int(rows[-1]) + 1]).reshape(rows.size, -1)
            else:
                ours = np.asarray(st.data[rows]).reshape(rows.size, -1)
            theirs = np.asarray(lr_series[i_lr[a : a + step]])
            if theirs.dtype.itemsize == ours.dtype.itemsize and theirs.dtype != ours.dtype:
                theirs = theirs.view(ours.dtype)  # LSL int8/int16 carry uint8/uint16 frames
            if not np.array_equal(ours, theirs.reshape(rows.size, -1)):
                return False
    return True


def _fmt(v: Any, nd: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v:
            return "n/a"
        return f"{v:.{nd}f}"
    return str(v)


# ----------------------------------------------------------------------------------------------
# The benchmark
# ----------------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict[str, Any]:
    import psutil
    import pylsl

    from synth.rig import load_rig_config

    prefix = f"eb{uuid.uuid4().hex[:8]}_"
    workdir = Path(args.out_dir) / prefix.rstrip("_")
    workdir.mkdir(parents=True, exist_ok=True)
    h5 = workdir / "ours.h5"
    xdf = workdir / "labrecorder.xdf"
    config = load_rig_config(args.profile, list(args.set) + [f"name_prefix={prefix}"])
    enabled = [k for k in STREAM_KEYS if getattr(config, k).enabled]
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "argv": sys.argv, "prefix": prefix,
        "profile": args.profile, "overrides": args.set, "duration_s": args.duration, "workdir": str(workdir),
        "machine": {"cpus": os.cpu_count(), "cpu_model": _cpu_model(), "mem_GB": psutil.virtual_memory().total / 1e9,
                    "pylsl_liblsl": pylsl.library_info()},
        "h5": str(h5), "xdf": str(xdf) if not args.no_labrecorder else None,
    }

    # 1. Physical floors, before anything else runs.
    if not args.no_floors:
        print("Measuring floors (LSL loopback, HDF5 append)...", flush=True)
        result["floor_lsl"] = lsl_floor(args.floor_seconds, workdir)
        result["floor_hdf5"] = hdf5_floor(args.floor_frames, workdir)
        result["floor_raw_write"] = raw_write_floor(args.floor_frames, workdir)

    procs: list[Proc] = []
    stop_sampling = threading.Event()
    sys_samples: list[tuple[float, Any]] = []

    def sampler() -> None:
        while not stop_sampling.is_set():
            for p in procs:
                p.sample_cpu()
            sys_samples.append((pylsl.local_clock(), psutil.cpu_times()))
            stop_sampling.wait(0.25)

    sampling = threading.Thread(target=sampler, daemon=True)
    try:
        # 2. The rig, in its own process; long enough to outlive both recorders (stopped by SIGTERM).
        sim_cmd = [sys.executable, str(HERE), "_sim", "--profile", args.profile, "--duration",
                   str(args.duration + 120), "--seed", str(args.seed), "--prefix", prefix]
        for s in args.set:
            sim_cmd += ["--set", s]
        sim = Proc("simulator", sim_cmd, workdir / "simulator.log")
        procs.append(sim)
        sampling.start()
        pred = f"starts-with(name,'{prefix}')"
        found = pylsl.resolve_bypred(pred, len(enabled), 60.0)
        if len(found) < len(enabled):
            raise RuntimeError(f"only {len(found)} of {len(enabled)} simulated streams appeared")
        time.sleep(max(0.0, config.start_delay_s) + 1.0)

        # 3. Both recorders at the same time.
        emosync = shutil.which("emosync")
        rec_cmd = ([emosync] if emosync else [sys.executable, "-m", "emosync"]) + [
            "record", str(h5), "--stream", pred, "--duration", str(args.duration)]
        if args.thread_breakdown:
            rec_cmd = [sys.executable, str(HERE), "_record_threads", "--pred", pred, "--out", str(h5),
                       "--duration", str(args.duration)]
        print("Recording:", " ".join(rec_cmd), flush=True)
        rec = Proc("emosync_record", rec_cmd, workdir / "record.log")
        procs.append(rec)
        lr = None
        if not args.no_labrecorder:
            lr_cmd = [sys.executable, str(HERE), "_labrecorder", "--pred", pred, "--n-streams", str(len(enabled)),
                      "--out", str(xdf), "--duration", str(args.duration)]
            lr = Proc("labrecorder", lr_cmd, workdir / "labrecorder.log")
            procs.append(lr)
        deadline = time.monotonic() + args.duration + 120
        for p in (rec, lr):
            if p is not None and not p.join(max(1.0, deadline - time.monotonic())):
                raise RuntimeError(f"{p.name} did not finish in time")
        # The same floors again while the rig still renders (the load the recorders ran under).
        if not args.no_floors:
            print("Measuring floors again under the simulator's load...", flush=True)
            result["floor_lsl_loaded"] = lsl_floor(args.floor_seconds, workdir)
            result["floor_hdf5_loaded"] = hdf5_floor(args.floor_frames, workdir)
            result["floor_raw_write_loaded"] = raw_write_floor(args.floor_frames, workdir)
        # 4. Stop the rig and collect its stats.
        sim.popen.send_signal(signal.SIGTERM)
        sim.join(30)
    finally:
        stop_sampling.set()
        for p in reversed(procs):
            p.stop()
        if sampling.is_alive():
            sampling.join(2)

    result["exit_codes"] = {p.name: p.exit_code for p in procs}
    if args.thread_breakdown:
        result["thread_cpu"] = rec.event("thread_cpu")
    if rec.exit_code != 0:
        raise RuntimeError(f"emosync record failed ({rec.exit_code}); see {workdir / 'record.log'}")

    # ---- timing marks (LSL clock) ---------------------------------------------------------
    rec_start = rec.first_line_time("Recording ") or rec.started
    rec_stop = rec_start + args.duration
    marks = {"rec_launch": rec.started, "rec_start": rec_start, "rec_stop": rec_stop}
    if lr is not None:
        ev_rec, ev_stop = lr.event("lr_recording"), lr.event("lr_stopping")
        marks.update(lr_launch=lr.started, lr_start=ev_rec["lsl_time"] if ev_rec else None,
                     lr_stop=ev_stop["lsl_time"] if ev_stop else None)
    result["marks_rel_s"] = {k: (v - rec.started if v is not None else None) for k, v in marks.items()}

    # ---- simulator --------------------------------------------------------------------------
    sim_stats = sim.event("sim_stats") or {}
    rec_end = max(v for v in (marks.get("rec_stop"), marks.get("lr_stop")) if v is not None) + 1.0
    progress = [e for e in sim.events("sim_progress") if e["lsl_time"] <= rec_end]
    result["simulator"] = {
        "max_lag_s": {k[len(prefix):]: v["max_lag_s"] for k, v in (progress[-1]["stats"] if progress else {}).items()},
        "max_lag_s_whole_run": {k[len(prefix):]: v["max_lag_s"] for k, v in sim_stats.get("stats", {}).items()},
        "pushed": {k[len(prefix):]: v["pushed"] for k, v in sim_stats.get("stats", {}).items()},
        "behind_warnings_logged": sum("behind real time" in line for _, line in sim.lines),
        "cpu_s_total": sim.rusage_cpu,
    }

    # ---- CPU --------------------------------------------------------------------------------
    w_a = max(v for v in (marks.get("rec_start"), marks.get("lr_start")) if v is not None) + 2.0
    w_b = min(v for v in (marks.get("rec_stop"), marks.get("lr_stop")) if v is not None) - 1.0
    window = max(w_b - w_a, 1e-9)
    cpu: dict[str, Any] = {"steady_window_s": window}
    for p in procs:
        cpu[p.name] = {"cpu_s_total": p.rusage_cpu, "steady_cpu_s_per_s": p.cpu_between(w_a, w_b) / window,
                       "max_rss_MB": p.max_rss_MB}
    cpu["emosync_record"]["cpu_s_per_recorded_s_total"] = (rec.rusage_cpu or float("nan")) / args.duration
    # Start-up: from launch until recording began (imports, stream resolution, file creation); shut-down: after
    # the stop (draining, closing, and for ours the session summary the CLI prints).
    cpu["emosync_record"]["startup_cpu_s"] = rec.cpu_at(rec_start)
    cpu["emosync_record"]["shutdown_cpu_s"] = (rec.rusage_cpu or float("nan")) - rec.cpu_at(rec_stop)
    if lr is not None and marks.get("lr_start") is not None and marks.get("lr_stop") is not None:
        cpu["labrecorder"]["startup_cpu_s"] = lr.cpu_at(marks["lr_start"])
        cpu["labrecorder"]["shutdown_cpu_s"] = (lr.rusage_cpu or float("nan")) - lr.cpu_at(marks["lr_stop"])
    if lr is not None:
        cpu["labrecorder"]["cpu_s_per_recorded_s_total"] = (lr.rusage_cpu or float("nan")) / args.duration
        cpu["ratio_ours_over_lr_total"] = (rec.rusage_cpu or 0) / (lr.rusage_cpu or float("nan"))
        cpu["ratio_ours_over_lr_steady"] = (cpu["emosync_record"]["steady_cpu_s_per_s"]
                                            / cpu["labrecorder"]["steady_cpu_s_per_s"])
    # Whole machine over the steady window: busy cores, steal.
    ts_sys = np.array([t for t, _ in sys_samples])
    i_a, i_b = int(np.searchsorted(ts_sys, w_a)), min(int(np.searchsorted(ts_sys, w_b)), len(ts_sys) - 1)
    c_a, c_b = sys_samples[i_a][1], sys_samples[i_b][1]
    dt_sys = sys_samples[i_b][0] - sys_samples[i_a][0]
    busy = sum(getattr(c_b, f) - getattr(c_a, f) for f in ("user", "system", "nice", "irq", "softirq"))
    cpu["machine"] = {"busy_cores": busy / dt_sys, "idle_cores": (c_b.idle - c_a.idle) / dt_sys,
                      "iowait_cores": (c_b.iowait - c_a.iowait) / dt_sys,
                      "steal_cores": (getattr(c_b, "steal", 0) - getattr(c_a, "steal", 0)) / dt_sys}
    result["cpu"] = cpu

    # ---- streams ----------------------------------------------------------------------------
    ours = load_ours(h5, prefix)
    lr_streams, lr_series = (load_lr(xdf, prefix) if lr is not None and xdf.exists() else ({}, {}))
    marker_stamps = np.array([sim_stats["t0"] + w for w, _ in sim_stats.get("markers", [])]) \
        if sim_stats.get("t0") is not None else np.array([])
    per_stream: dict[str, Any] = {}
    payload_bytes = 0
    for name, s in sorted(ours.items()):
        row: dict[str, Any] = {"rate": s["rate"], "clock_offsets_ours": s["n_offsets"]}
        if s["rate"] > 0:
            a = _analyze_regular(s["ts"], s["t0"], s["rate"])
            a["expected_in_duration"] = int(round(args.duration * s["rate"]))
            a["head_latency_s"] = a.get("first_ts", float("nan")) - rec_start
            row["ours"] = a
            payload_bytes += s["sample_bytes"] * a["n"]
        else:
            # Markers are expected where every regular stream was being recorded.
            ours_regular = [o["ts"] for o in ours.values() if o["rate"] > 0 and o["ts"].size]
            win = (max(t[0] for t in ours_regular), min(t[-1] for t in ours_regular))
            row["ours"] = _marker_analysis(s["ts"], marker_stamps, win)
        if name in lr_streams:
            lrs = lr_streams[name]
            row["clock_offsets_lr"] = lrs["n_offsets"]
            if s["rate"] > 0:
                b = _analyze_regular(lrs["ts"], lrs["t0"], lrs["rate"])
                b["expected_in_duration"] = int(round(args.duration * lrs["rate"]))
                b["head_latency_s"] = b.get("first_ts", float("nan")) - (marks.get("lr_start") or float("nan"))
                row["lr"] = b
                k_o = np.rint((s["ts"] - s["t0"]) * s["rate"]).astype(np.int64)
                k_l = np.rint((lrs["ts"] - lrs["t0"]) * lrs["rate"]).astype(np.int64)
                lo, hi = max(k_o.min(), k_l.min()), min(k_o.max(), k_l.max())
                common, i_o, i_l = np.intersect1d(k_o, k_l, return_indices=True)
                row["overlap"] = {
                    "expected": int(hi - lo + 1), "ours": int(np.sum((k_o >= lo) & (k_o <= hi))),
                    "lr": int(np.sum((k_l >= lo) & (k_l <= hi))), "matched": int(common.size),
                    "max_abs_stamp_diff_s": (float(np.max(np.abs(s["ts"][i_o] - lrs["ts"][i_l])))
                                             if common.size else None),
                }
                if not args.skip_data_compare:
                    row["overlap"]["samples_identical"] = compare_data(h5, prefix, name, k_o, k_l, lr_series[name])
            else:
                lr_regular = [o["ts"] for o in lr_streams.values() if o["rate"] > 0 and o["ts"].size]
                win = (max(t[0] for t in lr_regular), min(t[-1] for t in lr_regular))
                row["lr"] = _marker_analysis(lrs["ts"], marker_stamps, win)
                common, i_o, i_l = np.intersect1d(np.round(s["ts"], 9), np.round(lrs["ts"], 9), return_indices=True)
                lo, hi = max(s["ts"].min(), lrs["ts"].min()), min(s["ts"].max(), lrs["ts"].max())
                row["overlap"] = {
                    "expected": int(np.sum((marker_stamps >= lo) & (marker_stamps <= hi))),
                    "ours": int(np.sum((s["ts"] >= lo) & (s["ts"] <= hi))),
                    "lr": int(np.sum((lrs["ts"] >= lo) & (lrs["ts"] <= hi))), "matched": int(common.size),
                    "max_abs_stamp_diff_s": (float(np.max(np.abs(s["ts"][i_o] - lrs["ts"][i_l])))
                                             if common.size else None),
                }
                if not args.skip_data_compare:
                    row["overlap"]["samples_identical"] = compare_data(h5, prefix, name, np.round(s["ts"], 9),
                                                                       np.round(lrs["ts"], 9), lr_series[name])
        per_stream[name] = row
    del lr_series
    result["streams"] = per_stream

    # ---- throughput and floor ratio ---------------------------------------------------------
    h5_size = h5.stat().st_size
    tput: dict[str, Any] = {"ours_file_MB": h5_size / 1e6, "ours_MB_per_s": h5_size / 1e6 / args.duration,
                            "payload_MB_per_s": payload_bytes / 1e6 / args.duration}
    if lr is not None and xdf.exists():
        tput["lr_file_MB"] = xdf.stat().st_size / 1e6
        tput["lr_MB_per_s"] = xdf.stat().st_size / 1e6 / args.duration
    if "floor_lsl" in result:
        per_mb = result["floor_lsl"]["recv_cpu_s_per_MB"] + result["floor_hdf5"]["cpu_s_per_MB"]
        floor = per_mb * tput["payload_MB_per_s"]
        tput["floor_cpu_s_per_s"] = floor
        tput["ours_over_floor"] = cpu["emosync_record"]["steady_cpu_s_per_s"] / floor
        raw_floor = (result["floor_lsl"]["recv_cpu_s_per_MB"] + result["floor_raw_write"]["cpu_s_per_MB"]) \
            * tput["payload_MB_per_s"]
        tput["floor_raw_cpu_s_per_s"] = raw_floor
        if lr is not None:
            tput["lr_over_floor"] = cpu["labrecorder"]["steady_cpu_s_per_s"] / floor
            tput["lr_over_raw_floor"] = cpu["labrecorder"]["steady_cpu_s_per_s"] / raw_floor
        if "floor_lsl_loaded" in result:
            loaded = (result["floor_lsl_loaded"]["recv_cpu_s_per_MB"] + result["floor_hdf5_loaded"]["cpu_s_per_MB"]) \
                * tput["payload_MB_per_s"]
            tput["floor_loaded_cpu_s_per_s"] = loaded
            tput["ours_over_loaded_floor"] = cpu["emosync_record"]["steady_cpu_s_per_s"] / loaded
    result["throughput"] = tput
    (workdir / "result.json").write_text(json.dumps(result, indent=2, default=float))
    return result


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def to_markdown(r: dict[str, Any]) -> str:
    out = [f"### Run {r['prefix']} ({r['date']}): profile `{r['profile']}` {' '.join(r['overrides'])}, "
           f"{r['duration_s']:g} s", ""]
    if "floor_lsl" in r:
        out += ["| floor (VGA RGB frames) | idle: MB/s (wall) | idle: CPU per MB | under rig load: MB/s | "
                "under rig load: CPU per MB |", "|---|---:|---:|---:|---:|"]
        for label, key, cpu_key in (
                ("LSL loopback, receiving side (pull_chunk into dest_obj)", "floor_lsl", "recv_cpu_s_per_MB"),
                ("HDF5 append, 1 frame/chunk, SWMR, flush /15 frames", "floor_hdf5", "cpu_s_per_MB"),
                ("plain file append (write syscalls, no HDF5)", "floor_raw_write", "cpu_s_per_MB")):
            if key not in r:
                continue
            idle, loaded = r[key], r.get(key + "_loaded")
            out.append(f"| {label} | {idle['MB_per_s']:.0f} | {idle[cpu_key] * 1e3:.2f} ms | "
                       + (f"{loaded['MB_per_s']:.0f} | {loaded[cpu_key] * 1e3:.2f} ms |" if loaded else "- | - |"))
        out.append("")
    has_lr = any("lr" in s for s in r["streams"].values())
    head = "| stream | rate | expected (D x rate) | ours recorded | ours lost | ours dup | ours head latency s |"
    sep = "|---|---:|---:|---:|---:|---:|---:|"
    if has_lr:
        head += (" LR recorded | LR lost | LR head latency s | overlap expected | overlap ours/LR | "
                 "max abs stamp diff s | samples identical |")
        sep += "---:|---:|---:|---:|---:|---:|---|"
    out += [head, sep]
    for name, s in r["streams"].items():
        o = s["ours"]
        exp = o.get("expected_in_duration", o.get("expected_in_window"))
        line = (f"| {name} | {s['rate']:g} | {exp} | {o['n']} | {o.get('lost')} | {o.get('duplicates', '-')} | "
                f"{_fmt(o.get('head_latency_s'))} |")
        if has_lr and "lr" in s:
            lrs, ov = s["lr"], s["overlap"]
            line += (f" {lrs['n']} | {lrs.get('lost')} | {_fmt(lrs.get('head_latency_s'))} | {ov['expected']} | "
                     f"{ov['ours']}/{ov['lr']} | "
                     f"{_fmt(ov['max_abs_stamp_diff_s'], 9)} | {ov.get('samples_identical', '-')} |")
        out.append(line)
    c, t, sim = r["cpu"], r["throughput"], r["simulator"]
    out += ["", "| process | CPU-s total | CPU-s per recorded s (total/D) | steady CPU-s per s | start-up CPU-s | "
            "shut-down CPU-s | max RSS MB (sampled) |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for p in ("emosync_record", "labrecorder", "simulator"):
        if p in c:
            out.append(f"| {p} | {_fmt(c[p]['cpu_s_total'], 1)} | {_fmt(c[p].get('cpu_s_per_recorded_s_total'))} | "
                       f"{_fmt(c[p]['steady_cpu_s_per_s'])} | {_fmt(c[p].get('startup_cpu_s'), 2)} | "
                       f"{_fmt(c[p].get('shutdown_cpu_s'), 2)} | {_fmt(c[p].get('max_rss_MB'), 0)} |")
    m = c["machine"]
    out += ["", f"- steady window {c['steady_window_s']:.1f} s; machine busy {m['busy_cores']:.2f} of 2 cores "
            f"(idle {m['idle_cores']:.2f}, iowait {m['iowait_cores']:.2f}, steal {m['steal_cores']:.2f})"]
    if "ratio_ours_over_lr_total" in c:
        out.append(f"- CPU ours/LabRecorder: total {c['ratio_ours_over_lr_total']:.2f}, "
                   f"steady {c['ratio_ours_over_lr_steady']:.2f}")
    out.append(f"- payload {t['payload_MB_per_s']:.1f} MB/s; file {t['ours_MB_per_s']:.1f} MB/s (ours)"
               + (f", {t['lr_MB_per_s']:.1f} MB/s (XDF)" if "lr_MB_per_s" in t else ""))
    if "floor_cpu_s_per_s" in t:
        out.append(f"- floor (LSL receive + HDF5 append) for {t['payload_MB_per_s']:.1f} MB/s: "
                   f"{t['floor_cpu_s_per_s']:.3f} CPU-s/s; ours {c['emosync_record']['steady_cpu_s_per_s']:.3f} "
                   f"-> x{t['ours_over_floor']:.2f}"
                   + (f"; LabRecorder x{t['lr_over_floor']:.2f}" if "lr_over_floor" in t else ""))
        if "floor_loaded_cpu_s_per_s" in t:
            out.append(f"- same floor measured under the rig's load: {t['floor_loaded_cpu_s_per_s']:.3f} CPU-s/s "
                       f"-> ours x{t['ours_over_loaded_floor']:.2f}")
        out.append(f"- LSL receive + plain write floor (what an XDF writer needs): {t['floor_raw_cpu_s_per_s']:.3f} "
                   "CPU-s/s" + (f" -> LabRecorder x{t['lr_over_raw_floor']:.2f}" if "lr_over_raw_floor" in t else ""))
    if r.get("thread_cpu"):
        tc = r["thread_cpu"]
        out += ["", f"Recorder CPU per thread (CPU-s per s over {tc['window_s']:.0f} s, total {tc['total']:.3f}):", "",
                "| thread | CPU-s per s |", "|---|---:|"]
        out += [f"| {name} | {v:.4f} |" for name, v in tc["threads"] if v >= 0.0005]
    out.append("- simulator max lag (s) from rig start until both recorders stopped: "
               + ", ".join(f"{k} {v:.3f}" for k, v in sim["max_lag_s"].items())
               + "; over the whole rig run (incl. the floors measured under its load): "
               + ", ".join(f"{k} {v:.3f}" for k, v in sim["max_lag_s_whole_run"].items())
               + f"; 'behind real time' warnings logged: {sim['behind_warnings_logged']}")
    return "\n".join(out)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in WORKERS:
        WORKERS[sys.argv[1]](sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=60.0, help="Seconds each recorder records.")
    p.add_argument("--profile", default="default", help="Rig profile (default, light) or YAML path.")
    p.add_argument("--set", action="append", default=[], help="Rig config override, e.g. rgb.enabled=false.")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out-dir", default="/tmp/emosync-bench")
    p.add_argument("--no-labrecorder", action="store_true")
    p.add_argument("--no-floors", action="store_true")
    p.add_argument("--floor-seconds", type=float, default=4.0)
    p.add_argument("--floor-frames", type=int, default=450)
    p.add_argument("--skip-data-compare", action="store_true")
    p.add_argument("--thread-breakdown", action="store_true",
                   help="Run the recorder in-process (same SessionRecorder as `emosync record`) and report CPU "
                        "per thread; use with --no-labrecorder.")
    args = p.parse_args()
    result = run(args)
    print(to_markdown(result))
    print(f"\nJSON: {Path(result['workdir']) / 'result.json'}")


if __name__ == "__main__":
    main()
