"""Which pretraining choices matter? Retrieval of config variants on the same simulated sessions.

Writes (once, kept in ``--workdir``) four training sessions of faces 0-3 and two held-out sessions
of unseen faces 98 and 99, 60 s each, light rig with idle behaviour and 60 expressions per
minute; then, for every ``--variant NAME 'KEY=VALUE;KEY=VALUE'``, pretrains the config with those
overrides and prints the held-out retrieval of every ordered pair as R@1 / chance and R@5 /
(5 / N), each held-out session scored on its own windows (N = 59) and the two averaged. The
variants share data, seed and evaluation, so their differences are the overrides' (and the
noise of a few windows: with N = 59 one window is 1x chance).

Run: python benchmarks/pretrain_ablation.py --steps 300 --threads 2 --workdir /tmp/ablation \\
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
from fusion.evaluate import embed_sessions, load_run, retrieval_report
from fusion.train import pretrain

RIG_OVERRIDES = ["timeline.expressions_per_minute=60", "idle.enabled=true"]
HELD_OUT_FACES = (98, 99)


def sessions(work: Path, duration_s: float, n_train: int = 4) -> tuple[list[Path], list[Path]]:
    """Training sessions of faces ``0 .. n_train - 1`` and the held-out ones (seed = face), written if missing."""
    from synth.rig.offline import write_rig_session

    train_faces = tuple(range(n_train))
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    out = {}
    for face in (*train_faces, *HELD_OUT_FACES):
        fname = data / f"face{face}_{duration_s:g}s.h5"
        if not fname.exists():
            write_rig_session(fname, duration_s=duration_s, seed=face,
                              overrides=[*RIG_OVERRIDES, f"identity_seed={face}"])
        out[face] = fname
    return [out[f] for f in train_faces], [out[f] for f in HELD_OUT_FACES]


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
    parser.add_argument("--duration", type=float, default=60.0, help="Seconds per session.")
    parser.add_argument("--train-faces", type=int, default=4, help="Training sessions (faces 0 .. N-1).")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--workdir", type=Path, required=True, help="Sessions are written once and reused here.")
    args = parser.parse_args(argv)
    logging.getLogger("emosync").setLevel(logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)
    train, held = sessions(args.workdir, args.duration, args.train_faces)
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
