"""Synchronization accuracy against a known ground truth, next to pyxdf on the same data.

Synthetic 1 kHz streams whose source clock is offset by 1234.5 s, drifts 20 ppm and
stamps samples with 2 ms (SD) Gaussian jitter; offsets measured every 5 s with
round-trip-dependent noise. Scenarios add a clock reset or a dropped 2.5 s chunk. Each
recording is written twice: as an emosync session (read back, ``Stream.times``) and as
an XDF file (``pyxdf.load_xdf`` with its defaults). Residual = synchronized time minus
the true time of each sample.

Run: python benchmarks/sync_accuracy.py [--duration 300] [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyxdf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from acquisition import SessionWriter, StreamSpec, open_session  # noqa: E402
from acquisition.sync.simulation import simulate_clock_recording  # noqa: E402
from tests.acquisition.io.xdf_writer import XDFWriter  # noqa: E402

SCENARIOS = {
    "offset 1234.5 s + 20 ppm + 2 ms jitter": {},
    "+ clock reset": {"reset_at_s": 150.0},
    "+ dropped 2.5 s chunk": {"drop_chunks": ((100.0, 102.5),)},
}


def write_both(rec, folder: Path, tag: str) -> tuple[Path, Path]:
    session, xdf = folder / f"{tag}.h5", folder / f"{tag}.xdf"
    data = np.zeros((rec.timestamps.shape[0], 1), np.float32)
    with SessionWriter(session) as w:
        st = w.add_stream(StreamSpec("EEG", "EEG", 1, "float32", rec.srate, "bench"))
        st.append(data, rec.timestamps)
        table = rec.clock_offsets
        st.append_clock_offsets(table.collection_times, table.offsets, table.uncertainties)
    with XDFWriter(xdf) as w:
        w.add_stream(1, "EEG", "EEG", 1, rec.srate, "float32", source_id="bench")
        for start in range(0, data.shape[0], 1000):
            w.write_samples(1, data[start : start + 1000], rec.timestamps[start : start + 1000])
        for i in range(len(rec.clock_offsets)):  # in measurement order, as a recorder writes them
            w.write_clock_offset(1, float(rec.clock_offsets.collection_times[i]), float(rec.clock_offsets.offsets[i]))
        w.write_footer(1)
    return session, xdf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, scenario in SCENARIOS.items():
            rows = {"ours (session, RTT-weighted)": [], "ours (no weights)": [], "pyxdf": []}
            timing = {"ours": 0.0, "pyxdf": 0.0}
            for seed in range(args.seeds):
                rec = simulate_clock_recording(duration_s=args.duration, seed=seed, **scenario)
                session, xdf = write_both(rec, Path(tmp), f"{len(results)}-s{seed}")
                t = time.perf_counter()
                with open_session(session) as s:
                    ours = s.streams["EEG"].times
                    plain = s.streams["EEG"].synchronize(weight_by_uncertainty=False).times
                timing["ours"] += time.perf_counter() - t
                t = time.perf_counter()
                streams, _ = pyxdf.load_xdf(str(xdf))
                timing["pyxdf"] += time.perf_counter() - t
                theirs = streams[0]["time_stamps"]
                for key, times in (("ours (session, RTT-weighted)", ours), ("ours (no weights)", plain),
                                   ("pyxdf", theirs)):
                    error = np.abs(times - rec.true_times)
                    rows[key].append((np.median(error), np.percentile(error, 95), error.max()))
            results[name] = {key: {"median_us": float(np.mean([r[0] for r in v]) * 1e6),
                                   "p95_us": float(np.mean([r[1] for r in v]) * 1e6),
                                   "max_us": float(np.max([r[2] for r in v]) * 1e6)} for key, v in rows.items()}
            results[name]["load_time_ratio_pyxdf_over_ours"] = timing["pyxdf"] / timing["ours"]
    print(json.dumps(results, indent=2))
    print(f"\n| scenario ({args.duration:g} s @ 1 kHz, {args.seeds} seeds) | method | median |err| (us) | "
          "95th pct (us) | max (us) |")
    print("|---|---|---|---|---|")
    for name, rows in results.items():
        for key, r in rows.items():
            if isinstance(r, dict):
                print(f"| {name} | {key} | {r['median_us']:.2f} | {r['p95_us']:.2f} | {r['max_us']:.1f} |")


if __name__ == "__main__":
    main()
