"""The federated-pretraining settings (``configs/federated/*.yaml``), validated with unknown keys rejected.

The model, data and loss settings are not repeated here: ``pretrain`` names a pretraining config
(``configs/pretrain/<name>.yaml`` or a path) and ``pretrain_overrides`` changes it, so a federated run
trains exactly what ``emosync pretrain`` would. Only the server reads this file; it sends the resolved
pretraining config to every site with the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from acquisition.utils.config import StrictModel, load_config


class FederatedConfig(StrictModel):
    """Rounds, strategy and network settings of one federated run."""

    pretrain: str = "tiny"                       # configs/pretrain name or a .yaml path
    pretrain_overrides: list[str] = []           # key=value, as `emosync pretrain --set`
    # fedavg / fedprox: Flower's synchronous strategies; fedbuff: asynchronous buffered aggregation
    strategy: Literal["fedavg", "fedprox", "fedbuff"] = "fedavg"
    rounds: int = Field(20, ge=1)                # aggregations of the global model (fedbuff: server versions)
    local_steps: int = Field(20, ge=1)           # optimizer steps per site per round
    min_sites: int = Field(2, ge=1)              # sites that must pass the handshake before round 1
    proximal_mu: float = Field(0.01, ge=0)       # fedprox: weight of (mu/2)||w - w_global||^2
    buffer_size: int = Field(2, ge=1)            # fedbuff: K updates per aggregation
    server_lr: float = Field(1.0, gt=0)          # fedbuff: global step on the buffered mean update
    round_timeout_s: float = Field(600.0, gt=0)  # a site slower than this is left out of the round
    wait_for_sites_s: float = Field(120.0, gt=0)  # how long the handshake waits for min_sites
    poll_s: float = Field(0.5, gt=0)             # interval of pulling replies from the SuperLink
    host: str = "127.0.0.1"                      # SuperLink address (serve/local); loopback by default
    port: int = Field(9460, ge=1, le=65535)      # SuperLink HTTP port (Fleet, Control and Runtime APIs)

    @model_validator(mode="after")
    def _check(self) -> FederatedConfig:
        if self.strategy == "fedbuff" and self.buffer_size > self.min_sites:
            raise ValueError(f"buffer_size {self.buffer_size} > min_sites {self.min_sites}: FedBuff could wait "
                             "for more updates than there are sites; lower buffer_size or raise min_sites.")
        return self


def load_federated_config(name_or_path: str | Path = "default", overrides: Sequence[str] = ()) -> FederatedConfig:
    """Load ``configs/federated/<name>.yaml`` (or a path) with ``key=value`` overrides."""
    return load_config(FederatedConfig, name_or_path, "federated", overrides)
