"""EMG-based AU coding against the simulated rig's ground truth, next to the video AU estimates.

What a user gets: the simulated rig (``synth.rig.offline.write_rig_session``) records facial EMG
and 320x240 video; ``emosync emg-code`` codes AUs from the EMG alone and ``emosync annotate``
estimates them from the video. The rig's ``ActionUnits`` stream (ground truth) is only the
reference. One subject per session: identity_seed == rig seed == the subject number. All figures
are from the SIMULATED rig.

Three steps, each cached on disk:

``prepare``  simulate (+ annotate, for scoring) each subject once into
             ``<data-dir>/<profile>/sub-idNNN_seedNNN.h5`` without the raw video: the layout of
             ``benchmarks/spotting_eval.py prepare``, so ``score --data-dir`` can use its cache;
``tune``     on the TUNING subjects only (0-9): a small grid over the envelope window, the blink
             burst length and the range quantile (best mean r), then per-AU curves (least squares
             of intensity on relative activity); prints the YAML to copy into
             ``configs/emg_code/default.yaml``;
``score``    on the HELD-OUT subjects (100-109): per-AU Pearson r of EMG and video estimates
             against the truth at the truth's frames, overall, while the head is still and while
             it turns (true head pose from the rig), mean and spread over subjects; and the lag
             of EMG behind/ahead of video during head turns (cross-correlation peak). Prints markdown.

Run::

    nice -n 10 python benchmarks/emg_coding_eval.py prepare --profile realistic --subjects 0-9 --no-video
    nice -n 10 python benchmarks/emg_coding_eval.py tune --profile realistic --subjects 0-9
    nice -n 10 python benchmarks/emg_coding_eval.py prepare --profile realistic --subjects 100-109
    nice -n 10 python benchmarks/emg_coding_eval.py score --profile realistic --subjects 100-109
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

#: Subjects (identity_seed == rig seed) for tuning and for scoring; never the same (as in the config).
TUNING_SUBJECTS = tuple(range(0, 10))
SCORING_SUBJECTS = tuple(range(100, 110))
#: Streams dropped from the cached files once annotated: the raw and cropped video are ~95 % of the bytes.
DROPPED_STREAMS = ("RGB", "RGB-FaceCrop")
#: ``tune`` grid (coding settings that are not curves).
GRID = {"envelope_window_s": [0.05, 0.1, 0.2], "blinks.max_duration_s": [0.2, 0.3, 0.45],
        "range_quantile": [0.98, 0.99, 0.995]}
#: Exponents tried per AU curve (offset and gain are least squares for each).
EXPONENTS = np.round(np.arange(0.5, 2.01, 0.1), 2)
#: Head angular speed (deg/s, true pose) above which the head turns, below which it is still.
TURNING_DEG_S, STILL_DEG_S = 10.0, 2.0
#: Video r (turning) from which a lag against video means something.
TRACKED_R = 0.3
#: Frame subsets scored.
MASKS = ("all", "still", "turning", "talking")
#: Lags searched by the cross-correlation, seconds.
MAX_LAG_S = 0.3


def session_path(data_dir: Path, profile: str, subject: int) -> Path:
    """Cached session of one subject (identity_seed == rig seed == ``subject``)."""
    return Path(data_dir) / profile / f"sub-id{subject:03d}_seed{subject:03d}.h5"


#: Extra rig overrides (``--rig-set``), e.g. ``idle.enabled=true`` on the light profile.
RIG_SET: list[str] = []


def _rig_overrides(subject: int, width: int = 320, height: int = 240) -> list[str]:
    return [f"identity_seed={subject}", f"rgb.width={width}", f"rgb.height={height}", f"depth.width={width}",
            f"depth.height={height}", *RIG_SET]


def _slim_copy(src: Path, dst: Path) -> None:
    """Copy a session without its video streams (HDF5 does not reclaim the space of deleted datasets)."""
    with h5py.File(src, "r") as fin, h5py.File(dst, "w") as fout:
        for key, value in fin.attrs.items():
            fout.attrs[key] = value
        for name in fin:
            if name != "streams":
                fin.copy(fin[name], fout, name=name)
        group = fout.create_group("streams")
        for key, value in fin["streams"].attrs.items():
            group.attrs[key] = value
        for name in fin["streams"]:
            if name not in DROPPED_STREAMS:
                fin.copy(fin["streams"][name], group, name=name)


def prepare(profile: str, subjects: Sequence[int], *, duration_s: float, data_dir: Path, video: bool) -> list[Path]:
    """Simulate (and annotate) one session per subject, skipping those already cached."""
    from acquisition.annotate.face_tracking import annotate_session
    from synth.rig.offline import write_rig_session

    paths = []
    for subject in subjects:
        path = session_path(data_dir, profile, subject)
        paths.append(path)
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        modalities = ("rgb", "emg", "au", "markers") if video else ("emg", "au", "markers")
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            full = Path(tmp) / "full.h5"
            write_rig_session(full, duration_s=duration_s, seed=subject, profile=profile,
                              overrides=_rig_overrides(subject), modalities=modalities)
            if video:
                summary = annotate_session(full, verbose="WARNING")
                print(f"{profile}/{path.name}: face found in {summary['detection_rate']:.1%} of frames "
                      f"({summary['fps']:.0f} frames/s)", flush=True)
            slim = Path(tmp) / "slim.h5"
            _slim_copy(full, slim)
            os.replace(slim, path)
    return paths


def _timeline_s(stream) -> np.ndarray:
    """Seconds on the rig's timeline: the offline rig stamps sample k of every stream k / rate."""
    return np.asarray(stream.timestamps, dtype=np.float64)


def load_subject(path: Path) -> dict:
    """Raw EMG, truth AUs and (if annotated) the video AU estimates of one cached session."""
    from acquisition import open_session

    with open_session(path) as s:
        emg, truth = s.streams["EMG"], s.streams["ActionUnits"]
        out = {"emg": np.asarray(emg.data[:], dtype=np.float64), "srate": emg.nominal_srate,
               "labels": list(emg.info["channel_labels"]), "truth": np.asarray(truth.data[:], dtype=np.float64),
               "truth_t": _timeline_s(truth)}
        video = s.streams.get("RGB-AU")
        if video is not None:
            out["video"] = np.asarray(video.data[:], dtype=np.float64)
            out["video_t"] = _timeline_s(video)
    return out


def code(subject: dict, config) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """EMG-coded AUs of a loaded subject: values, timeline seconds, AU ids."""
    from acquisition.annotate.emg_coding import emg_to_aus

    return emg_to_aus(subject["emg"], subject["srate"], subject["labels"], config=config)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r; NaN when either side is constant or there are fewer than 3 samples."""
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _at(times: np.ndarray, t: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.interp(times, t, values, left=np.nan, right=np.nan)


def emg_r(subjects: Sequence[dict], config) -> dict[int, list[float]]:
    """Per-AU r of the EMG estimate against the truth, one value per subject."""
    from acquisition.annotate.action_units import AU_INDEX

    out: dict[int, list[float]] = {}
    for subject in subjects:
        values, t, aus = code(subject, config)
        for j, au in enumerate(aus):
            out.setdefault(au, []).append(pearson(_at(subject["truth_t"], t, values[:, j]),
                                                  subject["truth"][:, AU_INDEX[au]]))
    return out


# ---------------------------------------------------------------------------- tune
def tune(paths: Sequence[Path]) -> None:
    """Grid of coding settings by mean r, then per-AU curves, on the tuning subjects only."""
    from acquisition.annotate.action_units import AU_INDEX, AU_LABELS, AU_IDS
    from acquisition.annotate.emg_coding import load_emg_coding_config

    subjects = [load_subject(p) for p in paths]
    plain = "curves={default: {offset: 0, gain: 1, exponent: 1}}"
    results = []
    for combo in itertools.product(*GRID.values()):
        overrides = [f"{k}={v}" for k, v in zip(GRID, combo)]
        r = emg_r(subjects, load_emg_coding_config("default", [plain, *overrides]))
        score = float(np.nanmean([np.nanmean(v) for v in r.values()]))
        results.append((score, overrides, {au: float(np.nanmean(v)) for au, v in r.items()}))
        print(f"{score:.4f} {' '.join(overrides)}", flush=True)
    results.sort(key=lambda x: -x[0])
    score, best, per_au = results[0]
    print(f"\nbest mean r {score:.4f} with {best}; per AU "
          + ", ".join(f"AU{a:02d} {v:.3f}" for a, v in per_au.items()))
    # Curves: relative activity x (gain 1, no offset, exponent 1) against the true intensity, pooled.
    config = load_emg_coding_config("default", [plain, *best])
    xs: dict[int, list[np.ndarray]] = {}
    ys: dict[int, list[np.ndarray]] = {}
    for subject in subjects:
        values, t, aus = code(subject, config)
        for j, au in enumerate(aus):
            x = _at(subject["truth_t"], t, values[:, j])
            ok = np.isfinite(x)
            xs.setdefault(au, []).append(x[ok])
            ys.setdefault(au, []).append(subject["truth"][ok, AU_INDEX[au]])
    print("\ncurves:")
    for au in (a for a in AU_IDS if a in xs):
        x, y = np.concatenate(xs[au]), np.concatenate(ys[au])
        best_fit = None
        for p in EXPONENTS:
            design = np.column_stack([np.ones_like(x), x**p])
            (offset, gain), *_ = np.linalg.lstsq(design, y, rcond=None)
            gain = max(gain, 1e-3)
            err = float(np.mean((np.clip(offset + gain * x**p, 0, 5) - y) ** 2))
            if best_fit is None or err < best_fit[0]:
                best_fit = (err, float(offset), float(gain), float(p))
        err, offset, gain, p = best_fit
        print(f"  {AU_LABELS[AU_INDEX[au]]}: {{offset: {offset:.3f}, gain: {gain:.3f}, exponent: {p:.1f}}}"
              f"   # RMSE {np.sqrt(err):.3f}")


# ---------------------------------------------------------------------------- score
def rig_truth(profile: str, subject: int, duration_s: float, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Angular speed of the true head pose (deg/s) and whether the subject talks, at ``times_s`` (timeline s)."""
    from synth.rig.config import load_rig_config
    from synth.rig.simulator import SimulatedRig

    config = load_rig_config(profile, _rig_overrides(subject))
    rig = SimulatedRig(config, seed=subject, duration_s=duration_s + 5.0, profile=profile)
    angles = rig.head_pose(times_s)[:, :3]
    talking = np.zeros(len(times_s), bool)
    for start, stop in getattr(rig.timeline, "talking_intervals", lambda: [])():
        talking |= (times_s >= start) & (times_s < stop)
    return np.linalg.norm(np.gradient(angles, times_s, axis=0), axis=1), talking


def lag_s(lead: np.ndarray, follow: np.ndarray, mask: np.ndarray, srate_hz: float) -> float:
    """Lag (s) at which ``follow`` best matches ``lead`` over the masked samples; > 0: ``lead`` is ahead.

    Both are on one grid at ``srate_hz``; the correlation at lag L pairs ``lead[t]`` with
    ``follow[t + L]`` for the masked ``t`` only.
    """
    n = int(round(MAX_LAG_S * srate_hz))
    idx = np.flatnonzero(mask)
    idx = idx[(idx >= n) & (idx < len(lead) - n)]
    if len(idx) < 10:
        return float("nan")
    rs = [pearson(lead[idx], follow[idx + k]) for k in range(-n, n + 1)]
    if np.all(np.isnan(rs)):
        return float("nan")
    return (int(np.nanargmax(rs)) - n) / srate_hz


def score(paths: Sequence[Path], profile: str, subjects: Sequence[int]) -> str:
    """Markdown tables: per-AU r (EMG, video; overall, still, turning) and lags during head turns."""
    from acquisition.annotate.action_units import AU_INDEX, AU_LABELS
    from acquisition.annotate.emg_coding import load_emg_coding_config

    config = load_emg_coding_config()
    rows: dict[tuple[str, str, int], list[float]] = {}
    lags: dict[tuple[str, int], list[float]] = {}
    turning_share, talking_share, timings = [], [], []
    for path, subject_id in zip(paths, subjects):
        subject = load_subject(path)
        started = time.perf_counter()
        values, t, aus = code(subject, config)
        timings.append(time.perf_counter() - started)
        truth_t = subject["truth_t"]
        duration = float(truth_t[-1] + 1 / 30)
        speed, talking = rig_truth(profile, subject_id, duration, truth_t)
        masks = {"all": np.ones_like(truth_t, bool), "still": speed < STILL_DEG_S, "turning": speed > TURNING_DEG_S,
                 "talking": talking}
        turning_share.append(float(masks["turning"].mean()))
        talking_share.append(float(talking.mean()))
        grid = np.arange(0, t[-1], 1 / config.srate_hz)
        turning_grid = np.interp(grid, truth_t, masks["turning"].astype(float)) > 0.5
        for j, au in enumerate(aus):
            truth = subject["truth"][:, AU_INDEX[au]]
            estimates = {"EMG": _at(truth_t, t, values[:, j])}
            if "video" in subject:
                estimates["video"] = _at(truth_t, subject["video_t"], subject["video"][:, AU_INDEX[au]])
            for source, est in estimates.items():
                for name, mask in masks.items():
                    rows.setdefault((source, name, au), []).append(pearson(est[mask], truth[mask]))
            emg_g = np.interp(grid, t, values[:, j])
            truth_g = np.interp(grid, truth_t, truth)
            lags.setdefault(("EMG vs truth", au), []).append(lag_s(emg_g, truth_g, turning_grid, config.srate_hz))
            if "video" in subject:
                video_g = np.interp(grid, subject["video_t"], subject["video"][:, AU_INDEX[au]])
                lags.setdefault(("video vs truth", au), []).append(lag_s(video_g, truth_g, turning_grid,
                                                                         config.srate_hz))
                lags.setdefault(("EMG vs video", au), []).append(lag_s(emg_g, video_g, turning_grid, config.srate_hz))
    aus = sorted({au for (_, _, au) in rows})

    def cell(v: Sequence[float], digits: int = 2) -> str:
        v = np.asarray(v, float)
        return f"{np.nanmean(v):.{digits}f} ± {np.nanstd(v):.{digits}f}" if np.isfinite(v).any() else "-"

    lines = [f"Profile `{profile}`, held-out subjects {list(subjects)} (identity_seed == rig seed), "
             f"{len(paths)} sessions; mean ± SD over subjects. Head turning: true angular speed > "
             f"{TURNING_DEG_S:g} deg/s ({100 * np.mean(turning_share):.0f} % of frames), "
             f"still: < {STILL_DEG_S:g} deg/s; "
             f"talking: inside the rig's talking bouts ({100 * np.mean(talking_share):.0f} % of frames). "
             "Pearson r against the rig's true AUs at its 30 Hz frames.",
             "", "| AU | " + " | ".join(f"{s} {m}" for s in ("EMG", "video") for m in MASKS) + " |",
             "|---|" + "---|" * 2 * len(MASKS)]
    for au in aus:
        lines.append(f"| {AU_LABELS[AU_INDEX[au]]} | " + " | ".join(cell(rows.get((s, m, au), []))
                                                             for s in ("EMG", "video")
                                                             for m in MASKS) + " |")
    mean_cells = []
    for s in ("EMG", "video"):
        for m in MASKS:
            per_subject = np.nanmean([rows[(s, m, au)] for au in aus if (s, m, au) in rows], axis=0) \
                if any((s, m, au) in rows for au in aus) else []
            mean_cells.append(cell(per_subject))
    lines.append("| mean of AUs | " + " | ".join(mean_cells) + " |")
    lines += ["", f"Lag during head turns (cross-correlation peak within ±{MAX_LAG_S * 1000:.0f} ms; "
              "positive = the first is ahead), ms, mean ± SD over subjects:", "",
              "| AU | EMG ahead of video | EMG ahead of truth | video ahead of truth | video r turning |",
              "|---|---|---|---|---|"]
    kinds = ("EMG vs video", "EMG vs truth", "video vs truth")
    tracked = []  # (subject, AU) pairs where the video estimate follows the truth during turns
    for au in aus:
        lines.append(f"| {AU_LABELS[AU_INDEX[au]]} | " + " | ".join(
            cell(1000 * np.asarray(lags.get((k, au), [np.nan])), 0) for k in kinds)
            + f" | {cell(rows.get(('video', 'turning', au), []))} |")
        video_r = rows.get(("video", "turning", au), [])
        tracked += [(i, au) for i, r in enumerate(video_r) if r >= TRACKED_R]
    if tracked:
        summary = {k: 1000 * np.array([lags[(k, au)][i] for i, au in tracked]) for k in kinds}
        lines += ["", f"Where video tracks the truth during turns (r >= {TRACKED_R:g}: {len(tracked)} subject x AU "
                  "pairs), median [IQR] lag: " + "; ".join(
                      f"{k.replace('vs', 'ahead of')} {np.nanmedian(v):.0f} ms [{np.nanpercentile(v, 25):.0f}, "
                      f"{np.nanpercentile(v, 75):.0f}]" for k, v in summary.items()) + "."]
    lines += ["", f"Coding time per session: median {np.median(timings):.2f} s "
              f"(range {min(timings):.2f}-{max(timings):.2f}) for {duration:.0f} s of EMG."]
    return "\n".join(lines)


def _subjects(spec: Sequence[str]) -> list[int]:
    """``["0-9", "12"]`` -> ``[0, ..., 9, 12]``."""
    out: list[int] = []
    for item in spec:
        lo, _, hi = item.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=["prepare", "tune", "score"])
    parser.add_argument("--profile", default="realistic")
    parser.add_argument("--subjects", nargs="+", default=None, help="e.g. 0-9 (default: tuning for prepare/tune, "
                        "held-out for score).")
    parser.add_argument("--duration", type=float, default=60.0, help="Seconds per session (prepare).")
    parser.add_argument("--no-video", action="store_true", help="prepare: EMG only (tuning needs no video).")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "emosync-emg-coding",
                        help="Cache folder; benchmarks/spotting_eval.py prepare makes the same files (with video).")
    parser.add_argument("--out", type=Path, default=None, help="score: also write the markdown here.")
    parser.add_argument("--rig-set", nargs="*", default=[], help="Rig overrides, e.g. idle.enabled=true "
                        "(use the same for prepare and score).")
    args = parser.parse_args(argv)
    RIG_SET[:] = args.rig_set
    default = SCORING_SUBJECTS if args.step == "score" else TUNING_SUBJECTS
    subjects = _subjects(args.subjects) if args.subjects else list(default)
    if args.step == "tune" and set(subjects) & set(SCORING_SUBJECTS):
        parser.error(f"tune on tuning subjects only, not the held-out {list(SCORING_SUBJECTS)}")
    if args.step == "prepare":
        prepare(args.profile, subjects, duration_s=args.duration, data_dir=args.data_dir, video=not args.no_video)
        return
    paths = [session_path(args.data_dir, args.profile, s) for s in subjects]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        parser.error(f"run prepare first; missing {missing}")
    if args.step == "tune":
        tune(paths)
        return
    text = score(paths, args.profile, subjects)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
