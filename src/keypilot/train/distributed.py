"""torchrun / DistributedDataParallel set-up and the few collectives the loop needs.

One code path for every case: a plain process is rank 0 of a world of 1, and the helpers
below do nothing there. Under ``torchrun`` (RANK, WORLD_SIZE, LOCAL_RANK in the
environment) the process group is NCCL on GPUs and gloo on CPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str | None = None) -> tuple[DistInfo, torch.device]:
    """Join the process group when launched by torchrun; pick this process's device.

    ``device`` is ``cpu``, ``cuda`` or ``cuda:N``; ``None`` means CUDA when available.
    Under torchrun a CUDA process always takes GPU ``LOCAL_RANK``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    want_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if world_size <= 1:
        return DistInfo(), torch.device(device or ("cuda" if want_cuda else "cpu"))
    info = DistInfo(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if want_cuda:
        torch.cuda.set_device(info.local_rank)
        chosen = torch.device("cuda", info.local_rank)
    else:
        chosen = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo", init_method="env://")
    return info, chosen


def cleanup_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.is_distributed:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``tensor`` over ranks, in place; returns it."""
    if info.is_distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank."""
    if not info.is_distributed:
        return [obj]
    gathered: list[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def wrap_ddp(model: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    if not info.is_distributed:
        return model
    # The MoE runs only the chosen experts (top-1/top-2) and some heads are idle on some
    # batches, so a step can leave parameters without gradients; DDP must look for them.
    return DistributedDataParallel(
        model,
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=True,
    )
