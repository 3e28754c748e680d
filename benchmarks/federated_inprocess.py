"""FedAvg in one process: the federated benchmark's sites and training without Flower's processes.

``benchmarks/federated.py`` runs every site as a real SuperNode; on 2 cores most of a round is then
Flower's per-message cost (a fresh ClientApp process importing torch), so asking "why is FedAvg behind
centralized training?" costs minutes per answer. This script runs the same rounds in one process with
the sites' own code: :func:`fusion.federated.site.train_site` from the global state, the round's
learning rate and seeds of :mod:`fusion.federated.schedule`, and FedAvg's average weighted by windows
(:func:`fusion.federated.weights.weighted_average`). On the tuning seed 10 (6 rounds x 100 local steps)
it gave held-out R@1 0.079 where the Flower run gave 0.082 (Flower sums in another order; a few windows
change rank), so it answers the same question, not a different one.

Arms per seed (``--arms``):

- ``fedavg``: the benchmark's non-IID sites (each its own expression mix, ``federated.SITE_EMOTIONS``);
- ``fedavg_iid``: the same subjects regrouped across sites round-robin (same site sizes), so each site
  sees every expression mix; the control that tells non-IID drift from what averaging itself costs;
- ``centralized``: ``emosync pretrain`` on the pooled sessions, ``rounds x sites x local_steps`` steps.

Variants of the sites' and the server's step: ``--lr-scale`` (every site's learning rate times this) and
``--server-adam-lr`` (FedAdam, Reddi et al. 2021: an Adam step of the server on the mean update,
beta 0.9/0.99, tau 1e-3; 0 is plain FedAvg). Both were tried on the tuning seed and lost to plain
FedAvg (``benchmarks/RESULTS.md``), so neither is in ``emosync federate``.

    python benchmarks/federated_inprocess.py --seed-list 0,1,2 --arms fedavg,fedavg_iid --rounds 6 \\
        --local-steps 100 --workdir fed --json-out inprocess.json

``--workdir`` shares its data with ``benchmarks/federated.py`` (the same sites and held-out subjects
for the same ``--subjects-per-site``, ``--seconds``, ``--heldout-subjects``); finished runs in
``--json-out`` are skipped, so an interrupted benchmark continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from federated import SMALL, score, write_data  # noqa: E402  (the benchmark's data, model and scoring)


def regroup_iid(sites: list[Path], root: Path) -> list[Path]:
    """The same subjects dealt round-robin over as many sites of the same sizes (links, in ``root``)."""
    files = [sorted(s.glob("*.h5")) for s in sites]
    dealt = [f for k in range(max(map(len, files))) for group in files for f in group[k:k + 1]]
    out, start = [], 0
    for i, group in enumerate(files):
        folder = root / f"site_{i}"
        folder.mkdir(parents=True, exist_ok=True)
        for f in dealt[start:start + len(group)]:
            link = folder / f.name
            if not link.exists():
                link.symlink_to(f.resolve())
        start += len(group)
        out.append(folder)
    return out


class ServerAdam:
    """FedAdam's server step on the mean site update (Reddi et al. 2021); statistics take the mean."""

    def __init__(self, lr: float, statistics: set[str], beta1: float = 0.9, beta2: float = 0.99,
                 tau: float = 1e-3) -> None:
        self.lr, self.statistics, self.beta1, self.beta2, self.tau = lr, statistics, beta1, beta2, tau
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}

    def step(self, current: dict, aggregate: dict) -> dict:
        out = {}
        for k, w in current.items():
            if k in self.statistics:
                out[k] = aggregate[k]
                continue
            g = aggregate[k].astype(np.float64) - w.astype(np.float64)
            self.m[k] = self.beta1 * self.m.get(k, 0.0) + (1 - self.beta1) * g
            self.v[k] = self.beta2 * self.v.get(k, 0.0) + (1 - self.beta2) * g * g
            out[k] = (w + self.lr * self.m[k] / (np.sqrt(self.v[k]) + self.tau)).astype(w.dtype)
        return out


def run_fedavg(sites: list[Path], config, out: Path, *, rounds: int, local_steps: int, lr_scale: float,
               server_adam_lr: float) -> list[dict]:
    """FedAvg rounds over ``sites``; the global model is written to ``out`` as a pretraining run."""
    from fusion.federated.schedule import round_lr, round_seed, site_seed
    from fusion.federated.site import build_site_model, load_site, train_site
    from fusion.federated.weights import load_module_state, module_state, statistics_keys, weighted_average

    data = [load_site(sorted(s.glob("*.h5")), config, site=s.name) for s in sites]
    model, loss_fn = build_site_model(config, data[0])
    state = module_state(model, loss_fn)
    server = ServerAdam(server_adam_lr, set(statistics_keys(model, loss_fn))) if server_adam_lr > 0 else None
    records, tic = [], time.perf_counter()
    for r in range(1, rounds + 1):
        lr = lr_scale * round_lr(config.optim, r, rounds)
        updates = [train_site(d, config, state, steps=local_steps, lr=lr,
                              seed=site_seed(round_seed(config.seed, r), s.name)) for s, d in zip(sites, data)]
        mean = weighted_average([u.state for u in updates], [u.n_windows for u in updates])
        state = server.step(state, mean) if server else mean
        records.append({"round": r, "lr": lr, "loss": float(np.mean([u.loss for u in updates])),
                        "time_s": time.perf_counter() - tic})
        print(f"  round {r}: mean site loss {records[-1]['loss']:.3f}", flush=True)
    load_module_state(model, loss_fn, state)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out / "model")
    (out / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-list", default="0,1,2", help="comma-separated pretraining seeds")
    parser.add_argument("--arms", default="fedavg,fedavg_iid,centralized")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--local-steps", type=int, default=100)
    parser.add_argument("--lr-scale", type=float, default=1.0, help="sites' learning rate x this (fed arms)")
    parser.add_argument("--server-adam-lr", type=float, default=0.0, help="FedAdam server step (0: plain FedAvg)")
    parser.add_argument("--subjects-per-site", default="2,3,4,3")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each subject's session")
    parser.add_argument("--heldout-subjects", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()

    from acquisition import logger
    from fusion.config import load_pretrain_config
    from fusion.train import pretrain

    logger.setLevel("WARNING")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="fedinproc-"))
    sites, heldout = write_data(work, [int(x) for x in args.subjects_per_site.split(",")], args.seconds,
                                args.heldout_subjects)
    groupings = {"fedavg": sites, "fedavg_iid": regroup_iid(sites, work / "iid")}
    rows = json.loads(args.json_out.read_text()) if args.json_out and args.json_out.is_file() else []
    variant = {"rounds": args.rounds, "local_steps": args.local_steps, "lr_scale": args.lr_scale,
               "server_adam_lr": args.server_adam_lr}
    for seed in (int(x) for x in args.seed_list.split(",")):
        for arm in args.arms.split(","):
            key = {"seed": seed, "run": arm, **(variant if arm != "centralized" else
                                                 {"steps": args.rounds * len(sites) * args.local_steps})}
            if any(all(r.get(k) == v for k, v in key.items()) for r in rows):
                continue
            out = work / f"inprocess-seed{seed}-{arm}-{int(time.time())}"
            tic = time.perf_counter()
            if arm == "centralized":
                config = load_pretrain_config("tiny", [*SMALL, f"seed={seed}", f"optim.steps={key['steps']}",
                                                       "checkpoint_every=100000"])
                pretrain([f for s in sites for f in sorted(s.glob("*.h5"))], config, out, progress=False)
                records = []
            else:
                config = load_pretrain_config("tiny", [*SMALL, f"seed={seed}"])
                records = run_fedavg(groupings[arm], config, out, rounds=args.rounds, local_steps=args.local_steps,
                                     lr_scale=args.lr_scale, server_adam_lr=args.server_adam_lr)
            rows.append({**key, "wall_s": time.perf_counter() - tic, "records": records,
                         **score(out, heldout, recognition=False, probe_steps=0, seed=seed)})
            if args.json_out:
                args.json_out.write_text(json.dumps(rows, indent=1))
            print(f"seed {seed} {arm}: R@1 {rows[-1]['r1']:.3f}", flush=True)
    for arm in args.arms.split(","):
        r1 = [r["r1"] for r in rows if r["run"] == arm]
        if r1:
            print(f"{arm}: held-out R@1 {np.mean(r1):.3f} ± {np.std(r1, ddof=1) if len(r1) > 1 else 0:.3f} "
                  f"over {len(r1)} seed(s)")


if __name__ == "__main__":
    main()
