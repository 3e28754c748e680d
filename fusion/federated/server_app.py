"""The Flower ``ServerApp``: resolve the configs, handshake with the sites, run the chosen loop.

The SuperLink starts it (``flwr run``) with the run config of :mod:`.app_bundle`: ``out`` (the run
folder), ``federated-config`` (JSON of :class:`~.config.FederatedConfig`), ``resume`` and
``expected-sites`` (0: wait for ``min_sites``). :func:`run_federation` is the whole job, callable
with any Flower ``Grid``.
"""

from __future__ import annotations

import json
import os

import torch
from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from acquisition import logger

from ..config import load_pretrain_config
from ..model import MultiModalEncoder
from .config import FederatedConfig
from .federation import Federation
from .rounds import run_fedbuff, run_sync
from .server_optimizer import ServerMomentum
from .run_folder import RunFolder
from .site import make_loss
from .weights import State, module_state, statistics_keys

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Entry point run by the SuperLink."""
    rc = context.run_config
    run_federation(grid, FederatedConfig.model_validate(json.loads(str(rc["federated-config"]))), str(rc["out"]),
                   resume=bool(rc["resume"]), expected_sites=int(rc["expected-sites"]))


def run_federation(grid: Grid, config: FederatedConfig, out: str | os.PathLike, *, resume: bool = False,
                   expected_sites: int = 0) -> State:
    """Run a federation to ``config.rounds`` aggregations; returns the final global state.

    Parameters
    ----------
    grid : flwr.serverapp.Grid
        The ServerApp's grid.
    config : FederatedConfig
        Strategy, rounds and timeouts.
    out : path-like
        The run folder (:class:`~.run_folder.RunFolder`).
    resume : bool
        Continue from the folder's last checkpoint.
    expected_sites : int
        Sites to wait for before the handshake (``federate local`` knows them; 0: ``min_sites``).
    """
    pretrain = load_pretrain_config(config.pretrain, config.pretrain_overrides)
    folder = RunFolder(out, pretrain_config=pretrain, federated_config=config, resume=resume)
    fed = Federation(grid, config, pretrain, folder, expected_sites=expected_sites)
    start, state, saved_server = 0, None, None
    if resume:
        ckpt = folder.load()
        saved_server = ckpt.get("server")
        start, state, fed.model_config = int(ckpt["version"]), ckpt["state"], ckpt["model_config"]
        logger.info("Resuming the federation in %s after round %d of %d", out, start, config.rounds)
    fed.wait_for_sites()
    fed.handshake_new()
    fed.require_sites()
    torch.manual_seed(pretrain.seed)
    model = MultiModalEncoder(**fed.model_config)
    loss_fn = make_loss(pretrain, model.modalities)
    if state is None:
        state = module_state(model, loss_fn)
    server = ServerMomentum(config.server_lr, config.server_momentum, statistics=statistics_keys(model, loss_fn))
    server.load_state_dict(saved_server)
    logger.info("Federation of %d site(s) %s, strategy %s, %d round(s)", len(fed.sites), sorted(fed.sites.values()),
                config.strategy, config.rounds)
    if config.strategy == "fedbuff":
        return run_fedbuff(fed, state, server, start_version=start)
    return run_sync(fed, state, server, start_round=start + 1)
