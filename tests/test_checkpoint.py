"""Atomic writes, checkpoint files, RNG state, and exact resume after SIGKILL."""

from __future__ import annotations

import json
import os
import random
import signal
import time

import numpy as np
import pytest
import torch
from conftest import read_metrics, run_train_subprocess, shared_data, write_config
from safetensors.torch import load_file

from keypilot import atomic
from keypilot.train import checkpoint
from keypilot.train.checkpoint import (
    atomic_write,
    atomic_write_text,
    capture_rng_state,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    restore_rng_state,
    save_checkpoint,
    save_weights,
)


def _no_temp_files(folder):
    return not list(folder.glob(".*.tmp"))


def test_failed_write_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "config.yaml"
    atomic_write_text(path, "old: 1\n")

    def half_then_fail(fh):
        fh.write(b"new: ")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old: 1\n"
    assert _no_temp_files(tmp_path)


def test_failed_fsync_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "step-1.pt"
    save_checkpoint(path, {"step": 1})

    def failing_fsync(fd):
        raise OSError("I/O error")

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)  # every atomic write goes through keypilot.atomic
    with pytest.raises(OSError, match="I/O error"):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path) == {"step": 1}
    assert _no_temp_files(tmp_path)


def test_failed_weights_write_leaves_the_previous_weights_intact(tmp_path, monkeypatch):
    model = torch.nn.Linear(3, 2)
    path = tmp_path / "model.safetensors"
    save_weights(model, path)
    before = load_file(path)

    def partial_save_model(module, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"\x00" * 10)
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of the write

    monkeypatch.setattr(checkpoint, "save_model", partial_save_model)
    with torch.no_grad():
        model.weight.add_(1.0)
    with pytest.raises(KeyboardInterrupt):
        save_weights(model, path)
    after = load_file(path)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert _no_temp_files(tmp_path)


def test_checkpoints_listed_by_step_and_pruned(tmp_path):
    for step in (5, 100, 20):
        save_checkpoint(tmp_path / f"step-{step}.pt", {"step": step})
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    assert [s for s, _ in list_checkpoints(tmp_path)] == [5, 20, 100]
    assert latest_checkpoint(tmp_path) == tmp_path / "step-100.pt"
    prune_checkpoints(tmp_path, keep_last=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [20, 100]
    assert latest_checkpoint(tmp_path / "missing") is None


def test_rng_state_round_trips_through_a_checkpoint(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    save_checkpoint(tmp_path / "step-1.pt", {"rng": [capture_rng_state()]})

    def draw():
        return random.random(), np.random.rand(), torch.rand(3).tolist(), torch.nn.functional.dropout(torch.ones(8), 0.5).tolist()

    first = draw()
    restore_rng_state(load_checkpoint(tmp_path / "step-1.pt")["rng"][0])
    assert draw() == first


def _logged_step(run) -> int:
    """The last step in metrics.jsonl (a line still being written is ignored)."""
    try:
        lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return 0
    return max((json.loads(line)["step"] for line in lines if line.endswith("}")), default=0)


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, tmp_path_factory):
    """40 steps, checkpoints every 10: killed (-9) after step 25 and resumed from step 20, the run
    ends with the same model.safetensors as a run that was never interrupted. Batches come from
    the shard cache (the configs' default), which both runs build at once in the same place."""
    data = shared_data(tmp_path_factory)
    config = write_config(tmp_path, save_every=10, eval_every=10, num_workers=1, max_steps=40)
    common = ("--config", config, "--data", data, "--device", "cpu")
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    # Both at once: each uses one core.
    uninterrupted = run_train_subprocess(*common, "--out", whole)
    victim = run_train_subprocess(*common, "--out", killed)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and victim.poll() is None:
        if _logged_step(killed) >= 25 and (killed / "checkpoints" / "step-20.pt").exists():
            os.kill(victim.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    victim_out = victim.communicate()[0]
    assert victim.returncode == -signal.SIGKILL, f"the run was not killed mid-way:\n{victim_out[-3000:]}"
    assert not (killed / "checkpoints" / "step-40.pt").exists()

    resumed = run_train_subprocess(*common, "--out", killed, "--resume")
    resumed_out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, resumed_out[-3000:]
    assert "resuming from" in resumed_out and ("step-20.pt" in resumed_out or "step-30.pt" in resumed_out)
    whole_out = uninterrupted.communicate(timeout=300)[0]
    assert uninterrupted.returncode == 0, whole_out[-3000:]

    assert list((data / ".cache").glob("train-128x64-*/meta.json"))  # the runs read the cache
    a, b = load_file(whole / "model.safetensors"), load_file(killed / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name].double(), b[name].double(), rtol=0, atol=1e-6), name
    # The redone steps replaced the killed run's records: one per step, as in the whole run.
    steps = [r["step"] for r in read_metrics(killed) if r["split"] == "train"]
    assert steps == list(range(1, 41))
