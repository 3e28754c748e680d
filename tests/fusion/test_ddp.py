"""DDP: the gathered loss equals the single-process loss on the global batch; torchrun training runs and resumes.

Training runs the user's command, `torchrun ... -m emosync pretrain ...`.

Both use 2 gloo processes on CPU (no GPU needed).
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fusion.losses import MultiViewContrastiveLoss

from .conftest import write_small_session
from .test_train import SMALL

WORLD, N, D = 2, 8, 6  # global batch N, split in WORLD contiguous halves (lightly's gather order)
MODS = ["a", "b", "c"]
CASES = {  # name -> (kind, availability per modality over the global batch)
    "ntxent-complete": ("ntxent", {"a": [1] * N, "b": [1] * N, "c": [1] * N}),
    # b misses rows on both ranks, c has one valid row overall (< 2: zero term on every rank)
    "ntxent-missing": ("ntxent", {"a": [1] * N, "b": [1, 0, 1, 1, 0, 0, 1, 1], "c": [1, 0, 0, 0, 0, 0, 0, 0]}),
    "infonce-missing": ("infonce", {"a": [1] * N, "b": [1, 0, 1, 1, 0, 0, 0, 0], "c": [1, 1, 0, 1, 1, 1, 0, 1]}),
}


def _inputs(case: str):
    g = torch.Generator().manual_seed(0)
    z = {m: torch.randn(N, D, generator=g) for m in MODS}
    available = {m: torch.tensor(v, dtype=torch.bool) for m, v in CASES[case][1].items()}
    session = torch.tensor([0, 0, 0, 1, 0, 0, 1, 1])
    time_s = torch.tensor([0.0, 0.1, 2.0, 0.0, 0.2, 5.0, 0.1, 3.0])  # near-duplicates across ranks too
    return z, available, session, time_s


def _loss_and_grads(case: str, rows: slice):
    """Loss on ``rows`` of the global batch and its gradient w.r.t. those embeddings."""
    kind = CASES[case][0]
    torch.manual_seed(0)
    loss_fn = MultiViewContrastiveLoss(MODS, kind=kind, temperature=0.2, time_tolerance_s=0.5)
    z, available, session, time_s = _inputs(case)
    z = {m: v[rows].clone().requires_grad_(True) for m, v in z.items()}
    loss, _ = loss_fn(z, {m: v[rows] for m, v in available.items()}, session[rows], time_s[rows])
    loss.backward()
    return loss.detach(), {m: v.grad for m, v in z.items()}


def _worker(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        k = N // WORLD
        torch.save({case: _loss_and_grads(case, slice(rank * k, (rank + 1) * k)) for case in CASES},
                   Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gathered_loss_equals_single_process_loss(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    for case in CASES:
        want_loss, want_grads = _loss_and_grads(case, slice(None))
        # DDP averages over ranks: mean of rank losses and of (gathered) gradients = single-process values
        got_loss = torch.stack([r[case][0] for r in ranks]).mean()
        torch.testing.assert_close(got_loss, want_loss, msg=case)
        for m in MODS:
            got = torch.cat([r[case][1][m] for r in ranks]) / WORLD
            torch.testing.assert_close(got, want_grads[m], atol=1e-6, rtol=1e-5, msg=f"{case} {m}")


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(WORLD),
           "-m", "emosync", "pretrain", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert res.stdout.count("Pretrained model in") == 1  # rank 0 alone reports
    return res


@pytest.mark.timeout(240)
def test_torchrun_two_ranks_trains_and_resumes(tmp_path):
    fname = write_small_session(tmp_path / "a.h5", duration_s=4.0)
    run = tmp_path / "run"
    sets = [a for s in [*SMALL, "threads=1", "checkpoint_every=100"] for a in ("--set", s)]
    _torchrun(str(fname), "--config", "tiny", "--out", str(run), "--no-progress", *sets, "--set", "optim.steps=3")
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert state["step"] == 3 and len(state["rng_per_rank"]) == WORLD
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "config.yaml", "log.csv", "loss.png", "model"]
    with open(run / "log.csv") as f:  # rank 0 alone writes: one row per step
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3]
    _torchrun(str(fname), "--config", "tiny", "--out", str(run), "--no-progress", "--resume", *sets,
              "--set", "optim.steps=6")
    resumed = torch.load(run / "checkpoint.pt", weights_only=False)
    assert resumed["step"] == 6
    assert any(not torch.equal(state["model"][k], resumed["model"][k]) for k in state["model"])
    with open(run / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(1, 7))
    assert all(torch.isfinite(torch.tensor(float(r["loss"]))) for r in rows)
