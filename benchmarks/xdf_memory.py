"""Benchmark the memory of importing a large XDF file: ``emosync import-xdf`` vs ``pyxdf.load_xdf``.

Users' complaint: "a 3 GB XDF needed > 35 GB of RAM via MNE" (pyxdf loads the whole file
into memory). This script

1. writes a large XDF file with the test writer (``tests/acquisition/io/xdf_writer.py``), streamed to disk
   one second at a time: 64 channels float32 at 1 kHz (channel 0 counts samples) for
   ``--minutes`` (70 min is about 1.1 GB), plus a marker every 2 s, a clock offset every
   5 s with 20 ppm drift, a boundary chunk every 10 s, and footers;
2. imports it with :func:`acquisition.io.xdf.import_xdf` in a fresh subprocess, and
   loads it with ``pyxdf.load_xdf`` (default options: sync + dejitter) in another, and
   reports each one's peak resident memory (``ru_maxrss``) next to the file size, plus a
   baseline process that only imports the same modules;
3. deletes the files (unless ``--keep``).

Usage::

    python benchmarks/xdf_memory.py                    # ~1.1 GB file in /tmp, about 5 minutes
    python benchmarks/xdf_memory.py --minutes 5        # quick check (~80 MB)
    python benchmarks/xdf_memory.py --json-out result.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def write_big_xdf(path: Path, minutes: float, *, channels: int = 64, rate: int = 1000) -> dict[str, Any]:
    """Write the benchmark file one second at a time (never more than one second in memory)."""
    sys.path.insert(0, str(REPO))
    from tests.acquisition.io.xdf_writer import XDFWriter

    rng = np.random.default_rng(0)
    noise = rng.normal(scale=20.0, size=(rate, channels)).astype(np.float32)  # reused: content does not matter
    seconds = int(minutes * 60)
    t0, offset0, drift = 5000.0, -1234.5, 20e-6
    started = time.perf_counter()
    with XDFWriter(path, header={"datetime": "2025-01-01T12:00:00+0000"}) as w:
        w.add_stream(1, "EEG", "EEG", channels, float(rate), "float32", source_id="bench-eeg",
                     channel_labels=[f"E{i}" for i in range(channels)], channel_units=["microvolts"] * channels,
                     channel_types=["EEG"] * channels)
        w.add_stream(2, "Markers", "Markers", 1, 0.0, "string", source_id="bench-markers")
        for s in range(seconds):
            block = noise.copy()
            block[:, 0] = np.arange(s * rate, (s + 1) * rate)
            w.write_samples(1, block, t0 + s + np.arange(rate) / rate)
            if s % 2 == 0:
                w.write_samples(2, [[f"trial {s // 2}"]], [t0 + s + 0.5])
            if s % 5 == 0:
                for sid in (1, 2):
                    w.write_clock_offset(sid, t0 + s, offset0 + drift * s)
            if s % 10 == 9:
                w.write_boundary()
        w.write_footer(1)
        w.write_footer(2)
    return {"seconds_of_data": seconds, "samples": seconds * rate, "channels": channels, "rate_hz": rate,
            "write_s": time.perf_counter() - started}


def say(text: str) -> None:
    """Write one line to stdout (this is a script; the library logs instead)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _peak_rss_bytes() -> int:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(mode: str, xdf: str, out: str) -> None:
    """Run one measurement in this (fresh) process and print one JSON line."""
    import pyxdf  # the baseline imports the same modules as the others

    import acquisition.io.xdf as xi

    started = time.perf_counter()
    result: dict[str, Any] = {"mode": mode}
    if mode == "import":
        report = xi.import_xdf(xdf, out, verbose="WARNING")  # as the CLI does (with the SHA-256 pass)
        result["samples"] = {name: s["samples_imported"] for name, s in report["streams"].items()}
        result["h5_bytes"] = Path(out).stat().st_size
    elif mode == "pyxdf":
        streams, _ = pyxdf.load_xdf(xdf)
        result["samples"] = {s["info"]["name"][0]: len(s["time_stamps"]) for s in streams}
    result["seconds"] = time.perf_counter() - started
    result["peak_rss_bytes"] = _peak_rss_bytes()
    say(json.dumps(result))  # the parent reads this line


def measure(mode: str, xdf: Path, out: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--child", mode, str(xdf), str(out)], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=70.0, help="Minutes of 64 ch x 1 kHz data (70: ~1.1 GB).")
    parser.add_argument("--dir", default="/tmp", help="Where to put the temporary files.")
    parser.add_argument("--keep", action="store_true", help="Keep the XDF and HDF5 files.")
    parser.add_argument("--skip-pyxdf", action="store_true", help="Do not run pyxdf.load_xdf on the whole file.")
    parser.add_argument("--json-out", help="Also write the results to this JSON file.")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "XDF", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    work = Path(tempfile.mkdtemp(prefix="emosync-xdf-bench-", dir=args.dir))
    xdf, h5 = work / "big.xdf", work / "big.h5"
    try:
        info = write_big_xdf(xdf, args.minutes)
        info["xdf_bytes"] = xdf.stat().st_size
        say(f"wrote {xdf} ({info['xdf_bytes'] / 1e9:.3f} GB, {info['samples']:,} samples x {info['channels']} ch)"
            f" in {info['write_s']:.1f} s")
        results = {"file": info, "baseline": measure("baseline", xdf, h5)}
        results["import"] = measure("import", xdf, h5)
        if not args.skip_pyxdf:
            results["pyxdf"] = measure("pyxdf", xdf, h5)
        size = info["xdf_bytes"]
        say(f"{'':22}{'peak RSS':>12}{'RSS / file':>12}{'above baseline':>16}{'time s':>9}{'MB/s':>8}")
        base = results["baseline"]["peak_rss_bytes"]
        for key in ("baseline", "import", "pyxdf"):
            if key not in results:
                continue
            r = results[key]
            rss = r["peak_rss_bytes"]
            rate = size / r["seconds"] / 1e6 if key != "baseline" else float("nan")
            say(f"{key:22}{rss / 1e6:10.0f} MB{rss / size:12.3f}{(rss - base) / 1e6:13.0f} MB"
                f"{r['seconds']:9.1f}{rate:8.1f}")
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(results, indent=2))
        say(json.dumps(results))
    finally:
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
