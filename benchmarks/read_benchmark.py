# ruff: noqa: T201  (benchmark scripts report by printing)
"""Benchmark reading a recorded session: emosync HDF5 vs LabRecorder's XDF of the same data.

Reads the two files written by ``record_benchmark.py`` (the newest run under
``/tmp/emosync-bench`` unless ``--result``/``--h5``/``--xdf`` are given):

* full load: ``open_session`` + every stream's data (``np.asarray(st.data)``),
  raw ``timestamps`` and offset-corrected ``times``, vs ``pyxdf.load_xdf`` (default
  options: clock synchronization and dejitter on; and raw: both off);
* random access: a 1-second window of one stream (fresh ``open_session``, find the
  window by ``searchsorted`` on the stamps, read the slice), vs the cheapest XDF
  equivalent (``load_xdf(select_streams=...)``, which still has to scan the file);
* warm page cache (the files were just written) and, once each, cold for these two
  files only (``posix_fadvise(DONTNEED)`` on them before reading).

Usage::

    python benchmarks/read_benchmark.py                       # newest record_benchmark run
    python benchmarks/read_benchmark.py --result /tmp/emosync-bench/ebXXXX/result.json --repeat 3
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np


def drop_cache(path: Path) -> None:
    """Evict this file's clean pages from the page cache (affects only this file)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def read_ours(path: Path) -> int:
    from acquisition import open_session

    held, nbytes = [], 0
    with open_session(path) as s:
        for st in s.streams.values():
            data = np.asarray(st.data)
            ts, times = st.timestamps, st.times
            held.append((data, ts, times))
            nbytes += (data.nbytes if data.dtype != object else 0) + ts.nbytes
    del held
    return nbytes


def read_xdf(path: Path, raw: bool) -> int:
    import pyxdf

    kwargs = {"synchronize_clocks": False, "dejitter_timestamps": False} if raw else {}
    streams, _ = pyxdf.load_xdf(str(path), **kwargs)
    nbytes = sum(getattr(st["time_series"], "nbytes", 0) + st["time_stamps"].nbytes for st in streams)
    del streams
    return nbytes


def read_plain(path: Path) -> int:
    """Floor: the file's bytes into one fresh numpy buffer (64 MB readinto pieces, no parsing).

    On this VM faulting in GBs of fresh memory while copying into it is the dominant and noisy
    cost (page-cache reads into a reused buffer run at 7-10 GB/s, into fresh memory at 1-2 GB/s).
    """
    size = path.stat().st_size
    buf = np.empty(size, dtype=np.uint8)
    with open(path, "rb", buffering=0) as f:
        view, done = memoryview(buf), 0
        while done < size:
            done += f.readinto(view[done : done + (64 << 20)])
    del view, buf
    return size


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def window_ours(path: Path, name: str, start_frac: float, seconds: float = 1.0) -> int:
    """Fresh open, locate [t, t + seconds) by time stamp, read that slice (data + stamps)."""
    from acquisition import open_session

    with open_session(path) as s:
        st = s.streams[name]
        ts = st.timestamps
        t_a = ts[0] + start_frac * (ts[-1] - ts[0] - seconds)
        i_a, i_b = np.searchsorted(ts, [t_a, t_a + seconds])
        data = st.data[int(i_a) : int(i_b)]
        return int(np.asarray(data).shape[0])


def window_xdf(path: Path, name: str, start_frac: float, seconds: float = 1.0) -> int:
    import pyxdf

    streams, _ = pyxdf.load_xdf(str(path), select_streams=[{"name": name}], synchronize_clocks=False,
                                dejitter_timestamps=False)
    st = streams[0]
    ts = st["time_stamps"]
    t_a = ts[0] + start_frac * (ts[-1] - ts[0] - seconds)
    i_a, i_b = np.searchsorted(ts, [t_a, t_a + seconds])
    return int(np.asarray(st["time_series"][i_a:i_b]).shape[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--result", help="result.json of a record_benchmark run (default: newest)")
    p.add_argument("--h5")
    p.add_argument("--xdf")
    p.add_argument("--prefix", default=None, help="Stream-name prefix (default: from result.json)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--windows", type=int, default=20, help="Random 1-s windows per stream (ours)")
    p.add_argument("--streams", default="EMG,RGB", help="Streams (without prefix) for the 1-s window test")
    p.add_argument("--no-cold", action="store_true")
    args = p.parse_args()

    if args.h5 and args.xdf:
        h5, xdf, prefix = Path(args.h5), Path(args.xdf), args.prefix or ""
    else:
        candidates = [Path(args.result)] if args.result else sorted(
            Path("/tmp/emosync-bench").glob("*/result.json"), key=lambda q: q.stat().st_mtime, reverse=True)
        def has_files(q: Path) -> bool:
            r = json.loads(q.read_text())
            return bool(r.get("xdf")) and Path(r["xdf"]).exists() and Path(r["h5"]).exists()

        usable = [q for q in candidates if has_files(q)]
        if not usable:
            raise SystemExit("No record_benchmark run with both an .h5 and an .xdf file found; run "
                             "`python benchmarks/record_benchmark.py --duration 60` first or pass --h5 and --xdf.")
        r = json.loads(usable[0].read_text())
        h5, xdf, prefix = Path(r["h5"]), Path(r["xdf"]), args.prefix or r["prefix"]
    sizes = {"h5_MB": h5.stat().st_size / 1e6, "xdf_MB": xdf.stat().st_size / 1e6}
    print(f"ours {h5} ({sizes['h5_MB']:.0f} MB), XDF {xdf} ({sizes['xdf_MB']:.0f} MB)", flush=True)

    res: dict[str, Any] = {"h5": str(h5), "xdf": str(xdf), **sizes, "repeat": args.repeat,
                           "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    # Warm caches once (both files), then interleave repetitions so drift hits both alike.
    read_ours(h5)
    read_xdf(xdf, raw=True)
    full: dict[str, list[float]] = {"floor_plain_read_h5": [], "ours": [], "xdf_default": [], "xdf_raw": []}
    nbytes: dict[str, int] = {}
    for _ in range(args.repeat):
        for key, fn in (("floor_plain_read_h5", lambda: read_plain(h5)), ("ours", lambda: read_ours(h5)),
                        ("xdf_default", lambda: read_xdf(xdf, raw=False)),
                        ("xdf_raw", lambda: read_xdf(xdf, raw=True))):
            dt, nb = timed(fn)
            full[key].append(dt)
            nbytes[key] = nb
            print(f"  full load {key}: {dt:.2f} s", flush=True)
    res["full_load_s"] = {k: {"min": min(v), "median": statistics.median(v), "all": v} for k, v in full.items()}
    res["loaded_MB"] = {k: v / 1e6 for k, v in nbytes.items()}
    res["speedup_vs_xdf_default"] = res["full_load_s"]["xdf_default"]["median"] / res["full_load_s"]["ours"]["median"]
    res["speedup_vs_xdf_raw"] = res["full_load_s"]["xdf_raw"]["median"] / res["full_load_s"]["ours"]["median"]

    if not args.no_cold:
        cold = {}
        for key, path, fn in (("ours", h5, lambda: read_ours(h5)), ("xdf_raw", xdf, lambda: read_xdf(xdf, raw=True))):
            drop_cache(path)
            cold[key], _ = timed(fn)
            print(f"  cold full load {key}: {cold[key]:.2f} s", flush=True)
        res["cold_full_load_s"] = cold
        res["cold_speedup_vs_xdf_raw"] = cold["xdf_raw"] / cold["ours"]

    rng = np.random.default_rng(0)
    windows: dict[str, Any] = {}
    from acquisition import open_session

    with open_session(h5) as session:
        present = set(session.streams)
    for short in [s for s in args.streams.split(",") if s]:
        name = prefix + short
        if name not in present:
            print(f"  (no stream {name} in this session: window test skipped)")
            continue
        times = []
        for frac in rng.uniform(0, 1, args.windows):
            dt, n = timed(lambda name=name, frac=frac: window_ours(h5, name, float(frac)))
            times.append(dt)
        xdf_times = []
        for frac in rng.uniform(0, 1, 2):
            dt, _ = timed(lambda name=name, frac=frac: window_xdf(xdf, name, float(frac)))
            xdf_times.append(dt)
        windows[short] = {"samples_per_window": n, "ours_median_s": statistics.median(times),
                          "ours_max_s": max(times), "xdf_select_stream_median_s": statistics.median(xdf_times),
                          "ratio": statistics.median(xdf_times) / statistics.median(times)}
        print(f"  1-s window {short}: ours {windows[short]['ours_median_s'] * 1e3:.1f} ms, "
              f"XDF {windows[short]['xdf_select_stream_median_s']:.2f} s", flush=True)
    res["window_1s"] = windows

    out = h5.parent / "read_result.json"
    out.write_text(json.dumps(res, indent=2))
    f = res["full_load_s"]
    lines = [
        "| read | emosync HDF5 | XDF (pyxdf.load_xdf) | XDF / ours |", "|---|---:|---:|---:|",
        f"| floor: the .h5 file's bytes into one fresh numpy buffer (readinto, warm) | "
        f"{f['floor_plain_read_h5']['median']:.2f} s | - | - |",
        f"| full load, warm cache, median of {args.repeat} (data+timestamps+times) | {f['ours']['median']:.2f} s | "
        f"{f['xdf_default']['median']:.2f} s (default: sync+dejitter) | {res['speedup_vs_xdf_default']:.1f}x |",
        f"| full load, warm cache, raw XDF (no sync/dejitter) | {f['ours']['median']:.2f} s | "
        f"{f['xdf_raw']['median']:.2f} s | {res['speedup_vs_xdf_raw']:.1f}x |",
    ]
    if "cold_full_load_s" in res:
        c = res["cold_full_load_s"]
        lines.append(f"| full load, cold (fadvise DONTNEED), raw XDF | {c['ours']:.2f} s | {c['xdf_raw']:.2f} s | "
                     f"{res['cold_speedup_vs_xdf_raw']:.1f}x |")
    for short, w in windows.items():
        lines.append(f"| 1-s window of {short} ({w['samples_per_window']} samples), fresh open | "
                     f"{w['ours_median_s'] * 1e3:.1f} ms (median of {args.windows}, max "
                     f"{w['ours_max_s'] * 1e3:.1f} ms) | {w['xdf_select_stream_median_s']:.2f} s "
                     f"(select_streams, full scan) | {w['ratio']:.0f}x |")
    print("\n".join(lines))
    print(f"\nJSON: {out}")


if __name__ == "__main__":
    main()
