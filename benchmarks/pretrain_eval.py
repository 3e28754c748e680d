"""Does multi-view pretraining help? Pretrained vs random init vs supervised, over seeds, on unseen subjects.

The protocol (subjects, rig profile, seeds, label fraction) is ``configs/pretrain/evaluation.yaml``
(:class:`fusion.evaluate.EvaluationProtocol`): simulated sessions of the training subjects
(pretraining, unlabelled; probe and baseline fitting, labelled) and of the scoring subjects (the
final figures; never used for any design decision). ``--tune`` scores on the tuning subjects
instead: use that while changing anything, and report only the scoring run. For every training
seed of the protocol (>= 3), from scratch:

1. pretrain the config (``tiny`` unless told; ``config.seed`` = the seed);
2. cross-modal retrieval R@1/5/10 for all 12 ordered pairs on the evaluated subjects' windows,
   pooled (chance 1/N) and within each session (chance 1/N_session: identity alone narrows the
   pooled candidates to one session), per session and averaged;
3. linear probe (logistic regression for the expression, ridge for the AUs) and kNN on frozen
   embeddings, fitted on the training subjects' windows (all labels, and ``label_fraction`` of them,
   the subset drawn with the seed), for the pretrained encoders and the same encoders at random init
   (initialised with the seed); and the same encoders trained from scratch on the same labelled subset
   with pretraining's budget and the probes' fusion (:func:`fusion.baselines.train_supervised`);
4. every metric with each modality, and EMG+EEG together, removed at test time.

Every learned figure is the mean and standard deviation over the seeds (never the best seed).
Prints markdown tables and the command that produced them; sessions are written once into
``--workdir`` and reused.

Run: python benchmarks/pretrain_eval.py [--protocol evaluation] [--protocol-set KEY=VALUE ...] [--tune]
         [--config tiny] [--steps N] [--set KEY=VALUE ...] [--threads 2] [--workdir DIR]
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
from fusion.evaluate import (EvaluationProtocol, embed_dataset, evaluate_embeddings, load_evaluation_protocol,
                             load_run, missing_modality_report, probe_report)
from fusion.train import make_dataset, pretrain

PROBE_METRICS = ("expr_uf1", "expr_uar", "expr_acc", "au_r2")


def subject_session(work: Path, protocol: EvaluationProtocol, subject: int) -> Path:
    """The session of one simulated subject (rig seed = identity seed = ``subject``), written if missing."""
    from synth.rig.offline import write_rig_session

    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    fname = data / f"{protocol.rig_profile}_sub{subject:03d}_{protocol.duration_s:g}s.h5"
    if not fname.exists():   # a --workdir of an earlier run: same protocol, same sessions
        write_rig_session(fname, duration_s=protocol.duration_s, seed=subject, profile=protocol.rig_profile,
                          overrides=[*protocol.rig_overrides, f"identity_seed={subject}"])
    return fname


def spread(values: list[float]) -> str:
    """``mean ± SD`` over seeds (sample SD), ``n/a`` if no value is finite."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return "n/a"
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v.mean():.3f}"


def run_seed(seed: int, train: list[Path], held: list[Path], config, work: Path, label_fraction: float) -> dict:
    """Every figure of one training seed: pretraining, random init, probes, supervised baseline."""
    config = config.model_copy(update={"seed": seed})
    run = work / f"run-seed{seed}"
    shutil.rmtree(run, ignore_errors=True)
    tic = time.perf_counter()
    pretrain(train, config, run, progress=False)
    t_pretrain = time.perf_counter() - tic
    model, config = load_run(run)
    mods = model.modalities
    stride = config.data.window_s   # non-overlapping evaluation windows
    train_ds, held_ds = make_dataset(train, config, stride_s=stride), make_dataset(held, config, stride_s=stride)
    emb_train, emb_held = embed_dataset(model, train_ds), embed_dataset(model, held_ds)
    report = evaluate_embeddings(emb_held, mods, probe_emb=emb_train)
    random_model = random_init_model(config, train_ds, seed=seed)
    rnd_train, rnd_held = embed_dataset(random_model, train_ds), embed_dataset(random_model, held_ds)
    probes = {}
    for name, (tr, te) in {"pretrained": (emb_train, emb_held), "random init": (rnd_train, rnd_held)}.items():
        probes[f"{name}, probe 100% labels"] = probe_report(te, mods, probe_emb=tr)[:2]
        probes[f"{name}, probe {label_fraction:.0%} labels"] = probe_report(
            te, mods, probe_emb=tr, label_fraction=label_fraction, seed=seed)[:2]
    tic = time.perf_counter()
    supervised = train_supervised(config, train_ds, label_fraction=label_fraction, seed=seed)
    t_supervised = time.perf_counter() - tic
    if supervised.steps_trained != config.optim.steps:   # the comparison is only fair at equal budgets
        raise RuntimeError(f"supervised baseline took {supervised.steps_trained} steps, pretraining "
                           f"{config.optim.steps}")
    probes[f"supervised from scratch, {label_fraction:.0%} labels"] = (supervised_scores(supervised, held_ds), None)
    return {"report": report, "probes": probes, "random_missing": missing_modality_report(rnd_held, mods,
                                                                                          probe_emb=rnd_train),
            "mods": mods, "t_pretrain": t_pretrain, "t_supervised": t_supervised, "window_s": config.data.window_s,
            "classes": len(np.unique(emb_held["expression"])), "steps": config.optim.steps,
            "batch_size": config.optim.batch_size}


def tables(results: list[dict], protocol: EvaluationProtocol, evaluated: list[int], header: str) -> list[str]:
    """Markdown: retrieval (pooled and within session), per-session retrieval, probes, missing modalities."""
    reports = [r["report"] for r in results]
    pairs = list(reports[0]["retrieval"])
    out = [header, "", "#### Cross-modal retrieval, evaluated subjects", "",
           "Pooled: each query ranked against all evaluated windows (chance 1/N). Within session: only against "
           "its own session's windows (chance 1/N_session, averaged over sessions); identity alone does not help "
           "there. Mean ± SD over seeds.", "",
           "| pair | R@1 pooled | R@5 pooled | chance pooled | R@1 / chance | R@1 within session | R@5 within session "
           "| chance within session | R@1 / chance |", "|---|---|---|---|---|---|---|---|---|"]
    for pair in pairs:
        pooled = [r["retrieval"][pair] for r in reports]
        within = [r["retrieval_within_session"][pair] for r in reports]
        out.append(f"| {pair} | {spread([p['R@1'] for p in pooled])} | {spread([p['R@5'] for p in pooled])} | "
                   f"{pooled[0]['chance']:.4f} | {np.mean([p['R@1'] / p['chance'] for p in pooled]):.1f}x | "
                   f"{spread([w['R@1'] for w in within])} | {spread([w['R@5'] for w in within])} | "
                   f"{within[0]['chance']:.4f} | {np.mean([w['R@1'] / w['chance'] for w in within]):.1f}x |")
    mean_pooled = [np.mean([r["retrieval"][p]["R@1"] for p in pairs]) for r in reports]
    mean_within = [np.mean([r["retrieval_within_session"][p]["R@1"] for p in pairs]) for r in reports]
    chance_pooled = reports[0]["retrieval"][pairs[0]]["chance"]
    chance_within = reports[0]["retrieval_within_session"][pairs[0]]["chance"]
    out += ["", f"Mean over pairs: R@1 pooled {spread(mean_pooled)} ({np.mean(mean_pooled) / chance_pooled:.1f}x "
            f"chance {chance_pooled:.4f}); within session {spread(mean_within)} "
            f"({np.mean(mean_within) / chance_within:.1f}x chance {chance_within:.4f}).", "",
            "Per evaluated session (within-session R@1, mean over the 12 pairs, mean ± SD over seeds):", "",
            "| session (subject) | windows | R@1 | chance | R@1 / chance |", "|---|---|---|---|---|"]
    per_pair = [r["retrieval_within_session"] for r in reports]
    for i, session in enumerate(per_pair[0][pairs[0]]["per_session"]):
        values = [np.mean([p[pair]["per_session"][i]["R@1"] for pair in pairs]) for p in per_pair]
        out.append(f"| {session['session']} (sub-id{evaluated[int(session['session'])]:03d}) | "
                   f"{session['n_windows']} | {spread(values)} | {session['chance']:.4f} | "
                   f"{np.mean(values) / session['chance']:.1f}x |")
    out += ["", "#### Probes of frozen embeddings vs baselines, evaluated subjects", "",
            "Expression (classes incl. neutral): UF1 (macro F1) / UAR (unweighted average recall) / accuracy of a "
            "class-balanced logistic probe; kNN UAR; AU: ridge R^2. Probes fitted on the training subjects' windows. "
            f"The {protocol.label_fraction:.0%} rows use the same labelled windows for probes and the supervised "
            "model (the subset drawn with the seed). Mean ± SD over seeds.", ""]
    for group in ("ALL", *[m.upper() for m in results[0]["mods"]]):
        out += [f"**{group}**", "", "| encoders | UF1 | UAR | acc | kNN UAR | AU R^2 |", "|---|---|---|---|---|---|"]
        for row in results[0]["probes"]:
            lin = [r["probes"][row][0][group] for r in results]
            knn = [r["probes"][row][1][group]["expr_uar"] if r["probes"][row][1] else np.nan for r in results]
            out.append(f"| {row} | " + " | ".join(spread([x[k] for x in lin]) for k in PROBE_METRICS[:3])
                       + f" | {spread(knn)} | {spread([x['au_r2'] for x in lin])} |")
        out.append("")
    out += ["#### Missing modalities at test time (pretrained; random init in brackets; mean over seeds)", "",
            "| removed | kept | mean R@1 pooled (remaining pairs) | linear UAR | kNN UAR | AU R^2 |",
            "|---|---|---|---|---|---|"]
    for drop, row in reports[0]["missing_modality"].items():
        pre = [r["missing_modality"][drop] for r in reports]
        rnd = [r["random_missing"][drop] for r in results]
        cells = [f"{spread([p[k] for p in pre])} ({np.nanmean([b[k] for b in rnd]):.3f})"
                 for k in ("mean_R@1", "expr_uar", "knn_uar", "au_r2")]
        out.append(f"| {drop} | {row['kept']} | " + " | ".join(cells) + " |")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="evaluation", help="configs/pretrain protocol name or a .yaml path.")
    parser.add_argument("--protocol-set", dest="protocol_overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="Protocol override, repeatable (e.g. 'train_subjects=[10,11,12]', duration_s=30).")
    parser.add_argument("--tune", action="store_true",
                        help="Score on the protocol's tuning subjects (for design decisions) instead of the "
                             "scoring subjects.")
    parser.add_argument("--config", default="tiny", help="Pretraining config name or path.")
    parser.add_argument("--steps", type=int, default=None, help="Pretraining steps (default: the config's); the "
                                                                "supervised baseline gets the same.")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="Pretraining config override, repeatable.")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default).")
    parser.add_argument("--workdir", type=Path, default=None, help="Keep sessions and runs here.")
    args = parser.parse_args(argv)
    logging.getLogger("emosync").setLevel(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    protocol = load_evaluation_protocol(args.protocol, args.protocol_overrides)
    steps = [f"optim.steps={args.steps}", f"checkpoint_every={args.steps}"] if args.steps else []
    config = load_pretrain_config(args.config, [*steps, *args.overrides])
    tmp = tempfile.TemporaryDirectory() if args.workdir is None else None
    work = Path(tmp.name) if tmp else args.workdir
    work.mkdir(parents=True, exist_ok=True)
    evaluated = protocol.tuning_subjects if args.tune else protocol.scoring_subjects
    tic = time.perf_counter()
    train = [subject_session(work, protocol, s) for s in protocol.train_subjects]
    held = [subject_session(work, protocol, s) for s in evaluated]
    t_data = time.perf_counter() - tic
    results = []
    for seed in protocol.seeds:
        tic = time.perf_counter()
        results.append(run_seed(seed, train, held, config, work, protocol.label_fraction))
        logger.warning("seed %d done in %.0f s", seed, time.perf_counter() - tic)
    r0 = results[0]
    header = (
        f"Command: `python {' '.join(sys.argv)}`\n\n"
        f"Simulated rig, profile `{protocol.rig_profile}` {protocol.rig_overrides}, {protocol.duration_s:g} s per "
        f"subject. Training subjects (pretraining; probe and baseline fitting) {protocol.train_subjects}; tuning "
        f"subjects {protocol.tuning_subjects}; scoring subjects {protocol.scoring_subjects}; **evaluated here: "
        f"{'tuning' if args.tune else 'scoring'} subjects {evaluated}**. Config {args.config} {args.overrides}, "
        f"{r0['steps']} steps of batch {r0['batch_size']} for pretraining and for the supervised baseline alike; "
        f"seeds {protocol.seeds}. {r0['report']['n_windows']} evaluated windows of {r0['window_s']:g} s, neutral "
        f"fraction {r0['report']['labels']['neutral_fraction']:.2f}, {r0['classes']} expression classes. Time: "
        f"data {t_data:.0f} s; per seed pretraining {spread([r['t_pretrain'] for r in results])} s, supervised "
        f"{spread([r['t_supervised'] for r in results])} s.")
    print("\n".join(tables(results, protocol, evaluated, header)))  # the benchmark's product is this markdown
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
