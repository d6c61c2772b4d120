"""AdamW with decoupled weight decay on weight matrices only, and cosine decay after linear warmup."""

from __future__ import annotations

import functools
import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from keypilot.config import TrainingConfig

# Modules whose weight matrices are decayed. Everything else (norm scales, biases, embedding
# tables, learned prompts, codebooks and prefix tokens) is left alone: decaying them only
# pulls representations towards zero without regularising anything.
_DECAYED = (nn.Linear, nn.modules.conv._ConvNd, nn.MultiheadAttention)

# The cosine ends at this fraction of the peak learning rate, not at zero.
MIN_LR_RATIO = 0.1


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in model.modules():
        for param in module.parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            (decay if isinstance(module, _DECAYED) and param.ndim >= 2 else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: TrainingConfig, device: torch.device,
                    fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW over ``param_groups``; ``fused=None`` takes the fused kernel wherever torch has it
    (CPU and CUDA): one pass per parameter instead of a dozen elementwise ops per tensor."""
    from keypilot.train.perf import fused_adamw_available

    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay),
        lr=cfg.lr,
        betas=(0.9, 0.999),
        fused=fused_adamw_available(device) if fused is None else fused,
    )


def lr_factor(step: int, warmup_steps: int, max_steps: int) -> float:
    """Multiplier of the peak lr at optimizer step ``step`` (0-based)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    return MIN_LR_RATIO + (1.0 - MIN_LR_RATIO) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainingConfig) -> LambdaLR:
    return LambdaLR(optimizer, functools.partial(lr_factor, warmup_steps=cfg.warmup_steps, max_steps=cfg.max_steps))
