"""How realistic and how hard the ``realistic`` rig profile is, and what it costs (simulated rig only).

Three measurements, each a sub-command:

``sessions``  writes one session per subject and profile (``seed = identity_seed = subject``,
              RGB + ActionUnits + Markers, 320x240 by default) into ``--out``, then runs face
              tracking (:func:`acquisition.annotate.face_tracking.annotate_session`) on each.
``score``     face detection rate per session (from ``<RGB>-FaceValid``) and today's spotter
              (:func:`acquisition.annotate.spotting.spot_session` on the estimated ``<RGB>-AU``
              stream) scored with :func:`~acquisition.annotate.spotting.spot_eval` against
              ``Markers`` (IoU >= 0.5), TP/FP/FN pooled over subjects, per profile.
``cost``      offline rendering speed (frames/s, median and range of 3 runs) at 320x240 and
              640x480 for each profile, and the live rig's largest lag behind real time while a
              recorder records it.

Subjects 100-109 are held out: the spotting work tunes on subjects 0-9; nothing here is tuned.

Run::

    nice -n 10 python benchmarks/rig_realism.py sessions --out /tmp/rig-real --subjects 100 101 102 103 104
    nice -n 10 python benchmarks/rig_realism.py score --out /tmp/rig-real
    nice -n 10 python benchmarks/rig_realism.py cost
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROFILES = ("default", "realistic")
SUBJECTS = tuple(range(100, 110))


def _size_overrides(width: int, height: int) -> list[str]:
    return [f"rgb.width={width}", f"rgb.height={height}", f"depth.width={width}", f"depth.height={height}"]


def _session_path(out: Path, profile: str, subject: int) -> Path:
    return out / f"{profile}-sub{subject:03d}.h5"


def make_sessions(out: Path, subjects: list[int], duration_s: float, width: int, height: int) -> None:
    """Write and face-track one session per profile and subject (skips those already tracked)."""
    from rich.progress import track

    from acquisition import open_session
    from acquisition.annotate.face_tracking import annotate_session
    from synth.rig.offline import write_rig_session

    out.mkdir(parents=True, exist_ok=True)
    jobs = [(p, s) for s in subjects for p in PROFILES]  # interleaved: a partial run still pairs profiles
    for profile, subject in track(jobs, description="sessions"):
        path = _session_path(out, profile, subject)
        if path.exists():
            with open_session(path) as session:
                if "RGB-FaceValid" in session.streams:
                    continue
            path.unlink()
        write_rig_session(path, duration_s=duration_s, seed=subject, profile=profile,
                          overrides=[f"identity_seed={subject}"] + _size_overrides(width, height),
                          modalities=("rgb", "au", "markers"))
        annotate_session(path, stream="RGB", verbose="WARNING")


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def score(out: Path) -> str:
    """Detection rate per session and pooled spotting scores per profile, as markdown."""
    from acquisition import open_session
    from acquisition.annotate.spotting import intervals_from_markers, spot_eval, spot_session

    lines = ["| profile | subject | frames | face found | truth (micro/macro) | spotted | TP/FP/FN |",
             "|---|---|---|---|---|---|---|"]
    pooled: dict[str, dict[str, np.ndarray]] = {}
    for profile in PROFILES:
        totals = {k: np.zeros(3, int) for k in ("micro", "macro", "overall")}
        paths = sorted(out.glob(f"{profile}-sub*.h5"))
        if not paths:
            continue
        for path in paths:
            subject = int(path.stem.split("sub")[-1])
            result = spot_session(path, stream="RGB-AU", overwrite=True, verbose="WARNING")
            with open_session(path) as s:
                valid = np.asarray(s.streams["RGB-FaceValid"].data).reshape(-1)
                truth = intervals_from_markers(s.streams["Markers"].times, s.streams["Markers"].data[:, 0])
            scores = spot_eval(result.intervals, truth)
            for key in totals:
                totals[key] += [scores[key]["tp"], scores[key]["fp"], scores[key]["fn"]]
            n_micro = sum(t.kind == "micro" for t in truth)
            o = scores["overall"]
            lines.append(f"| {profile} | {subject} | {valid.size} | {100 * valid.mean():.1f} % | "
                         f"{n_micro}/{len(truth) - n_micro} | {len(result.intervals)} | "
                         f"{o['tp']}/{o['fp']}/{o['fn']} |")
        pooled[profile] = totals
    lines += ["", "| profile | overall P / R / F1 | micro P / R / F1 | macro P / R / F1 |", "|---|---|---|---|"]
    f1 = {}
    for profile, totals in pooled.items():
        cells = []
        for key in ("overall", "micro", "macro"):
            p, r, f = _prf(*totals[key])
            cells.append(f"{p:.2f} / {r:.2f} / {f:.2f}")
            if key == "overall":
                f1[profile] = f
        lines.append(f"| {profile} | " + " | ".join(cells) + " |")
    if len(f1) == 2:
        lines.append(f"\nOverall F1 drop, default -> realistic: {f1['default'] - f1['realistic']:.2f}")
    return "\n".join(lines)


def _offline_fps(profile: str, width: int, height: int, n_frames: int) -> list[float]:
    from synth.rig import SimulatedRig, load_rig_config

    rig = SimulatedRig(load_rig_config(profile, _size_overrides(width, height)), seed=1, duration_s=60)
    rates = []
    for _ in range(3):
        generator = rig.make_generator("video")  # renderer construction is not part of the rate
        tic = time.perf_counter()
        generator.next_samples(n_frames)
        rates.append(n_frames / (time.perf_counter() - tic))
    return rates


def _live_lag(profile: str, duration_s: float, width: int = 640, height: int = 480) -> float:
    """Largest lag (s) behind real time that ``emosync simulate`` reports while a recorder records it.

    The rig runs in its own process, as a user runs it (``emosync simulate``), the recorder in this one.
    """
    import re
    import subprocess

    from acquisition.live.recorder import RecorderSettings, SessionRecorder

    prefix = f"lag{int(time.time() * 1e3) % 100000}-"
    command = [sys.executable, str(Path(__file__).resolve().parents[1] / "emosync.py"), "simulate", "--profile",
               profile, "--duration", str(duration_s + 5.0), "--seed", "1", "--name-prefix", prefix]
    command += [a for o in _size_overrides(width, height) for a in ("--set", o)]
    rig = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with tempfile.TemporaryDirectory() as tmp:
        recorder = SessionRecorder(Path(tmp) / "lag.h5", streams=[f"starts-with(name,'{prefix}')"],
                                   settings=RecorderSettings(wait_timeout_s=20))
        recorder.start()
        recorder.wait(duration_s)
        recorder.stop()
    output, _ = rig.communicate(timeout=120)
    found = re.search(r"Largest lag behind real time: (\d+) ms", output)
    if found is None:
        raise RuntimeError(f"emosync simulate did not report its lag:\n{output[-2000:]}")
    return int(found.group(1)) / 1e3


def cost(n_frames: int, live_s: float) -> str:
    """Offline frames/s per profile and size, and live lag per profile, as markdown."""
    lines = ["| profile | size | offline frames/s (median, range of 3) |", "|---|---|---|"]
    for profile in PROFILES:
        for width, height in ((320, 240), (640, 480)):
            rates = _offline_fps(profile, width, height, n_frames)
            lines.append(f"| {profile} | {width}x{height} | {statistics.median(rates):.0f} "
                         f"({min(rates):.0f}-{max(rates):.0f}) |")
    if live_s > 0:
        lines += ["", "| profile | size | live rig at 30 fps (emosync simulate) + recorder: largest lag, ms (3 runs) |",
                  "|---|---|---|"]
        for profile in PROFILES:
            for width, height in ((640, 480), (320, 240)):
                lags = [1e3 * _live_lag(profile, live_s, width, height) for _ in range(3)]
                lines.append(f"| {profile} | {width}x{height} | median {statistics.median(lags):.0f} "
                             f"(range {min(lags):.0f}-{max(lags):.0f}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sessions", help="write and face-track the sessions")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--subjects", type=int, nargs="+", default=list(SUBJECTS))
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--size", type=int, nargs=2, default=(320, 240))
    p = sub.add_parser("score", help="detection rate and spotting scores")
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("cost", help="rendering speed and live lag")
    p.add_argument("--frames", type=int, default=90)
    p.add_argument("--live", type=float, default=30.0, help="seconds of live recording per run (0: skip)")
    args = parser.parse_args(argv)
    if args.command == "sessions":
        make_sessions(args.out, args.subjects, args.duration, *args.size)
    elif args.command == "score":
        print(score(args.out))
    else:
        print(cost(args.frames, args.live))
    return 0


if __name__ == "__main__":
    sys.exit(main())
