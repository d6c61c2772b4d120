"""How a run gets its batches: the tokenizer, the dataset (shard cache or decoded screenshots), a seeded
resumable sampler sharded by rank, the loaders."""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from keypilot.config import ConfigError, TrainingConfig
from keypilot.train.checkpoint import atomic_write_text
from keypilot.train.distributed import DistInfo, barrier

if TYPE_CHECKING:
    from keypilot.tokenizer import KeyPilotTokenizer

logger = logging.getLogger("keypilot.train")


class TokenizerTooLarge(ValueError):
    """The tokenizer has more tokens than the model's output layer."""


def prepare_tokenizer(data_dir: Path, run_dir: Path, vocab_size: int, info: DistInfo,
                      keep_existing: bool) -> KeyPilotTokenizer:
    """RUN/tokenizer.json: the data set's own when it has one, else trained on its train split.

    Rank 0 writes it; the other ranks wait at a barrier and load it.
    """
    from keypilot.tokenizer import KeyPilotTokenizer, train_tokenizer

    target = run_dir / "tokenizer.json"
    if info.is_main and not (keep_existing and target.exists()):
        supplied = data_dir / "tokenizer.json"
        if supplied.exists():
            atomic_write_text(target, supplied.read_text(encoding="utf-8"))
        else:
            logger.info(f"training a tokenizer (vocab {vocab_size}) on {data_dir / 'train.jsonl'}")
            partial = run_dir / f".tokenizer.json.{int(time.time())}.training.json"
            try:
                train_tokenizer(data_dir / "train.jsonl", partial, vocab_size=vocab_size)
                partial.replace(target)
            finally:
                partial.unlink(missing_ok=True)
    barrier(info)
    tokenizer = KeyPilotTokenizer.from_file(target)
    if tokenizer.vocab_size > vocab_size:
        raise TokenizerTooLarge(f"{target} has {tokenizer.vocab_size} tokens but model.vocab_size is {vocab_size}: "
                         "raise model.vocab_size in the config or use a smaller tokenizer")
    return tokenizer


def prepare_priors(data_dir: Path, run_dir: Path, train_records: list, info: DistInfo, keep_existing: bool) -> Any:
    """RUN/priors: the data set's own (``DATA/priors``, from ``keypilot priors build``) when it has
    them, else built from the training split. Rank 0 writes them; the others wait and load them.
    """
    from keypilot.priors import PRIORS_DIR, Priors, build_priors

    target = run_dir / PRIORS_DIR
    if info.is_main and not (keep_existing and target.is_dir()):
        supplied = data_dir / PRIORS_DIR
        partial = run_dir / f".{PRIORS_DIR}.{os.getpid()}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            if supplied.is_dir():
                shutil.copytree(supplied, partial)
            else:
                logger.info(f"building the priors from {len(train_records)} training records into {target}")
                build_priors(train_records, partial, progress=False)
            shutil.rmtree(target, ignore_errors=True)
            partial.replace(target)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    barrier(info)
    return Priors.load(target)


def resolve_workers(num_workers: int | str, cached: bool, device: torch.device) -> int:
    """``training.num_workers`` -> a worker count; ``auto`` decides from the cores and the data path.

    A cached batch is a few array slices (well under 1% of a CPU step): on a CPU run, worker
    processes would only take cores from the model, so it is loaded in-process. On a GPU the
    cores are free, and 2 workers hide the slicing and the pinned copy. Without the cache
    every sample is a PNG/JPEG decode: half the cores decode (at least one worker).
    """
    if num_workers != "auto":
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ConfigError(f"training.num_workers: expected auto or a count >= 0, got {num_workers!r}")
        return num_workers
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cached:
        return 0 if device.type == "cpu" else min(2, cores)
    return max(1, min(8, cores // 2))


def build_dataset(records: list, tokenizer: KeyPilotTokenizer, config: dict, cfg: TrainingConfig, *,
                  split: str, cache_root: Path | None, fallback_root: Path | None = None, priors: Any = None) -> Dataset:
    """The dataset of ``records``: the shard cache under ``cache_root`` (built on first use) when
    ``training.data_cache`` is on, else screenshots decoded per sample (``KeyPilotDataset``).
    With ``priors`` every record also carries its prior inputs (``dataset.record_priors``).

    A ``cache_root`` that cannot be written (a read-only data set) falls back to ``fallback_root``.
    """
    from keypilot.data.cache import CachedDataset, CacheUnavailable, ensure_cache
    from keypilot.data.dataset import KeyPilotDataset, record_priors

    m = config["model"]
    # Computed from the context text at start-up (about a millisecond a record), not cached:
    # they depend on the run's priors, which the shard cache's key does not cover.
    extra = record_priors(records, priors, tokenizer, m["prior_features"]) if priors is not None else None
    sizes = {"height": m["image_height"], "width": m["image_width"], "max_context_tokens": m["max_context_tokens"],
             "max_target_tokens": m["max_target_tokens"]}
    if cfg.data_cache and cache_root is not None:
        for root in (cache_root, fallback_root):
            if root is None:
                continue
            try:
                return CachedDataset(records, ensure_cache(records, tokenizer, root, split=split, **sizes), extra)
            except CacheUnavailable as err:
                logger.warning(f"{err}" + (f"; trying {fallback_root}" if root == cache_root and fallback_root else ""))
        logger.warning("no data cache: screenshots are decoded per sample")
    return KeyPilotDataset(records, tokenizer, image_height=sizes["height"], image_width=sizes["width"],
                           max_context_tokens=sizes["max_context_tokens"], max_target_tokens=sizes["max_target_tokens"],
                           extra=extra)


def cache_data_set(data_dir: Path, config_path: Path, splits: tuple[str, ...] = ("train", "val")) -> int:
    """``keypilot data cache``: write the shard cache of each split a run of ``config_path`` reads."""
    from keypilot.config import load_config
    from keypilot.data.cache import ensure_cache
    from keypilot.data.format import read_records
    from keypilot.tokenizer import KeyPilotTokenizer

    config = load_config(config_path)
    m = config["model"]
    tokenizer_path = data_dir / "tokenizer.json"
    if not tokenizer_path.exists():
        raise ConfigError(f"{tokenizer_path} is missing: the cache holds tokenized text, so train the tokenizer first "
                          f"(keypilot tokenizer train --data {data_dir / 'train.jsonl'} --out {tokenizer_path})")
    tokenizer = KeyPilotTokenizer.from_file(tokenizer_path)
    for split in splits:
        if not (data_dir / f"{split}.jsonl").exists():
            continue
        records = read_records(data_dir / f"{split}.jsonl")
        folder = ensure_cache(records, tokenizer, data_dir / ".cache", split=split, height=m["image_height"],
                              width=m["image_width"], max_context_tokens=m["max_context_tokens"],
                              max_target_tokens=m["max_target_tokens"])
        size = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
        print(f"{split}: {len(records)} records in {folder} ({size:.0f} MB)", flush=True)
    return 0


def build_loader(dataset: Dataset, cfg: TrainingConfig, sampler: ShardedBatchSampler, device: torch.device) -> DataLoader:
    from keypilot.data.cache import CachedDataset, as_batch
    from keypilot.data.dataset import collate

    cached = isinstance(dataset, CachedDataset)
    workers = resolve_workers(cfg.num_workers, cached, device)
    return DataLoader(
        dataset, batch_sampler=sampler, collate_fn=as_batch if cached else collate, num_workers=workers,
        pin_memory=device.type == "cuda", persistent_workers=workers > 0, prefetch_factor=4 if workers else None,
        # Worker seeds come from this generator, not from the global torch RNG: creating an
        # iterator then leaves the dropout stream untouched, which exact resume relies on.
        generator=torch.Generator().manual_seed(cfg.seed),
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
