"""Model state as Flower arrays, and the arithmetic of aggregation.

A federated state is one flat ``{name: array}`` dict: ``model.<key>`` for the
:class:`~fusion.model.MultiModalEncoder` state dict and ``loss.<key>`` for the contrastive loss's
parameters (the learned temperature), so the loss is averaged too, as DDP does in ``emosync pretrain``.
These arrays are all a site sends: :func:`check_update_arrays` holds a reply to exactly the names
and shapes of the global state, so nothing else (no windows, no file names) can ride along.

FedBuff (Nguyen et al. 2022, "Federated Learning with Buffered Asynchronous Aggregation"): the
server keeps a buffer of K site updates ``delta_i = w_i - w_global(v_i)``, each computed from the
global version ``v_i`` the site started from; with staleness ``s_i = v_server - v_i`` the update is
``w += sum_i n_i s(s_i) delta_i / sum_i n_i`` with ``s(s) = 1 / sqrt(1 + s)``. The
normaliser counts windows, not discounted weights, so a buffer of stale updates moves the model
less than a fresh one. Running statistics (BatchNorm buffers) are averaged, not stepped (see
:func:`fedbuff_update`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from flwr.app import Array, ArrayRecord

if TYPE_CHECKING:  # torch is imported where it is used: a SecAgg+ key-exchange process never needs it
    import torch

State = dict[str, np.ndarray]


def module_state(model: torch.nn.Module, loss_fn: torch.nn.Module) -> State:
    """The federated state of a model and its loss: ``{"model.<key>" | "loss.<key>": array}`` (copies)."""
    state = {f"model.{k}": v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}
    state.update({f"loss.{k}": v.detach().cpu().numpy().copy() for k, v in loss_fn.state_dict().items()})
    return state


def statistics_keys(model: torch.nn.Module, loss_fn: torch.nn.Module) -> list[str]:
    """The keys of :func:`module_state` that are not parameters: BatchNorm's running statistics and counters.

    A server averages them and never steps them (a step can push a running variance below zero).
    """
    params = {f"model.{n}" for n, _ in model.named_parameters()} | {f"loss.{n}" for n, _ in loss_fn.named_parameters()}
    keys = [f"model.{k}" for k in model.state_dict()] + [f"loss.{k}" for k in loss_fn.state_dict()]
    return [k for k in keys if k not in params]


def load_module_state(model: torch.nn.Module, loss_fn: torch.nn.Module, state: Mapping[str, np.ndarray]) -> None:
    """Load a federated state into ``model`` and ``loss_fn``; each tensor keeps its own dtype.

    Averaging turns integer buffers (BatchNorm's ``num_batches_tracked``) into floats; they are cast
    back here. Raises ValueError naming the keys when the state is for another model.
    """
    import torch

    check_update_arrays(state, module_state(model, loss_fn), who="the received global model")
    for prefix, module in (("model.", model), ("loss.", loss_fn)):
        own = module.state_dict()
        module.load_state_dict({k: torch.as_tensor(np.asarray(state[prefix + k])).to(v.dtype).reshape(v.shape)
                                for k, v in own.items()})


def to_array_record(state: Mapping[str, np.ndarray]) -> ArrayRecord:
    """A Flower ``ArrayRecord`` holding exactly these arrays, in this order."""
    return ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in state.items()})


def from_array_record(record: ArrayRecord) -> State:
    """The ``{name: array}`` dict of an ``ArrayRecord``."""
    return {k: np.asarray(v.numpy()) for k, v in record.items()}


def check_update_arrays(update: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], *, who: str) -> None:
    """Raise ValueError unless ``update`` has exactly ``reference``'s names and shapes.

    Parameters
    ----------
    update, reference : mapping of str to array
        A received state and the state it must match (the global model).
    who : str
        Named in the error (``"site 'site-a'"``).
    """
    extra, missing = sorted(set(update) - set(reference)), sorted(set(reference) - set(update))
    if extra or missing:
        raise ValueError(f"{who} sent arrays that are not the model's: unexpected {extra[:5]}, missing "
                         f"{missing[:5]}. Server and site must run the same emosync version and config.")
    bad = [(k, np.shape(update[k]), np.shape(v)) for k, v in reference.items() if _shape(update[k]) != _shape(v)]
    if bad:
        raise ValueError(f"{who} sent arrays of other shapes (name, got, expected): {bad[:5]}. Server and site "
                         "must build the same model: same emosync version, config and session channel counts.")


def _shape(x) -> tuple[int, ...]:
    # Flower's Array stores a 0-d array (BatchNorm's step counter) with shape (1,)
    return tuple(np.shape(x)) or (1,)


def weighted_average(states: Sequence[Mapping[str, np.ndarray]], weights: Sequence[float]) -> State:
    """``sum_i w_i state_i / sum_i w_i`` per array, in float64 then cast to the first state's dtype.

    This is FedAvg's aggregation (McMahan et al. 2017) with ``w_i`` = windows trained at site ``i``.
    """
    if len(states) != len(weights) or not states:
        raise ValueError(f"weighted_average needs one weight per state and at least one state, got "
                         f"{len(states)} states and {len(weights)} weights.")
    w = np.asarray(weights, dtype=np.float64)
    if np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be >= 0 with a positive sum, got {w.tolist()}.")
    w = w / w.sum()
    return {k: np.sum([wi * np.asarray(s[k], dtype=np.float64) for wi, s in zip(w, states)], axis=0)
            .astype(np.asarray(states[0][k]).dtype) for k in states[0]}


def staleness_weight(staleness: int | np.ndarray) -> float | np.ndarray:
    """FedBuff's polynomial discount ``1 / sqrt(1 + s)`` of an update ``s`` server versions old."""
    s = np.asarray(staleness, dtype=np.float64)
    if np.any(s < 0):
        raise ValueError(f"staleness counts server versions and cannot be negative, got {s.tolist()}.")
    out = 1.0 / np.sqrt(1.0 + s)
    return float(out) if out.ndim == 0 else out


def fedbuff_update(global_state: Mapping[str, np.ndarray], deltas: Sequence[Mapping[str, np.ndarray]],
                   n_windows: Sequence[int], staleness: Sequence[int], *,
                   statistics: Sequence[Mapping[str, np.ndarray]] = ()) -> State:
    """The next global state from a full buffer (see the module docstring for the formula).

    Parameters
    ----------
    global_state : mapping of str to array
        The current global model.
    deltas : sequence of mapping of str to array
        Per buffered update, site weights minus the global weights it started from.
    n_windows : sequence of int
        Windows each site trained on (FedAvg's weights).
    staleness : sequence of int
        Server versions between the start and the arrival of each update.
    statistics : sequence of mapping of str to array
        Per buffered update, the site's values of running statistics (BatchNorm means, variances
        and counters: every key they hold). These are not stepped along deltas, which can drive a
        variance below zero when an update started from an older model; they become the average
        of the buffered values, weighted ``n_i s(s_i)``. Empty: every key is stepped.
    """
    if not (len(deltas) == len(n_windows) == len(staleness)) or not deltas:
        raise ValueError(f"fedbuff_update needs one n_windows and one staleness per delta, got {len(deltas)}, "
                         f"{len(n_windows)} and {len(staleness)}.")
    n = np.asarray(n_windows, dtype=np.float64)
    coef = n * staleness_weight(np.asarray(staleness)) / n.sum()
    stats = set(statistics[0]) if len(statistics) else set()
    out = {}
    for k, g in global_state.items():
        if k in stats:
            out[k] = weighted_average([{k: st[k]} for st in statistics], coef)[k].astype(np.asarray(g).dtype)
            continue
        step = np.sum([c * np.asarray(d[k], dtype=np.float64) for c, d in zip(coef, deltas)], axis=0)
        out[k] = (np.asarray(g, dtype=np.float64) + step).astype(np.asarray(g).dtype)
    return out


def subtract(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> State:
    """``a - b`` per array, in float64 (integer buffers included)."""
    return {k: np.asarray(a[k], dtype=np.float64) - np.asarray(b[k], dtype=np.float64) for k in b}


def n_bytes(state: Mapping[str, np.ndarray]) -> int:
    """Bytes of the arrays of a state (what one message carries, framing aside)."""
    return int(sum(np.asarray(v).nbytes for v in state.values()))
