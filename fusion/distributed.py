"""torch.distributed set-up from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).

``torchrun --nproc-per-node 2 -m emosync pretrain ...`` starts one process per rank; each calls
:func:`init_from_env`. gloo on CPU, nccl when CUDA is available (one GPU per local rank). Without
torchrun's variables (or with ``WORLD_SIZE=1``) nothing is initialised and training is single-process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from acquisition import logger


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``, its ``device``, and whether it set the group up."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the only one that writes files, logs and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_from_env() -> DistInfo:
    """Initialise the process group if torchrun launched us (idempotent), else a single-process DistInfo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world <= 1 and not (dist.is_available() and dist.is_initialized()):
        return DistInfo(device=torch.device("cuda" if cuda else "cpu"))
    if not dist.is_available():
        raise RuntimeError(f"WORLD_SIZE={world} but this torch build has no torch.distributed.")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local_rank)  # before init: nccl binds each rank to its GPU
    owns = False
    if not dist.is_initialized():
        for key in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
            if key not in os.environ:
                raise RuntimeError(f"WORLD_SIZE={world} but {key} is not set; launch with torchrun "
                                   "(`torchrun --nproc-per-node N -m emosync pretrain ...`).")
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        owns = True
    info = DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                    device=torch.device(f"cuda:{local_rank}" if cuda else "cpu"), owns_group=owns)
    if info.is_main:
        logger.info("Distributed training: %d ranks, backend %s", info.world_size, dist.get_backend())
    return info


def cleanup(info: DistInfo) -> None:
    """Destroy the process group if :func:`init_from_env` created it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_mean(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean over ranks of a detached tensor (identity in a single process)."""
    if not info.distributed:
        return values
    values = values.detach().clone()
    dist.all_reduce(values)
    return values / info.world_size
