"""Optional privacy of the updates: differential privacy (DP-FedAvg) and SecAgg+ secure aggregation.

Both work on synchronous rounds only (``fedavg``, ``fedprox``; :mod:`.config` refuses FedBuff with a
reason) and both are Flower's own code; this module only wires them to our rounds and protocol.

**Differential privacy** (``privacy.dp``; McMahan et al. 2018, "Learning differentially private
recurrent language models"; Flower's fixed-clipping wrappers). Each site's update
``u_i = w_site - w_global`` (every array together) is clipped to L2 norm ``C = clipping_norm``: at the
site by Flower's ``fixedclipping_mod`` (``clipping: client``, the default: the unclipped update never
leaves the site) or at the server (``DifferentialPrivacyServerSideFixedClipping``). The server averages
the ``m`` clipped updates with **equal weights** and adds Gaussian noise of standard deviation
``z * C / m`` (``z = noise_multiplier``) to every entry of the average. One round is then a Gaussian
mechanism with noise multiplier ``z`` on a sum of sensitivity ``C`` (one site added or removed), and
every site takes part in every round (sampling rate 1: no amplification by sampling). :class:`EpsilonAccountant`
composes the rounds with opacus' RDP accountant (``opacus.accountants.RDPAccountant``) and reports
``epsilon`` at ``delta``. The unit of privacy is a **site** (all its sessions), and the guarantee covers
the model weights only: the window counts and losses a site reports are not noised (as in Flower).

**Secure aggregation** (``privacy.secagg``; Bell et al. 2020, SecAgg+). The server learns only the
sum of the round's updates: each site masks its quantized update with pairwise masks agreed with
its neighbours and a private mask whose seed is secret-shared; the masks cancel in the sum, and a site
that drops out after sending is unmasked from ``reconstruction_threshold`` shares. Flower 1.42 ships
SecAgg+ only for its legacy strategy API (``SecAggPlusWorkflow`` drives a ``LegacyContext`` with a
``configure_fit`` / ``aggregate_fit`` strategy; ``secaggplus_mod`` expects ``FitIns`` / ``FitRes``
records): :func:`secagg_round` runs the workflow with a small adapter on the server, and
:func:`privacy_mod` translates on the site. Sites send their update (not their weights) through it,
so ``clipping_range`` bounds an update entry; a site whose update exceeds it refuses the round with
the value to set, instead of being clipped silently. Each SecAgg+ round costs four message exchanges
instead of one. With both on, clipping happens at the site and the noise is added to the
unmasked average.

Integer counters (BatchNorm's ``num_batches_tracked``) hold no data: in private rounds a site sends
them unchanged, and the server advances them by ``local_steps`` (what plain FedAvg gives).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp.mod import fixedclipping_mod
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS
from flwr.serverapp.strategy import (DifferentialPrivacyClientSideFixedClipping,
                                     DifferentialPrivacyServerSideFixedClipping, FedAvg)
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM, add_gaussian_noise_inplace, compute_stdv

from acquisition import logger

from . import protocol as p
from .config import DPConfig, SecAggConfig

if TYPE_CHECKING:
    from .weights import State

#: The config record every SecAgg+ stage message carries.
SECAGG_RECORD = RECORD_KEY_CONFIGS
ACCOUNTANT = "opacus RDPAccountant (Renyi DP, sample rate 1, add/remove-one-site)"


# -- differential privacy ----------------------------------------------------------
def dp_strategy(strategy: FedAvg, dp: DPConfig, n_sites: int):
    """Flower's fixed-clipping DP wrapper around ``strategy`` for a round of ``n_sites`` sites.

    Parameters
    ----------
    strategy : flwr.serverapp.strategy.FedAvg
        The round's strategy (FedAvg or FedProx, weighting by ``weight``: 1 per site under DP).
    dp : DPConfig
        Noise multiplier, clipping norm and where clipping happens (``client``: Flower's
        ``fixedclipping_mod`` at the site, which :func:`privacy_mod` applies when asked; ``server``).
    n_sites : int
        Sites asked to train; the server sets ``num_sampled_clients`` to the replies that arrived
        before aggregating, so the noise is ``z * C / m`` for the mean of the ``m`` actual updates.

    Returns
    -------
    strategy : DifferentialPrivacyClientSideFixedClipping | DifferentialPrivacyServerSideFixedClipping
    """
    cls = (DifferentialPrivacyClientSideFixedClipping if dp.clipping == "client"
           else DifferentialPrivacyServerSideFixedClipping)
    return cls(strategy, noise_multiplier=dp.noise_multiplier, clipping_norm=dp.clipping_norm,
               num_sampled_clients=max(1, n_sites))


def noise_std(dp: DPConfig, n_sites: int) -> float:
    """Standard deviation of the noise on each entry of the mean update: ``z * C / m`` (Flower's)."""
    return compute_stdv(dp.noise_multiplier, dp.clipping_norm, n_sites)


class EpsilonAccountant:
    """Epsilon after ``rounds`` releases of the Gaussian mechanism with noise multiplier ``z``.

    Every site takes part in every round, so each round is one step of sample rate 1; with a fixed
    ``z`` the epsilon after ``r`` rounds depends only on ``r`` (a resumed run needs no state).
    """

    def __init__(self, dp: DPConfig) -> None:
        self.noise_multiplier, self.delta = dp.noise_multiplier, dp.delta

    def epsilon(self, rounds: int) -> float:
        """Epsilon at ``delta`` after ``rounds`` private rounds (0 rounds: 0)."""
        from opacus.accountants import RDPAccountant

        if rounds <= 0:
            return 0.0
        accountant = RDPAccountant()
        accountant.history = [(self.noise_multiplier, 1.0, int(rounds))]
        return float(accountant.get_epsilon(self.delta))


def freeze_counters(update: Mapping[str, np.ndarray], received: Mapping[str, np.ndarray]) -> State:
    """A site's private reply: integer arrays back at the received values, as float64 (see module doc)."""
    out = {}
    for k, v in update.items():
        if np.asarray(received[k]).dtype.kind in "iub":
            out[k] = np.asarray(received[k], dtype=np.float64).reshape(np.shape(v))
        else:
            out[k] = np.asarray(v)
    return out


def advance_counters(state: Mapping[str, np.ndarray], previous: Mapping[str, np.ndarray], steps: int) -> State:
    """The server's side: integer arrays become ``previous + steps``; the rest are cast to ``previous``'s dtype."""
    out = {}
    for k, old in previous.items():
        old = np.asarray(old)
        if old.dtype.kind in "iu":
            out[k] = old + np.asarray(steps, dtype=old.dtype)
        else:
            out[k] = np.asarray(state[k]).astype(old.dtype).reshape(old.shape)
    return out


def site_reply_weight(n_windows: int, uniform: bool) -> float:
    """FedAvg's weight of a site's update: its windows, or 1 (equal weights, needed by DP)."""
    return 1.0 if uniform else float(n_windows)


# -- the site's side: Flower's mods, applied when the server asks for them ---------
def privacy_mod(msg: Message, ctxt: Context, call_next) -> Message:
    """The site's train mod (a Flower ``Mod``): SecAgg+ stages when asked, client-side clipping when asked.

    Plain rounds pass through untouched. In the SecAgg+ stage that trains, Flower's ``secaggplus_mod``
    hands over a legacy ``FitIns`` record; it is turned into our train message, trained (and clipped),
    and the reply's update ``w_site - w_global`` goes back as ``FitRes`` for masking.
    """
    if SECAGG_RECORD in msg.content.config_records:
        from flwr.client.mod import secaggplus_mod

        return secaggplus_mod(msg, ctxt, lambda m, c: _train_from_fitins(m, c, call_next))
    return _clip_if_asked(msg, ctxt, call_next)


def _clip_if_asked(msg: Message, ctxt: Context, call_next) -> Message:
    config = msg.content.config_records.get(p.CONFIG)
    if config is not None and KEY_CLIPPING_NORM in config:
        return fixedclipping_mod(msg, ctxt, call_next)
    return call_next(msg, ctxt)


def _train_from_fitins(msg: Message, ctxt: Context, call_next) -> Message:
    import flwr.compat.common.recorddict_compat as compat
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays

    fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
    config = dict(fitins.config)
    names = json.loads(str(config.pop("array-names")))
    clip_range = float(config.pop("secagg-clipping-range"))
    received = dict(zip(names, parameters_to_ndarrays(fitins.parameters)))
    original = msg.content
    msg.content = RecordDict({p.ARRAYS: ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in received.items()}),
                              p.CONFIG: ConfigRecord(config)})
    try:
        reply = _clip_if_asked(msg, ctxt, call_next)
    finally:
        msg.content = original
    if reply.has_error():
        return reply
    new = {k: np.asarray(v.numpy()) for k, v in reply.content[p.ARRAYS].items()}
    delta = [np.asarray(new[k], dtype=np.float64) - np.asarray(received[k], dtype=np.float64) for k in names]
    worst = max((float(np.abs(d).max()) for d in delta if d.size), default=0.0)
    if worst > clip_range:
        site = ctxt.node_config.get("site-name", ctxt.node_id)
        raise ValueError(f"Site {site!r}: an entry of its update is {worst:.3g}, beyond privacy.secagg.clipping_range "
                         f"{clip_range:g}, where SecAgg+ would clip it silently. Raise clipping_range above it "
                         "(precision is 2 * clipping_range / quantization_range) or lower the learning rate.")
    metrics = reply.content[p.METRICS]
    fitres = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(delta), num_examples=0,
                    metrics={k: metrics[k] for k in metrics.keys()})
    # SecAgg+ weights with num_examples (an integer scaled by max_weight): the FedAvg weight
    fitres.num_examples = int(round(float(metrics[p.WEIGHT])))
    return Message(compat.fitres_to_recorddict(fitres, keep_input=True), reply_to=msg)


# -- the server's side of SecAgg+ --------------------------------------------------
class _FastGrid:
    """The Grid with ``send_and_receive`` polling every ``poll_s`` (Flower's polls every 3 s), as in our rounds."""

    def __init__(self, fed) -> None:
        self._fed = fed
        self.errors: list[str] = []  # the sites' errors, which the workflow only counts

    def __getattr__(self, name):
        return getattr(self._fed.grid, name)

    def send_and_receive(self, messages, *, timeout=None):
        replies, silent = self._fed.exchange(list(messages), self._fed.config.round_timeout_s if timeout is None
                                             else timeout)
        self.errors += [e for e in map(self._fed.reply_error, replies) if e]
        self.errors += [f"{self._fed.name(n)}: no reply within {self._fed.config.round_timeout_s:.0f} s"
                        for n in silent]
        return replies


class _LegacyAdapter:
    """What ``SecAggPlusWorkflow`` calls on its strategy: the round's ``FitIns`` per site, then the result.

    The workflow hands every site's ``FitRes`` to ``aggregate_fit`` with its parameters replaced by
    the unmasked weighted mean; only that mean and the sites' metrics are kept.
    """

    def __init__(self, fed, fitins_config: Mapping, parameters) -> None:
        self.fed, self.fitins_config, self.parameters = fed, dict(fitins_config), parameters
        self.mean: list[np.ndarray] | None = None
        self.metrics: list[tuple[int, dict]] = []
        self.failures = 0

    def configure_fit(self, server_round, parameters, client_manager):
        from flwr.common import FitIns
        from flwr.server.compat.grid_client_proxy import GridClientProxy

        run_id = self.fed.grid.run.run_id
        return [(GridClientProxy(node, self.fed.grid, run_id), FitIns(self.parameters, dict(self.fitins_config)))
                for node in self.fed.sites]

    def aggregate_fit(self, server_round, results, failures):
        from flwr.common import parameters_to_ndarrays

        self.failures = len(failures)
        if results:
            self.mean = parameters_to_ndarrays(results[0][1].parameters)
            self.metrics = [(proxy.node_id, dict(res.metrics)) for proxy, res in results]
        return (results[0][1].parameters if results else None), {}


def secagg_round(fed, state: State, config: ConfigRecord, secagg: SecAggConfig, *,
                 dp: DPConfig | None = None) -> tuple[State, list[tuple[int, dict]], int]:
    """One synchronous round under SecAgg+ (Flower's ``SecAggPlusWorkflow``, four message exchanges).

    The server sees only the weighted mean of the sites' updates: weights are the windows trained
    (``max_weight`` = the largest site's windows, from the handshake), or 1 under DP, whose Gaussian
    noise of :func:`noise_std` is then added to the mean.

    Parameters
    ----------
    fed : Federation
        The server's federation (grid, accepted sites, timeouts).
    state : dict of str to array
        The global state the sites start from.
    config : flwr.app.ConfigRecord
        The round's train config (:meth:`Federation.train_config`), sent to each site in its ``FitIns``.
    secagg : SecAggConfig
        Shares, reconstruction threshold and quantization.
    dp : DPConfig | None
        Differential privacy on top (client-side clipping).

    Returns
    -------
    state : dict of str to array
        Old state + mean update, in float64 (the caller casts and advances counters).
    metrics : list of (int, dict)
        Node id and reported metrics (``num-examples``, ``weight``, ``loss``, ``version``) per site
        whose masked update went into the sum.
    failures : int
        Sites that failed a stage.

    Raises
    ------
    RuntimeError
        When the protocol halted (fewer sites than the threshold answered a stage), with every site's
        error (for example an update beyond ``clipping_range``).
    """
    from flwr.common import ndarrays_to_parameters
    from flwr.server.compat.legacy_context import LegacyContext
    from flwr.server.workflow import SecAggPlusWorkflow
    from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key

    names = list(state)
    fitins_config = {k: config[k] for k in config.keys()}
    fitins_config.update({"array-names": json.dumps(names), "secagg-clipping-range": float(secagg.clipping_range)})
    if dp is not None:
        fitins_config[KEY_CLIPPING_NORM] = float(dp.clipping_norm)
    # the largest weight must fit max_weight: windows of the largest site, or 1 under DP's equal weights
    max_weight = 1.0 if dp is not None else float(max([fed.n_windows.get(n, 1) for n in fed.sites] or [1]))
    adapter = _LegacyAdapter(fed, fitins_config, ndarrays_to_parameters([np.asarray(state[k]) for k in names]))
    round_ = int(config["server-round"])
    context = LegacyContext(Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config={}),
                            strategy=adapter)
    context.state[MAIN_PARAMS_RECORD] = ArrayRecord()
    context.state[MAIN_CONFIGS_RECORD] = ConfigRecord({Key.CURRENT_ROUND: round_, Key.START_TIME: time.time()})
    workflow = SecAggPlusWorkflow(secagg.num_shares, secagg.reconstruction_threshold, max_weight=max_weight,
                                  clipping_range=secagg.clipping_range, quantization_range=secagg.quantization_range)
    grid = _FastGrid(fed)
    workflow(grid, context)
    if adapter.mean is None:
        raise RuntimeError(f"Round {round_}: secure aggregation halted: too few sites answered a SecAgg+ stage for "
                           f"reconstruction_threshold {secagg.reconstruction_threshold}. Site errors: "
                           f"{'; '.join(grid.errors) or 'none'}.")
    for error in grid.errors:
        logger.warning("SecAgg+ round %d went on without a site: %s", round_, error)
    mean = [np.asarray(m, dtype=np.float64) for m in adapter.mean]
    if dp is not None:
        add_gaussian_noise_inplace(mean, noise_std(dp, len(adapter.metrics)))
    new = {k: np.asarray(state[k], dtype=np.float64) + d.reshape(np.shape(state[k])) for k, d in zip(names, mean)}
    return new, adapter.metrics, adapter.failures
