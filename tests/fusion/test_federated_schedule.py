"""The rounds' learning rates and seeds (fusion.federated.schedule), by known answers."""

from __future__ import annotations

import math

import pytest

from fusion.config import OptimConfig
from fusion.federated.schedule import round_lr, round_seed, site_seed


def test_round_lr_is_the_cosine_over_rounds():
    optim = OptimConfig(lr=0.004, min_lr_ratio=0.25)
    rounds = 5
    lrs = [round_lr(optim, r, rounds) for r in range(1, rounds + 1)]
    assert lrs[0] == pytest.approx(0.004)
    assert lrs[-1] == pytest.approx(0.001)                                  # the floor: 0.25 x lr
    assert lrs[2] == pytest.approx(0.001 + 0.003 * 0.5)                     # half-way down the cosine
    assert lrs[1] == pytest.approx(0.001 + 0.003 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    assert round_lr(optim, 1, 1) == pytest.approx(0.004)                    # one round: no decay, no division by 0


def test_seeds_differ_by_round_and_site_and_repeat():
    assert round_seed(0, 1) != round_seed(0, 2) != round_seed(1, 1)
    seeds = {site_seed(round_seed(3, r), s) for r in (1, 2) for s in ("site_a", "site_b")}
    assert len(seeds) == 4
    assert site_seed(round_seed(3, 1), "site_a") == site_seed(round_seed(3, 1), "site_a")
    big = site_seed(round_seed(10**12, 10**6), "site_a")                    # folded into torch's seed range
    assert 0 <= big < 2**62
