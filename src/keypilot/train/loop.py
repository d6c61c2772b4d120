"""The training loop behind ``keypilot train`` and ``scripts/train.py``.

``train_epoch`` is the loop body and reads top to bottom: batch, forward, loss, backward,
clip, step, log (then evaluate and save when their turn comes). ``train`` sets everything up
once (distributed group, tokenizer, data, model, optimizer, resume) and calls it per epoch.
The same code runs on one CPU, one GPU, or N processes under torchrun.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader

from keypilot.config import TrainingConfig, parse_config
from keypilot.train.checkpoint import (
    atomic_write_text,
    capture_rng_state,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    remove_stale_temp_files,
    restore_rng_state,
    save_checkpoint,
    save_weights,
)
from keypilot.train.data import ShardedBatchSampler, build_dataset, build_loader, prepare_priors, prepare_tokenizer
from keypilot.train.distributed import (
    DistInfo,
    all_gather_objects,
    all_reduce_sum,
    barrier,
    cleanup_distributed,
    setup_distributed,
    wrap_ddp,
)
from keypilot.train.monitor import (
    LOSS_KEYS,
    RunLog,
    reduce_means,
    setup_console_logging,
)
from keypilot.train.optim import build_optimizer, build_scheduler
from keypilot.train.perf import (
    autocast_dtype,
    image_to_device,
    prepare_model,
    tune_allocator,
    use_channels_last,
    use_compile,
)

logger = logging.getLogger("keypilot.train")

TARGET_KEYS = ("target_task", "target_layout", "target_tokens", "target_type")


class TrainError(RuntimeError):
    """A run that cannot start or go on; the message says why and what to do."""


@dataclass
class TrainState:
    """Where a run is. Saved in every checkpoint; enough, with the RNG states, to resume exactly."""

    step: int = 0  # optimizer steps taken (skipped non-finite steps count too)
    epoch: int = 0
    batch: int = 0  # micro-batches of `epoch` already consumed, on each rank
    best_val_loss: float = math.inf
    nonfinite: int = 0  # consecutive non-finite steps


@dataclass
class Context:
    """What ``train_epoch`` needs besides the model, loss and optimizer."""

    config: dict[str, Any]
    cfg: TrainingConfig
    run_dir: Path
    dist: DistInfo
    device: torch.device
    amp_dtype: torch.dtype | None
    model: nn.Module  # unwrapped (no DDP, no compile): what is saved and evaluated
    sampler: ShardedBatchSampler
    val_loader: DataLoader | None
    log: RunLog
    last_saved_step: int = -1
    channels_last: bool = False

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        batch = {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        batch["image"] = image_to_device(batch["image"], self.device, self.channels_last)
        return batch


def forward_loss(model: nn.Module, criterion: nn.Module, batch: dict[str, Any],
                 roi_mask_weight: float) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Forward one batch; ``(objective, the seed's loss_* terms + loss_roi_mask, model outputs)``."""
    from keypilot.models.sam_lite import roi_mask_loss

    outputs = model(
        batch["image"], batch["input_ids"], batch["attention_mask"],
        user_id=batch["user_id"], prev_layout=batch["prev_layout"], target_tokens=batch["target_tokens"],
        roi_boxes=batch["roi_boxes"], roi_valid=batch["roi_valid"],
        prior_features=batch.get("prior_features"), prior_ids=batch.get("prior_ids"), prior_q=batch.get("prior_q"),
    )
    targets = {key: batch[key] for key in TARGET_KEYS}
    loss_dict = dict(criterion(outputs, targets))
    # SAM-Lite's masks learn from the generator's ROI boxes; this term is outside the seed's total.
    loss_dict["loss_roi_mask"] = roi_mask_loss(outputs["roi_mask_logits"], batch["roi_boxes"], batch["roi_valid"])
    total = loss_dict["loss_total"] + roi_mask_weight * loss_dict["loss_roi_mask"]
    return total, loss_dict, outputs


def train_epoch(model: nn.Module, criterion: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler,
                state: TrainState, ctx: Context) -> bool:
    """Train on the rest of epoch ``state.epoch`` (from micro-batch ``state.batch``).

    Returns False when the run is done (``max_steps``); raises ``TrainError`` after
    ``max_nonfinite`` consecutive non-finite steps.
    """
    cfg = ctx.cfg
    params = [p for p in ctx.model.parameters() if p.requires_grad]
    batches_per_epoch = ctx.sampler.batches_per_epoch
    step_losses: dict[str, torch.Tensor] = {}
    interval_losses: dict[str, torch.Tensor] = {}
    interval_steps = interval_samples = 0
    interval_start = time.perf_counter()
    model.train()
    for batch in loader:
        # A step is grad_accum_steps micro-batches; the leftover at the epoch's end is a shorter step.
        step_start = state.batch - state.batch % cfg.grad_accum_steps
        micro_batches = min(cfg.grad_accum_steps, batches_per_epoch - step_start)
        last_micro = state.batch + 1 == step_start + micro_batches
        batch = ctx.to_device(batch)

        # Gradients are all-reduced on the last micro-batch of a step only.
        sync = contextlib.nullcontext() if last_micro or not ctx.dist.is_distributed else model.no_sync()
        with sync:
            with ctx.autocast():
                total, losses, _ = forward_loss(model, criterion, batch, cfg.roi_mask_weight)
            scaler.scale(total / micro_batches).backward()
        for key, value in losses.items():
            step_losses[key] = step_losses.get(key, 0.0) + value.detach().float() / micro_batches
        interval_samples += len(batch["image"])
        state.batch += 1
        if not last_micro:
            continue

        scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
        bad = (~torch.isfinite(grad_norm) | ~torch.isfinite(step_losses["loss_total"])).float()
        finite = all_reduce_sum(bad, ctx.dist).item() == 0  # every rank takes the same decision
        if finite:
            scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        state.step += 1
        ctx.log.advance()

        if finite:
            state.nonfinite = 0
            interval_steps += 1
            for key, value in step_losses.items():
                interval_losses[key] = interval_losses.get(key, 0.0) + value
        else:
            state.nonfinite += 1
            ctx.log.nonfinite(state.step, state.nonfinite, float(grad_norm), float(step_losses["loss_total"]))
            if state.nonfinite >= cfg.max_nonfinite:
                kept = latest_checkpoint(ctx.run_dir / "checkpoints")
                raise TrainError(
                    f"stopped at step {state.step}: {state.nonfinite} consecutive steps with a non-finite loss or "
                    f"gradient (training.max_nonfinite={cfg.max_nonfinite}); last good checkpoint: {kept or 'none'}. "
                    "Lower training.lr, check the data, or resume from that checkpoint."
                )
        step_losses = {}

        if state.step % cfg.log_every == 0 and interval_steps:  # (an interval of only skipped steps logs nothing)
            values = reduce_means(interval_losses, interval_steps, ctx.dist, ctx.device)
            samples = all_reduce_sum(torch.tensor(float(interval_samples), device=ctx.device), ctx.dist).item()
            values["lr"] = scheduler.get_last_lr()[0]
            values["samples_per_s"] = samples / max(time.perf_counter() - interval_start, 1e-9)
            ctx.log.train(state.step, state.epoch, values)
            interval_losses, interval_steps, interval_samples = {}, 0, 0
            interval_start = time.perf_counter()
        if ctx.val_loader is not None and state.step % cfg.eval_every == 0:
            validate(criterion, state, ctx)
            model.train()
            interval_start = time.perf_counter()
        if state.step % cfg.save_every == 0 and state.nonfinite == 0:  # checkpoints are good states only
            save_training_state(ctx, optimizer, scheduler, scaler, state)
            interval_start = time.perf_counter()
        if state.step >= cfg.max_steps:
            return False
    return True


@torch.no_grad()
def evaluate(model: nn.Module, criterion: nn.Module, loader: DataLoader, ctx: Context) -> dict[str, float]:
    """Validation losses and accuracies over ``loader`` (each rank its shard, summed over ranks).

    ``task_acc`` and ``layout_acc`` are argmax accuracies of the routers; ``token_top1`` and
    ``token_top5`` score the first target token (``logits[:, 0]``); ``token_acc`` is the
    teacher-forced accuracy over every real target token.
    """
    model.eval()
    names = ("samples", "task_acc", "layout_acc", "token_top1", "token_top5", "first_tokens", "token_acc", "tokens")
    sums = {key: torch.zeros((), device=ctx.device) for key in names + LOSS_KEYS}
    for batch in loader:
        batch = ctx.to_device(batch)
        with ctx.autocast():
            _, losses, outputs = forward_loss(model, criterion, batch, ctx.cfg.roi_mask_weight)
        tokens = batch["target_tokens"]
        logits = outputs["logits"].float()
        first, real = tokens[:, 0], tokens != -100
        top5 = logits[:, 0].topk(min(5, logits.shape[-1]), dim=-1).indices
        counts = {
            "samples": torch.tensor(float(len(tokens)), device=ctx.device),
            "task_acc": (outputs["task_probs"].argmax(-1) == batch["target_task"]).sum(),
            "layout_acc": (outputs["layout_logits"].argmax(-1) == batch["target_layout"]).sum(),
            "token_top1": ((top5[:, 0] == first) & real[:, 0]).sum(),
            "token_top5": ((top5 == first[:, None]).any(-1) & real[:, 0]).sum(),
            "first_tokens": real[:, 0].sum(),
            "token_acc": ((logits.argmax(-1) == tokens) & real).sum(),
            "tokens": real.sum(),
        }
        counts.update({key: losses[key].detach() * len(tokens) for key in LOSS_KEYS})
        for key, value in counts.items():
            sums[key] += value.float()
    # Every rank joins the reduction, also one whose shard of the validation set is empty.
    total = dict(zip(sums, all_reduce_sum(torch.stack(list(sums.values())), ctx.dist).tolist()))
    denominators = {"token_top1": "first_tokens", "token_top5": "first_tokens", "token_acc": "tokens"}
    return {key: value / max(total[denominators.get(key, "samples")], 1.0)
            for key, value in total.items() if key not in ("samples", "first_tokens", "tokens")}


def validate(criterion: nn.Module, state: TrainState, ctx: Context) -> None:
    """Evaluate, log, and keep ``best.safetensors`` by validation ``loss_total`` (the seed's total)."""
    values = evaluate(ctx.model, criterion, ctx.val_loader, ctx)
    ctx.log.val(state.step, values)
    if values["loss_total"] < state.best_val_loss:
        state.best_val_loss = values["loss_total"]
        if ctx.dist.is_main:
            save_weights(ctx.model, ctx.run_dir / "best.safetensors")


def save_training_state(ctx: Context, optimizer: torch.optim.Optimizer, scheduler: Any,
                        scaler: torch.amp.GradScaler, state: TrainState) -> None:
    """Write ``checkpoints/step-N.pt`` and ``model.safetensors`` (rank 0), keep the newest ``keep_last``."""
    rng = all_gather_objects(capture_rng_state(), ctx.dist)  # each rank resumes its own dropout stream
    ctx.last_saved_step = state.step
    if not ctx.dist.is_main:
        return
    checkpoint = {
        "model": ctx.model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "state": dataclasses.asdict(state),
        "rng": rng,
        "world_size": ctx.dist.world_size,
        "config": ctx.config,
    }
    save_checkpoint(ctx.run_dir / "checkpoints" / f"step-{state.step}.pt", checkpoint)
    save_weights(ctx.model, ctx.run_dir / "model.safetensors")
    prune_checkpoints(ctx.run_dir / "checkpoints", ctx.cfg.keep_last)


# Set-up ------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also every CUDA device


def train(config: dict, data_dir: str | Path, out: str | Path, *, resume: bool = False, skip_bad: bool = False,
          device: str | None = None) -> TrainState:
    """Train on ``data_dir`` (train.jsonl, val.jsonl) into the run folder ``out``; see docs/training.md."""
    info, torch_device = setup_distributed(device)
    tune_allocator()
    try:
        return _train(config, Path(data_dir), Path(out), resume, skip_bad, info, torch_device)
    finally:
        cleanup_distributed()


def _train(config: dict, data_dir: Path, run_dir: Path, resume: bool, skip_bad: bool, info: DistInfo,
           device: torch.device) -> TrainState:
    from keypilot.data.format import read_records
    from keypilot.models.keypilot_model import KeyPilotLoss, KeyPilotModel

    cfg = parse_config(config).training
    setup_console_logging(info)
    checkpoint_path = latest_checkpoint(run_dir / "checkpoints") if resume else None
    if not resume and list_checkpoints(run_dir / "checkpoints"):
        raise TrainError(f"{run_dir} already holds checkpoints: pass --resume to continue that run, or choose another --out")
    if resume and checkpoint_path is None:
        logger.info(f"--resume: no checkpoint in {run_dir / 'checkpoints'}, starting from scratch")
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(run_dir)
        remove_stale_temp_files(run_dir / "checkpoints")
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    barrier(info)
    seed_everything(cfg.seed + info.rank)

    tokenizer = prepare_tokenizer(data_dir, run_dir, config["model"]["vocab_size"], info, checkpoint_path is not None)
    train_records = read_records(data_dir / "train.jsonl", skip_bad=skip_bad)
    val_path = data_dir / "val.jsonl"
    val_records = read_records(val_path, skip_bad=skip_bad) if val_path.exists() else []
    skipped = getattr(train_records, "skipped", 0) + getattr(val_records, "skipped", 0)
    logger.info(f"data: {len(train_records)} train, {len(val_records)} val records"
                + (f" ({skipped} bad ones skipped)" if skipped else "") + f"; {info.world_size} process(es) on {device}")

    # The field's priors (keypilot.priors) for a model whose routers read them and whose first token is fused with them.
    priors = None
    if config["model"]["prior_features"]:
        priors = prepare_priors(data_dir, run_dir, train_records, info, checkpoint_path is not None)

    channels_last = use_channels_last(cfg.channels_last, device)
    model = prepare_model(KeyPilotModel.from_config(config).to(device), channels_last)
    criterion = KeyPilotLoss(**config["training"]["loss"])
    optimizer = build_optimizer(model, cfg, device)
    scheduler = build_scheduler(optimizer, cfg)
    amp_dtype = autocast_dtype(cfg.mixed_precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    state = TrainState()
    checkpoint = load_checkpoint(checkpoint_path) if checkpoint_path else None
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        state = TrainState(**checkpoint["state"])
        logger.info(f"resuming from {checkpoint_path} (step {state.step}, epoch {state.epoch}, batch {state.batch})")

    sampler = ShardedBatchSampler(len(train_records), cfg.batch_size, seed=cfg.seed,
                                  rank=info.rank, world_size=info.world_size)
    cache_roots = {"cache_root": data_dir / ".cache", "fallback_root": run_dir / "data-cache"}
    train_data = build_dataset(train_records, tokenizer, config, cfg, split="train", priors=priors, **cache_roots)
    train_loader = build_loader(train_data, cfg, sampler, device)
    val_loader = None
    if val_records:
        val_sampler = ShardedBatchSampler(len(val_records), cfg.batch_size, shuffle=False, pad=False,
                                          rank=info.rank, world_size=info.world_size)
        val_data = build_dataset(val_records, tokenizer, config, cfg, split="val", priors=priors, **cache_roots)
        val_loader = build_loader(val_data, cfg, val_sampler, device)
    train_model = wrap_ddp(model, info, device)
    if use_compile(cfg.compile, device):
        train_model = torch.compile(train_model)

    log = RunLog(run_dir, info, start_step=state.step, max_steps=cfg.max_steps, resumed=checkpoint is not None)
    ctx = Context(config, cfg, run_dir, info, device, amp_dtype, model, sampler, val_loader, log,
                  last_saved_step=state.step if checkpoint is not None else -1, channels_last=channels_last)
    if checkpoint is not None:
        # Last, so that nothing above (model init, loaders) moves the streams after the restore.
        rng = checkpoint["rng"]
        if len(rng) == info.world_size:
            restore_rng_state(rng[info.rank])
        else:
            logger.warning(f"checkpoint was written by {len(rng)} process(es), now {info.world_size}: "
                           "RNG streams are reseeded, so the run continues but not bit for bit")
    try:
        while state.step < cfg.max_steps and state.epoch < cfg.epochs:
            sampler.set_epoch(state.epoch, state.batch)
            if not train_epoch(train_model, criterion, train_loader, optimizer, scheduler, scaler, state, ctx):
                break
            state.epoch += 1
            state.batch = 0
        if ctx.last_saved_step != state.step:
            save_training_state(ctx, optimizer, scheduler, scaler, state)
        if priors is not None and val_records and info.is_main:
            # beta of the fusion, refitted for ranking candidates (keypilot.inference.fit_fusion)
            from keypilot.inference.fit_fusion import fit_and_save

            fitted = fit_and_save(run_dir, list(val_records), device=str(device))
            if fitted:
                logger.info(f"prior weight: learned {fitted['learned']:.3f}, fitted {fitted['prior_weight']:.3f} on "
                            f"{fitted['records']} validation records (candidate top-5 {max(fitted['top5'].values()):.3f})")
                fit = fitted["layout_fit"]
                logger.info(f"layout offsets {fitted['layout_offsets']}: validation balanced accuracy "
                            f"{fit['balanced_before']:.3f} -> {fit['balanced_after']:.3f}, accuracy "
                            f"{fit['accuracy_before']:.3f} -> {fit['accuracy_after']:.3f}")
    finally:
        log.close()
    # Under DDP every rank prints this; equal checksums mean the replicas stayed in sync.
    logger.info(f"done: {state.step} steps, parameter checksum {parameter_checksum(model)}; "
                f"weights in {run_dir / 'model.safetensors'}")
    return state


def parameter_checksum(model: nn.Module) -> str:
    """sha256 (16 hex digits) of every parameter's bytes, in ``model.parameters()`` order."""
    digest = hashlib.sha256()
    for param in model.parameters():
        digest.update(param.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]

