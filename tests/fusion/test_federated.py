"""Federated pretraining without processes: aggregation known answers, site training, messages, run folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import ConfigRecord, MetricRecord, RecordDict
from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

from fusion.config import load_pretrain_config
from fusion.evaluate import load_run
from fusion.federated import protocol
from fusion.federated.config import load_federated_config
from fusion.federated.processes import TLS, check_insecure
from fusion.federated.run_folder import RunFolder
from fusion.federated.server_optimizer import ServerMomentum
from fusion.federated.site import build_site_model, load_site, resolve_sessions, train_site
from fusion.federated.weights import (check_update_arrays, fedbuff_update, from_array_record, module_state,
                                      staleness_weight, to_array_record, weighted_average)

from .test_train import SMALL


@pytest.fixture(scope="module")
def site_files(tmp_path_factory):
    """Two 6 s light-rig sessions, the second without EEG (the rig's depth is a real head, not a flat wall)."""
    from synth.rig.offline import write_rig_session

    folder = tmp_path_factory.mktemp("fedsites")
    return {"full": write_rig_session(folder / "full.h5", duration_s=6, seed=0),
            "no_eeg": write_rig_session(folder / "no_eeg.h5", duration_s=6, seed=1,
                                        modalities=("rgb", "depth", "emg", "au", "markers"))}


def _config():
    return load_pretrain_config("tiny", [*SMALL, "threads=1"])


def _random_states(n, seed=0):
    rng = np.random.default_rng(seed)
    return [{"a": rng.normal(size=(3, 2)).astype(np.float32), "b": rng.normal(size=4).astype(np.float32)}
            for _ in range(n)]


def test_fedavg_aggregate_is_the_weighted_average_of_site_models():
    """Flower's FedAvg aggregation of our records == sum_i n_i w_i / sum n_i, computed by hand."""
    states, n = _random_states(3), [10, 30, 60]
    records = [RecordDict({protocol.ARRAYS: to_array_record(s), protocol.METRICS: MetricRecord(
        {protocol.N_EXAMPLES: k, "loss": 1.0, "version": 0})}) for s, k in zip(states, n)]
    flower = from_array_record(aggregate_arrayrecords(records, protocol.N_EXAMPLES))
    for key in ("a", "b"):
        by_hand = (10 * states[0][key] + 30 * states[1][key] + 60 * states[2][key]) / 100
        np.testing.assert_allclose(flower[key], by_hand, rtol=1e-6)
        np.testing.assert_allclose(weighted_average(states, n)[key], by_hand, rtol=1e-6)
    # equal weights of identical states give the state back; a zero weight ignores that site
    np.testing.assert_allclose(weighted_average([states[0], states[1]], [1, 0])["a"], states[0]["a"])
    with pytest.raises(ValueError, match="positive sum"):
        weighted_average(states[:2], [0, 0])


def test_server_momentum_known_answer_and_resume():
    """FedAvgM: v = beta v + (agg - w), w += lr v; statistics take the aggregate; identity at lr 1, beta 0."""
    w0 = {"w": np.array([1.0, 2.0], np.float32), "var": np.array([0.5], np.float32), "n": np.array(3, np.int64)}
    u = np.array([0.1, -0.2])  # every round the sites' aggregate lies u away from the global model

    def aggregate(w):
        return {"w": w["w"] + u, "var": np.array([0.2]), "n": np.array(5.0)}

    plain = ServerMomentum()
    assert plain.is_identity
    got = plain.step(w0, aggregate(w0))
    np.testing.assert_allclose(got["w"], w0["w"] + u, rtol=1e-6)
    assert got["w"].dtype == np.float32 and got["n"].dtype == np.int64 and plain.velocity is None
    server = ServerMomentum(lr=2.0, momentum=0.5, statistics=["var", "n"])
    w1 = server.step(w0, aggregate(w0))
    np.testing.assert_allclose(w1["w"], w0["w"] + 2.0 * u, rtol=1e-6)           # v = u
    w2 = server.step(w1, aggregate(w1))
    np.testing.assert_allclose(w2["w"], w1["w"] + 2.0 * 1.5 * u, rtol=1e-6)     # v = 0.5 u + u
    # a running variance is never extrapolated (stepping it twice along -0.3 would give -0.7)
    assert w2["var"][0] == pytest.approx(0.2) and int(w2["n"]) == 5 and w2["w"].dtype == np.float32
    resumed = ServerMomentum(lr=2.0, momentum=0.5, statistics=["var", "n"])
    resumed.load_state_dict(server.state_dict())
    np.testing.assert_allclose(resumed.step(w2, aggregate(w2))["w"], server.step(w2, aggregate(w2))["w"])
    for bad in ({"lr": 0.0}, {"momentum": 1.0}):
        with pytest.raises(ValueError, match="server_momentum in"):
            ServerMomentum(**bad)


def test_fedbuff_staleness_weighting_known_answer():
    assert staleness_weight(0) == 1.0
    assert staleness_weight(3) == pytest.approx(0.5)
    assert staleness_weight(8) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="negative"):
        staleness_weight(-1)
    g = {"w": np.zeros(2, np.float32)}
    d1, d2 = {"w": np.array([1.0, 2.0])}, {"w": np.array([4.0, -8.0])}
    # fresh update from 10 windows, one 3 versions old from 30: (10*1*d1 + 30*0.5*d2) / 40
    new = fedbuff_update(g, [d1, d2], [10, 30], [0, 3])
    np.testing.assert_allclose(new["w"], (10 * d1["w"] + 15 * d2["w"]) / 40, rtol=1e-6)
    assert new["w"].dtype == np.float32
    # order of arrival does not matter; a stale-only buffer moves the model less than a fresh one
    np.testing.assert_allclose(fedbuff_update(g, [d2, d1], [30, 10], [3, 0])["w"], new["w"], rtol=1e-6)
    fresh = fedbuff_update(g, [d1, d1], [1, 1], [0, 0])["w"]
    stale = fedbuff_update(g, [d1, d1], [1, 1], [8, 8])["w"]
    np.testing.assert_allclose(stale, fresh / 3, rtol=1e-6)
    half = ServerMomentum(lr=0.5).step(g, fedbuff_update(g, [d1], [1], [0]))
    np.testing.assert_allclose(half["w"], d1["w"] / 2, rtol=1e-6)
    # BatchNorm variance: stepping a stale delta (1.0 - 2.0 from an older model) would make it negative;
    # statistics are the n * s(s)-weighted mean of the sites' values: (10 * 1 * 1.0 + 30 * 0.5 * 3.0) / 25
    g2 = {"w": np.zeros(2, np.float32), "var": np.array([0.5], np.float32)}
    deltas = [{"w": d1["w"], "var": np.array([-1.0])}, {"w": d2["w"], "var": np.array([-1.0])}]
    assert fedbuff_update(g2, deltas, [10, 30], [0, 3])["var"][0] < 0  # what stepping statistics would do
    new = fedbuff_update(g2, deltas, [10, 30], [0, 3], statistics=[{"var": np.array([1.0])}, {"var": np.array([3.0])}])
    np.testing.assert_allclose(new["var"], [2.2], rtol=1e-6)
    np.testing.assert_allclose(new["w"], (10 * d1["w"] + 15 * d2["w"]) / 40, rtol=1e-6)


def test_site_reply_holds_only_the_model_arrays(site_files):
    """What a site sends: the model's parameter names and shapes, and three scalars; nothing else passes."""
    config = _config()
    dataset = load_site([site_files["full"]], config, site="site-a")
    model, loss_fn = build_site_model(config, dataset)
    start = module_state(model, loss_fn)
    update = train_site(dataset, config, start, steps=2, lr=1e-2, seed=1)
    record = to_array_record(update.state)
    reply = RecordDict({protocol.ARRAYS: record, protocol.METRICS: MetricRecord(
        {protocol.N_EXAMPLES: update.n_windows, protocol.WEIGHT: float(update.n_windows), "loss": update.loss,
         "version": 0})})
    protocol.check_reply_content(reply, "train")
    received = from_array_record(reply[protocol.ARRAYS])
    check_update_arrays(received, start, who="site 'site-a'")
    assert set(received) == {f"model.{k}" for k in model.state_dict()} | {f"loss.{k}" for k in loss_fn.state_dict()}
    assert record.count_bytes() < 2 * sum(v.nbytes for v in start.values())  # framing aside: just the weights
    assert update.n_windows == len(dataset) and np.isfinite(update.loss)
    moved = [k for k in start if not np.array_equal(np.asarray(start[k]).ravel(), received[k].ravel())]
    assert moved, "two steps at lr 1e-2 changed no weight"
    # a reply with anything else (file names, windows) is refused, as are arrays of another model
    with pytest.raises(ValueError, match="must hold records"):
        protocol.check_reply_content(RecordDict({**reply, "extra": ConfigRecord({"file": "s.h5"})}), "train")
    with pytest.raises(ValueError, match="unexpected"):
        check_update_arrays({**received, "windows": np.zeros((8, 3))}, start, who="site 'site-a'")
    with pytest.raises(ValueError, match="other shapes"):
        check_update_arrays({**received, next(iter(received)): np.zeros(7)}, start, who="site 'site-a'")


def test_fedprox_keeps_the_site_near_the_global_model(site_files):
    config = _config()
    dataset = load_site([site_files["full"]], config, site="site-a")
    model, loss_fn = build_site_model(config, dataset)
    start = module_state(model, loss_fn)
    # parameters only: BatchNorm statistics follow the data whatever the proximal term says
    params = [f"model.{n}" for n, _ in model.named_parameters()] + [f"loss.{n}" for n, _ in loss_fn.named_parameters()]

    def distance(mu):
        new = train_site(dataset, config, start, steps=6, lr=3e-2, proximal_mu=mu, seed=3).state
        return sum(float(((new[k] - start[k]) ** 2).sum()) for k in params)
    assert distance(100.0) < 0.5 * distance(0.0)


def test_site_without_a_modality_names_the_site(site_files, tmp_path):
    with pytest.raises(ValueError, match=r"Site 'clinic-3'.*\['eeg'\]"):
        load_site([site_files["no_eeg"]], _config(), site="clinic-3")
    with pytest.raises(FileNotFoundError, match="Site 'clinic-4': no session file"):
        resolve_sessions(str(tmp_path / "empty"), site="clinic-4")
    assert resolve_sessions(str(site_files["full"].parent), site="s") == sorted(site_files.values())


def test_run_folder_is_an_ordinary_run_and_resumes(site_files, tmp_path):
    config, fed = _config(), load_federated_config("tiny")
    dataset = load_site([site_files["full"]], config, site="s")
    model, loss_fn = build_site_model(config, dataset)
    state = module_state(model, loss_fn)
    folder = RunFolder(tmp_path / "run", pretrain_config=config, federated_config=fed)
    velocity = {"velocity": {"model.x": np.ones(3)}}
    for r in (1, 2):
        folder.save(round_=r, version=r, state={k: v * 0 + r if v.dtype.kind == "f" else v for k, v in state.items()},
                    model_config=model.config, record={"loss": 1.0 / r, "sites": 2, "failed": 0}, server=velocity)
    loaded, loaded_config = load_run(tmp_path / "run")  # what `emosync evaluate` reads
    assert loaded.config == model.config and loaded_config.model.embed_dim == config.model.embed_dim
    assert all(float(v.flatten()[0]) == 2 for k, v in loaded.state_dict().items() if v.dtype.is_floating_point)
    assert (tmp_path / "run" / "rounds.png").is_file()
    with pytest.raises(FileExistsError, match="--resume"):
        RunFolder(tmp_path / "run", pretrain_config=config, federated_config=fed)
    with pytest.raises(FileNotFoundError, match="no federated.pt"):
        RunFolder(tmp_path / "other", pretrain_config=config, federated_config=fed, resume=True)
    # a crash after the checkpoint of round 1 but with a line of round 2 written: resume drops that line
    torch.save({**torch.load(tmp_path / "run" / "federated.pt", weights_only=False), "round": 1, "version": 1},
               tmp_path / "run" / "federated.pt")
    again = RunFolder(tmp_path / "run", pretrain_config=config, federated_config=fed, resume=True)
    ckpt = again.load()
    assert ckpt["round"] == 1 and [r["round"] for r in again.rounds()] == [1]
    np.testing.assert_array_equal(ckpt["server"]["velocity"]["model.x"], np.ones(3))  # server momentum resumes


def test_config_and_network_errors():
    with pytest.raises(Exception, match="buffer_size"):
        load_federated_config("tiny", ["strategy=fedbuff", "buffer_size=5", "min_sites=2"])
    with pytest.raises(ValueError, match="loopback only"):
        check_insecure("0.0.0.0", TLS())
    check_insecure("127.0.0.1", TLS())
    check_insecure("10.0.0.5", TLS(ca_cert="ca.crt"))


def test_configs_in_the_repo_validate():
    for name in ("default", "tiny", "private"):
        config = load_federated_config(name)
        assert config.host == "127.0.0.1" and config.strategy == "fedavg"
        assert (config.privacy.dp is not None) == (config.privacy.secagg is not None) == (name == "private")
        load_pretrain_config(config.pretrain, config.pretrain_overrides)  # the pretraining config they name exists


def test_cli_help_and_bad_input(tmp_path):
    from typer.testing import CliRunner

    from fusion.federated.cli import app

    runner = CliRunner()
    for command in ("local", "serve", "join"):
        assert f"Example: emosync federate {command}" in runner.invoke(app, [command, "--help"]).output
    res = runner.invoke(app, ["local", "--sites", str(tmp_path / "nowhere"), str(tmp_path / "b"), "--out",
                              str(tmp_path / "run")])
    assert res.exit_code == 1 and "Site 'nowhere': no session file" in res.output
    res = runner.invoke(app, ["serve", "--out", str(tmp_path / "run"), "--host", "0.0.0.0"])
    assert res.exit_code == 1 and "loopback only" in res.output
