"""Expression-spotting accuracy on simulated sessions (MEGC interval criterion, IoU >= 0.5).

Writes AU sessions directly with :class:`~acquisition.SessionWriter` (no real time): the
ground truth of :func:`synth.facs.generate_timeline` sampled at the frame rate, plus Gaussian
noise on every AU curve to emulate estimation noise, and its expression markers. Then runs
:func:`acquisition.annotate.spotting.spot_session` on each file (writing the ``-Spotted`` stream, as
``emosync spot`` does) and scores the spotted markers against the truth markers with
:func:`acquisition.annotate.spotting.spot_eval`, pooling TP/FP/FN over seeds. Prints a markdown table.

Run: python benchmarks/spotting_eval.py [--seeds 5] [--minutes 10] [--fps 30 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from acquisition import SessionWriter, StreamSpec, open_session
from acquisition.annotate.spotting import intervals_from_markers, spot_eval, spot_session
from acquisition.annotate.action_units import AU_IDS, AU_LABELS
from synth.facs import TimelineConfig, generate_timeline


def write_session(path: Path, seed: int, minutes: float, fps: float, noise: float) -> None:
    """One simulated AU session: noisy ground-truth AUs at ``fps`` and the truth markers."""
    duration = 60.0 * minutes
    timeline = generate_timeline(TimelineConfig(), duration, seed)
    t = np.arange(int(duration * fps)) / fps
    au = timeline.intensities(t) + np.random.default_rng([seed, 7]).normal(0.0, noise, (t.size, len(AU_IDS)))
    t0 = 5000.0
    with SessionWriter(path, subject_id=f"sub-sim{seed:02d}", metadata={"synthetic": True}) as w:
        st = w.add_stream(StreamSpec("cam-AU", "ActionUnits", len(AU_IDS), "float32", fps, "sim-au",
                                     channel_labels=AU_LABELS))
        st.append(au.astype(np.float32), t0 + t)
        markers = timeline.markers()
        mk = w.add_stream(StreamSpec("Markers", "Markers", 1, "string", 0.0, "sim-markers"))
        mk.append([[m] for _, m in markers], [t0 + s for s, _ in markers])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fps", type=float, nargs="+", default=[30.0, 200.0])
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.2, 0.5])
    args = parser.parse_args(argv)
    rows = []
    tic = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for fps in args.fps:
            for noise in args.noise:
                totals = {k: np.zeros(3, int) for k in ("micro", "macro", "overall")}
                mismatches = n_truth = emotion_ok = n_matched = 0
                for seed in range(args.seeds):
                    path = Path(tmp) / f"s{seed}_{fps:g}_{noise:g}.h5"
                    write_session(path, seed, args.minutes, fps, noise)
                    spot_session(path, verbose="WARNING")
                    with open_session(path) as s:
                        truth = intervals_from_markers(s.streams["Markers"].times,
                                                       s.streams["Markers"].data[:, 0])
                        sp = s.streams["cam-AU-Spotted"]
                        spotted = intervals_from_markers(sp.times, sp.data[:, 0])
                    scores = spot_eval(spotted, truth)
                    for key in totals:
                        totals[key] += [scores[key]["tp"], scores[key]["fp"], scores[key]["fn"]]
                    mismatches += scores["class_mismatches"]
                    n_truth += len(truth)
                    n_matched += len(scores["matches"])
                    emotion_ok += sum(spotted[r].label == truth[c].label for r, c, _ in scores["matches"])
                rows.append((fps, noise, totals, mismatches, n_truth, emotion_ok / max(n_matched, 1)))
    print(f"Expression spotting on simulated AU sessions: {args.seeds} seeds x {args.minutes:g} min each, "
          "TP if IoU >= 0.5 (each truth matched once; TPs count for the truth's class), counts pooled over seeds.\n")
    print("| fps | AU noise SD | truth (micro/macro) | micro P / R / F1 | macro P / R / F1 | overall P / R / F1 "
          "| class mismatches | emotion right (of TPs) |")
    print("|---|---|---|---|---|---|---|---|")

    def prf(c: np.ndarray) -> str:
        tp, fp, fn = (int(v) for v in c)
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return f"{p:.3f} / {r:.3f} / {f:.3f}"

    for fps, noise, totals, mismatches, n_truth, emotion in rows:
        n_micro = int(totals["micro"][0] + totals["micro"][2])
        print(f"| {fps:g} | {noise:g} | {n_truth} ({n_micro}/{n_truth - n_micro}) | {prf(totals['micro'])} | "
              f"{prf(totals['macro'])} | {prf(totals['overall'])} | {mismatches} | {emotion:.1%} |")
    print(f"\nCommand: python benchmarks/spotting_eval.py {' '.join(sys.argv[1:] if argv is None else argv)}"
          f"  ({time.perf_counter() - tic:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
