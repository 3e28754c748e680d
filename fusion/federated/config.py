"""The federated-pretraining settings (``configs/federated/*.yaml``), validated with unknown keys rejected.

The model, data and loss settings are not repeated here: ``pretrain`` names a pretraining config
(``configs/pretrain/<name>.yaml`` or a path) and ``pretrain_overrides`` changes it, so a federated run
trains exactly what ``emosync pretrain`` would. Only the server reads this file; it sends the resolved
pretraining config to every site with the weights. ``privacy`` switches on differential privacy on the
updates and SecAgg+ secure aggregation (:mod:`.privacy` says what each guarantees and costs).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from acquisition.utils.config import StrictModel, load_config


class DPConfig(StrictModel):
    """Differential privacy on the site updates (DP-FedAvg with fixed clipping, Flower's wrappers)."""

    noise_multiplier: float = Field(gt=0)   # z: noise std on the mean update = z * clipping_norm / sites
    clipping_norm: float = Field(gt=0)      # C: L2 bound of one site's update w_site - w_global (all arrays)
    # client: the site clips before sending (Flower's fixedclipping_mod; needed with secagg); server: the server does
    clipping: Literal["client", "server"] = "client"
    delta: float = Field(1e-5, gt=0, lt=1)  # the delta at which epsilon is reported (RDP accountant)


class SecAggConfig(StrictModel):
    """SecAgg+ secure aggregation (Flower's ``SecAggPlusWorkflow`` / ``secaggplus_mod``)."""

    # int > 2: shares of each site's secret; float in (0, 1]: that fraction of the round's sites
    num_shares: int | float = 1.0
    # int: shares needed to rebuild a dropped site's mask; float: that fraction of num_shares (at least 2)
    reconstruction_threshold: int | float = 1.0
    clipping_range: float = Field(8.0, gt=0)     # |update entry| bound before quantization (a site refuses more)
    quantization_range: int = Field(2**22, gt=1)  # integer levels over [-clipping_range, clipping_range]


class PrivacyConfig(StrictModel):
    """Optional privacy of the updates; both off by default."""

    dp: DPConfig | None = None
    secagg: SecAggConfig | None = None


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
    server_lr: float = Field(1.0, gt=0)          # global step on the aggregated update (1: the aggregate)
    server_momentum: float = Field(0.0, ge=0, lt=1)  # FedAvgM server momentum on that update (0: none)
    round_timeout_s: float = Field(600.0, gt=0)  # a site slower than this is left out of the round
    wait_for_sites_s: float = Field(120.0, gt=0)  # how long the handshake waits for min_sites
    poll_s: float = Field(0.5, gt=0)             # interval of pulling replies from the SuperLink
    host: str = "127.0.0.1"                      # SuperLink address (serve/local); loopback by default
    port: int = Field(9460, ge=1, le=65535)      # SuperLink HTTP port (Fleet, Control and Runtime APIs)
    privacy: PrivacyConfig = PrivacyConfig()     # differential privacy and secure aggregation (off)

    @model_validator(mode="after")
    def _check(self) -> FederatedConfig:
        if self.strategy == "fedbuff" and self.buffer_size > self.min_sites:
            raise ValueError(f"buffer_size {self.buffer_size} > min_sites {self.min_sites}: FedBuff could wait "
                             "for more updates than there are sites; lower buffer_size or raise min_sites.")
        dp, secagg = self.privacy.dp, self.privacy.secagg
        if self.strategy == "fedbuff" and secagg is not None:
            raise ValueError("privacy.secagg cannot be combined with strategy fedbuff: SecAgg+ masks cancel only "
                             "when the server sums the updates of the cohort that agreed on them in one synchronous "
                             "round, and FedBuff aggregates whichever buffer_size updates arrive first, started from "
                             "different model versions. Use strategy fedavg or fedprox with secagg.")
        if self.strategy == "fedbuff" and dp is not None:
            raise ValueError("privacy.dp cannot be combined with strategy fedbuff: the guarantee needs every "
                             "aggregation to average a known number of clipped updates with equal weights, and "
                             "FedBuff weights each update by its staleness. Use strategy fedavg or fedprox with dp.")
        if secagg is not None:
            if dp is not None and dp.clipping == "server":
                raise ValueError("privacy.dp.clipping 'server' cannot be combined with privacy.secagg: under SecAgg+ "
                                 "the server never sees a single update, so it cannot clip one. Use clipping: client.")
            if self.min_sites < 2:
                raise ValueError(f"privacy.secagg needs at least 2 sites per round (min_sites is {self.min_sites}): "
                                 "the sum of one site's update is that update. Raise min_sites.")
            from flwr.server.workflow import SecAggPlusWorkflow

            try:  # Flower's own checks of the share settings
                SecAggPlusWorkflow(secagg.num_shares, secagg.reconstruction_threshold,
                                   clipping_range=secagg.clipping_range, quantization_range=secagg.quantization_range)
            except (TypeError, ValueError) as err:
                raise ValueError(f"privacy.secagg: {err}") from None
        return self


def load_federated_config(name_or_path: str | Path = "default", overrides: Sequence[str] = ()) -> FederatedConfig:
    """Load ``configs/federated/<name>.yaml`` (or a path) with ``key=value`` overrides."""
    return load_config(FederatedConfig, name_or_path, "federated", overrides)
