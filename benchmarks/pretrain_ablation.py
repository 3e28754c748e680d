"""Which pretraining choices matter? Retrieval of config variants on the same simulated sessions.

Design decisions are made here, so the held-out sessions are the protocol's *tuning* subjects,
never its scoring subjects (``configs/pretrain/evaluation.yaml``, see benchmarks/pretrain_eval.py).
Writes (once, kept in ``--workdir``) sessions of the first ``--train-faces`` training subjects and of
the first ``--tuning-faces`` tuning subjects, with the protocol's rig profile, overrides and
duration; then, for every ``--variant NAME 'KEY=VALUE;KEY=VALUE'``, pretrains the config with those
overrides and prints the held-out retrieval of every ordered pair as R@1 / chance and R@5 /
(5 / N), each held-out session scored on its own windows (within-session retrieval) and the
sessions averaged. The variants share data, seed and evaluation, so their differences are the
overrides' (and the noise of a few windows: with N = 59 one window is 1x chance). One seed per
variant: a screen, not a result; confirm a choice with pretrain_eval.py --tune (>= 3 seeds).

Run: python benchmarks/pretrain_ablation.py --steps 300 --threads 2 --workdir /tmp/ablation \\
         [--protocol evaluation] [--protocol-set KEY=VALUE ...] \\
         --variant base '' --variant pair-heads 'model.pair_heads=true'
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fusion.config import load_pretrain_config
from fusion.evaluate import EvaluationProtocol, embed_sessions, load_evaluation_protocol, load_run, retrieval_report
from fusion.train import pretrain
from pretrain_eval import subject_session


def sessions(work: Path, protocol: EvaluationProtocol, n_train: int, n_tuning: int) -> tuple[list[Path], list[Path]]:
    """Sessions of the first training and tuning subjects (rig seed = subject), written if missing."""
    if n_train > len(protocol.train_subjects) or n_tuning > len(protocol.tuning_subjects):
        raise ValueError(f"The protocol has {len(protocol.train_subjects)} training and "
                         f"{len(protocol.tuning_subjects)} tuning subjects; asked for {n_train} and {n_tuning}.")
    return ([subject_session(work, protocol, s) for s in protocol.train_subjects[:n_train]],
            [subject_session(work, protocol, s) for s in protocol.tuning_subjects[:n_tuning]])


def score(run: Path, held: list[Path]) -> dict[str, tuple[float, float]]:
    """Pair -> (R@1 / chance, R@5 / (5 / N)), averaged over the held-out sessions."""
    model, config = load_run(run)
    ratios: dict[str, list[tuple[float, float]]] = {}
    for fname in held:
        emb = embed_sessions(model, config, [fname])
        n = len(emb["time_s"])
        for pair, r in retrieval_report(emb, model.modalities).items():
            ratios.setdefault(pair, []).append((r["R@1"] * n, r["R@5"] * n / 5))
    return {pair: tuple(np.mean(v, axis=0)) for pair, v in ratios.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", nargs=2, action="append", required=True, metavar=("NAME", "OVERRIDES"),
                        help="A name and ';'-separated config overrides ('' for the config as it is); repeatable.")
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--protocol", default="evaluation", help="configs/pretrain protocol name or a .yaml path.")
    parser.add_argument("--protocol-set", dest="protocol_overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="Protocol override, repeatable (e.g. duration_s=30).")
    parser.add_argument("--train-faces", type=int, default=4, help="The first N training subjects of the protocol.")
    parser.add_argument("--tuning-faces", type=int, default=2, help="The first N tuning subjects (held out).")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--workdir", type=Path, required=True, help="Sessions are written once and reused here.")
    args = parser.parse_args(argv)
    logging.getLogger("emosync").setLevel(logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)
    protocol = load_evaluation_protocol(args.protocol, args.protocol_overrides)
    train, held = sessions(args.workdir, protocol, args.train_faces, args.tuning_faces)
    rows = []
    for name, overrides in args.variant:
        run = args.workdir / f"run-{name}"
        shutil.rmtree(run, ignore_errors=True)
        config = load_pretrain_config(args.config, [f"optim.steps={args.steps}", f"checkpoint_every={args.steps}",
                                                    *[o for o in overrides.split(";") if o]])
        tic = time.perf_counter()
        pretrain(train, config, run, progress=False)
        rows.append((name, overrides, time.perf_counter() - tic, score(run, held)))
    pairs = list(rows[0][3])
    print(f"Command: `python {' '.join(sys.argv)}`\n")  # the benchmark's product is this table
    print("| variant | overrides | train s | mean R@1 / chance | " + " | ".join(pairs) + " |")
    print("|---" * (4 + len(pairs)) + "|")
    for name, overrides, seconds, result in rows:
        cells = [f"{result[p][0]:.1f} / {result[p][1]:.1f}" for p in pairs]
        mean = np.mean([result[p][0] for p in pairs])
        print(f"| {name} | `{overrides or '-'}` | {seconds:.0f} | {mean:.1f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
