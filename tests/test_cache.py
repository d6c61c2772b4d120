"""The preprocessed shard cache: same batches as decoding, built once, keyed, atomic, race-safe."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import torch
from conftest import shared_data, write_config

from keypilot.config import load_config, parse_config
from keypilot.data import cache
from keypilot.data.cache import CachedDataset, CacheUnavailable, cache_key, ensure_cache
from keypilot.data.dataset import KeyPilotDataset, collate
from keypilot.data.format import read_records
from keypilot.tokenizer import KeyPilotTokenizer
from keypilot.train.data import ShardedBatchSampler, build_dataset, build_loader

H, W, L, T = 128, 64, 16, 5
SIZES = {"height": H, "width": W, "max_context_tokens": L, "max_target_tokens": T}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = shared_data(tmp_path_factory)
    return folder, read_records(folder / "train.jsonl"), KeyPilotTokenizer.from_file(folder / "tokenizer.json")


def test_every_letterboxed_byte_survives_the_uint8_round_trip():
    values = np.arange(256, dtype=np.uint8)
    as_float = values.astype(np.float32) / 255.0  # what preprocess.letterbox hands out
    assert np.array_equal(np.rint(as_float * 255.0).astype(np.uint8), values)


def test_a_training_step_batch_is_identical_with_and_without_the_cache(data, tmp_path):
    _, records, tok = data
    prior = np.random.default_rng(0).random((len(records), 3), dtype=np.float32)  # an extra per-record array
    decoded = KeyPilotDataset(records, tok, image_height=H, image_width=W, max_context_tokens=L, max_target_tokens=T,
                              extra={"prior": prior})
    cached = CachedDataset(records, ensure_cache(records, tok, tmp_path, split="train", **SIZES), extra={"prior": prior})
    cfg = parse_config(load_config(write_config(tmp_path, batch_size=8, num_workers=0))).training
    sampler = ShardedBatchSampler(len(records), 8, seed=cfg.seed)
    sampler.set_epoch(3, 2)  # mid-epoch, as after a resume
    old = next(iter(build_loader(decoded, cfg, sampler, torch.device("cpu"))))
    cfg.num_workers = 1  # through a worker process: the memory maps reopen after pickling
    new = next(iter(build_loader(cached, cfg, sampler, torch.device("cpu"))))
    assert set(old) == set(new) and "prior" in new
    assert old["ids"] == new["ids"] == [records[i].id for i in sampler.shard()[16:24]]
    for key in old:
        if key != "ids":
            assert old[key].dtype == new[key].dtype and torch.equal(old[key], new[key]), key
    assert cached[5]["ids"] == records[5].id and torch.equal(cached[5]["image"], decoded[5]["image"])


def test_cache_is_reused_and_keyed_by_size_tokenizer_and_records(data, tmp_path, monkeypatch):
    folder, records, tok = data
    first = ensure_cache(records, tok, tmp_path, split="train", **SIZES)
    assert first.name.startswith(f"train-{H}x{W}-") and json.loads((first / "meta.json").read_text())["count"] == len(records)

    def no_build(*args, **kwargs):
        raise AssertionError("the cache was built again")

    monkeypatch.setattr(cache, "_build", no_build)
    assert ensure_cache(records, tok, tmp_path, split="train", **SIZES) == first
    key = cache_key(records, tok, H, W, L, T)
    assert cache_key(records, tok, H * 2, W * 2, L, T) != key
    assert cache_key(records, tok, H, W, L + 1, T) != key
    assert cache_key(records[:-1], tok, H, W, L, T) != key
    other_tok = KeyPilotTokenizer.from_file(folder / "tokenizer.json")
    other_tok._tok.add_tokens(["brandnewtoken"])
    assert cache_key(records, other_tok, H, W, L, T) != key
    changed = [records[0].__class__(**{**records[0].__dict__, "target": "changed"}), *records[1:]]
    assert cache_key(changed, tok, H, W, L, T) != key


def test_two_builders_at_once_build_one_cache(data, tmp_path, monkeypatch):
    _, records, tok = data
    records = records[:8]
    builds = []
    real_build = cache._build

    def slow_build(*args, **kwargs):
        builds.append(1)
        time.sleep(0.5)  # the second caller arrives while the first is building
        real_build(*args, **kwargs)

    monkeypatch.setattr(cache, "_build", slow_build)
    results = []
    threads = [threading.Thread(target=lambda: results.append(ensure_cache(records, tok, tmp_path, split="train",
                                                                          workers=1, **SIZES)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1 and len(results) == 2 and results[0] == results[1]
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_killed_build_leaves_nothing_that_is_read(data, tmp_path, monkeypatch):
    _, records, tok = data
    records = records[:4]

    def interrupted(folder, *args, **kwargs):
        (folder / "screens.npy").write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(cache, "_build", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ensure_cache(records, tok, tmp_path, split="train", workers=1, **SIZES)
    assert not [p for p in tmp_path.iterdir() if not p.name.endswith(".lock")]
    monkeypatch.undo()
    folder = ensure_cache(records, tok, tmp_path, split="train", workers=1, **SIZES)
    assert len(CachedDataset(records, folder)) == 4


def test_unwritable_cache_root_falls_back_then_decodes(data, tmp_path, caplog):
    _, records, tok = data
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(CacheUnavailable):
        ensure_cache(records, tok, blocker / ".cache", split="train", **SIZES)
    config = load_config(write_config(tmp_path))
    cfg = parse_config(config).training
    fallback = build_dataset(records, tok, config, cfg, split="train", cache_root=blocker / ".cache",
                             fallback_root=tmp_path / "run" / "data-cache")
    assert isinstance(fallback, CachedDataset) and fallback.folder.parent == tmp_path / "run" / "data-cache"
    decoded = build_dataset(records, tok, config, cfg, split="train", cache_root=blocker / ".cache")
    assert isinstance(decoded, KeyPilotDataset) and "no data cache" in caplog.text
    cfg.data_cache = False
    assert isinstance(build_dataset(records, tok, config, cfg, split="train", cache_root=tmp_path), KeyPilotDataset)


def test_collate_and_getitems_agree_on_a_single_item(data, tmp_path):
    _, records, tok = data
    cached = CachedDataset(records[:3], ensure_cache(records[:3], tok, tmp_path, split="x", workers=1, **SIZES))
    stacked = collate([cached[i] for i in range(3)])
    whole = cached.__getitems__([0, 1, 2])
    assert all(torch.equal(stacked[k], whole[k]) for k in whole if k != "ids") and stacked["ids"] == whole["ids"]
