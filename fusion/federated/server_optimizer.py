"""The server's step on the aggregated update: FedAvgM server momentum (Hsu et al. 2019).

With ``K`` sites and the same total steps as centralized training, FedAvg makes ``1 / K`` as many
sequential updates of the global model: each round moves it by about one site's ``local_steps``.
A server learning rate and momentum on the mean update (the "pseudo-gradient") let the global
model move further per round; with ``server_lr = 1`` and ``server_momentum = 0`` the result is
exactly the aggregate (plain FedAvg / FedBuff).

Written here rather than taken from Flower's ``FedAvgM`` for two reasons: Flower's strategy steps
every array, BatchNorm running statistics included (momentum can push a running variance below
zero), and it keeps its momentum in memory, so a resumed federation would restart it. Here the
statistics take the aggregate's value and the velocity is part of the run folder's checkpoint.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np

from .weights import State


class ServerMomentum:
    """``v = beta * v + (w_agg - w)``, ``w = w + lr * v`` on parameters; statistics become ``w_agg``.

    Parameters
    ----------
    lr : float
        Server learning rate (1.0: the aggregate itself when ``momentum`` is 0).
    momentum : float
        ``beta`` in [0, 1); 0 disables the velocity.
    statistics : collection of str
        State keys that are running statistics or counters (BatchNorm buffers): never stepped.
    """

    def __init__(self, lr: float = 1.0, momentum: float = 0.0, statistics: Collection[str] = ()) -> None:
        if lr <= 0 or not 0 <= momentum < 1:
            raise ValueError(f"server_lr must be > 0 and server_momentum in [0, 1), got {lr} and {momentum}.")
        self.lr, self.momentum, self.statistics = float(lr), float(momentum), frozenset(statistics)
        self.velocity: State | None = None

    @property
    def is_identity(self) -> bool:
        """True when a step returns the aggregate unchanged (plain averaging)."""
        return self.lr == 1.0 and self.momentum == 0.0

    def step(self, current: Mapping[str, np.ndarray], aggregate: Mapping[str, np.ndarray]) -> State:
        """The next global state from the current one and the strategy's aggregate of the site updates."""
        if self.is_identity:
            return {k: np.asarray(aggregate[k]).astype(np.asarray(v).dtype) for k, v in current.items()}
        previous = self.velocity or {}
        velocity, out = {}, {}
        for k, w in current.items():
            w = np.asarray(w)
            if k in self.statistics:
                out[k] = np.asarray(aggregate[k]).astype(w.dtype).reshape(w.shape)
                continue
            update = np.asarray(aggregate[k], dtype=np.float64).reshape(w.shape) - w.astype(np.float64)
            velocity[k] = self.momentum * previous.get(k, 0.0) + update
            out[k] = (w.astype(np.float64) + self.lr * velocity[k]).astype(w.dtype)
        self.velocity = velocity  # a new dict: a saved state_dict() is never changed afterwards
        return out

    def state_dict(self) -> dict:
        """What the run folder's checkpoint keeps (the velocity), so ``--resume`` continues it."""
        return {"velocity": self.velocity}

    def load_state_dict(self, saved: Mapping | None) -> None:
        """Restore :meth:`state_dict`'s output (``None``: a checkpoint written before server momentum)."""
        self.velocity = None if not saved else saved.get("velocity")
