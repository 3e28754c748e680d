"""The server's output folder: an ordinary pretraining run plus the federation's own records.

``emosync evaluate RUN heldout.h5`` reads ``config.yaml`` (the resolved pretraining config) and
``model/`` (:meth:`~fusion.model.MultiModalEncoder.save_pretrained`) as for any ``emosync pretrain``
run. Besides them: ``federated.yaml`` (the federated config), ``federated.pt`` (the global state,
round, server version and the server optimizer's velocity, written atomically after every
aggregation: the resume point),
``rounds.jsonl`` (one JSON object per round) and ``rounds.png`` (loss and participation per round).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ..config import PretrainConfig
from ..model import MultiModalEncoder
from .config import FederatedConfig

CHECKPOINT = "federated.pt"
ROUNDS = "rounds.jsonl"


class RunFolder:
    """The run folder of one federation (created, or reopened with ``resume=True``).

    Parameters
    ----------
    out : path-like
        The folder.
    pretrain_config, federated_config : PretrainConfig, FederatedConfig
        Written as ``config.yaml`` and ``federated.yaml``.
    resume : bool
        Continue from ``federated.pt``; without it an existing run is an error, never overwritten.
    """

    def __init__(self, out: str | os.PathLike, *, pretrain_config: PretrainConfig,
                 federated_config: FederatedConfig, resume: bool = False) -> None:
        self.path = Path(out)
        ckpt = self.path / CHECKPOINT
        if resume and not ckpt.is_file():
            raise FileNotFoundError(f"--resume: no {CHECKPOINT} in {self.path}; start without --resume.")
        if not resume and ckpt.is_file():
            raise FileExistsError(f"{self.path} already holds a federated run ({CHECKPOINT}); pass --resume to "
                                  "continue it or choose another --out.")
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "config.yaml").write_text(yaml.safe_dump(pretrain_config.model_dump(mode="json"),
                                                              sort_keys=False))
        (self.path / "federated.yaml").write_text(yaml.safe_dump(federated_config.model_dump(mode="json"),
                                                                 sort_keys=False))

    def load(self) -> dict[str, Any]:
        """The last checkpoint (``round``, ``version``, ``state``, ``model_config``, ``server``); later rows dropped."""
        ckpt = torch.load(self.path / CHECKPOINT, map_location="cpu", weights_only=False)
        rows = [r for r in self.rounds() if r["round"] <= ckpt["round"]]
        (self.path / ROUNDS).write_text("".join(json.dumps(r) + "\n" for r in rows))
        return ckpt

    def rounds(self) -> list[dict]:
        """The per-round records written so far."""
        path = self.path / ROUNDS
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def save(self, *, round_: int, version: int, state: Mapping[str, np.ndarray], model_config: dict,
             record: Mapping[str, Any], server: Mapping[str, Any] | None = None) -> None:
        """Write the global model after a round: ``model/``, ``federated.pt``, a ``rounds.jsonl`` line, the PNG.

        ``server`` is the server optimizer's state (:meth:`.server_optimizer.ServerMomentum.state_dict`).
        """
        model = MultiModalEncoder(**model_config)
        model.load_state_dict({k: torch.as_tensor(np.asarray(state["model." + k])).to(v.dtype).reshape(v.shape)
                               for k, v in model.state_dict().items()})
        model.save_pretrained(self.path / "model")
        tmp = self.path / (CHECKPOINT + ".tmp")
        torch.save({"round": round_, "version": version, "state": dict(state), "model_config": model_config,
                    "server": dict(server or {})}, tmp)
        os.replace(tmp, self.path / CHECKPOINT)  # a crash mid-write never leaves a truncated resume point
        with open(self.path / ROUNDS, "a") as f:
            f.write(json.dumps({"round": round_, "version": version, **record}) + "\n")
        plot_rounds(self.rounds(), self.path / "rounds.png")


def plot_rounds(rows: list[dict], png_path: Path) -> None:
    """PNG of the mean site loss and the number of sites per round (failed sites in red)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return
    rounds = [r["round"] for r in rows]
    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    ax0.plot(rounds, [r.get("loss", np.nan) for r in rows], "k.-")
    ax0.set(ylabel="mean site loss", title="Federated pretraining")
    ax1.bar(rounds, [r.get("sites", 0) for r in rows], color="tab:blue", label="updates aggregated")
    ax1.bar(rounds, [r.get("failed", 0) for r in rows], bottom=[r.get("sites", 0) for r in rows], color="tab:red",
            label="failed / timed out")
    ax1.set(xlabel="round", ylabel="sites")
    ax1.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
