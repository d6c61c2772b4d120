"""``keypilot bench train``: samples/s of a config and where a step's time goes.

A step is timed in four phases, as ``train_epoch`` runs them: data wait (the loader's next
batch, moved to the device), forward (model + loss), backward, optimizer (clip, AdamW step,
zero_grad). Without ``--data`` a synthetic batch of the config's shapes stands in for data
(speed does not depend on content) and the data wait is 0: the model's speed alone. With
``--data DIR`` batches come from the loader a run would build on ``DIR/train.jsonl``: the
shard cache (built first if missing, not timed) and the worker count of the config.

Two paths: ``new`` is what ``keypilot train`` does now (``train/perf.py``'s choices);
``old`` is the step as it was before the shard cache: screenshots decoded per sample in 2
worker processes, fp32, the for-loop AdamW, no channels_last, no compile. ``--compare``
runs both, each in its own process (so each has its own peak RSS and no worker of one runs
during the other), and prints the ratio.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from keypilot.config import TrainingConfig, load_config, parse_config
from keypilot.prior_fusion import PRIOR_SLOTS
from keypilot.run_folder import PRIORS_DIR
from keypilot.labels import LAYOUTS, ROI_KEYS, TASKS
from keypilot.train.loop import forward_loss
from keypilot.train.optim import build_optimizer
from keypilot.train.perf import (
    autocast_dtype,
    image_to_device,
    prepare_model,
    tune_allocator,
    use_channels_last,
    use_compile,
)

DEFAULT_CONFIGS = ("tiny", "keypilot")  # shipped configs, found by name from any directory
PHASES = ("data", "forward", "backward", "optimizer")
OLD_WORKERS = 2  # the configs' num_workers before the cache


@dataclass
class StepSetup:
    """How a path runs the step."""

    amp_dtype: torch.dtype | None
    channels_last: bool
    compile: bool
    fused_adamw: bool | None  # None: build_optimizer's choice
    data_cache: bool
    num_workers: int | str
    tuned_allocator: bool

    def describe(self, workers: int | None) -> str:
        parts = ["bf16 autocast" if self.amp_dtype == torch.bfloat16 else "fp16 autocast" if self.amp_dtype else "fp32",
                 "fused AdamW" if self.fused_adamw is not False else "for-loop AdamW",
                 "glibc heap reuse" if self.tuned_allocator else "default malloc"]
        if self.channels_last:
            parts.append("channels_last")
        if self.compile:
            parts.append("torch.compile")
        if workers is not None:
            parts.insert(0, f"{'shard cache' if self.data_cache else 'decoded screenshots'}, {workers} workers")
        return ", ".join(parts)


def path_setup(path: str, cfg: TrainingConfig, device: torch.device) -> StepSetup:
    if path == "old":
        return StepSetup(None, False, False, False, data_cache=False, num_workers=OLD_WORKERS, tuned_allocator=False)
    return StepSetup(autocast_dtype(cfg.mixed_precision, device), use_channels_last(cfg.channels_last, device),
                     use_compile(cfg.compile, device), None, cfg.data_cache, cfg.num_workers, tuned_allocator=True)


def synthetic_batch(config: dict, batch_size: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch with ``docs/contracts.md``'s shapes and plausible values."""
    m = config["model"]
    g = torch.Generator().manual_seed(seed)
    b, length, t = batch_size, m["max_context_tokens"], m["max_target_tokens"]
    lengths = torch.randint(2, length + 1, (b,), generator=g)
    x0y0 = torch.rand(b, len(ROI_KEYS), 2, generator=g) * 0.5
    batch = {
        "image": torch.rand(b, 3, m["image_height"], m["image_width"], generator=g),
        "input_ids": torch.randint(5, m["vocab_size"], (b, length), generator=g),
        "attention_mask": (torch.arange(length)[None] < lengths[:, None]).long(),
        "user_id": torch.randint(-1, m["personality"]["num_users"], (b,), generator=g),
        "prev_layout": torch.randint(0, len(LAYOUTS), (b,), generator=g),
        "target_task": torch.randint(0, len(TASKS), (b,), generator=g),
        "target_layout": torch.randint(0, len(LAYOUTS), (b,), generator=g),
        "target_type": torch.randint(0, len(LAYOUTS), (b,), generator=g),
        "target_tokens": torch.randint(5, m["vocab_size"], (b, t), generator=g),
        "roi_boxes": torch.cat([x0y0, x0y0 + 0.3], dim=-1),
        "roi_valid": torch.rand(b, len(ROI_KEYS), generator=g) > 0.3,
    }
    batch["target_tokens"][:, 2:] = -100  # most targets are one word plus EOS
    if m["prior_features"]:
        batch["prior_features"] = torch.rand(b, m["prior_features"], generator=g)
        batch["prior_ids"] = torch.randint(5, m["vocab_size"], (b, PRIOR_SLOTS), generator=g)
        batch["prior_q"] = torch.rand(b, PRIOR_SLOTS, generator=g) / PRIOR_SLOTS
    return {k: v.to(device) for k, v in batch.items()}


def _real_batches(config: dict, cfg: TrainingConfig, setup: StepSetup, data: Path, batch_size: int,
                  device: torch.device) -> tuple[Iterator[dict], int, str]:
    """Endless batches of ``data/train.jsonl`` from the loader a run would build; (batches, workers, note)."""
    from keypilot.data.format import read_records
    from keypilot.tokenizer import KeyPilotTokenizer
    from keypilot.train.data import (
        ShardedBatchSampler,
        build_dataset,
        build_loader,
        resolve_workers,
    )

    records = read_records(data / "train.jsonl")
    tokenizer_path = data / "tokenizer.json"
    if not tokenizer_path.exists():
        raise SystemExit(f"keypilot bench train: {tokenizer_path} is missing (keypilot tokenizer train --data "
                         f"{data / 'train.jsonl'} --out {tokenizer_path})")
    tokenizer = KeyPilotTokenizer.from_file(tokenizer_path)
    cfg.data_cache, cfg.num_workers, cfg.batch_size = setup.data_cache, setup.num_workers, batch_size
    start = time.perf_counter()
    # The data set's priors (keypilot priors build) when the model reads them, as a run would.
    priors = None
    if config["model"]["prior_features"] and (data / PRIORS_DIR).is_dir():
        from keypilot.priors import Priors

        priors = Priors.load(data / PRIORS_DIR)
    dataset = build_dataset(records, tokenizer, config, cfg, split="train", cache_root=data / ".cache", priors=priors)
    prepared = time.perf_counter() - start
    sampler = ShardedBatchSampler(len(records), batch_size, seed=cfg.seed)
    loader = build_loader(dataset, cfg, sampler, device)

    def endless() -> Iterator[dict]:
        epoch = 0
        while True:
            sampler.set_epoch(epoch)
            yield from loader
            epoch += 1

    workers = resolve_workers(cfg.num_workers, setup.data_cache, device)
    return endless(), workers, f"{len(records)} records, dataset ready in {prepared:.1f} s"


def bench_train(config_path: str | Path, *, data: str | Path | None = None, path: str = "new",
                batch_size: int | None = None, steps: int = 10, warmup: int | None = None,
                device: str | None = None, profile: int = 0) -> dict[str, Any]:
    """Time ``steps`` training steps of ``config_path`` after ``warmup`` untimed ones.

    Returns the figures ``print_bench_train`` prints: samples/s, ms per step and per phase
    (medians over the timed steps), peak RSS of this process (and of loader workers) in GB.
    """
    from keypilot.models.keypilot_model import KeyPilotLoss, KeyPilotModel

    config = load_config(config_path)
    cfg = parse_config(config).training
    torch_device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    batch_size = batch_size or cfg.batch_size
    setup = path_setup(path, cfg, torch_device)
    if setup.tuned_allocator:
        setup.tuned_allocator = tune_allocator()
    torch.manual_seed(cfg.seed)
    model = prepare_model(KeyPilotModel.from_config(config).to(torch_device).train(), setup.channels_last)
    step_model = torch.compile(model) if setup.compile else model
    criterion = KeyPilotLoss(**config["training"]["loss"])
    optimizer = build_optimizer(model, cfg, torch_device, fused=setup.fused_adamw)
    scaler = torch.amp.GradScaler(torch_device.type, enabled=setup.amp_dtype == torch.float16)
    params = [p for p in model.parameters() if p.requires_grad]

    workers, note = None, "synthetic batch (model only)"
    if data is None:
        fixed = synthetic_batch(config, batch_size, torch.device("cpu"))
        batches: Iterator[dict] = iter(lambda: fixed, None)
    else:
        batches, workers, note = _real_batches(config, cfg, setup, Path(data), batch_size, torch_device)
    # Untimed: the first steps allocate, compile and (with workers) drain the batches the
    # workers prefetched while the model was being built.
    warmup = warmup if warmup is not None else 3 + 4 * (workers or 0)

    def sync() -> float:
        if torch_device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def step() -> list[float]:
        t0 = sync()
        batch = next(batches)
        batch = {k: v.to(torch_device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        batch["image"] = image_to_device(batch["image"], torch_device, setup.channels_last)
        t1 = sync()
        with torch.autocast(torch_device.type, dtype=setup.amp_dtype, enabled=setup.amp_dtype is not None):
            total, _, _ = forward_loss(step_model, criterion, batch, cfg.roi_mask_weight)
        t2 = sync()
        scaler.scale(total).backward()
        t3 = sync()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        t4 = sync()
        return [t1 - t0, t2 - t1, t3 - t2, t4 - t3]

    for _ in range(warmup):
        step()
    load_before = os.getloadavg()[0]
    start = sync()
    times = [step() for _ in range(steps)]
    elapsed = sync() - start
    table = _profile_table(step, profile) if profile else None
    result: dict[str, Any] = {
        "config": str(config_path), "path": path, "device": str(torch_device), "threads": torch.get_num_threads(),
        "batch_size": batch_size, "data": str(data) if data else None, "workers": workers,
        "setup": setup.describe(workers), "note": note, "steps": steps,
        "samples_per_s": batch_size * steps / elapsed, "step_ms": 1000 * elapsed / steps,
        # From the median step: robust to a few steps slowed down by other jobs on a shared machine.
        "median_samples_per_s": batch_size / statistics.median(sum(t) for t in times),
        **{f"{phase}_ms": 1000 * statistics.median(t[i] for t in times) for i, phase in enumerate(PHASES)},
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        # 1-minute load averages around the timed steps: above the thread count, other jobs shared the cores.
        "load": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    batches = iter(())  # drops the loader: its workers end, so that their peak RSS is counted below
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    if torch_device.type == "cuda":
        result["peak_cuda_gb"] = torch.cuda.max_memory_allocated() / 1e9
    if table:
        result["profile"] = table
    return result


def _profile_table(step: Any, rows: int) -> str:
    """The torch profiler's operators of 3 steps, by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        for _ in range(3):
            step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=48)


def _run_in_subprocess(config: Path, path: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    argv = [sys.executable, "-m", "keypilot", "bench", "train", "--config", str(config), "--json"]
    if path == "old":
        argv.append("--old-path")
    for key, value in kwargs.items():
        if value is not None and value is not False:
            argv += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"keypilot bench train ({path} path of {config}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def format_results(results: list[dict[str, Any]]) -> str:
    lines = []
    for config in dict.fromkeys(r["config"] for r in results):
        rows = [r for r in results if r["config"] == config]
        first = rows[0]
        lines.append(f"{config}: batch {first['batch_size']}, {first['threads']} threads on {first['device']}, "
                     f"{first['data'] or 'no data'} ({first['note']}), {first['params_m']:.1f}M params")
        lines.append(f"  {'path':<5} {'samples/s':>9} {'(median)':>8} {'ms/step':>8} " + " ".join(f"{p:>9}" for p in PHASES)
                     + f" {'peak RSS':>9} {'load':>9}  set-up")
        for r in rows:
            phases = " ".join(f"{r[p + '_ms']:>7.0f}ms" for p in PHASES)
            load = "{:.1f}->{:.1f}".format(*r["load"])
            lines.append(f"  {r['path']:<5} {r['samples_per_s']:>9.1f} {r['median_samples_per_s']:>8.1f} {r['step_ms']:>8.0f} {phases} "
                         f"{r['peak_rss_gb']:>7.2f}GB {load:>9}  {r['setup']}")
        by_path = {r["path"]: r for r in rows}
        if {"old", "new"} <= set(by_path):
            new_run, old_run = by_path["new"], by_path["old"]
            lines.append(f"  new / old: {new_run['samples_per_s'] / old_run['samples_per_s']:.2f}x samples/s "
                         f"({new_run['median_samples_per_s'] / old_run['median_samples_per_s']:.2f}x from the median steps)")
        for r in rows:
            if r.get("profile"):
                lines.append(f"  torch profiler, {r['path']} path, 3 steps:\n{r['profile']}")
    return "\n".join(lines)


def print_bench_train(config_paths: list[Path] | None = None, *, compare: bool = False, old_path: bool = False,
                      as_json: bool = False, **kwargs: Any) -> int:
    """``keypilot bench train``: a table per config (or JSON), ``--compare`` with both paths."""
    configs = config_paths or list(DEFAULT_CONFIGS)
    paths = ["old", "new"] if compare else ["old"] if old_path else ["new"]
    runs = [(config, path) for config in configs for path in paths]
    if len(runs) == 1:
        results = [bench_train(runs[0][0], path=runs[0][1], **kwargs)]
    else:
        results = []
        for config, path in runs:
            print(f"bench train: {path} path of {config} ...", file=sys.stderr, flush=True)
            results.append(_run_in_subprocess(config, path, kwargs))
    if as_json:
        print(json.dumps(results[0] if len(results) == 1 else results))
    else:
        print(format_results(results), flush=True)
    return 0
