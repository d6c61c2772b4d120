"""Training speed: forward + backward + optimizer step samples/s of a config at its batch size.

A synthetic batch of the right shapes stands in for data (speed does not depend on content),
so the figure is the model's and not the data loader's.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from keypilot.config import load_config, parse_config
from keypilot.labels import LAYOUTS, ROI_KEYS, TASKS
from keypilot.train.loop import autocast_dtype, forward_loss
from keypilot.train.optim import build_optimizer

DEFAULT_CONFIGS = ("tiny", "keypilot")  # shipped configs, found by name from any directory


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
    return {k: v.to(device) for k, v in batch.items()}


def bench_train(config_path: str | Path, *, batch_size: int | None = None, steps: int = 5, warmup: int = 2,
                device: str | None = None) -> dict[str, float]:
    """Time ``steps`` training steps (after ``warmup`` untimed ones) of ``config_path``.

    Returns ``{"batch_size", "samples_per_s", "step_ms", "params_m"}``.
    """
    from keypilot.models.keypilot_model import KeyPilotLoss, KeyPilotModel

    config = load_config(config_path)
    cfg = parse_config(config).training
    torch_device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    batch_size = batch_size or cfg.batch_size
    torch.manual_seed(cfg.seed)
    model = KeyPilotModel.from_config(config).to(torch_device).train()
    criterion = KeyPilotLoss(**config["training"]["loss"])
    optimizer = build_optimizer(model, cfg, torch_device)
    amp_dtype = autocast_dtype(cfg.mixed_precision, torch_device)
    scaler = torch.amp.GradScaler(torch_device.type, enabled=amp_dtype == torch.float16)
    batch = synthetic_batch(config, batch_size, torch_device)

    def step() -> None:
        with torch.autocast(torch_device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            total, _, _ = forward_loss(model, criterion, batch, cfg.roi_mask_weight)
        scaler.scale(total).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    if torch_device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if torch_device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    return {
        "batch_size": float(batch_size),
        "samples_per_s": batch_size * steps / elapsed,
        "step_ms": 1000 * elapsed / steps,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
    }


def print_bench_train(config_paths: list[Path] | None = None, **kwargs) -> int:
    """``keypilot bench train``: one line per config."""
    for path in config_paths or DEFAULT_CONFIGS:
        r = bench_train(path, **kwargs)
        print(f"{path}: batch {int(r['batch_size'])}, {r['samples_per_s']:.1f} samples/s "
              f"({r['step_ms']:.0f} ms/step, forward+backward+AdamW, {r['params_m']:.1f}M params, "
              f"{torch.get_num_threads()} CPU threads)", flush=True)
    return 0
