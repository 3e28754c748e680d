"""The Flower ``ClientApp`` of a site: handshake and local training (see :mod:`.protocol`).

A SuperNode runs it with its node config: ``sessions`` (files, folders or globs separated by
``os.pathsep``), ``site-name`` and, for benchmarks, ``slowdown`` (a straggler factor). Flower starts a
fresh process per message, so nothing is kept between rounds (SecAgg+ keeps its keys in the
node's ``Context.state``); an exception becomes an error reply that names the site, and the server
goes on with the other sites. :func:`.privacy.privacy_mod` wraps training: Flower's client-side
clipping and SecAgg+ stages, each only when the server's message asks for it.
"""

from __future__ import annotations

import json
import time

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from acquisition.utils.version import software_version

from ..config import PretrainConfig
from . import protocol as p
from .privacy import freeze_counters, privacy_mod, site_reply_weight
from .schedule import site_seed
from .weights import from_array_record, to_array_record

# .site (torch, the session readers) is imported by the handlers that train: Flower starts a process
# per message, and SecAgg+'s key-exchange stages need neither

app = ClientApp()


def _site(context: Context) -> str:
    return str(context.node_config.get("site-name", f"node-{context.node_id}"))


def _site_data(msg: Message, context: Context):
    from .site import load_site, resolve_sessions

    site = _site(context)
    config = PretrainConfig.model_validate(json.loads(msg.content[p.CONFIG]["pretrain-config"]))
    sessions = resolve_sessions(str(context.node_config.get("sessions", "")), site=site)
    return site, config, load_site(sessions, config, site=site)


@app.query()
def handshake(msg: Message, context: Context) -> Message:
    """Check versions and modalities; answer with the model config this site's data implies."""
    site = _site(context)
    theirs, ours = str(msg.content[p.CONFIG]["emosync-version"]), software_version()
    if theirs != ours:
        raise ValueError(f"Site {site!r} runs emosync {ours}, the server {theirs}: install the server's version "
                         "at the site (model layouts can differ between versions).")
    from .site import build_site_model

    site, config, dataset = _site_data(msg, context)
    model, _ = build_site_model(config, dataset)
    # the modality order is kept (no sort_keys): it orders the encoders and the loss's pairs
    return Message(p.site_reply(site, json.dumps(model.config), ours, len(dataset)), reply_to=msg)


@app.train(mods=[privacy_mod])
def train(msg: Message, context: Context) -> Message:
    """Train the received global model on this site's sessions; reply with the new weights."""
    from .site import train_site

    site, config, dataset = _site_data(msg, context)
    c = msg.content[p.CONFIG]
    tic = time.monotonic()
    received = from_array_record(msg.content[p.ARRAYS])
    update = train_site(dataset, config, received, steps=int(c["local-steps"]),
                        lr=float(c["lr"]), proximal_mu=float(c["proximal-mu"]), seed=site_seed(int(c["seed"]), site))
    # node config `slowdown` (benchmarks only): a straggler site, `slowdown` times slower than its hardware
    slowdown = float(context.node_config.get("slowdown", 1.0))
    if slowdown > 1:
        time.sleep((slowdown - 1) * (time.monotonic() - tic))
    private = bool(c.get("private", False))
    record: ArrayRecord = to_array_record(freeze_counters(update.state, received) if private else update.state)
    metrics = MetricRecord({p.N_EXAMPLES: update.n_windows, p.WEIGHT: site_reply_weight(
        update.n_windows, bool(c.get("uniform-weight", False))), "loss": update.loss, "version": int(c["version"])})
    return Message(RecordDict({p.ARRAYS: record, p.METRICS: metrics}), reply_to=msg)
