"""The server's view of a federation: the sites that passed the handshake, message exchange, records.

:class:`Federation` wraps Flower's ``Grid`` (the ServerApp's connection to the SuperLink). It never
opens a session file: the initial model is built from the model config the sites report
(:mod:`.protocol`), and all it receives are arrays of the model's names and shapes, checked on
arrival. Sites are handshaken when they first appear, so a site may join a running federation;
``sites.json`` in the run folder lists every site with its status and, for an excluded one, why.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from acquisition import logger
from acquisition.utils.version import software_version

from ..config import PretrainConfig
from . import protocol as p
from .config import FederatedConfig
from .run_folder import RunFolder
from .schedule import round_lr, round_seed


@dataclass
class Federation:
    """Grid, configs, run folder and the registry of sites.

    ``sites`` maps accepted node ids to site names; ``rejected`` maps node ids to the reason;
    ``n_windows`` maps node ids to the windows a site reported at its handshake.
    """

    grid: Grid
    config: FederatedConfig
    pretrain: PretrainConfig
    folder: RunFolder
    expected_sites: int = 0
    model_config: dict | None = None
    sites: dict[int, str] = field(default_factory=dict)
    rejected: dict[int, str] = field(default_factory=dict)
    n_windows: dict[int, int] = field(default_factory=dict)
    _names: dict[int, str] = field(default_factory=dict)
    t0: float = field(default_factory=time.monotonic)

    # -- messages ---------------------------------------------------------------
    def exchange(self, messages: Sequence[Message], timeout_s: float) -> tuple[list[Message], list[int]]:
        """Push ``messages``, pull replies every ``poll_s`` until all arrived or ``timeout_s`` passed.

        Returns the replies and the node ids that did not answer in time. (Flower's own
        ``send_and_receive`` polls every 3 s, which dominates short rounds.)
        """
        pending = {mid: m.metadata.dst_node_id for mid, m in zip(self.grid.push_messages(messages), messages)}
        replies: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            for reply in self.grid.pull_messages(list(pending)):
                pending.pop(reply.metadata.reply_to_message_id, None)
                replies.append(reply)
            if pending:
                time.sleep(self.config.poll_s)
        return replies, list(pending.values())

    def name(self, node_id: int) -> str:
        """The site name of a node (its node id before the handshake)."""
        return self.sites.get(node_id) or self._names.get(node_id) or f"node-{node_id}"

    def reply_error(self, reply: Message) -> str | None:
        """The error a reply carries (Flower wraps the site's exception), or None."""
        if reply.has_error():
            return f"{self.name(reply.metadata.src_node_id)}: {reply.error.reason}"
        return None

    # -- handshake --------------------------------------------------------------
    def pretrain_json(self) -> str:
        return json.dumps(self.pretrain.model_dump(mode="json"))

    def wait_for_sites(self) -> None:
        """Block until ``expected_sites`` (or ``min_sites``) nodes are connected; RuntimeError after the wait."""
        want = max(self.expected_sites, self.config.min_sites)
        deadline = time.monotonic() + self.config.wait_for_sites_s
        while len(list(self.grid.get_node_ids())) < want:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Only {len(list(self.grid.get_node_ids()))} site(s) connected after "
                                   f"{self.config.wait_for_sites_s:.0f} s, {want} needed (min_sites): start the "
                                   "sites (`emosync federate join SERVER ...`) or lower min_sites.")
            time.sleep(self.config.poll_s)

    def handshake_new(self) -> list[int]:
        """Handshake every connected node not seen before; returns the newly accepted node ids."""
        new = [n for n in self.grid.get_node_ids() if n not in self.sites and n not in self.rejected]
        if not new:
            return []
        config = ConfigRecord({"pretrain-config": self.pretrain_json(), "emosync-version": software_version()})
        messages = [Message(RecordDict({p.CONFIG: config}), dst_node_id=n, message_type=MessageType.QUERY)
                    for n in new]
        replies, silent = self.exchange(messages, self.config.round_timeout_s)
        offers: dict[int, dict] = {}
        for reply in replies:
            node = reply.metadata.src_node_id
            error = self.reply_error(reply)
            if error is None:
                try:
                    p.check_reply_content(reply.content, "query")
                    self._names[node] = str(reply.content[p.SITE]["site-name"])
                    offers[node] = json.loads(str(reply.content[p.SITE]["model-config"]))
                    self.n_windows[node] = int(reply.content[p.METRICS][p.N_EXAMPLES])
                except (ValueError, KeyError) as err:
                    error = f"{self.name(node)}: {err}"
            if error is not None:
                self._reject(node, error)
        for node in silent:
            self._reject(node, f"{self.name(node)}: no handshake reply within {self.config.round_timeout_s:.0f} s")
        if self.model_config is None and offers:
            # the model most sites can train (ties: the first site's); the others are told what differs
            counts = Counter(json.dumps(c, sort_keys=True) for c in offers.values())
            winner = counts.most_common(1)[0][0]
            self.model_config = next(c for c in offers.values() if json.dumps(c, sort_keys=True) == winner)
        accepted = []
        for node, offered in offers.items():
            if offered != self.model_config:
                self._reject(node, f"Site {self.name(node)!r} builds another model from its sessions: "
                                   f"{_diff(offered, self.model_config)}. Its channel counts or config differ from "
                                   "the federation's.")
            else:
                self.sites[node] = self._names[node]
                accepted.append(node)
                logger.info("Site %r joined the federation (node %d).", self.sites[node], node)
        self.write_sites()
        return accepted

    def _reject(self, node: int, reason: str) -> None:
        self.rejected[node] = reason
        logger.error("Site excluded from the federation: %s", reason)

    def drop(self, node: int, reason: str) -> None:
        """Take a site out (its training failed); the others go on."""
        self.sites.pop(node, None)
        self._reject(node, reason)
        self.write_sites()

    def write_sites(self) -> None:
        """``sites.json``: every site seen, ``ok`` or ``excluded`` with the reason."""
        rows = {self.name(n): {"node_id": n, "status": "ok"} for n in self.sites}
        for n, reason in self.rejected.items():
            # a site that failed its handshake never told its name, but its error names it
            named = re.search(r"Site '([^']+)'", reason) if n not in self._names else None
            rows[named.group(1) if named else self.name(n)] = {"node_id": n, "status": "excluded", "reason": reason}
        (self.folder.path / "sites.json").write_text(json.dumps(rows, indent=1))

    def require_sites(self) -> None:
        """RuntimeError when no site is left to train."""
        if not self.sites:
            reasons = "; ".join(self.rejected.values()) or "none connected"
            raise RuntimeError(f"No site can train the federated model ({reasons}). See {self.folder.path}/sites.json.")

    # -- schedule ---------------------------------------------------------------
    def lr(self, round_: int) -> float:
        """The pretraining config's cosine decay, over rounds instead of steps (:func:`.schedule.round_lr`)."""
        return round_lr(self.pretrain.optim, round_, self.config.rounds)

    def train_config(self, round_: int, version: int) -> ConfigRecord:
        """The ``config`` record of a train message (:mod:`.protocol`)."""
        return ConfigRecord({"pretrain-config": self.pretrain_json(), "local-steps": self.config.local_steps,
                             "lr": self.lr(round_), "proximal-mu": self.config.proximal_mu
                             if self.config.strategy == "fedprox" else 0.0,
                             "seed": round_seed(self.pretrain.seed, round_), "server-round": round_,
                             "version": version, "private": self.config.privacy.dp is not None
                             or self.config.privacy.secagg is not None,
                             "uniform-weight": self.config.privacy.dp is not None})


def _diff(a: dict, b: dict) -> str:
    """The first differences between two nested dicts, as ``key: got vs expected``."""
    out = []

    def walk(x, y, path):
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                walk(x.get(k), y.get(k), f"{path}.{k}" if path else k)
        elif x != y:
            out.append(f"{path}: {x} vs {y}")
    walk(a, b, "")
    return "; ".join(out[:4])

