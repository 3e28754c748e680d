"""Privacy of federated rounds: Flower's DP wrappers and SecAgg+ wired to the emosync server and sites.

The federations here run the real ServerApp loop (:func:`run_federation`) against the real emosync
ClientApp, in this process: :class:`LoopbackGrid` delivers each message to the ClientApp with the
node's own ``Context`` (what a SuperNode does, minus the network and the process per message), so
every SecAgg+ stage, mod and record is the one a deployment runs. ``test_federated_run.py`` runs
the same apps as real Flower processes.
"""

from __future__ import annotations

import copy
import json
import uuid
from types import SimpleNamespace

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict

from fusion.federated import protocol
from fusion.federated.client_app import app as client_app
from fusion.federated.config import DPConfig, load_federated_config
from fusion.federated.privacy import EpsilonAccountant, dp_strategy, freeze_counters, noise_std
from fusion.federated.rounds import make_strategy
from fusion.federated.server_app import run_federation

from .test_train import SMALL


class LoopbackGrid:
    """A Flower Grid whose nodes are the emosync ClientApp in this process, one ``Context`` per site."""

    def __init__(self, sites: dict[str, list]) -> None:
        self.run = SimpleNamespace(run_id=1)
        self.contexts = {10 + i: Context(run_id=1, node_id=10 + i, state=RecordDict(), run_config={},
                                         node_config={"sessions": ":".join(str(f) for f in files), "site-name": name})
                         for i, (name, files) in enumerate(sites.items())}
        self.replies: dict[str, Message] = {}
        self.messages_sent = 0

    def get_node_ids(self):
        return list(self.contexts)

    def push_messages(self, messages):
        ids = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = uuid.uuid4().hex
            self.messages_sent += 1
            delivered = copy.deepcopy(msg)  # a transport delivers a copy: the site may change what it received
            try:
                reply = client_app(delivered, self.contexts[msg.metadata.dst_node_id])
            except Exception as err:  # what a SuperNode sends back when the ClientApp raises
                reply = Message(Error(code=0, reason=f"{type(err).__name__}: {err}"), reply_to=delivered)
            self.replies[msg.metadata.message_id] = reply
            ids.append(msg.metadata.message_id)
        return ids

    def pull_messages(self, message_ids):
        return [self.replies.pop(i) for i in list(message_ids) if i in self.replies]

    def send_and_receive(self, messages, *, timeout=None):
        return self.pull_messages(self.push_messages(messages))


@pytest.fixture(autouse=True)
def task_identity():
    """Flower stamps messages with the process's task identity, which its runtime sets; set and restore it."""
    from flwr.supercore.task_identity import TaskIdentity

    before = (TaskIdentity._run_id, TaskIdentity._task_id, TaskIdentity._node_id)
    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 1
    yield
    TaskIdentity._run_id, TaskIdentity._task_id, TaskIdentity._node_id = before


@pytest.fixture(scope="module")
def two_sites(tmp_path_factory):
    """Two light-rig sessions (two subjects), one per site, 6 and 9 s: FedAvg's weights differ."""
    from synth.rig.offline import write_rig_session

    folder = tmp_path_factory.mktemp("privsites")
    return {f"site_{k}": [write_rig_session(folder / f"{k}.h5", duration_s=seconds, seed=seed,
                                            overrides=[f"identity_seed={seed}"])]
            for k, seed, seconds in (("a", 0, 6), ("b", 1, 9))}


def _federate(sites, out, *overrides):
    config = load_federated_config("tiny", ["rounds=1", "local_steps=2", "poll_s=0.01", *overrides])
    config.pretrain_overrides = [*SMALL, "threads=1"]
    grid = LoopbackGrid(sites)
    state = run_federation(grid, config, out, expected_sites=len(sites))
    rows = [json.loads(x) for x in (out / "rounds.jsonl").read_text().splitlines()]
    return state, rows, grid


def _float_keys(state):
    return [k for k, v in state.items() if np.asarray(v).dtype.kind == "f"]


def test_secagg_round_gives_the_fedavg_aggregate(two_sites, tmp_path):
    """SecAgg+ (four stages, masks, Shamir shares) unmasks to the plain FedAvg mean within its quantization."""
    plain, plain_rows, plain_grid = _federate(two_sites, tmp_path / "plain")
    secure, rows, grid = _federate(two_sites, tmp_path / "secagg", "privacy.secagg.num_shares=1.0")
    assert rows[0]["secure_aggregation"] == "SecAgg+" and rows[0]["sites"] == 2
    assert "secure_aggregation" not in plain_rows[0]
    assert grid.messages_sent == plain_grid.messages_sent + 3 * 2  # setup, share keys, unmask: 3 more per site
    assert rows[0]["n_windows"] == plain_rows[0]["n_windows"]
    windows = sorted(json.loads((tmp_path / "plain" / "sites.json").read_text()))  # both sites took part
    assert windows == ["site_a", "site_b"]
    assert rows[0]["loss"] == pytest.approx(plain_rows[0]["loss"], rel=1e-6)
    # quantization step 2 * 8 / 2**22 = 3.8e-6 per entry of each (weighted) update
    moved = 0.0
    for k in _float_keys(plain):
        np.testing.assert_allclose(secure[k], plain[k], atol=1e-4, err_msg=k)
        moved = max(moved, float(np.abs(np.asarray(plain[k], np.float64)).max()))
    assert moved > 0
    for k, v in plain.items():  # step counters advance as in FedAvg and stay integers
        if np.asarray(v).dtype.kind == "i":
            assert np.asarray(secure[k]).dtype == np.asarray(v).dtype, k
            assert np.array_equal(np.ravel(secure[k]), np.ravel(v)), k


def test_secagg_site_refuses_an_update_beyond_the_clipping_range(two_sites, tmp_path):
    with pytest.raises(RuntimeError, match=r"secure aggregation halted.*Site 'site_a'.*beyond privacy.secagg."
                                           r"clipping_range 1e-06.*Raise clipping_range"):
        _federate(two_sites, tmp_path / "run", "privacy.secagg.clipping_range=1e-6")


def _state_change_norm(a, b):
    return float(np.sqrt(sum(float(((np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64)) ** 2).sum())
                             for k in _float_keys(b))))


def test_client_side_clipping_bounds_each_site_update(two_sites, tmp_path):
    """fixedclipping_mod at the site: the update that leaves the site has norm <= clipping_norm."""
    config = load_federated_config("tiny", ["rounds=1", "local_steps=3"])
    config.pretrain_overrides = [*SMALL, "threads=1"]
    from fusion.config import load_pretrain_config
    from fusion.federated.site import build_site_model, load_site
    from fusion.federated.weights import from_array_record, module_state, to_array_record

    pretrain = load_pretrain_config("tiny", config.pretrain_overrides)
    model, loss_fn = build_site_model(pretrain, load_site(two_sites["site_a"], pretrain, site="a"))
    start = module_state(model, loss_fn)
    grid = LoopbackGrid({"site_a": two_sites["site_a"]})
    train_config = {"pretrain-config": json.dumps(pretrain.model_dump(mode="json")), "local-steps": 3, "lr": 0.05,
                    "proximal-mu": 0.0, "seed": 1, "server-round": 1, "version": 0, "private": True,
                    "uniform-weight": True}

    def update(**extra):
        msg = Message(RecordDict({protocol.ARRAYS: to_array_record(start),
                                  protocol.CONFIG: ConfigRecord({**train_config, **extra})}), dst_node_id=10,
                      message_type="train")
        (reply,) = grid.send_and_receive([msg])
        assert not reply.has_error(), reply.error
        protocol.check_reply_content(reply.content, "train")
        assert reply.content[protocol.METRICS][protocol.WEIGHT] == 1.0  # equal weights under DP
        return from_array_record(reply.content[protocol.ARRAYS])

    raw = _state_change_norm(update(), start)
    clipped = update(clipping_norm=raw / 4)
    assert _state_change_norm(clipped, start) == pytest.approx(raw / 4, rel=1e-4)
    assert _state_change_norm(update(clipping_norm=raw * 4), start) == pytest.approx(raw, rel=1e-4)  # not inflated
    # counters are sent back unchanged (no data in them), as floats so that clipping can scale the rest
    counters = [k for k, v in start.items() if np.asarray(v).dtype.kind == "i"]
    assert counters and all(float(np.asarray(clipped[k]).ravel()[0]) == float(np.asarray(start[k]).ravel()[0])
                            for k in counters)


def _reply(state, node, weight=1.0):
    msg = Message(RecordDict({protocol.ARRAYS: to_record(state), protocol.METRICS: MetricRecord(
        {protocol.N_EXAMPLES: 10, protocol.WEIGHT: weight, "loss": 1.0, "version": 0})}), dst_node_id=node,
        message_type="train")
    msg.metadata.__dict__["_message_id"] = uuid.uuid4().hex
    return Message(msg.content, reply_to=msg)


def to_record(state):
    return ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in state.items()})


@pytest.mark.parametrize("clipping", ["client", "server"])
def test_dp_noise_has_the_configured_std_and_server_clipping_bounds_updates(clipping):
    """Flower's wrapper as wired here: mean of equal-weight updates + N(0, (z C / m)^2) on every entry."""
    rng = np.random.default_rng(0)
    n, m, z, c = 200_000, 4, 0.5, 0.1
    current = {"w": rng.normal(size=n).astype(np.float64)}
    direction = rng.normal(size=n)
    direction /= np.linalg.norm(direction)
    fed = SimpleNamespace(config=load_federated_config("tiny"))
    dp = DPConfig(noise_multiplier=z, clipping_norm=c, clipping=clipping)
    strategy = dp_strategy(make_strategy(fed), dp, m)
    grid = SimpleNamespace(get_node_ids=lambda: list(range(m)))
    list(strategy.configure_train(1, to_record(current), ConfigRecord({}), grid))
    # every site moved 10 C along the same direction: the server must clip each to C (client-side: trusted to)
    size = 10 * c if clipping == "server" else c
    replies = [_reply({"w": current["w"] + size * direction}, node) for node in range(m)]
    arrays, _ = strategy.aggregate_train(1, replies)
    out = np.asarray(arrays["w"].numpy())
    noise = out - (current["w"] + c * direction)
    assert noise_std(dp, m) == pytest.approx(z * c / m)
    assert np.std(noise) == pytest.approx(z * c / m, rel=0.02)
    assert abs(float(noise @ direction)) < 5 * z * c / m  # no leftover of the unclipped 10 C step


def test_epsilon_grows_with_rounds_and_shrinks_with_noise():
    acc = EpsilonAccountant(DPConfig(noise_multiplier=1.0, clipping_norm=1.0, delta=1e-5))
    eps = [acc.epsilon(r) for r in range(0, 6)]
    assert eps[0] == 0 and all(b > a for a, b in zip(eps, eps[1:]))
    assert eps[5] == pytest.approx(12.30, abs=0.05)  # opacus RDP, z = 1, q = 1, 5 steps, delta 1e-5
    assert EpsilonAccountant(DPConfig(noise_multiplier=4.0, clipping_norm=1.0)).epsilon(5) < eps[5] / 3
    # Gaussian mechanism, sample rate 1: RDP alpha / (2 z^2) per round, converted at delta: an upper bound
    alphas = np.arange(1.5, 256, 0.5)
    bound = np.min(5 * alphas / 2 + np.log(1 / 1e-5) / (alphas - 1))
    assert eps[5] <= bound + 1e-6


def test_dp_federation_reports_epsilon_per_round(two_sites, tmp_path):
    _, rows, _ = _federate(two_sites, tmp_path / "dp", "rounds=2", "privacy.dp.noise_multiplier=1.0",
                           "privacy.dp.clipping_norm=0.5")
    assert [r["round"] for r in rows] == [1, 2]
    assert 0 < rows[0]["epsilon"] < rows[1]["epsilon"]
    acc = EpsilonAccountant(DPConfig(noise_multiplier=1.0, clipping_norm=0.5))
    assert rows[1]["epsilon"] == pytest.approx(acc.epsilon(2))
    assert rows[1]["delta"] == 1e-5 and "RDP" in rows[1]["accountant"]
    assert rows[1]["noise_std"] == pytest.approx(1.0 * 0.5 / 2)


def test_freeze_counters_keeps_the_received_counts():
    received = {"w": np.zeros(3, np.float32), "n": np.array(7, np.int64)}
    out = freeze_counters({"w": np.ones(3, np.float32), "n": np.array(12, np.int64)}, received)
    assert out["n"].dtype == np.float64 and float(out["n"]) == 7 and np.all(out["w"] == 1)


def test_privacy_config_refusals():
    with pytest.raises(Exception, match="secagg cannot be combined with strategy fedbuff"):
        load_federated_config("tiny", ["strategy=fedbuff", "privacy.secagg.num_shares=1.0"])
    with pytest.raises(Exception, match="dp cannot be combined with strategy fedbuff"):
        load_federated_config("tiny", ["strategy=fedbuff", "privacy.dp.noise_multiplier=1",
                                       "privacy.dp.clipping_norm=1"])
    with pytest.raises(Exception, match="never sees a single update"):
        load_federated_config("tiny", ["privacy.dp.noise_multiplier=1", "privacy.dp.clipping_norm=1",
                                       "privacy.dp.clipping=server", "privacy.secagg.num_shares=1.0"])
    with pytest.raises(Exception, match="clipping_norm"):  # both dp numbers are required
        load_federated_config("tiny", ["privacy.dp.noise_multiplier=1"])
    with pytest.raises(Exception, match="epsilon_target|Extra inputs"):  # unknown keys are rejected
        load_federated_config("tiny", ["privacy.dp.noise_multiplier=1", "privacy.dp.clipping_norm=1",
                                       "privacy.dp.epsilon_target=3"])
    with pytest.raises(Exception, match="reconstruction_threshold"):  # Flower's own share checks
        load_federated_config("tiny", ["privacy.secagg.num_shares=3", "privacy.secagg.reconstruction_threshold=5"])
    config = load_federated_config("tiny", ["privacy.dp.noise_multiplier=1", "privacy.dp.clipping_norm=1"])
    assert config.privacy.dp.clipping == "client" and config.privacy.secagg is None
