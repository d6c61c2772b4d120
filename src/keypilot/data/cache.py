"""The preprocessed shard cache: every record's batch rows, computed once, memory-mapped after.

Decoding and letterboxing a PNG or JPEG costs ~7 ms of a core, over half of what the tiny
model's training step now costs per sample, and the old loader paid it for every sample of
every epoch, in worker processes that competed with the model for the same cores. The cache
pays it once per data set and image size:

    DATA/.cache/<split>-<H>x<W>-<key>/
        screens.npy         [N, 3, H, W] uint8   letterboxed exactly as the predictors do it
        roi_boxes.npy       [N, 4, 4] float32    ROI boxes in that frame
        roi_valid.npy       [N, 4] bool
        input_ids.npy ...   one .npy per entry of ``dataset.record_arrays`` (int64 rows)
        meta.json           written last: the key and what went into it

One ``.npy`` per array (numpy's own header: dtype and shape, no format of ours), opened
with ``mmap_mode="r"``: a batch is one fancy-index per array, in the training process
itself, and the page cache shares the pages between runs and processes.

``<key>`` hashes everything the rows depend on: ``CACHE_VERSION``, the image size, the
context and target lengths, the tokenizer's JSON, and every record's fields with its
image's size and modification time. A change of any of them gives another folder; nothing
is ever updated in place. A cache is built in a temp folder and renamed into place (atomic
on POSIX), under an exclusive lock file, so two processes that need the same cache at once
build it once: the second waits and reads the first's. A build killed midway leaves only a
temp folder, removed by the next build of that key.

The order of records and batches is the sampler's, exactly as without the cache, and rows
hold the same values (``tests/test_cache.py`` compares a batch of both paths), so seeds,
batches and exact resume are unchanged.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import multiprocessing
import os
import secrets
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from keypilot.atomic import fsync_dir
from keypilot.data.dataset import check_extra, record_arrays, reply_to, screen_arrays
from keypilot.data.format import Record
from keypilot.tokenizer import KeyPilotTokenizer

logger = logging.getLogger("keypilot.train")

# Bump when what a cache holds changes (a new entry of record_arrays, another letterbox):
# old caches then get a new key and are rebuilt instead of read.
CACHE_VERSION = 2
SCREEN_ARRAYS = ("screens", "roi_boxes", "roi_valid")
META = "meta.json"


class CacheUnavailable(OSError):
    """The cache folder cannot be written (read-only data set, disk full...)."""


def cache_key(records: Sequence[Record], tokenizer: KeyPilotTokenizer, height: int, width: int,
              max_context_tokens: int, max_target_tokens: int) -> str:
    """sha256 (hex) of everything a cache's rows depend on."""
    digest = hashlib.sha256()
    # The tokenizer's full JSON: vocabulary, merges and special tokens (its pickled state).
    tokenizer_json = tokenizer.__getstate__()["json"]
    header = {"version": CACHE_VERSION, "height": height, "width": width, "max_context_tokens": max_context_tokens,
              "max_target_tokens": max_target_tokens, "tokenizer": hashlib.sha256(tokenizer_json.encode()).hexdigest()}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for r in records:
        stat = os.stat(r.image)
        fields = [r.id, str(r.image), stat.st_size, stat.st_mtime_ns, r.context, r.task, r.target, r.layout,
                  r.prev_layout, r.lang, r.user_id, r.rois, reply_to(r)]
        digest.update(json.dumps(fields, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def ensure_cache(records: Sequence[Record], tokenizer: KeyPilotTokenizer, root: str | Path, *, split: str,
                 height: int, width: int, max_context_tokens: int, max_target_tokens: int,
                 workers: int | None = None) -> Path:
    """The cache folder of ``records`` under ``root``, built first if it is not there yet.

    Raises ``CacheUnavailable`` when ``root`` cannot be written; a cache that is already there
    is used without writing anything.
    """
    root = Path(root)
    key = cache_key(records, tokenizer, height, width, max_context_tokens, max_target_tokens)
    name = f"{split}-{height}x{width}-{key[:16]}"
    folder = root / name
    if _is_complete(folder, key, len(records)):
        return folder
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = open(root / f".{name}.lock", "a")  # noqa: SIM115 (held until the build is done)
    except OSError as err:
        raise CacheUnavailable(f"cannot write the data cache in {root}: {err}") from err
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process building the same cache: wait for it
        if _is_complete(folder, key, len(records)):
            return folder
        for stale in root.glob(f".{name}.*.tmp"):  # left by a killed build (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = root / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            tmp.mkdir()
            _build(tmp, records, tokenizer, key, height, width, max_context_tokens, max_target_tokens, workers)
            if folder.exists():  # an incomplete folder that is not ours to keep (older crash, other version)
                shutil.rmtree(folder)
            os.replace(tmp, folder)
            fsync_dir(root)
        except OSError as err:
            shutil.rmtree(tmp, ignore_errors=True)
            raise CacheUnavailable(f"cannot write the data cache in {root}: {err}") from err
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return folder


def _is_complete(folder: Path, key: str, count: int) -> bool:
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return meta.get("key") == key and meta.get("count") == count


def _screen_row(job: tuple[Record, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    record, height, width = job
    image, boxes, valid = screen_arrays(record, height, width)
    # Back to the uint8 canvas that letterbox divided by 255: exact (x / 255 * 255 rounds to x
    # for every byte), so the cached path's x / 255 gives the same float32 as the decoder's.
    return np.rint(image * 255.0).astype(np.uint8), boxes, valid


def _build(folder: Path, records: Sequence[Record], tokenizer: KeyPilotTokenizer, key: str, height: int, width: int,
           max_context_tokens: int, max_target_tokens: int, workers: int | None) -> None:
    n = len(records)
    start = time.perf_counter()
    logger.info(f"data cache: letterboxing {n} screens to {height}x{width} once, into {folder.parent}")
    arrays = record_arrays(records, tokenizer, max_context_tokens, max_target_tokens)
    for name, array in arrays.items():
        _save(folder / f"{name}.npy", array)
    out = {
        "screens": np.lib.format.open_memmap(folder / "screens.npy", "w+", np.uint8, (n, 3, height, width)),
        "roi_boxes": np.zeros((n, 4, 4), np.float32),
        "roi_valid": np.zeros((n, 4), bool),
    }
    workers = max(1, min(workers or os.cpu_count() or 1, n))
    jobs = [(r, height, width) for r in records]
    # Processes, not threads: letterboxing holds the GIL for part of its time. fork: the
    # workers need nothing but this module, and spawn would re-import torch in each.
    context = multiprocessing.get_context("fork") if sys.platform != "win32" else multiprocessing.get_context()
    with contextlib.ExitStack() as stack:
        if workers > 1:
            rows = stack.enter_context(context.Pool(workers)).imap(_screen_row, jobs, chunksize=16)
        else:
            rows = map(_screen_row, jobs)
        bar = stack.enter_context(tqdm(total=n, unit="screen", desc="data cache", disable=None, file=sys.stderr))
        for i, (screen, boxes, valid) in enumerate(rows):
            out["screens"][i], out["roi_boxes"][i], out["roi_valid"][i] = screen, boxes, valid
            bar.update(1)
    out["screens"].flush()
    del out["screens"]
    for name in ("roi_boxes", "roi_valid"):
        _save(folder / f"{name}.npy", out[name])
    for path in folder.iterdir():
        with path.open("rb") as fh:
            os.fsync(fh.fileno())
    meta = {"key": key, "version": CACHE_VERSION, "count": n, "height": height, "width": width,
            "max_context_tokens": max_context_tokens, "max_target_tokens": max_target_tokens,
            "arrays": sorted([*arrays, *SCREEN_ARRAYS]), "seconds": round(time.perf_counter() - start, 1)}
    (folder / META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    with (folder / META).open("rb") as fh:
        os.fsync(fh.fileno())
    fsync_dir(folder)
    logger.info(f"data cache: {n} screens in {time.perf_counter() - start:.0f} s")


def _save(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as fh:
        np.save(fh, array)


class CachedDataset(Dataset):
    """``KeyPilotDataset``'s items and batches, read from a cache folder of ``ensure_cache``.

    ``records`` must be the records the cache was built from, in the same order (their ids go
    into the batch). The DataLoader fetches whole batches through ``__getitems__``: one
    fancy-index per array instead of one item at a time, so pass ``collate_fn=as_batch``.
    The memory maps are opened lazily, so the dataset pickles cheaply into worker processes.
    """

    def __init__(self, records: Sequence[Record], folder: str | Path, extra: Mapping[str, np.ndarray] | None = None):
        self.records = list(records)
        self.folder = Path(folder)
        meta = json.loads((self.folder / META).read_text(encoding="utf-8"))
        if meta["count"] != len(self.records):
            raise ValueError(f"{self.folder} holds {meta['count']} records, not {len(self.records)}")
        self.names: list[str] = meta["arrays"]
        self.extra = check_extra(extra, len(self.records), set(self.names) | {"image"})
        self._arrays: dict[str, np.ndarray] | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_arrays": None}

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            self._arrays = {name: np.load(self.folder / f"{name}.npy", mmap_mode="r") for name in self.names}
            self._arrays.update(self.extra)
        return self._arrays

    def __len__(self) -> int:
        return len(self.records)

    def __getitems__(self, indices: Sequence[int]) -> dict:
        """A whole batch: the ``collate`` dict of the items at ``indices``."""
        rows = np.asarray(indices, dtype=np.int64)
        batch = {}
        for name, array in self.arrays.items():
            if name == "screens":
                # The decoder's own expression (preprocess.letterbox), hence the same float32s.
                batch["image"] = torch.from_numpy(array[rows].astype(np.float32) / 255.0)
            else:
                batch[name] = torch.from_numpy(np.ascontiguousarray(array[rows]))
        batch["ids"] = [self.records[i].id for i in indices]
        return batch

    def __getitem__(self, index: int) -> dict:
        batch = self.__getitems__([index])
        return {key: value[0] for key, value in batch.items()}


def as_batch(batch: dict) -> dict:
    """``collate_fn`` for ``CachedDataset``: ``__getitems__`` already returns the batch."""
    return batch
