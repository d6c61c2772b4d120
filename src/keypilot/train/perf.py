"""How a training step runs fast on the machine at hand, decided once per run from the config.

Each ``auto`` below is what measured faster on the machines this project has (numbers in
docs/training.md); an explicit value in the config always wins.

- ``mixed_precision``: bf16 autocast on a GPU that has bf16 (else fp16 + GradScaler). On a
  CPU, fp32 unless the config asks for ``bf16``: see ``autocast_dtype``.
- ``channels_last``: NHWC weights and screenshots. See ``use_channels_last``.
- ``compile``: ``torch.compile`` of the model. See ``use_compile``.
- AdamW: the fused kernel, on CPU and GPU alike (one pass over each parameter instead of a
  dozen elementwise ops per tensor; the 32K-token embedding tables are most of the tiny
  config's parameters).
- The C allocator (``tune_allocator``): always, on glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import torch
from torch import nn

from keypilot.config import ConfigError

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Above any activation of the reference config at batch 32 (the largest is ~70 MB).
KEEP_BLOCKS_UP_TO = 1 << 30


def tune_allocator() -> bool:
    """Keep large freed blocks in the heap for reuse instead of returning them to the kernel.

    glibc serves every block above its mmap threshold (128 KB, raised dynamically to at most
    32 MB) with a fresh ``mmap`` and gives it back with ``munmap`` on free. A training step
    frees and reallocates the same activations every step, so each step page-faulted all of
    them in again, zero-filled by the kernel: on the reference config at batch 32 that was
    9 million page faults and 32 s of system time in 4 steps, nearly half the step. Raising
    the mmap and trim thresholds to 1 GB makes glibc recycle those blocks (PyTorch's CPU
    allocator has no cache of its own). Returns whether it applied (glibc only).
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_BLOCKS_UP_TO)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_BLOCKS_UP_TO))


def autocast_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """``training.mixed_precision`` -> autocast dtype; None is fp32.

    ``auto``: bf16 on a GPU that supports it, else fp16; fp32 on a CPU. Measured on a Zen 4
    CPU with AVX512-BF16 (2 cores), bf16 autocast made the tiny config 1.3x slower (its
    small depthwise/1 x 1 convolutions and narrow matrices pay more for the casts than bf16
    saves) and the reference config at batch 32 only 4% faster (within noise), though with
    40% less peak memory. ``bf16`` asks for it anyway (docs/training.md).
    """
    if mode not in ("auto", "bf16", "fp16", "fp32"):
        raise ConfigError(f"training.mixed_precision: expected auto, bf16, fp16 or fp32, got {mode!r}")
    if mode == "fp32":
        return None
    if device.type == "cpu":
        if mode == "fp16":
            raise ConfigError("training.mixed_precision: fp16 needs a GPU; use bf16, fp32 or auto on a CPU")
        return torch.bfloat16 if mode == "bf16" else None
    if device.type != "cuda":
        return None
    if mode == "bf16" or (mode == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def use_channels_last(setting: bool | str, device: torch.device) -> bool:
    """``training.channels_last`` -> bool. ``auto``: on, CPU and GPU alike. On the 2-core Zen 4
    CPU NHWC made oneDNN's convolutions (most of them depthwise or 1 x 1) 1.2x faster on the
    tiny config and 1.08x on the reference one at batch 32; on GPUs it is what tensor-core
    convolutions want."""
    return True if setting == "auto" else bool(setting)


def use_compile(setting: bool | str, device: torch.device) -> bool:
    """``training.compile`` -> bool. ``auto``: on a GPU only. On the 2-core CPU, inductor took
    3.7 minutes to compile the tiny config's step (the MoE's data-dependent expert choice and
    the ROI crops break the graph) and then ran it no faster than eager (226 vs 227 ms)."""
    return device.type == "cuda" if setting == "auto" else bool(setting)


def fused_adamw_available(device: torch.device) -> bool:
    return device.type in ("cpu", "cuda")


def prepare_model(model: nn.Module, channels_last: bool) -> nn.Module:
    """Put the weights in the memory format the step will use (in place; returns ``model``)."""
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def image_to_device(image: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    image = image.to(device, non_blocking=True)
    return image.contiguous(memory_format=torch.channels_last) if channels_last else image
