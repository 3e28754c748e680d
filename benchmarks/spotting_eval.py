"""Expression spotting from estimated inputs on simulated sessions (MEGC interval criterion, IoU >= 0.5).

What a user gets: the simulated rig (``synth.rig.offline.write_rig_session``, profile ``default``
or ``realistic``) records video at 320x240, ``emosync annotate`` estimates AUs, landmarks and head
pose from it, ``emosync emg-code`` estimates AUs from the facial EMG, and ``emosync spot`` spots in
those estimates. The rig's ground-truth ``ActionUnits`` stream is never an input; its ``Markers``
(emotional expressions only) are the reference. One subject per session: identity_seed == rig
seed == the subject number.

Three steps, each cached on disk:

``prepare``  simulate + annotate + emg-code each subject once (the slow part, ~40 frames/s on a
             loaded 2-core machine) into ``<data-dir>/<profile>/sub-idNNN_seedNNN.h5``, without the
             raw video (95 % of the bytes);
``tune``     grid search of the detector thresholds on the TUNING subjects only (0-9); prints
             the best values to copy into ``configs/spot/default.yaml`` (video-only) or
             ``configs/spot/emg.yaml`` (EMG-assisted, ``--config emg``);
``score``    every variant (today's spotter, tuned without modules, each module added alone,
             all modules video-only, EMG-assisted) on the SCORING subjects (100-109), TP/FP/FN
             pooled over subjects, plus the spread of per-subject F1. Prints markdown.

Run::

    nice -n 10 python benchmarks/spotting_eval.py prepare --profile default --subjects 0-9 100-109
    nice -n 10 python benchmarks/spotting_eval.py tune --profiles default realistic --subjects 0-9 [--config emg]
    nice -n 10 python benchmarks/spotting_eval.py score --profiles default realistic --subjects 100-109
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path
from collections.abc import Sequence

import h5py
import numpy as np

#: Rig streams written per session: video to annotate, facial EMG to code, and the references.
MODALITIES = ("rgb", "emg", "au", "markers")
#: Streams dropped from the cached files once annotated: the raw and cropped video are ~95 % of the bytes.
DROPPED_STREAMS = ("RGB", "RGB-FaceCrop")
#: Subjects (identity_seed == rig seed) for tuning and for scoring; never the same.
TUNING_SUBJECTS = tuple(range(0, 10))
SCORING_SUBJECTS = tuple(range(100, 110))
#: Threshold grid searched by ``tune`` (robust SDs of the combined activation).
GRID = {"high": [3.0, 3.5, 4.0, 5.0, 6.0, 8.0], "low": [1.5, 2.0, 3.0], "edge_fraction": [0.1]}
#: The variants ``score`` compares: (name, config, overrides).
VARIANTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("today's spotter (baseline.yaml)", "baseline", ()),
    ("tuned thresholds, no module", "default",
     ("blinks.enabled=false", "head_motion.enabled=false", "talking.enabled=false")),
    ("+ blink suppression only", "default", ("head_motion.enabled=false", "talking.enabled=false")),
    ("+ head-motion compensation only", "default", ("blinks.enabled=false", "talking.enabled=false")),
    ("+ talking suppression only", "default", ("blinks.enabled=false", "head_motion.enabled=false")),
    ("all modules, video-only (default.yaml)", "default", ()),
    ("all modules, EMG-assisted (emg.yaml)", "emg", ()),
)


def session_path(data_dir: Path, profile: str, subject: int) -> Path:
    """Cached annotated session of one subject (identity_seed == rig seed == ``subject``)."""
    return Path(data_dir) / profile / f"sub-id{subject:03d}_seed{subject:03d}.h5"


def _slim_copy(src: Path, dst: Path, extra_streams: Path | None = None) -> None:
    """Copy a session without its video streams, adding the streams of ``extra_streams`` it lacks.

    HDF5 does not reclaim the space of deleted datasets, hence a copy.
    """
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
        if extra_streams is not None:
            with h5py.File(extra_streams, "r") as fextra:
                for name in fextra["streams"]:
                    if name not in group:
                        fextra.copy(fextra["streams"][name], group, name=name)


def _annotated(path: Path) -> bool:
    """True if ``path`` is a session that ``emosync annotate`` has finished (its AU stream is committed)."""
    if not path.exists():
        return False
    with h5py.File(path, "r") as f:
        return "RGB-AU" in f["streams"]


def _emg_coded(path: Path) -> None:
    """Add the ``emosync emg-code`` stream to a cached session if it has none."""
    from acquisition import open_session
    from acquisition.annotate.emg_coding import DERIVED_BY, emg_code_session

    with open_session(path) as s:
        done = any(st.info.get("derived_by") == DERIVED_BY for st in s.streams.values())
    if not done:
        emg_code_session(path, verbose="WARNING")


def prepare_sessions(profile: str, subjects: Sequence[int], *, duration_s: float, data_dir: Path,
                     annotated: str | None = None, width: int = 320, height: int = 240) -> list[Path]:
    """Simulate, annotate, EMG-code and cache one session per subject (skipping those already cached).

    ``annotated``: a path pattern with ``{profile}`` and ``{subject}`` of sessions that someone
    already simulated (same rig seed, identity and size) and annotated, e.g. those of
    ``benchmarks/rig_realism.py``; their missing rig streams (EMG) are simulated here, which is
    deterministic, without rendering video again.
    """
    from acquisition.annotate.face_tracking import annotate_session
    from synth.rig.offline import write_rig_session

    paths = []
    for subject in subjects:
        path = session_path(data_dir, profile, subject)
        paths.append(path)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            overrides = [f"identity_seed={subject}", f"rgb.width={width}", f"rgb.height={height}",
                         f"depth.width={width}", f"depth.height={height}"]
            with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
                given = Path(annotated.format(profile=profile, subject=subject)) if annotated else None
                extra = None
                if given is not None and not _annotated(given):
                    print(f"{profile}/{path.name}: {given} is not (yet) annotated; skipped", flush=True)
                    paths.pop()
                    continue
                if given is not None:
                    full = given
                    extra = Path(tmp) / "rest.h5"
                    write_rig_session(extra, duration_s=duration_s, seed=subject, profile=profile,
                                      overrides=overrides, modalities=["emg"])
                    print(f"{profile}/{path.name}: annotated video from {given}", flush=True)
                else:
                    full = Path(tmp) / "full.h5"
                    write_rig_session(full, duration_s=duration_s, seed=subject, profile=profile,
                                      overrides=overrides, modalities=MODALITIES)
                    summary = annotate_session(full, verbose="WARNING")
                    print(f"{profile}/{path.name}: face found in {summary['detection_rate']:.1%} of frames "
                          f"({summary['fps']:.0f} frames/s)", flush=True)
                slim = Path(tmp) / "slim.h5"
                _slim_copy(full, slim, extra)
                os.replace(slim, path)
        _emg_coded(path)
    return paths


def score_files(paths: Sequence[Path], config_name: str, overrides: Sequence[str]) -> list[dict]:
    """:func:`spot_eval` of every file (nothing written), against the rig's ``Markers``."""
    from acquisition.annotate.spotting import load_spot_config, score_session, spot_session

    config = load_spot_config(config_name, list(overrides))
    return [score_session(p, spot_session(p, write=False, config=config, verbose="ERROR"), "Markers",
                          verbose="ERROR") for p in paths]


def _subjects(spec: Sequence[str]) -> list[int]:
    """``["0-9", "12"]`` -> ``[0, ..., 9, 12]``."""
    out: list[int] = []
    for item in spec:
        lo, _, hi = item.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def _minutes(paths: Sequence[Path]) -> float:
    """Total duration of the annotated video of the sessions, in minutes."""
    from acquisition import open_session

    total = 0.0
    for path in paths:
        with open_session(path) as s:
            stamps = s.streams["RGB-AU"].timestamps
            total += float(stamps[-1] - stamps[0])
    return total / 60.0


def _f1(counts: Sequence[int]) -> float:
    tp, fp, fn = counts
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def tune(paths: Sequence[Path], config_name: str = "default") -> list[tuple[float, dict]]:
    """Grid search on the given (tuning) files: pooled micro F1 + overall F1, best first."""
    from acquisition.annotate.spotting import pool_scores

    results = []
    for values in itertools.product(*GRID.values()):
        params = dict(zip(GRID, values))
        if params["low"] >= params["high"]:
            continue
        pooled = pool_scores(score_files(paths, config_name, [f"{k}={v}" for k, v in params.items()]))
        objective = pooled["micro"]["f1"] + pooled["overall"]["f1"]
        results.append((objective, {**params, "micro_f1": pooled["micro"]["f1"],
                                    "overall_f1": pooled["overall"]["f1"]}))
        print(f"  {params}: micro F1 {pooled['micro']['f1']:.3f}, overall F1 {pooled['overall']['f1']:.3f}",
              flush=True)
    return sorted(results, key=lambda r: -r[0])


def _row(name: str, scores: list[dict]) -> str:
    from acquisition.annotate.spotting import pool_scores

    pooled = pool_scores(scores)
    cells = []
    for key in ("overall", "micro", "macro"):
        v = pooled[key]
        per_subject = np.array([_f1([s[key]["tp"], s[key]["fp"], s[key]["fn"]]) for s in scores])
        cells.append(f"**{v['f1']:.3f}** ({v['precision']:.2f}/{v['recall']:.2f}; {v['tp']}/{v['fp']}/{v['fn']}) "
                     f"{per_subject.mean():.2f} ± {per_subject.std():.2f} [{per_subject.min():.2f}, "
                     f"{per_subject.max():.2f}]")
    return f"| {name} | " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["prepare", "tune", "score"])
    parser.add_argument("--profiles", "--profile", nargs="+", default=["default"])
    parser.add_argument("--subjects", nargs="+", default=None,
                        help="Subject numbers or ranges (default: 0-9 for prepare/tune, 100-109 for score).")
    parser.add_argument("--config", default="default", help="tune: the spotting config whose thresholds to tune.")
    parser.add_argument("--duration", type=float, default=90.0, help="Seconds per session (prepare).")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "emosync-spotting")
    parser.add_argument("--annotated", default=None,
                        help="prepare: path pattern of already annotated sessions to reuse, with {profile} and "
                             "{subject}, e.g. /tmp/rig/{profile}-sub{subject}.h5 (EMG is simulated here).")
    args = parser.parse_args(argv)
    default_subjects = SCORING_SUBJECTS if args.step == "score" else TUNING_SUBJECTS
    subjects = _subjects(args.subjects) if args.subjects else list(default_subjects)
    if args.step == "tune" and set(subjects) & set(SCORING_SUBJECTS):
        parser.error(f"tune must not see the scoring subjects {SCORING_SUBJECTS[0]}-{SCORING_SUBJECTS[-1]}.")
    tic = time.perf_counter()
    if args.step == "prepare":
        for profile in args.profiles:
            prepare_sessions(profile, subjects, duration_s=args.duration, data_dir=args.data_dir,
                             annotated=args.annotated)
    elif args.step == "tune":
        paths = [session_path(args.data_dir, p, s) for p in args.profiles for s in subjects]
        print(f"Tuning {args.config} on {len(paths)} sessions: profiles {args.profiles}, subjects {subjects}")
        for objective, params in tune(paths, args.config)[:5]:
            print(f"best: {params} (objective {objective:.3f})")
    else:
        print(f"Spotting from estimated inputs (annotate at 320x240, emg-code), IoU >= 0.5, subjects {subjects} "
              "(identity_seed = rig seed; never used for tuning), simulated rig.\n"
              "Cells: **pooled F1** (precision/recall; TP/FP/FN pooled over subjects) per-subject F1 mean ± SD "
              "[min, max].\n")
        for profile in args.profiles:
            paths = [session_path(args.data_dir, profile, s) for s in subjects]
            print(f"\n#### `{profile}` profile ({_minutes(paths):.1f} min of video in all)\n")
            print("| spotter | overall F1 | micro F1 | macro F1 |")
            print("|---|---|---|---|")
            for name, config, overrides in VARIANTS:
                print(_row(name, score_files(paths, config, overrides)), flush=True)
    print(f"\nCommand: python benchmarks/spotting_eval.py {' '.join(sys.argv[1:] if argv is None else argv)}"
          f"  ({time.perf_counter() - tic:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
