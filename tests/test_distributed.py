"""The sharded, resumable sampler, and a 2-process gloo run under torchrun (with a resume)."""

from __future__ import annotations

import re

from conftest import data_copy, read_metrics, run_train_subprocess, shared_data, write_config

from keypilot.train.checkpoint import list_checkpoints
from keypilot.train.data import ShardedBatchSampler
from keypilot.train.loop import parameter_checksum


def _flat(batches):
    return [i for batch in batches for i in batch]


def test_sampler_order_is_seeded_per_epoch_and_reproducible():
    a = ShardedBatchSampler(10, 3, seed=7)
    b = ShardedBatchSampler(10, 3, seed=7)
    epoch0 = list(a)
    assert epoch0 == list(b) and sorted(_flat(epoch0)) == list(range(10))
    assert [len(batch) for batch in epoch0] == [3, 3, 3, 1] and len(a) == a.batches_per_epoch == 4
    a.set_epoch(1)
    assert list(a) != epoch0 and sorted(_flat(a)) == list(range(10))


def test_sampler_starts_mid_epoch_without_touching_earlier_batches():
    sampler = ShardedBatchSampler(10, 3, seed=0)
    sampler.set_epoch(2)
    whole = list(sampler)
    sampler.set_epoch(2, start_batch=2)
    assert list(sampler) == whole[2:] and len(sampler) == 2


def test_sampler_shards_are_disjoint_equal_and_cover_the_data():
    shards = [ShardedBatchSampler(10, 2, seed=3, rank=r, world_size=3) for r in range(3)]
    batches = [list(s) for s in shards]
    assert len({len(b) for b in batches}) == 1  # every rank takes the same number of steps
    assert set().union(*map(_flat, batches)) == set(range(10))
    assert sum(map(len, map(_flat, batches))) == 12  # padded by wrapping around: 2 repeats
    val = [ShardedBatchSampler(10, 2, shuffle=False, pad=False, rank=r, world_size=3) for r in range(3)]
    assert sorted(i for s in val for i in _flat(s)) == list(range(10))  # evaluation: each sample once


def _checksums(output: str) -> dict[int, str]:
    return {int(rank): value for rank, value in re.findall(r"\[rank (\d)\] done: .*?checksum ([0-9a-f]+)", output)}


def test_two_process_gloo_run_and_resume(tmp_path, tmp_path_factory):
    from keypilot.models.keypilot_model import KeyPilotModel

    # No tokenizer in the data: rank 0 trains it while rank 1 waits at the barrier.
    data = data_copy(shared_data(tmp_path_factory), tmp_path / "data", tokenizer=False)
    config = write_config(tmp_path, save_every=2, eval_every=2, log_every=1, grad_accum_steps=2)
    run = tmp_path / "run"
    torchrun = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")
    common = ("--config", config, "--data", data, "--out", run, "--device", "cpu")

    first = run_train_subprocess(*common, "--max-steps", "4", launcher=torchrun)
    out = first.communicate(timeout=300)[0]
    assert first.returncode == 0, out[-4000:]
    sums = _checksums(out)
    assert set(sums) == {0, 1} and sums[0] == sums[1], out[-4000:]  # the replicas stayed identical
    assert parameter_checksum(KeyPilotModel.from_pretrained(run)) == sums[0]

    # Rank 0 alone wrote the run folder: one record per step, one TensorBoard file.
    assert [r["step"] for r in read_metrics(run) if r["split"] == "train"] == [1, 2, 3, 4]
    assert [r["step"] for r in read_metrics(run) if r["split"] == "val"] == [2, 4]
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert [s for s, _ in list_checkpoints(run / "checkpoints")] == [2, 4]

    second = run_train_subprocess(*common, "--max-steps", "6", "--resume", launcher=torchrun)
    out = second.communicate(timeout=300)[0]
    assert second.returncode == 0, out[-4000:]
    assert "[rank 0] resuming from" in out and "[rank 1] resuming from" in out
    sums = _checksums(out)
    assert set(sums) == {0, 1} and sums[0] == sums[1], out[-4000:]
    assert parameter_checksum(KeyPilotModel.from_pretrained(run)) == sums[0]
    assert [r["step"] for r in read_metrics(run) if r["split"] == "train"] == [1, 2, 3, 4, 5, 6]
