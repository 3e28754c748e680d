"""Benchmark the XDF export: time and size for 1 min of the default rig without video, and round-trip equality.

Issue 17 asks for "XDF round trip: every stream's samples and stamps equal after export and
pyxdf load; size and time to export 1 min of the default rig without video". This script

1. writes ``--seconds`` of the simulated rig (``--profile default``: EMG 8 ch at 2 kHz, EEG
   32 ch at 500 Hz, 17 AUs at 30 Hz, expression markers; no RGB or depth) straight to a
   session (``synth.rig.offline.write_rig_session``: the samples a live recording holds,
   stamped ``k / rate``), then moves each stream to its own simulated source clock, as a
   recording from other hosts would hold it: raw stamps ``(t - offset) * (1 + drift)`` with
   0.2 ms jitter (offsets of -1234.5 s, +56.7 s..., 20 ppm drift) and a clock offset
   measured every 5 s with 10 us error and 20-200 us round-trip times;
2. exports it with :func:`acquisition.io.xdf_export.write_xdf` (timed; the peak of memory
   allocated meanwhile, by ``tracemalloc``, is reported too);
3. loads the XDF with ``pyxdf.load_xdf`` raw (no sync, no dejitter) and checks every stream's
   samples and stamps bit for bit, then with pyxdf's defaults and reports the largest
   difference from ``Stream.times``;
4. imports the XDF back with ``import_xdf`` and checks data, stamps and offsets are equal.

Usage::

    python benchmarks/xdf_export.py                  # 60 s of the default rig
    python benchmarks/xdf_export.py --seconds 10     # quick check
    python benchmarks/xdf_export.py --json-out result.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def with_clock_errors(source: Path, target: Path) -> None:
    """Copy a session's streams into ``target`` with per-stream source clocks and measured offsets."""
    from acquisition import SessionWriter, StreamSpec, open_session

    rng = np.random.default_rng(0)
    with open_session(source) as s, SessionWriter(target, subject_id=s.info["subject_id"]) as w:
        for k, (name, stream) in enumerate(s.streams.items()):
            info = stream.info
            offset_s, rate = -1234.5 + 1291.2 * k, 1.0 + 20e-6 * (1 if k % 2 else -1)
            spec = StreamSpec(name, info["type"], int(info["channel_count"]), info["channel_format"],
                              float(info["nominal_srate"]), info["source_id"],
                              hostname=f"host-{k}", channel_labels=list(info["channel_labels"]),
                              channel_units=list(info["channel_units"]), channel_types=list(info["channel_types"]))
            true = 100.0 + stream.timestamps  # recorder clock
            jitter = rng.normal(0.0, 2e-4, true.size) if spec.nominal_srate else 0.0
            writer = w.add_stream(spec)
            writer.append(stream.data[:], (true - offset_s) * rate + jitter)
            measured = 100.0 + np.arange(2.5, stream.timestamps[-1] + 5, 5.0)
            rtt = rng.uniform(20e-6, 200e-6, measured.size)
            noise = rng.normal(0.0, 10e-6, measured.size)  # measurement error of each offset
            writer.append_clock_offsets((measured - offset_s) * rate, measured - (measured - offset_s) * rate + noise,
                                        rtt)


def run(seconds: float, profile: str, folder: Path) -> dict[str, Any]:
    """Write, export, read back and re-import; return the figures."""
    sys.path.insert(0, str(REPO))
    import pyxdf

    from acquisition import open_session
    from acquisition.io.xdf import import_xdf
    from acquisition.io.xdf_export import write_xdf
    from synth.rig.offline import write_rig_session

    rig, session, out, back = folder / "rig.h5", folder / "hosts.h5", folder / "rig.xdf", folder / "back.h5"
    started = time.perf_counter()
    write_rig_session(rig, duration_s=seconds, profile=profile, modalities=("emg", "eeg", "au", "markers"))
    with_clock_errors(rig, session)
    write_s = time.perf_counter() - started
    tracemalloc.start()
    started = time.perf_counter()
    write_xdf(session, out, verbose="WARNING")
    export_s = time.perf_counter() - started
    peak_bytes = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    raw, _ = pyxdf.load_xdf(str(out), synchronize_clocks=False, dejitter_timestamps=False)
    synced, _ = pyxdf.load_xdf(str(out))
    import_xdf(out, back, verbose="WARNING")
    streams: dict[str, Any] = {}
    with open_session(session) as a, open_session(back) as b:
        for got, sync in zip(raw, synced):
            name = got["info"]["name"][0]
            stream, again = a.streams[name], b.streams[name]
            stored = stream.data[:]
            values = got["time_series"] if stored.dtype == object else np.asarray(got["time_series"])
            same_values = values == stored.tolist() if stored.dtype == object else np.array_equal(values, stored)
            streams[name] = {
                "samples": stream.n_samples,
                "samples_equal": bool(same_values),
                "raw_stamps_equal": bool(np.array_equal(got["time_stamps"], stream.timestamps)),
                "max_sync_difference_s": float(np.max(np.abs(sync["time_stamps"] - stream.times), initial=0.0)),
                "reimport_equal": bool(np.array_equal(again.data[:], stored)
                                       and np.array_equal(again.timestamps, stream.timestamps)
                                       and np.array_equal(again.clock_offsets.as_array(),
                                                          stream.clock_offsets.as_array(), equal_nan=True)),
            }
    size = out.stat().st_size
    return {"seconds": seconds, "profile": profile, "session_bytes": session.stat().st_size, "xdf_bytes": size,
            "xdf_mb_per_min": size / 1e6 * 60 / seconds, "write_session_s": write_s, "export_s": export_s,
            "export_mb_per_s": size / 1e6 / export_s, "export_peak_python_mb": peak_bytes / 1e6,
            "all_equal": all(s["samples_equal"] and s["raw_stamps_equal"] and s["reimport_equal"]
                             for s in streams.values()),
            "streams": streams}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="Seconds of the simulated rig (default 60).")
    parser.add_argument("--profile", default="default", help="Rig profile under configs/rig/ (default: default).")
    parser.add_argument("--dir", default=None, help="Folder for the temporary files (default: a new temp folder).")
    parser.add_argument("--json-out", help="Also write the results to this JSON file.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        result = run(args.seconds, args.profile, Path(folder))
    text = json.dumps(result, indent=2)
    sys.stdout.write(text + "\n")
    if args.json_out:
        Path(args.json_out).write_text(text + "\n")
    if not result["all_equal"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
