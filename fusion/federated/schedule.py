"""What each round asks of a site: its learning rate and the seed of its batches.

Kept apart from the Flower apps (no ``flwr`` import) so that the server, the sites and the in-process
benchmark (``benchmarks/federated_inprocess.py``) compute the same schedule from one place.
"""

from __future__ import annotations

import zlib

from ..config import OptimConfig


def round_lr(optim: OptimConfig, round_: int, rounds: int) -> float:
    """The pretraining config's cosine decay (``optim.lr`` to ``optim.min_lr_ratio * lr``), over rounds.

    Round 1 trains at ``optim.lr`` and round ``rounds`` at the floor; ``optim.warmup_steps`` does not
    apply (each site's optimizer starts fresh every round).
    """
    return optim.lr * optim.decay_factor((round_ - 1) / max(1, rounds - 1))


def round_seed(run_seed: int, round_: int) -> int:
    """The one seed the server sends with round ``round_`` of a run seeded ``run_seed``."""
    return run_seed * 100_003 + round_


def site_seed(round_seed: int, site: str) -> int:
    """A site's seed for the round: the round's seed mixed with the site's name, so sites draw different batches."""
    return (round_seed * 1_000_003 + zlib.crc32(site.encode())) % 2**62
