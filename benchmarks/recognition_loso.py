"""Expression recognition, leave-one-subject-out: pretrained vs scratch, probe vs fine-tune, labels, modalities.

Simulated rig (``--profile``, light resolution 160x120; ``realistic`` once ``configs/rig/realistic.yaml``
exists, else ``light`` with idle head motion and tonic AUs). Subjects:

- scored: identity seeds ``--subjects`` (default 200-215, one ``--duration`` s session each, rig seed =
  identity seed), never used to tune anything;
- pretraining: identity seeds ``--pretrain-subjects`` (default 300-307), labels unused; one
  ``emosync pretrain`` run (``configs/pretrain/tiny.yaml``) per pretraining seed;
- tuning (not run here): identity seeds 0-9 only.

For each seed ``s`` (0..``--seeds``-1) and label fraction, MEGC 2019 UF1/UAR over the 16 folds
(:func:`fusion.recognition.evaluate.loso`, ``configs/recognize/tiny.yaml``) of

- ``scratch-finetune``: the tiny encoders from random init (seed s), trained end to end;
- ``pretrained-probe``: pretraining run s, frozen, linear classifier only;
- ``pretrained-finetune``: pretraining run s, trained end to end;

same architecture, fusion and step budget; the label subset of a fold is drawn with seed s. Then the
modality ablation (rgb, depth, emg, rgb+depth, all) at ``--ablation-fraction``. Every figure is the
mean and SD over seeds. Results are appended to ``<workdir>/runs.jsonl`` as they finish (a rerun
skips finished runs), and the markdown summary is written to ``--out``.

Run: python benchmarks/recognition_loso.py [--workdir DIR] [--seeds 3] [--duration 60] [--steps 60]
         [--fractions 0.1,0.25,1.0] [--threads 1] [--out results.md]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

from acquisition import logger
from fusion.config import load_pretrain_config
from fusion.recognition.config import load_recognize_config
from fusion.recognition.evaluate import check_subjects, loso
from fusion.recognition.intervals import read_all_intervals
from fusion.recognition.train import EncoderSource, read_clips
from fusion.train import pretrain

ROOT = Path(__file__).resolve().parents[1]
ABLATION = {"RGB": ["rgb"], "depth": ["depth"], "EMG": ["emg"], "RGB+depth": ["rgb", "depth"],
            "all": ["rgb", "depth", "emg", "eeg"]}
VARIANTS = {"scratch-finetune": (False, "finetune"), "pretrained-probe": (True, "probe"),
            "pretrained-finetune": (True, "finetune")}


def rig_profile(requested: str) -> tuple[str, list[str]]:
    """Profile and overrides: realistic at light resolution when it exists, else light with idle behaviour."""
    if requested == "auto":
        requested = "realistic" if (ROOT / "configs/rig/realistic.yaml").is_file() else "light"
    if requested == "light":
        return "light", ["idle.enabled=true"]
    return requested, ["rgb.width=160", "rgb.height=120", "depth.width=160", "depth.height=120"]


def session(work: Path, subject: int, duration_s: float, profile: str, overrides: list[str], epm: float) -> Path:
    """One subject's session (rig seed = identity seed), written if missing."""
    from synth.rig.offline import write_rig_session

    fname = work / "data" / f"{profile}_sub{subject:03d}_{duration_s:g}s_{epm:g}epm.h5"
    if not fname.exists():   # written under a temporary name: an interrupted write is never reused
        fname.parent.mkdir(parents=True, exist_ok=True)
        partial = fname.with_suffix(".partial.h5")
        partial.unlink(missing_ok=True)
        write_rig_session(partial, duration_s=duration_s, seed=subject, profile=profile,
                          overrides=[*overrides, f"identity_seed={subject}", f"timeline.expressions_per_minute={epm}"],
                          modalities=("rgb", "depth", "emg", "eeg", "markers"))
        partial.rename(fname)
    return fname


def subject_range(text: str) -> list[int]:
    a, b = (int(v) for v in text.split("-"))
    return list(range(a, b + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/recognition_loso"))
    parser.add_argument("--profile", default="auto", help="rig profile: auto (realistic if present), light, ...")
    parser.add_argument("--subjects", default="200-215")
    parser.add_argument("--pretrain-subjects", default="300-307")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--epm", type=float, default=40.0, help="timeline.expressions_per_minute")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--fractions", default="0.1,0.25,1.0")
    parser.add_argument("--ablation-fraction", type=float, default=1.0)
    parser.add_argument("--ablation-variants", default="scratch-finetune,pretrained-probe")
    parser.add_argument("--pretrain-seeds", type=int, default=None,
                        help="pretraining runs (default: one per seed); recognizer seed s uses run s mod this")
    parser.add_argument("--pretrain-duration", type=float, default=None, help="seconds per pretraining session")
    parser.add_argument("--steps", type=int, default=60, help="recognizer training steps (every variant)")
    parser.add_argument("--pretrain-steps", type=int, default=150)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="markdown summary to write")
    parser.add_argument("--only-summary", action="store_true", help="summarise runs.jsonl, train nothing")
    args = parser.parse_args()
    logger.setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    profile, overrides = rig_profile(args.profile)
    runs_file = work / "runs.jsonl"
    seeds = list(range(args.seeds))
    fractions = [float(f) for f in args.fractions.split(",")]
    if not args.only_summary:
        tic = time.perf_counter()
        scored = [session(work, s, args.duration, profile, overrides, args.epm) for s in subject_range(args.subjects)]
        unlabelled = [session(work, s, args.pretrain_duration or args.duration, profile, overrides, args.epm)
                      for s in subject_range(args.pretrain_subjects)]
        print(f"sessions ready ({time.perf_counter() - tic:.0f} s)", flush=True)
        runs = {}
        n_pretrain = args.pretrain_seeds or len(seeds)
        for seed in range(n_pretrain):
            out = work / f"pretrain_seed{seed}"
            if not (out / "model" / "config.json").is_file():
                tic = time.perf_counter()
                pretrain(unlabelled, load_pretrain_config("tiny", [f"seed={seed}", f"optim.steps={args.pretrain_steps}",
                                                                   f"threads={args.threads}"]), out, progress=False)
                print(f"pretrained seed {seed} ({time.perf_counter() - tic:.0f} s)", flush=True)
            runs[seed] = out
        intervals = read_all_intervals(scored)
        check_subjects(intervals)
        scratch = EncoderSource(None, "tiny")
        tic = time.perf_counter()
        clips = read_clips(intervals, scratch.config)
        print(f"{len(clips)} clips of {len(set(clips.subjects))} subjects read ({time.perf_counter() - tic:.0f} s)",
              flush=True)
        done = {json.dumps(r["key"]) for r in _runs(runs_file)}
        # Cheap runs first (frozen-encoder probes, the ablation), then the fine-tunes, label fractions in the
        # order given: on a busy CPU the most important figures are there first.
        ablation = [(args.ablation_fraction, v, a, s) for a in ABLATION for s in seeds
                    for v in args.ablation_variants.split(",")]
        plan = [(f, "pretrained-probe", "all", s) for f in fractions for s in seeds] + ablation
        plan += [(f, v, "all", s) for f in fractions for s in seeds for v in VARIANTS if v != "pretrained-probe"]
        for fraction, variant, mods, seed in plan:
            key = {"fraction": fraction, "variant": variant, "modalities": mods, "seed": seed, "steps": args.steps}
            if json.dumps(key) in done:
                continue
            done.add(json.dumps(key))
            pretrained, mode = VARIANTS[variant]
            source = EncoderSource(runs[seed % n_pretrain]) if pretrained else scratch
            if source.config.data != scratch.config.data:
                sys.exit("The pretraining runs' clip geometry differs from configs/pretrain/tiny.yaml: rerun them.")
            config = load_recognize_config("tiny", [f"seed={seed}", f"mode={mode}", f"label_fraction={fraction}",
                                                    f"optim.steps={args.steps}",
                                                    "modalities=[" + ",".join(ABLATION[mods]) + "]"])
            tic = time.perf_counter()
            report = loso(clips, source, config)
            report["key"], report["seconds"] = key, time.perf_counter() - tic
            report["profile"], report["rig_overrides"] = profile, overrides
            report["pretrain_run"] = str(runs[seed % n_pretrain]) if pretrained else None
            with open(runs_file, "a") as f:
                f.write(json.dumps(report) + "\n")
            print(f"{variant:20s} {mods:9s} labels {fraction:4.2f} seed {seed}: UF1 {report['uf1']:.3f} "
                  f"UAR {report['uar']:.3f} (chance UF1 {report['chance_uf1']:.3f}) {report['seconds']:.0f} s",
                  flush=True)
    text = summary(list(_runs(runs_file)), args)
    print(text)
    if args.out:
        args.out.write_text(text)


def _runs(path: Path):
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                yield json.loads(line)


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1) if len(values) > 1 else 0:.3f} (n={len(values)})"


def summary(runs: list[dict], args: argparse.Namespace) -> str:
    """Markdown tables: mean ± SD over seeds of UF1 / UAR per variant and label fraction, and the ablation."""
    if not runs:
        return "No runs yet.\n"
    first = runs[0]
    n_subjects = len(first["per_fold"])
    lines = [f"Simulated rig, profile `{first['profile']}` (overrides {first['rig_overrides']}), {n_subjects} "
             f"scored subjects (identity seeds {args.subjects}), {first['n_clips']} clips ({args.duration:g} s per "
             f"subject, {args.epm:g} expressions/min), classes {first['classes']}; pretraining on identity seeds "
             f"{args.pretrain_subjects} (labels unused), tuning seeds 0-9; {args.steps} training steps for every "
             "variant. Cells: mean ± SD over seeds (n = seeds), LOSO over all subjects; SD is ddof=1.", ""]
    fractions = sorted({r["key"]["fraction"] for r in runs if r["key"]["modalities"] == "all"})
    lines += ["| variant | " + " | ".join(f"UF1 @ {f:.0%} labels | UAR @ {f:.0%}" for f in fractions) + " |",
              "|---|" + "---|---|" * len(fractions)]
    for variant in VARIANTS:
        cells = []
        for f in fractions:
            rows = [r for r in runs if r["key"]["variant"] == variant and r["key"]["fraction"] == f
                    and r["key"]["modalities"] == "all"]
            cells += [_cell([r["uf1"] for r in rows]), _cell([r["uar"] for r in rows])]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    chance = [r for r in runs if r["key"]["modalities"] == "all"]
    cells = []
    for f in fractions:
        rows = [r for r in chance if r["key"]["fraction"] == f]
        cells += [_cell([r["chance_uf1"] for r in rows]), _cell([r["chance_uar"] for r in rows])]
    lines.append("| chance (training prior) | " + " | ".join(cells) + " |")
    abl_f = args.ablation_fraction
    lines += ["", f"Modality ablation at {abl_f:.0%} labels (UF1 / UAR, mean ± SD over seeds):", "",
              "| modalities | scratch-finetune UF1 | scratch-finetune UAR | pretrained-probe UF1 "
              "| pretrained-probe UAR |",
              "|---|---|---|---|---|"]
    for name in ABLATION:
        cells = []
        for variant in ("scratch-finetune", "pretrained-probe"):
            rows = [r for r in runs if r["key"]["variant"] == variant and r["key"]["fraction"] == abl_f
                    and r["key"]["modalities"] == name]
            cells += [_cell([r["uf1"] for r in rows]), _cell([r["uar"] for r in rows])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    seconds = [r["seconds"] for r in runs]
    lines += ["", f"Run times: median {np.median(seconds):.0f} s per LOSO run (range {min(seconds):.0f}-"
              f"{max(seconds):.0f} s, {len(seconds)} runs), {args.threads} torch thread(s) on a shared 2-core CPU."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
