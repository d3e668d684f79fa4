"""DistributedDataParallel helpers: process-group set-up from torchrun's environment.

Launch ``torchrun --no-python --nproc_per_node=N sinotriage train --config cfg.yaml``
(each process reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``). The backend is NCCL for CUDA devices and gloo on CPU. Each rank trains on its own
shard of every epoch's slice order; rank 0 writes the checkpoints and logs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "setup", "teardown", "shard"]


@dataclass(frozen=True)
class DistInfo:
    """Rank, world size and local rank of this process (0, 1, 0 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: str) -> DistInfo:
    """Join the process group described by the environment (no-op when WORLD_SIZE <= 1).

    Returns the :class:`DistInfo`; with CUDA the local rank's device is made current.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    here = False
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if device.startswith("cuda"):
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
        here = True
    return DistInfo(rank, world, local, here)


def teardown(info: DistInfo) -> None:
    """Leave the process group if :func:`setup` created it."""
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def shard(indices: list[int], info: DistInfo) -> list[int]:
    """This rank's share of ``indices`` (equal lengths on all ranks, the tail dropped)."""
    if not info.enabled:
        return indices
    n = len(indices) // info.world_size
    return indices[info.rank * n:(info.rank + 1) * n]
