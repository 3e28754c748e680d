# ruff: noqa: T201  (benchmark scripts report by printing)
"""Benchmark 200 fps VGA recording: dropped frames, CPU, disk and headroom per storage form.

For each storage form (``--forms``, default none, lz4, blosc2, png and auto) one run does, on this
machine:

1. ``emosync simulate --profile highspeed`` in its own process: 640x480 RGB at 200 fps (each frame
   stamped with its running index), facial EMG at 2 kHz, EEG at 500 Hz and markers, under a
   unique name prefix.
2. ``emosync record`` in its own process for ``--duration`` seconds with
   ``--video-compression <RGB>=<form>``; its CPU time is sampled with psutil (the recorder process
   only, not the simulator), and the steady-state share is taken from ``--warmup`` seconds on.
3. Analysis of the file: dropped frames from the stamped indices (goal 0), the simulator's largest
   lag behind real time (large with no drop: the machine could not even produce the stream, and
   the recorder was not the limit), dropped EMG/EEG samples
   (sample ``k`` is stamped ``t0 + k / rate``), recorder CPU (% of one core, ms per frame), disk
   MB/s, compression ratio, raw write bandwidth handled, and the time to read a 1-s window of
   video (``acquisition.session.alignment.window``) into a reused buffer and into a new array.

Then the headroom: for ``--headroom-forms`` the source rate is raised (``--headroom-fps``, e.g.
300, 400) in runs of ``--headroom-duration`` seconds until the first dropped frame.

Usage::

    python benchmarks/highspeed.py --duration 60                       # the full run (quiet machine)
    python benchmarks/highspeed.py --duration 10 --forms lz4 --no-headroom   # a quick check

Recordings go under ``--out-dir`` (default ``/tmp/emosync-highspeed``, removed afterwards unless
``--keep``); the result is printed as markdown and written as JSON there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve()
FRAME_BYTES = 640 * 480 * 3


def _emosync(*args: str) -> list[str]:
    return [sys.executable, "-m", "emosync", *args]


def _t0(info_xml: str) -> float:
    return float(ET.fromstring(info_xml).find("desc/emosync_simulation/t0").text)  # type: ignore[union-attr]


def _lost_samples(stream: Any) -> int:
    """Samples missing between the first and last recorded ones (sample k is stamped t0 + k / rate)."""
    if stream.n_samples < 2:
        return 0
    k = np.round((stream.timestamps - _t0(stream.info["info_xml"])) * stream.nominal_srate).astype(np.int64)
    step = np.diff(k)
    return int(np.sum(step[step > 1] - 1))


def _window_read_ms(stream: Any, n_windows: int = 7) -> dict[str, float]:
    """Median time to read a 1-s window of frames: into a reused buffer, and into a new array."""
    from acquisition.session.alignment import window

    times = stream.times  # synchronized once, outside the timing (as any reader does)
    if times.size < 3 or times[-1] - times[0] < 3:
        return {"into_buffer_ms": float("nan"), "new_array_ms": float("nan")}
    rate = stream.nominal_srate
    buffer = np.empty((int(rate * 1.2) + 2, *stream.data.shape[1:]), dtype=stream.data.dtype)
    starts = np.linspace(times[0] + 1, times[-1] - 2, n_windows)
    window(stream, starts[0], starts[0] + 1, out=buffer)  # touch the buffer once (first-use page faults)
    into, into_cpu, fresh = [], [], []
    for start in starts:
        t, c = time.perf_counter(), time.process_time()
        win = window(stream, start, start + 1.0, out=buffer)
        into.append(time.perf_counter() - t)
        into_cpu.append(time.process_time() - c)
        t = time.perf_counter()
        window(stream, start, start + 1.0)
        fresh.append(time.perf_counter() - t)
    return {"into_buffer_ms": 1e3 * float(np.median(into)), "into_buffer_cpu_ms": 1e3 * float(np.median(into_cpu)),
            "new_array_ms": 1e3 * float(np.median(fresh)), "frames_per_window": int(win.data.shape[0])}


def _wait_for_streams(prefix: str, names: tuple[str, ...], *, timeout_s: float) -> None:
    """Wait until the simulator's outlets are visible (it imports and renders its frame bank first)."""
    import pylsl

    deadline = time.monotonic() + timeout_s
    missing = list(names)
    while missing and time.monotonic() < deadline:
        missing = [n for n in missing if not pylsl.resolve_bypred(f"name='{prefix}{n}'", 1, 0.5)]
    if missing:
        raise RuntimeError(f"The simulator's streams {missing} did not appear within {timeout_s:g} s.")


def _run_once(out_dir: Path, form: str, *, duration: float, fps: float, warmup: float, seed: int,
              read_windows: bool) -> dict[str, Any]:
    """One simulator + recorder run; returns the figures of the recording."""
    import psutil

    from acquisition import open_session
    from acquisition.session.frame_stamp import frame_drop_report, stream_frame_indices

    prefix = f"hs{uuid.uuid4().hex[:8]}_"
    fname = out_dir / f"{form}_{fps:g}fps_{prefix.rstrip('_')}.h5"
    sim = subprocess.Popen(_emosync("simulate", "--profile", "highspeed", "--duration", f"{duration + 20:g}",
                                     "--seed", str(seed), "--name-prefix", prefix, "--set", f"rgb.fps={fps:g}"),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_streams(prefix, ("RGB", "EMG", "EEG", "Markers"), timeout_s=60)
        rec = subprocess.Popen(_emosync("record", str(fname), "--stream", f"starts-with(name,'{prefix}')",
                                        "--duration", f"{duration:g}", "--video-compression", f"{prefix}RGB={form}",
                                        "--json"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        proc = psutil.Process(rec.pid)
        samples: list[tuple[float, float]] = []
        started = time.monotonic()
        while rec.poll() is None:
            try:
                cpu = proc.cpu_times()
                samples.append((time.monotonic() - started, cpu.user + cpu.system))
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                break
            time.sleep(0.5)
        _, rec_err = rec.communicate()
        if rec.returncode != 0:
            raise RuntimeError(f"emosync record failed ({rec.returncode}): {rec_err[-2000:]}")
    finally:
        sim.terminate()
        sim_out, _ = sim.communicate(timeout=60)
    # The simulator's own report: how far it fell behind real time (the machine could not produce the stream).
    lag = re.search(r"Largest lag behind real time: (\d+) ms", sim_out or "")
    source_lag_ms = float(lag.group(1)) if lag else float("nan")
    steady = [(t, c) for t, c in samples if t >= warmup]
    cpu_share = (steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0]) if len(steady) > 1 else float("nan")
    with open_session(fname) as s:
        rgb = s.streams[f"{prefix}RGB"]
        report = frame_drop_report(stream_frame_indices(rgb))
        span = float(rgb.timestamps[-1] - rgb.timestamps[0]) if rgb.n_samples > 1 else float("nan")
        stored = int(rgb._group["data"].id.get_storage_size())
        result = {
            "form": form, "fps": fps, "chosen": rgb.info.get("compression"),
            "choice_reason": (rgb.info.get("compression_choice") or {}).get("reason", "")
            if isinstance(rgb.info.get("compression_choice"), dict) else "",
            "frames": rgb.n_samples, "span_s": span, "dropped_frames": report["dropped_frames"],
            "source_max_lag_ms": source_lag_ms,
            "unreadable_stamps": report["unreadable"],
            "lost_samples": {key: _lost_samples(s.streams[f"{prefix}{key}"]) for key in ("EMG", "EEG")},
            "recorder_cpu_share": cpu_share,
            "cpu_ms_per_frame": 1e3 * cpu_share / fps if cpu_share == cpu_share else float("nan"),
            "file_MB": fname.stat().st_size / 1e6,
            "disk_MB_per_s": fname.stat().st_size / 1e6 / span,
            "ratio": rgb.n_samples * FRAME_BYTES / max(stored, 1),
            "raw_MB_per_s": rgb.n_samples * FRAME_BYTES / 1e6 / span,
        }
        if read_windows:
            result["read_1s_window"] = _window_read_ms(rgb)
    return result


def _table(rows: list[dict[str, Any]]) -> str:
    head = ("| form (chosen) | fps | frames | source lag ms | dropped frames | lost EMG/EEG | "
            "recorder CPU (% core) | CPU ms/frame | "
            "disk MB/s | ratio | raw MB/s | 1-s read ms: buffer (CPU) / new |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        read = r.get("read_1s_window", {})
        lines.append(
            f"| {r['form']} ({r['chosen']}) | {r['fps']:g} | {r['frames']} | {r['source_max_lag_ms']:.0f} | "
            f"{r['dropped_frames']} | "
            f"{r['lost_samples']['EMG']}/{r['lost_samples']['EEG']} | {100 * r['recorder_cpu_share']:.0f} | "
            f"{r['cpu_ms_per_frame']:.2f} | {r['disk_MB_per_s']:.1f} | {r['ratio']:.1f} | {r['raw_MB_per_s']:.0f} | "
            f"{read.get('into_buffer_ms', float('nan')):.0f} ({read.get('into_buffer_cpu_ms', float('nan')):.0f}) / "
            f"{read.get('new_array_ms', float('nan')):.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds recorded per form")
    parser.add_argument("--forms", default="none,lz4,blosc2,png,auto", help="comma-separated storage forms")
    parser.add_argument("--fps", type=float, default=200.0, help="source frame rate of the main runs")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before the recorder CPU is counted")
    parser.add_argument("--headroom-forms", default="lz4", help="forms whose headroom is measured")
    parser.add_argument("--headroom-fps", default="300,400", help="source rates tried, in order, until a drop")
    parser.add_argument("--headroom-duration", type=float, default=15.0)
    parser.add_argument("--no-headroom", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/emosync-highspeed"))
    parser.add_argument("--keep", action="store_true", help="keep the recordings")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    import psutil

    rows = []
    for form in [f.strip() for f in args.forms.split(",") if f.strip()]:
        print(f"recording {form} at {args.fps:g} fps for {args.duration:g} s ...", flush=True)
        rows.append(_run_once(args.out_dir, form, duration=args.duration, fps=args.fps, warmup=args.warmup,
                              seed=args.seed, read_windows=True))
    headroom: dict[str, list[dict[str, Any]]] = {}
    if not args.no_headroom:
        for form in [f.strip() for f in args.headroom_forms.split(",") if f.strip()]:
            headroom[form] = []
            for fps in [float(v) for v in args.headroom_fps.split(",")]:
                print(f"headroom: {form} at {fps:g} fps for {args.headroom_duration:g} s ...", flush=True)
                run = _run_once(args.out_dir, form, duration=args.headroom_duration, fps=fps,
                                warmup=min(args.warmup, args.headroom_duration / 3), seed=args.seed,
                                read_windows=False)
                headroom[form].append(run)
                if run["dropped_frames"] or run["unreadable_stamps"]:
                    break
    machine = {"cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
               "mem_GB": round(psutil.virtual_memory().total / 1e9, 1), "python": platform.python_version()}
    result = {"machine": machine, "args": {k: str(v) for k, v in vars(args).items()}, "runs": rows,
              "headroom": headroom}
    (args.out_dir / "highspeed.json").write_text(json.dumps(result, indent=2))
    print(f"\nmachine: {machine}\n")
    print(_table(rows))
    for form, runs in headroom.items():
        print(f"\nheadroom ({form}):")
        print(_table(runs))
    for r in rows:
        if r["choice_reason"]:
            print(f"\nauto chose {r['chosen']}: {r['choice_reason']}")
    if not args.keep:
        for path in args.out_dir.glob("*.h5"):
            path.unlink()
    print(f"\nJSON: {args.out_dir / 'highspeed.json'}")


if __name__ == "__main__":
    main()
