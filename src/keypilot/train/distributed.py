"""torchrun / DistributedDataParallel set-up, the few collectives the loop needs, and the sampler.

One code path for every case: a plain process is rank 0 of a world of 1, and the helpers
below do nothing there. Under ``torchrun`` (RANK, WORLD_SIZE, LOCAL_RANK in the
environment) the process group is NCCL on GPUs and gloo on CPUs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Sampler


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


class ShardedBatchSampler(Sampler[list[int]]):
    """Batches of a seeded per-epoch order, sharded by rank, able to start mid-epoch.

    The order of epoch ``e`` is ``randperm(n)`` from a generator seeded with ``seed + e``
    (identity when ``shuffle`` is off), so it is the same on every rank and after a restart.
    Training pads the order by wrapping around so every rank gets the same number of
    batches (DDP needs that); evaluation (``pad=False``) sees each sample exactly once.
    ``set_epoch(e, start_batch)`` skips batches already consumed by index arithmetic alone,
    without loading any sample.
    """

    def __init__(self, num_samples: int, batch_size: int, *, seed: int = 0, shuffle: bool = True,
                 pad: bool = True, rank: int = 0, world_size: int = 1) -> None:
        if num_samples <= 0:
            raise ValueError("cannot sample from an empty data set")
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.pad = pad
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch = epoch
        self.start_batch = start_batch

    def shard(self) -> list[int]:
        """This rank's sample indices for the current epoch, in order."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_samples, generator=generator).tolist()
        else:
            order = list(range(self.num_samples))
        if self.pad:
            total = -(-self.num_samples // self.world_size) * self.world_size
            order = (order * (-(-total // len(order))))[:total]
        return order[self.rank :: self.world_size]

    @property
    def batches_per_epoch(self) -> int:
        if self.pad:
            per_rank = -(-self.num_samples // self.world_size)
        else:
            per_rank = len(range(self.rank, self.num_samples, self.world_size))
        return -(-per_rank // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        shard = self.shard()
        for start in range(self.start_batch * self.batch_size, len(shard), self.batch_size):
            yield shard[start : start + self.batch_size]

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch - self.start_batch)
