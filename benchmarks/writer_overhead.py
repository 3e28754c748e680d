# ruff: noqa: T201  (benchmark scripts report by printing)
"""Where the recorder's writer thread spends its CPU: per-append overhead vs bytes.

Replays, without LSL, the append pattern ``emosync record`` produces for the default
rig (one ``StreamWriter.append`` per pulled chunk: EMG/EEG every 20 ms, RGB/depth/AU
frames at 30 Hz, SWMR, flush every 0.5 s) through :class:`acquisition.SessionWriter`,
and compares it with the same samples appended once per stream per flush interval
(what a coalescing writer would do). Also compares per-MB cost of
``dataset[i] = frame`` with h5py's ``write_direct_chunk`` and a plain ``write``.

Usage::

    python benchmarks/writer_overhead.py [--seconds 10] [--out-dir /tmp/emosync-bench]
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

import h5py
import numpy as np

from acquisition import SessionWriter, StreamSpec


def _specs(video: bool) -> list[StreamSpec]:
    specs = [StreamSpec("EMG", "EMG", 8, "float32", 2000.0, "e"), StreamSpec("EEG", "EEG", 32, "float32", 500.0, "g"),
             StreamSpec("AU", "ActionUnits", 17, "float32", 30.0, "a")]
    if video:
        specs += [StreamSpec("RGB", "VideoRaw", 921600, "int8", 30.0, "r", frame_shape=(480, 640, 3), encoding="RGB8"),
                  StreamSpec("Depth", "VideoRaw", 307200, "int16", 30.0, "d", frame_shape=(480, 640),
                             encoding="DEPTH16-mm")]
    return specs


def replay(path: Path, seconds: float, *, video: bool, batched: bool) -> tuple[float, float]:
    """CPU-s per second of data and appends per second."""
    rng = np.random.default_rng(0)
    chunks = {"EMG": (rng.standard_normal((40, 8)).astype(np.float32), 40, 2000.0),
              "EEG": (rng.standard_normal((10, 32)).astype(np.float32), 10, 500.0),
              "AU": (rng.random((1, 17)).astype(np.float32), 1, 30.0),
              "RGB": (rng.integers(0, 255, (1, 480, 640, 3), dtype=np.uint8), 1, 30.0),
              "Depth": (rng.integers(0, 3000, (1, 480, 640), dtype=np.uint16), 1, 30.0)}
    writer = SessionWriter(path)
    streams = {s.name: writer.add_stream(s) for s in _specs(video)}
    writer.start_swmr()
    pending: dict[str, tuple[list, list]] = {k: ([], []) for k in streams}
    appends = 0
    cpu0 = time.process_time()
    for tick in range(int(seconds * 50)):  # the recorder's 20 ms pull interval
        t = tick * 0.02
        due = ["EMG", "EEG"] + (["AU"] + (["RGB", "Depth"] if video else []) if tick % 5 in (0, 2, 3) else [])
        for name in due:
            data, n, rate = chunks[name]
            stamps = t + np.arange(n) / rate
            if batched:
                pending[name][0].append(data.copy())
                pending[name][1].append(stamps)
            else:
                streams[name].append(data.copy(), stamps)
                appends += 1
        if tick % 25 == 24:  # flush_interval_s = 0.5
            if batched:
                for name, (ds, ts) in pending.items():
                    if ds:
                        streams[name].append(np.concatenate(ds), np.concatenate(ts))
                        appends += 1
                        ds.clear()
                        ts.clear()
            writer.flush()
    cpu = time.process_time() - cpu0
    writer.close()
    path.unlink()
    return cpu / seconds, appends / seconds


def frame_write_cost(path: Path, mode: str, n: int = 300) -> float:
    """CPU ms per MB of appending VGA RGB frames (SWMR, flush every 15 frames)."""
    frame = np.random.default_rng(1).integers(0, 255, (1, 480, 640, 3), dtype=np.uint8)
    raw = frame.tobytes()
    cpu0 = time.process_time()
    if mode == "plain write":
        with open(path, "xb", buffering=0) as f:
            for _ in range(n):
                f.write(raw)
    else:
        with h5py.File(path, "w-", libver="latest") as f:
            d = f.create_dataset("data", shape=(0, 480, 640, 3), maxshape=(None, 480, 640, 3),
                                 chunks=(1, 480, 640, 3), dtype=np.uint8)
            f.swmr_mode = True
            for i in range(n):
                d.resize(i + 1, axis=0)
                if mode == "h5 write_direct_chunk":
                    d.id.write_direct_chunk((i, 0, 0, 0), raw)
                else:
                    d[i : i + 1] = frame
                if i % 15 == 14:
                    f.flush()
    cpu = time.process_time() - cpu0
    path.unlink()
    return cpu / (n * frame.nbytes / 1e6) * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--out-dir", default="/tmp/emosync-bench")
    a = p.parse_args()
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    f = lambda: out / f"writer_{uuid.uuid4().hex[:8]}.h5"  # noqa: E731
    print("| writer replay (default rig pattern) | appends/s | writer CPU-s per s of data |")
    print("|---|---:|---:|")
    for video in (False, True):
        for batched in (False, True):
            cpu, rate = replay(f(), a.seconds, video=video, batched=batched)
            how = "one append per stream per 0.5 s" if batched else "one append per pulled chunk (as now)"
            print(f"| {'with' if video else 'no'} video, {how} "
                  f"| {rate:.0f} | {cpu:.4f} |")
    print("\n| VGA frame append | CPU ms per MB (median of 3) |\n|---|---:|")
    for mode in ("h5 dataset[i] = frame (as now)", "h5 write_direct_chunk", "plain write"):
        key = mode.split(" (")[0]
        print(f"| {mode} | {np.median([frame_write_cost(f(), key) for _ in range(3)]):.2f} |")


if __name__ == "__main__":
    main()
