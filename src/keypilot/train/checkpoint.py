"""Atomic writes, weight files and full training checkpoints for exact resume.

Every file of a run folder is written through ``keypilot.atomic`` (re-exported here): a temp
file in the same folder, flushed and fsynced, then ``os.replace``d over the target. A process
killed at any point leaves either the old file or the new one, never half of one.

A checkpoint (``RUN/checkpoints/step-N.pt``) holds everything an interrupted run needs to
continue bit for bit: weights, optimizer, scheduler, grad scaler, data position and the RNG
states of every rank. It is loaded with ``weights_only=True``, so it holds only tensors and
plain Python values (the numpy RNG state is converted to a tensor for that reason).
"""

from __future__ import annotations

import contextlib
import io
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_model

from keypilot.atomic import (  # noqa: F401
    atomic_write,
    atomic_write_bytes,
    atomic_write_path,
    atomic_write_text,
)

CHECKPOINT_RE = re.compile(r"^step-(\d+)\.pt$")


def remove_stale_temp_files(folder: Path) -> None:
    """Temp files left by a process killed mid-write (they never replaced anything)."""
    for tmp in folder.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()


def save_weights(model: torch.nn.Module, path: str | Path) -> None:
    """The model's weights as ``save_pretrained`` writes them (safetensors' ``save_model``:
    tied tensors stored once), so ``KeyPilotModel.from_pretrained`` loads them strictly."""
    atomic_write_path(path, lambda tmp: save_model(model, str(tmp), metadata={"format": "pt"}))


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def list_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``step-N.pt`` in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT_RE.match(p.name))]
    return sorted(found)


def latest_checkpoint(folder: str | Path) -> Path | None:
    checkpoints = list_checkpoints(folder)
    return checkpoints[-1][1] if checkpoints else None


def prune_checkpoints(folder: str | Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` checkpoints (``keep_last <= 0`` keeps all)."""
    if keep_last <= 0:
        return
    for _, path in list_checkpoints(folder)[:-keep_last]:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def capture_rng_state() -> dict[str, Any]:
    """The RNG states that dropout, sampling and augmentations draw from, on this process."""
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached_gaussian)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    name, keys, pos, has_gauss, cached_gaussian = state["numpy"]
    random.setstate(_as_python_state(state["python"]))
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_python_state(state: Any) -> tuple:
    # random.setstate wants tuples; a round trip through torch.load may hand back lists.
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
