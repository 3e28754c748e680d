"""Benchmark federated pretraining at small size: synchronous FedAvg vs asynchronous FedBuff with a straggler.

Issue 16 asks for "Stragglers: one site 3x slower; time to reach the synchronous run's final metric,
async vs sync ... Bytes sent per round" and "Federated vs centralized, same total steps and data".
This script, at a size that runs in minutes on 2 CPU cores:

1. writes ``--sites`` site folders of ``--sessions-per-site`` light-rig sessions of ``--seconds`` each
   (``synth.rig.offline``; every session its own subject) and one held-out session;
2. runs ``emosync federate local`` (real SuperLink and SuperNodes on 127.0.0.1) with each strategy of
   ``--strategies``, the last site ``--slowdown`` times slower; sync runs ``--rounds`` rounds, FedBuff
   runs as many versions as give the same number of site updates (``rounds * sites / K``);
3. optionally (``--centralized``) runs ``emosync pretrain`` on all sessions with the same total steps
   (``rounds * sites * local_steps``);
4. evaluates every run on the held-out session (``fusion.evaluate``) and prints one row per run: wall
   time, time per aggregation, site updates, MB sent per aggregation (both ways), final mean site loss,
   held-out cross-modal R@1 (mean over ordered pairs) and its chance level; with ``--json-out`` a JSON file.

Usage::

    python benchmarks/federated.py                                  # 3 sites x 1 x 8 s, 3 rounds of 10 steps
    python benchmarks/federated.py --rounds 6 --local-steps 20 --centralized --json-out fed.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

#: The tests' small model (fast on CPU); the benchmark measures the federation, not the encoders.
SMALL = ["data.clip_frames=4", "data.image_size=24", "data.window_s=0.5", "data.stride_s=0.25",
         "optim.batch_size=16", "optim.warmup_steps=2", "model.hidden_dim=32", "model.embed_dim=16",
         "model.encoders.rgb.kwargs.width=8", "model.encoders.depth.kwargs.width=4", "threads=1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=3)
    parser.add_argument("--sessions-per-site", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--local-steps", type=int, default=10)
    parser.add_argument("--buffer-size", type=int, default=2)
    parser.add_argument("--slowdown", type=float, default=3.0, help="factor of the last site (1: none)")
    parser.add_argument("--strategies", default="fedavg,fedbuff")
    parser.add_argument("--centralized", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from synth.rig.offline import write_rig_session

    from fusion.config import load_pretrain_config
    from fusion.evaluate import evaluate
    from fusion.federated.config import load_federated_config
    from fusion.federated.launch import run_local
    from fusion.federated.processes import free_port
    from fusion.train import pretrain

    work = args.workdir or Path(tempfile.mkdtemp(prefix="fedbench-"))
    sites, seed = [], 0
    for s in range(args.sites):
        folder = work / f"site_{s}"
        folder.mkdir(parents=True, exist_ok=True)
        for _ in range(args.sessions_per_site):
            if not (folder / f"s{seed}.h5").is_file():
                write_rig_session(folder / f"s{seed}.h5", duration_s=args.seconds, seed=seed,
                                  overrides=[f"identity_seed={seed}"])
            seed += 1
        sites.append(folder)
    heldout = work / "heldout.h5"
    if not heldout.is_file():
        write_rig_session(heldout, duration_s=args.seconds, seed=999, overrides=["identity_seed=999"])
    slow = {sites[-1].name: args.slowdown} if args.slowdown > 1 else {}
    updates = args.rounds * args.sites
    rows = []
    for strategy in args.strategies.split(","):
        rounds = args.rounds if strategy != "fedbuff" else max(1, updates // args.buffer_size)
        config = load_federated_config("tiny", [f"strategy={strategy}", f"rounds={rounds}", f"port={free_port()}",
                                                f"local_steps={args.local_steps}", f"buffer_size={args.buffer_size}",
                                                f"min_sites={args.sites}", "round_timeout_s=600"])
        config.pretrain_overrides = list(SMALL)
        out = work / f"run-{strategy}-{int(time.time())}"
        tic = time.perf_counter()
        records = run_local(sites, config, out, slowdown=slow)
        wall = time.perf_counter() - tic
        first = records[0]["time_s"]
        rows.append(_row(strategy, out, wall, records, heldout, evaluate,
                         per_aggregation=(records[-1]["time_s"] - first) / max(1, len(records) - 1),
                         site_updates=sum(r["sites"] for r in records)))
    if args.centralized:
        config = load_pretrain_config("tiny", [*SMALL, f"optim.steps={updates * args.local_steps}",
                                               "checkpoint_every=100000"])
        out = work / f"run-centralized-{int(time.time())}"
        tic = time.perf_counter()
        pretrain([f for s in sites for f in sorted(s.glob("*.h5"))], config, out, progress=False)
        rows.append(_row("centralized", out, time.perf_counter() - tic, [], heldout, evaluate))
    print(f"\n{args.sites} sites x {args.sessions_per_site} x {args.seconds:.0f} s rig sessions, {args.local_steps} "
          f"local steps, last site {args.slowdown:g}x slower, K={args.buffer_size}; held-out: 1 session")
    print("| run | wall s | s per aggregation | aggregations | site updates | MB per aggregation | final loss "
          "| held-out R@1 | chance |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['wall_s']:.0f} | {r['s_per_aggregation']:.1f} | {r['aggregations']} | "
              f"{r['site_updates']} | {r['mb_per_aggregation']:.2f} | {r['final_loss']:.3f} | {r['r1']:.3f} | "
              f"{r['chance']:.3f} |")
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=1))


def _row(name, out, wall, records, heldout, evaluate, per_aggregation=float("nan"), site_updates=0) -> dict:
    report = evaluate(out, [heldout])
    r1 = float(np.mean([v["R@1"] for v in report["retrieval"].values()]))
    chance = float(np.mean([v["chance"] for v in report["retrieval"].values()]))
    mb = float(np.mean([(r["bytes_down"] + r["bytes_up"]) / 1e6 for r in records])) if records else 0.0
    return {"run": name, "wall_s": wall, "s_per_aggregation": per_aggregation, "aggregations": len(records),
            "site_updates": site_updates, "mb_per_aggregation": mb,
            "final_loss": records[-1]["loss"] if records else float("nan"), "r1": r1, "chance": chance}


if __name__ == "__main__":
    main()
