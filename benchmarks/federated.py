"""Benchmark federated pretraining (issue 16): federated vs centralized, and stragglers, sync vs async.

Data (the simulated light rig, ``synth.rig.offline``; written once per ``--workdir``):

- 4 sites (``--subjects-per-site``, default 2,3,4,3 simulated subjects, one ``--seconds`` session each,
  every subject its own face); non-IID: each site records its own mix of expressions
  (:data:`SITE_EMOTIONS`: positive, negative, surprise-heavy, mixed);
- held out: ``--heldout-subjects`` other subjects with every expression, never trained on.

Per seed (``--seeds``; the pretraining seed, which sets the initial model and the batches):

1. ``fedavg``: ``emosync federate local`` (real SuperLink and SuperNodes on 127.0.0.1), ``--rounds``
   rounds of ``--local-steps`` steps per site, the last site ``--slowdown`` times slower (a straggler;
   FedAvg waits for it, so its model is the one without the straggler, only later);
2. ``fedprox``: the same as ``fedavg`` with FedProx's proximal term (``--proximal-mu``), the remedy for
   non-IID sites (not in the default ``--arms``);
3. ``fedbuff``: the same straggler, asynchronous (``buffer_size`` 2), as many server versions as give
   the same number of site updates (``rounds * sites / 2``);
4. ``centralized``: ``emosync pretrain`` on all sites' sessions pooled, ``rounds * sites * local_steps``
   steps: the same total steps, data and batch size as FedAvg;
5. ``centralized_seq``: the same, ``rounds * local_steps`` steps: as many sequential steps as the
   global model of FedAvg makes (each round moves it by about one site's ``local_steps``).

Metrics: held-out cross-modal retrieval R@1 (``fusion.evaluate``, mean over the 12 ordered modality
pairs; chance printed) and, unless ``--no-recognition``, expression recognition UF1 (MEGC ``megc3``)
leave-one-subject-out over the held-out subjects with the frozen encoders and a linear probe
(``fusion.recognition``, ``configs/recognize/tiny.yaml``, ``--probe-steps``). Printed as mean and SD
over seeds, and the ratio federated / centralized per seed. Stragglers: wall time of each run, time
until FedBuff's mean site loss first reaches FedAvg's final one ("time to FedAvg's final loss"), and
MB sent per aggregation (both ways).

The straggler is ``run_local(slowdown={site: factor})`` (node config ``slowdown``: the site sleeps
``factor - 1`` times its training time each round), a benchmark-only knob that no command exposes.

Usage::

    python benchmarks/federated.py --quick                     # a few minutes: 1 seed, 2 rounds, tiny data
    python benchmarks/federated.py --seeds 3 --rounds 6 --local-steps 20 --json-out fed.json

With ``--json-out`` every finished run is written at once, and a rerun with the same ``--json-out`` and
``--workdir`` skips the runs already in it (the full benchmark takes hours here, so it can be stopped and resumed).
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

#: A small model (fast on CPU); the benchmark compares training set-ups, not encoders.
SMALL = ["data.clip_frames=4", "data.image_size=24", "data.window_s=0.5", "data.stride_s=0.25",
         "optim.batch_size=16", "optim.warmup_steps=2", "model.hidden_dim=32", "model.embed_dim=16",
         "model.encoders.rgb.kwargs.width=8", "model.encoders.depth.kwargs.width=4", "threads=1"]
#: Each site's expression mix (the non-IID part): MEGC positive, negative, surprise-heavy, mixed.
SITE_EMOTIONS = [["happiness"], ["anger", "disgust", "sadness", "fear", "contempt"], ["surprise", "fear"],
                 ["happiness", "anger", "surprise"]]
RIG = ["idle.enabled=true", "timeline.expressions_per_minute=40"]


def write_data(work: Path, subjects_per_site: list[int], seconds: float, n_heldout: int) -> tuple[list[Path],
                                                                                                 list[Path]]:
    """Site folders (one session per subject) and the held-out sessions; existing files are kept."""
    from synth.rig.offline import write_rig_session

    sites = []
    for s, n in enumerate(subjects_per_site):
        folder = work / f"site_{s}"
        folder.mkdir(parents=True, exist_ok=True)
        emotions = SITE_EMOTIONS[s % len(SITE_EMOTIONS)]
        for j in range(n):
            identity = 1000 + 10 * s + j
            fname = folder / f"sub{identity}.h5"
            mix = f"timeline.emotions=[{','.join(emotions)}]"
            if not fname.is_file():
                write_rig_session(fname, duration_s=seconds, seed=identity,
                                  overrides=[*RIG, f"identity_seed={identity}", mix])
        sites.append(folder)
    heldout = []
    for k in range(n_heldout):
        identity = 2000 + k
        fname = work / "heldout" / f"sub{identity}.h5"
        fname.parent.mkdir(exist_ok=True)
        if not fname.is_file():
            write_rig_session(fname, duration_s=seconds, seed=identity,
                              overrides=["idle.enabled=true", "timeline.expressions_per_minute=60",
                                         f"identity_seed={identity}"])
        heldout.append(fname)
    return sites, heldout


def score(run: Path, heldout: list[Path], *, recognition: bool, probe_steps: int, seed: int) -> dict:
    """Held-out R@1 (mean over ordered pairs) and chance; LOSO probe UF1 over the held-out subjects."""
    from fusion.evaluate import embed_sessions, load_run, retrieval_report

    # `emosync evaluate`'s retrieval figures, without the probes it also fits (a minute per run here)
    model, config = load_run(run)
    report = retrieval_report(embed_sessions(model, config, heldout), model.modalities)
    out = {"r1": float(np.mean([v["R@1"] for v in report.values()])),
           "r1_chance": float(np.mean([v["chance"] for v in report.values()]))}
    if recognition:
        from fusion.recognition.config import load_recognize_config
        from fusion.recognition.evaluate import loso
        from fusion.recognition.intervals import read_all_intervals
        from fusion.recognition.train import EncoderSource, read_clips

        source = EncoderSource(run)
        clips = read_clips(read_all_intervals(heldout), source.config)
        config = load_recognize_config("tiny", [f"seed={seed}", "mode=probe", f"optim.steps={probe_steps}",
                                                "threads=1"])
        rec = loso(clips, source, config)
        out.update(uf1=float(rec["uf1"]), uf1_chance=float(rec["chance_uf1"]))
    return out


def time_to_loss(records: list[dict], target: float) -> float:
    """``time_s`` of the first aggregation whose mean site loss is <= ``target`` (NaN: never)."""
    return next((float(r["time_s"]) for r in records if r["loss"] <= target), float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    parser.add_argument("--seed-list", default=None, help="comma-separated seeds instead (e.g. a tuning seed)")
    parser.add_argument("--arms", default="fedavg,fedbuff,centralized,centralized_seq", help="which runs to make")
    parser.add_argument("--server-lr", type=float, default=1.0, help="server step on the aggregate (fed arms)")
    parser.add_argument("--server-momentum", type=float, default=0.0, help="FedAvgM momentum (fed arms)")
    parser.add_argument("--proximal-mu", type=float, default=0.01, help="FedProx's mu (the fedprox arm)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--local-steps", type=int, default=20)
    parser.add_argument("--subjects-per-site", default="2,3,4,3")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each subject's session")
    parser.add_argument("--heldout-subjects", type=int, default=4)
    parser.add_argument("--slowdown", type=float, default=3.0, help="factor of the last site (1: none)")
    parser.add_argument("--buffer-size", type=int, default=2)
    parser.add_argument("--probe-steps", type=int, default=60)
    parser.add_argument("--no-recognition", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="1 seed, 2 rounds of 3 steps, 2 subjects x 8 s per site, 3 held out, 20 probe steps")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.rounds, args.local_steps, args.seconds = 1, 2, 3, 8.0
        args.subjects_per_site, args.heldout_subjects, args.probe_steps = "2,2,2,2", 3, 20
    logging.basicConfig(level=logging.WARNING)
    from acquisition import logger

    logger.setLevel(logging.WARNING)

    from fusion.config import load_pretrain_config
    from fusion.federated.config import load_federated_config
    from fusion.federated.launch import run_local
    from fusion.federated.processes import free_port
    from fusion.train import pretrain

    work = args.workdir or Path(tempfile.mkdtemp(prefix="fedbench-"))
    subjects = [int(x) for x in args.subjects_per_site.split(",")]
    sites, heldout = write_data(work, subjects, args.seconds, args.heldout_subjects)
    n_sites = len(sites)
    slow = {sites[-1].name: args.slowdown} if args.slowdown > 1 else {}
    rows: list[dict] = []
    if args.json_out and args.json_out.is_file():
        rows = json.loads(args.json_out.read_text())
        print(f"Resuming: {len(rows)} run(s) already in {args.json_out}", flush=True)

    def done(seed: int, run: str) -> bool:
        return any(r["seed"] == seed and r["run"] == run for r in rows)

    def save() -> None:
        if args.json_out:
            args.json_out.write_text(json.dumps(rows, indent=1))

    seeds = [int(x) for x in args.seed_list.split(",")] if args.seed_list else list(range(args.seeds))
    arms = args.arms.split(",")
    for seed in seeds:
        pretrain_overrides = [*SMALL, f"seed={seed}"]
        for strategy in ("fedavg", "fedprox", "fedbuff"):
            if done(seed, strategy) or strategy not in arms:
                continue
            rounds = args.rounds if strategy != "fedbuff" else max(1, args.rounds * n_sites // args.buffer_size)
            config = load_federated_config("tiny", [
                f"strategy={strategy}", f"rounds={rounds}", f"port={free_port()}", f"local_steps={args.local_steps}",
                f"buffer_size={args.buffer_size}", f"min_sites={n_sites}", "round_timeout_s=900",
                "wait_for_sites_s=300", f"server_lr={args.server_lr}", f"server_momentum={args.server_momentum}",
                f"proximal_mu={args.proximal_mu}"])
            config.pretrain_overrides = pretrain_overrides
            out = work / f"seed{seed}-{strategy}-{int(time.time())}"
            tic = time.perf_counter()
            records = run_local(sites, config, out, slowdown=slow)
            wall = time.perf_counter() - tic
            mu = config.proximal_mu if strategy == "fedprox" else None  # the others ignore it
            rows.append({"seed": seed, "run": strategy, "proximal_mu": mu, "wall_s": wall, "aggregations": len(records),
                         "site_updates": int(sum(r["sites"] for r in records)),
                         "mb_per_aggregation": float(np.mean([(r["bytes_down"] + r["bytes_up"]) / 1e6
                                                              for r in records])),
                         "final_loss": float(records[-1]["loss"]), "records": records,
                         **score(out, heldout, recognition=not args.no_recognition, probe_steps=args.probe_steps,
                                 seed=seed)})
            save()
            print(f"seed {seed} {strategy}: {wall:.0f} s, R@1 {rows[-1]['r1']:.3f}", flush=True)
        # centralized: the same total steps as the federation; centralized_seq: as many steps as the
        # global model's sequential ones (rounds x local steps), the budget FedAvg's model moves along
        for arm, steps in (("centralized", args.rounds * n_sites * args.local_steps),
                           ("centralized_seq", args.rounds * args.local_steps)):
            if done(seed, arm) or arm not in arms:
                continue
            config = load_pretrain_config("tiny", [*pretrain_overrides, f"optim.steps={steps}",
                                                   "checkpoint_every=100000"])
            out = work / f"seed{seed}-{arm}-{int(time.time())}"
            tic = time.perf_counter()
            pretrain([f for s in sites for f in sorted(s.glob("*.h5"))], config, out, progress=False)
            rows.append({"seed": seed, "run": arm, "steps": steps, "wall_s": time.perf_counter() - tic,
                         **score(out, heldout, recognition=not args.no_recognition, probe_steps=args.probe_steps,
                                 seed=seed)})
            save()
            print(f"seed {seed} {arm}: R@1 {rows[-1]['r1']:.3f}", flush=True)
    report(rows, args, subjects)


def _ms(values) -> str:
    values = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if not len(values):
        return "n/a"
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}" if len(values) > 1 else f"{values.mean():.3f}"


def report(rows: list[dict], args, subjects: list[int]) -> None:
    """Print the two markdown tables (mean ± SD over seeds)."""
    by = {name: [r for r in rows if r["run"] == name]
          for name in ("fedavg", "fedprox", "fedbuff", "centralized", "centralized_seq")}
    has_uf1 = "uf1" in rows[0]
    print(f"\n{len(subjects)} sites x {subjects} subjects x {args.seconds:g} s (non-IID expression mixes), "
          f"{args.heldout_subjects} held-out subjects; {args.rounds} rounds x {args.local_steps} local steps; "
          f"seeds {sorted({r['seed'] for r in rows})}; mean ± SD over seeds")
    print("\n| run | held-out R@1 | R@1 chance | R@1 fed / central |" + (" UF1 (LOSO probe) | UF1 chance "
                                                                        "| UF1 fed / central |" if has_uf1 else ""))
    print("|---|---|---|---|" + ("---|---|---|" if has_uf1 else ""))
    central = {r["seed"]: r for r in by["centralized"]}
    for name, runs in by.items():
        # Seeds with both arms only (a stopped run may lack the centralized one).
        paired = [r for r in runs if r["seed"] in central] if name != "centralized" else []
        ratio = [r["r1"] / central[r["seed"]]["r1"] for r in paired]
        line = f"| {name} | {_ms(r['r1'] for r in runs)} | {_ms(r['r1_chance'] for r in runs)} | {_ms(ratio)} |"
        if has_uf1:
            uratio = [r["uf1"] / central[r["seed"]]["uf1"] for r in paired]
            line += f" {_ms(r['uf1'] for r in runs)} | {_ms(r['uf1_chance'] for r in runs)} | {_ms(uratio)} |"
        print(line)
    fedavg = {r["seed"]: r for r in by["fedavg"]}
    reach = [time_to_loss(r["records"], fedavg[r["seed"]]["final_loss"]) for r in by["fedbuff"] if r["seed"] in fedavg]
    print(f"\nStragglers: last site {args.slowdown:g}x slower; FedBuff K={args.buffer_size}")
    print("| run | wall s | aggregations | site updates | time to FedAvg's final loss s | final loss | "
          "MB per aggregation |")
    print("|---|---|---|---|---|---|---|")
    for name in ("fedavg", "fedbuff"):
        runs = by[name]
        if not runs:
            continue
        to_target = ([r["records"][-1]["time_s"] for r in runs] if name == "fedavg" else reach)
        print(f"| {name} | {_ms(r['wall_s'] for r in runs)} | {runs[0]['aggregations']} | {runs[0]['site_updates']} "
              f"| {_ms(to_target)} ({sum(np.isfinite(to_target))}/{len(runs)} reached) "
              f"| {_ms(r['final_loss'] for r in runs)} | {_ms(r['mb_per_aggregation'] for r in runs)} |")


if __name__ == "__main__":
    main()
