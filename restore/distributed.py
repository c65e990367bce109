"""DistributedDataParallel from torchrun's environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``).

As in nanoGPT: the presence of ``RANK`` decides DDP; ``LOCAL_RANK`` picks the CUDA device; rank 0
is the main process (logging, checkpoints, progress bars); seeds are offset by rank where ranks must
differ. Backend: NCCL on CUDA, gloo on CPU (``MDF_DDP_BACKEND`` overrides).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job."""

    enabled: bool = False
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        """True on rank 0 (or without DDP)."""
        return self.rank == 0


def resolve_device(device: str = "auto") -> str:
    """'auto' -> 'cuda' when available, else 'cpu'; ``ValueError`` for CUDA without a GPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"unknown device {device!r}; expected auto, cpu, cuda or cuda:N")
    return device


def setup(device: str = "auto") -> DistInfo:
    """Initialise the process group when launched by torchrun; return this process's :class:`DistInfo`."""
    if "RANK" not in os.environ:
        return DistInfo(device=resolve_device(device))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = resolve_device(device)
    if dev.startswith("cuda"):
        dev = f"cuda:{local_rank}"
        torch.cuda.set_device(dev)
    backend = os.environ.get("MDF_DDP_BACKEND", "nccl" if dev.startswith("cuda") else "gloo")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    log.info("DDP rank %d/%d on %s (%s)", rank, world, dev, backend)
    return DistInfo(True, rank, local_rank, world, dev)


def cleanup(info: DistInfo) -> None:
    """Destroy the process group if :func:`setup` created one."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(value: float, info: DistInfo) -> float:
    """Average a float over ranks (identity without DDP)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return float(t.item()) / info.world_size


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op without DDP)."""
    if info.enabled:
        dist.barrier()
