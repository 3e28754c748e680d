"""Does multi-view pretraining learn? Retrieval, probes vs baselines, missing modalities on simulated sessions.

Writes simulated light-rig sessions straight from the generators (``synth.rig.offline``), one
subject per session (``identity_seed`` = the face, root ``subject_id`` = ``sub-id<identity>``),
with the ground-truth expression markers and, by default, the rig's idle behaviour (slow head
motion, tonic AU activity; ``--no-idle`` turns it off). Pretrains a config (``tiny`` unless told)
on the training sessions, then on held-out sessions of unseen subjects (``--held-out-sessions``,
2 by default; their windows are pooled):

1. cross-modal retrieval R@1/5/10 for all 12 ordered pairs vs chance (1/N, N = pooled windows);
2. linear probe (logistic regression for the expression, ridge for the AUs) and kNN on frozen
   embeddings, fitted on the training sessions' windows (100 % and 10 % of their labels) and
   scored on the held-out sessions, for the pretrained encoders and the same encoders at
   random init; and the same encoders trained from scratch on 10 % of the labels;
3. the same with each modality, and EMG+EEG together, removed at test time.

Prints markdown tables and the command that produced them.

Run: python benchmarks/pretrain_eval.py [--train-sessions 4] [--held-out-sessions 2] [--duration 60] [--steps 300]
         [--threads 2] [--config tiny] [--set KEY=VALUE ...] [--rig-set KEY=VALUE ...] [--no-idle]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from acquisition import logger
from fusion.baselines import random_init_model, supervised_scores, train_supervised
from fusion.config import load_pretrain_config
from fusion.evaluate import (embed_dataset, evaluate_embeddings, load_run, mean_dicts, missing_modality_report,
                             probe_report)
from fusion.train import make_dataset, pretrain

#: Rig overrides of every session: more expressions than the light profile, and idle behaviour (head motion,
#: tonic AUs) so that neutral moments differ between windows as they do in real recordings.
RIG_OVERRIDES = ["timeline.expressions_per_minute=60", "idle.enabled=true"]


def write_session(fname: Path, *, seed: int, identity: int, duration_s: float, overrides: list[str]) -> Path:
    """A simulated light-rig session (markers and ``subject_id = sub-id<identity>`` come with it); kept if it exists."""
    from synth.rig.offline import write_rig_session

    if fname.exists():  # a --workdir of an earlier run: same seeds, same sessions
        return fname
    return write_rig_session(fname, duration_s=duration_s, seed=seed,
                             overrides=[*overrides, f"identity_seed={identity}"])


def _mean_scores(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Group -> metric -> mean over runs (NaN-aware)."""
    return {group: mean_dicts([r[group] for r in runs]) for group in runs[0]}


def _fmt(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.3f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-sessions", type=int, default=4)
    parser.add_argument("--held-out-sessions", type=int, default=2, help="Sessions of unseen subjects to evaluate on.")
    parser.add_argument("--duration", type=float, default=60.0, help="Seconds per session.")
    parser.add_argument("--steps", type=int, default=300, help="Pretraining steps (tiny config).")
    parser.add_argument("--supervised-steps", type=int, default=300)
    parser.add_argument("--label-fraction", type=float, default=0.1)
    parser.add_argument("--seeds", type=int, default=3,
                        help="Label subsets (and supervised runs) averaged in the few-label rows.")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default).")
    parser.add_argument("--workdir", type=Path, default=None, help="Keep sessions and the run here.")
    parser.add_argument("--config", default="tiny", help="Pretraining config name or path.")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="Pretraining config override, repeatable.")
    parser.add_argument("--rig-set", dest="rig_overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="Rig config override for every session, repeatable.")
    parser.add_argument("--no-idle", action="store_true", help="Sessions without idle head motion / tonic AUs.")
    args = parser.parse_args(argv)
    logging.getLogger("emosync").setLevel(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory() if args.workdir is None else None
    work = Path(tmp.name) if tmp else args.workdir
    work.mkdir(parents=True, exist_ok=True)
    tic = time.perf_counter()
    rig = [o for o in RIG_OVERRIDES if not (args.no_idle and o.startswith("idle."))] + args.rig_overrides
    train = [write_session(work / f"train{i}.h5", seed=i, identity=i, duration_s=args.duration, overrides=rig)
             for i in range(args.train_sessions)]
    held = [write_session(work / f"heldout{i}.h5", seed=100 + i, identity=100 + i, duration_s=args.duration,
                          overrides=rig) for i in range(args.held_out_sessions)]
    t_data = time.perf_counter() - tic
    config = load_pretrain_config(args.config, [f"optim.steps={args.steps}", f"checkpoint_every={args.steps}",
                                                *args.overrides])
    shutil.rmtree(work / "run", ignore_errors=True)
    tic = time.perf_counter()
    pretrain(train, config, work / "run", progress=False)
    t_train = time.perf_counter() - tic

    tic = time.perf_counter()
    model, config = load_run(work / "run")
    mods = model.modalities
    stride = config.data.window_s   # non-overlapping evaluation windows
    train_ds, held_ds = make_dataset(train, config, stride_s=stride), make_dataset(held, config, stride_s=stride)
    emb_train, emb_held = embed_dataset(model, train_ds), embed_dataset(model, held_ds)
    report = evaluate_embeddings(emb_held, mods, probe_emb=emb_train)
    random_model = random_init_model(config, train_ds, seed=1)
    rnd_train, rnd_held = embed_dataset(random_model, train_ds), embed_dataset(random_model, held_ds)
    rows = {}
    seeds = range(args.seeds)   # label subsets: seed s picks the same windows for the probes and the supervised model
    for name, (tr, te) in {"pretrained": (emb_train, emb_held), "random init": (rnd_train, rnd_held)}.items():
        rows[f"{name}, probe 100% labels"] = probe_report(te, mods, probe_emb=tr)[:2]
        runs = [probe_report(te, mods, probe_emb=tr, label_fraction=args.label_fraction, seed=s)[:2] for s in seeds]
        rows[f"{name}, probe {args.label_fraction:.0%} labels"] = (_mean_scores([r[0] for r in runs]),
                                                                   _mean_scores([r[1] for r in runs]))
    supervised = [supervised_scores(train_supervised(config, train_ds, label_fraction=args.label_fraction,
                                                     steps=args.supervised_steps, seed=s), held_ds) for s in seeds]
    rows[f"supervised from scratch, {args.label_fraction:.0%} labels"] = (_mean_scores(supervised), None)
    random_missing = missing_modality_report(rnd_held, mods, probe_emb=rnd_train)
    t_eval = time.perf_counter() - tic

    out = [f"Command: `python {' '.join(sys.argv)}`", "",
           f"{len(train)} training sessions x {args.duration:g} s (subjects sub-id000..{len(train) - 1:03d}), "
           f"{len(held)} held-out sessions of unseen subjects (sub-id100..{99 + len(held):03d}); rig overrides {rig}; "
           f"config {args.config} "
           f"{args.overrides}, {args.steps} steps; {report['n_windows']} held-out "
           f"windows of {config.data.window_s:g} s; neutral fraction {report['labels']['neutral_fraction']:.2f}; "
           f"{len(np.unique(emb_held['expression']))} expression classes present. Time: data {t_data:.0f} s, "
           f"pretraining {t_train:.0f} s, evaluation + baselines {t_eval:.0f} s.", "",
           "### Cross-modal retrieval (held-out session)", "",
           "| pair | R@1 | R@5 | R@10 | chance R@1 | R@1 / chance |", "|---|---|---|---|---|---|"]
    for pair, r in report["retrieval"].items():
        out.append(f"| {pair} | {r['R@1']:.3f} | {r['R@5']:.3f} | {r['R@10']:.3f} | {r['chance']:.3f} | "
                   f"{r['R@1'] / r['chance']:.1f}x |")
    ratios = [r["R@1"] / r["chance"] for r in report["retrieval"].values()]
    out += ["", f"Mean R@1 {np.mean([r['R@1'] for r in report['retrieval'].values()]):.3f} "
            f"({np.mean(ratios):.1f}x chance); weakest pair {min(ratios):.1f}x chance; "
            f"{sum(x >= 3 for x in ratios)} of {len(ratios)} pairs at 3x chance or more."]
    out += ["", "### Probes of frozen embeddings vs baselines (held-out session)", "",
            "Expression: accuracy / UAR (unweighted average recall), classes incl. neutral; AU: ridge R^2. "
            f"Probes fitted on the training sessions' windows; few-label rows: mean over {args.seeds} label subsets "
            "(the same subsets for the probes and the supervised model).", ""]
    for group in ("ALL", *[m.upper() for m in mods]):
        out += [f"**{group}**", "", "| encoders | linear acc | linear UAR | kNN acc | kNN UAR | AU R^2 |",
                "|---|---|---|---|---|---|"]
        for name, (linear, knn) in rows.items():
            lin = linear[group]
            k = knn[group] if knn else {"expr_acc": float("nan"), "expr_uar": float("nan")}
            out.append(f"| {name} | {_fmt(lin['expr_acc'])} | {_fmt(lin['expr_uar'])} | {_fmt(k['expr_acc'])} | "
                       f"{_fmt(k['expr_uar'])} | {_fmt(lin['au_r2'])} |")
        out.append("")
    out += ["### Missing modalities at test time (pretrained; random init in brackets)", "",
            "| removed | kept | mean R@1 (remaining pairs) | linear acc | linear UAR | kNN acc | AU R^2 |",
            "|---|---|---|---|---|---|---|",
            f"| none | ALL | {np.mean([r['R@1'] for r in report['retrieval'].values()]):.3f} | "
            f"{_fmt(report['linear_probe']['ALL']['expr_acc'])} | {_fmt(report['linear_probe']['ALL']['expr_uar'])} | "
            f"{_fmt(report['knn']['ALL']['expr_acc'])} | {_fmt(report['linear_probe']['ALL']['au_r2'])} |"]
    for drop, r in report["missing_modality"].items():
        b = random_missing[drop]
        out.append(f"| {drop} | {r['kept']} | {_fmt(r['mean_R@1'])} ({_fmt(b['mean_R@1'])}) | "
                   f"{_fmt(r['expr_acc'])} ({_fmt(b['expr_acc'])}) | {_fmt(r['expr_uar'])} ({_fmt(b['expr_uar'])}) | "
                   f"{_fmt(r['knn_acc'])} ({_fmt(b['knn_acc'])}) | {_fmt(r['au_r2'])} ({_fmt(b['au_r2'])}) |")
    logger.info("pretrain_eval done")
    print("\n".join(out))  # the benchmark's product is this markdown on stdout
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
