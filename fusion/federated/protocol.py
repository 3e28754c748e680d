"""What server and sites say to each other: message keys and the records of each message.

Two message types (Flower's ``MessageType``):

``query`` (handshake, once per site): the server sends ``config`` = {``pretrain-config``: the run's
pretraining config as JSON, ``emosync-version``}; the site answers ``site`` = {``site-name``,
``model-config``: the :class:`~fusion.model.MultiModalEncoder` arguments its data implies (shapes and
channel counts only), ``emosync-version``} and ``metrics`` = {``num-examples``}. The server needs no
session to build the initial model: it builds it from that config.

``train`` (every round): the server sends ``arrays`` (the global state) and ``config`` = {``pretrain-config``,
``local-steps``, ``lr``, ``proximal-mu``, ``seed``, ``server-round``, ``version``, ``private``,
``uniform-weight``}; the site answers ``arrays`` (its new state, the same names and shapes) and
``metrics`` = {``num-examples``, ``weight``, ``loss``, ``version``}. ``weight`` is what FedAvg averages
with: the windows trained, or 1 for every site when ``uniform-weight`` (differential privacy needs equal
weights). ``private`` (differential privacy or secure aggregation on) keeps integer counters (BatchNorm's
step counts, no data in them) at the received values and sends them as floats, so clipping and
quantization see only the data-driven part of the update. Flower's privacy wrappers add their own keys
(``clipping_norm`` in ``config``; SecAgg+'s stage records, :mod:`.privacy`).
:func:`check_reply_content` is what the server accepts: nothing else.
"""

from __future__ import annotations

from flwr.app import ConfigRecord, MetricRecord, RecordDict

ARRAYS, CONFIG, METRICS, SITE = "arrays", "config", "metrics", "site"
#: FedAvg's weighting key (Flower's default ``weighted_by_key``): windows trained at the site.
N_EXAMPLES = "num-examples"
#: What FedAvg weights a site's reply with (``weighted_by_key``): ``num-examples``, or 1 under DP.
WEIGHT = "weight"
#: The only keys a site's replies may hold, per record.
REPLY_KEYS = {"query": {SITE: {"site-name", "model-config", "emosync-version"}, METRICS: {N_EXAMPLES}},
              "train": {ARRAYS: None, METRICS: {N_EXAMPLES, WEIGHT, "loss", "version"}}}


def site_reply(site: str, model_config: str, version: str, n_windows: int) -> RecordDict:
    """The handshake reply of a site."""
    return RecordDict({SITE: ConfigRecord({"site-name": site, "model-config": model_config,
                                           "emosync-version": version}),
                       METRICS: MetricRecord({N_EXAMPLES: int(n_windows)})})


def check_reply_content(content: RecordDict, kind: str) -> None:
    """Raise ValueError unless a reply holds only the records and keys of :data:`REPLY_KEYS`.

    Arrays are checked against the model's names and shapes separately
    (:func:`fusion.federated.weights.check_update_arrays`).
    """
    allowed = REPLY_KEYS[kind]
    names = set(content.keys())
    if names != set(allowed):
        raise ValueError(f"A {kind} reply must hold records {sorted(allowed)}, got {sorted(names)}.")
    for name, keys in allowed.items():
        if keys is not None and set(content[name].keys()) != keys:
            raise ValueError(f"The {name!r} record of a {kind} reply must hold {sorted(keys)}, got "
                             f"{sorted(content[name].keys())}.")
