"""The aggregation loops: synchronous rounds with Flower's FedAvg / FedProx, and asynchronous FedBuff.

Synchronous (:func:`run_sync`): each round Flower's strategy builds the train messages
(``configure_train``: FedProx adds ``proximal-mu``) and averages the replies weighted by windows
(``aggregate_train``); a site that fails or misses ``round_timeout_s`` is left out of that round, and a
site whose training raised an error is dropped for good.

Asynchronous (:func:`run_fedbuff`): Flower ships no asynchronous strategy, so the loop is built on the
Grid's ``push_messages`` / ``pull_messages``. Every site always has one train message in flight; a
reply goes into the buffer as ``delta = w_site - w_global(v_start)`` and the site is sent the newest
global model at once; when K updates are buffered the server version advances
(:func:`fusion.federated.weights.fedbuff_update`, stale updates weighted ``1 / sqrt(1 + s)``). A slow
site never holds the others back, and one that disconnects only stops contributing.

Both write the global model to the run folder after every aggregation, so ``--resume`` continues
from the last one. Differential privacy and secure aggregation (:mod:`.privacy`) apply to the
synchronous loop only.
"""

from __future__ import annotations

import time

import numpy as np
from flwr.app import Message, MessageType, RecordDict
from flwr.serverapp.strategy import FedAvg, FedProx

from acquisition import logger

from . import protocol as p
from .federation import Federation
from .privacy import ACCOUNTANT, EpsilonAccountant, advance_counters, dp_strategy, noise_std, secagg_round
from .server_optimizer import ServerMomentum
from .weights import (State, check_update_arrays, fedbuff_update, from_array_record, n_bytes, subtract,
                      to_array_record)


def make_strategy(fed: Federation) -> FedAvg:
    """Flower's FedAvg, or FedProx with ``proximal_mu``; every connected site trains, none is evaluated."""
    kwargs = {"fraction_train": 1.0, "fraction_evaluate": 0.0, "min_train_nodes": 1, "min_available_nodes": 1,
              "weighted_by_key": p.WEIGHT, "arrayrecord_key": p.ARRAYS, "configrecord_key": p.CONFIG}
    if fed.config.strategy == "fedprox":
        return FedProx(proximal_mu=fed.config.proximal_mu, **kwargs)
    return FedAvg(**kwargs)


def _accept(fed: Federation, reply: Message, reference: State) -> str | None:
    """None for a well-formed train reply; else the reason (its site is named)."""
    error = fed.reply_error(reply)
    if error is not None:
        return error
    try:
        p.check_reply_content(reply.content, "train")
        check_update_arrays(from_array_record(reply.content[p.ARRAYS]), reference,
                            who=f"site {fed.name(reply.metadata.src_node_id)!r}")
    except (ValueError, KeyError) as err:
        return str(err)
    return None


def run_sync(fed: Federation, state: State, server: ServerMomentum, *, start_round: int = 1) -> State:
    """Rounds ``start_round..rounds`` of FedAvg / FedProx from ``state``; returns the final global state.

    ``server`` takes the global model from the strategy's aggregate (server learning rate and momentum).

    With ``privacy.dp`` Flower's fixed-clipping wrapper clips and noises each round, and each row of
    ``rounds.jsonl`` carries the epsilon spent so far; with ``privacy.secagg`` the round runs as
    SecAgg+ (:func:`.privacy.secagg_round`).
    """
    strategy = make_strategy(fed)
    dp, secagg = fed.config.privacy.dp, fed.config.privacy.secagg
    accountant = EpsilonAccountant(dp) if dp is not None else None
    for round_ in range(start_round, fed.config.rounds + 1):
        fed.handshake_new()
        fed.require_sites()
        tic = time.monotonic()
        config = fed.train_config(round_, round_ - 1)
        if secagg is not None:
            new, site_metrics, n_failed = secagg_round(fed, state, config, secagg, dp=dp)
            state = server.step(state, advance_counters(new, state, fed.config.local_steps))
            n_sent = n_good = len(site_metrics)
            names = [fed.name(node) for node, _ in site_metrics]
            n = [int(m[p.N_EXAMPLES]) for _, m in site_metrics]
            loss = float(np.average([float(m["loss"]) for _, m in site_metrics], weights=n))
            failed = n_failed
        else:
            wrapped = dp_strategy(strategy, dp, len(fed.sites)) if dp is not None else strategy
            messages = [m for m in wrapped.configure_train(round_, to_array_record(state), config, fed.grid)
                        if m.metadata.dst_node_id in fed.sites]
            good, failed_nodes = _train_round(fed, messages, state, round_)
            if dp is not None:  # the noise and the guarantee are for the mean of the updates that arrived
                wrapped.num_sampled_clients = len(good)
            arrays, metrics = wrapped.aggregate_train(round_, good)
            if arrays is None:
                raise RuntimeError(f"Round {round_}: the sites' updates could not be aggregated; see the ServerApp "
                                   "log.")
            new = from_array_record(arrays)
            state = server.step(state, advance_counters(new, state, fed.config.local_steps) if dp is not None else new)
            n_sent, n_good, failed = len(messages), len(good), len(failed_nodes)
            names = [fed.name(r.metadata.src_node_id) for r in good]
            n = [int(r.content[p.METRICS][p.N_EXAMPLES]) for r in good]
            loss = float(metrics["loss"])
        record = {"time_s": round(time.monotonic() - fed.t0, 3), "round_s": round(time.monotonic() - tic, 3),
                  "strategy": fed.config.strategy, "sites": n_good, "failed": failed, "site_names": names,
                  "n_windows": int(sum(n)), "loss": loss, "lr": fed.lr(round_),
                  "bytes_down": n_bytes(state) * n_sent, "bytes_up": n_bytes(state) * n_good}
        if secagg is not None:
            record["secure_aggregation"] = "SecAgg+"
        if dp is not None:
            record.update(epsilon=accountant.epsilon(round_), delta=dp.delta, noise_multiplier=dp.noise_multiplier,
                          clipping_norm=dp.clipping_norm, noise_std=noise_std(dp, n_good), accountant=ACCOUNTANT)
        fed.folder.save(round_=round_, version=round_, state=state, model_config=fed.model_config, record=record,
                        server=server.state_dict())
        logger.info("Round %d/%d: %d site(s), loss %.4f%s", round_, fed.config.rounds, n_good, loss,
                    f", epsilon {record['epsilon']:.3g} at delta {dp.delta:g}" if dp is not None else "")
    return state


def _train_round(fed: Federation, messages: list[Message], state: State, round_: int) -> tuple[list[Message],
                                                                                                list[int]]:
    """Send the train messages, keep the well-formed replies; drop failed sites, report silent ones."""
    replies, silent = fed.exchange(messages, fed.config.round_timeout_s)
    good, failed = [], list(silent)
    for reply in replies:
        reason = _accept(fed, reply, state)
        if reason is None:
            good.append(reply)
        else:
            failed.append(reply.metadata.src_node_id)
            fed.drop(reply.metadata.src_node_id, reason)
    for node in silent:
        logger.warning("Site %r did not answer round %d within %.0f s: left out of this round.", fed.name(node),
                       round_, fed.config.round_timeout_s)
    if not good:
        raise RuntimeError(f"Round {round_}: no site returned an update; see {fed.folder.path}/sites.json.")
    return good, failed


def run_fedbuff(fed: Federation, state: State, server: ServerMomentum, *, start_version: int = 0) -> State:
    """FedBuff from server version ``start_version`` until ``rounds`` versions; returns the final state.

    ``server`` steps the global model along the buffered update; its ``statistics`` (running
    statistics) are averaged instead of stepped (:func:`fusion.federated.weights.fedbuff_update`).
    """
    statistics = server.statistics
    c = fed.config
    version = start_version
    history = {version: state}           # global states that in-flight updates started from
    in_flight: dict[str, tuple[int, int, float]] = {}   # message id -> (node, start version, send time)
    buffer: list[tuple[State, State, int, int, float]] = []  # (delta, statistics, n_windows, staleness, loss)
    failed, bytes_down, bytes_up, tic = 0, 0, 0, time.monotonic()

    def dispatch(node: int) -> None:
        nonlocal bytes_down
        msg = Message(RecordDict({p.ARRAYS: to_array_record(state), p.CONFIG: fed.train_config(version + 1, version)}),
                      dst_node_id=node, message_type=MessageType.TRAIN)
        (mid,) = list(fed.grid.push_messages([msg]))
        in_flight[mid] = (node, version, time.monotonic())
        bytes_down += n_bytes(state)

    while version < c.rounds:
        fed.handshake_new()  # a site that joins now is picked up below like every idle one
        busy = {node for node, _, _ in in_flight.values()}
        for node in [n for n in fed.sites if n not in busy]:
            dispatch(node)
        fed.require_sites()
        for reply in fed.grid.pull_messages(list(in_flight)):
            node, started, _ = in_flight.pop(reply.metadata.reply_to_message_id)
            reason = _accept(fed, reply, state)
            if reason is not None:
                failed += 1
                fed.drop(node, reason)
                continue
            new = from_array_record(reply.content[p.ARRAYS])
            bytes_up += n_bytes(new)
            m = reply.content[p.METRICS]
            buffer.append((subtract(new, history[started]), {k: new[k] for k in statistics}, int(m[p.N_EXAMPLES]),
                           version - started, float(m["loss"])))
        now = time.monotonic()
        for mid, (node, _, sent) in list(in_flight.items()):
            if now - sent > c.round_timeout_s:  # lost or far too slow: stop waiting, ask again if still there
                del in_flight[mid]
                failed += 1
                logger.warning("Site %r: no update within %.0f s; %s.", fed.name(node), c.round_timeout_s,
                               "sent the newest model again" if node in fed.grid.get_node_ids() else "disconnected")
        k = min(c.buffer_size, max(1, len(fed.sites)))
        while len(buffer) >= k and version < c.rounds:
            take, buffer = buffer[:k], buffer[k:]
            deltas, stats, n, stale, losses = (list(x) for x in zip(*take))
            state = server.step(state, fedbuff_update(state, deltas, n, stale, statistics=stats if statistics else ()))
            version += 1
            history[version] = state
            fed.folder.save(round_=version, version=version, state=state, model_config=fed.model_config, record={
                "time_s": round(time.monotonic() - fed.t0, 3), "round_s": round(time.monotonic() - tic, 3),
                "strategy": "fedbuff", "sites": k, "failed": failed, "n_windows": int(sum(n)),
                "loss": float(np.average(losses, weights=n)), "staleness": stale, "lr": fed.lr(version),
                "bytes_down": bytes_down, "bytes_up": bytes_up}, server=server.state_dict())
            logger.info("FedBuff version %d/%d: %d update(s), staleness %s", version, c.rounds, k, stale)
            failed, bytes_down, bytes_up, tic = 0, 0, 0, time.monotonic()
        keep = {s for _, s, _ in in_flight.values()} | {version}
        history = {v: s for v, s in history.items() if v in keep}
        time.sleep(c.poll_s)
    return state
