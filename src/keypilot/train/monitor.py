"""Monitoring during training: the seed's loss lines on the console under a tqdm bar,
TensorBoard, ``metrics.jsonl``, and the loss curves drawn from it at the end. Rank 0 only.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from keypilot.train.checkpoint import atomic_write_text, atomic_write_bytes
from keypilot.train.distributed import DistInfo, all_reduce_sum

logger = logging.getLogger("keypilot.train")

# The seed's "Monitoring During Training" block, line for line, then the term the loop adds.
LOSS_LINES: tuple[tuple[str, str], ...] = (
    ("loss_total", "  Total Loss"),
    ("loss_encoder", "  Encoder Loss"),
    ("loss_align", "    - Alignment"),
    ("loss_contrastive", "    - Contrastive"),
    ("loss_decoder", "  Decoder Loss"),
    ("loss_text", "    - Text"),
    ("loss_task", "    - Task"),
    ("loss_layout", "    - Layout"),
    ("loss_consistency", "    - Consistency"),
    ("loss_load", "    - Load Balance"),
    ("loss_roi_mask", "  ROI Mask Loss"),
)
LOSS_KEYS: tuple[str, ...] = tuple(key for key, _ in LOSS_LINES)


class _TqdmHandler(logging.Handler):
    """Log lines printed above the progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stdout)


def setup_console_logging(info: DistInfo) -> None:
    """Loss lines come from rank 0 only (``RunLog``); set-up lines from every rank, prefixed."""
    if any(isinstance(h, _TqdmHandler) for h in logger.handlers):
        return
    handler = _TqdmHandler()
    prefix = f"[rank {info.rank}] " if info.is_distributed else ""
    handler.setFormatter(logging.Formatter(prefix + "%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def reduce_means(sums: dict[str, torch.Tensor], count: int, info: DistInfo,
                 device: torch.device) -> dict[str, float]:
    """Means of the ``LOSS_KEYS`` sums over ``count`` steps and all ranks ({} when count is 0).

    Every rank sees the same ``count`` (skip decisions are shared), so all join or none do.
    """
    if count == 0:
        return {}
    vector = torch.stack([torch.as_tensor(sums[key], device=device, dtype=torch.float32) for key in LOSS_KEYS])
    vector = all_reduce_sum(vector, info) / (count * info.world_size)
    return dict(zip(LOSS_KEYS, vector.tolist()))


class RunLog:
    """Where a run's numbers go. On ranks other than 0 every method does nothing."""

    def __init__(self, run_dir: Path, info: DistInfo, *, start_step: int, max_steps: int, resumed: bool) -> None:
        self.run_dir = run_dir
        self.active = info.is_main
        if not self.active:
            return
        from torch.utils.tensorboard import SummaryWriter

        metrics_path = run_dir / "metrics.jsonl"
        if resumed:
            # Steps after the checkpoint are about to be redone: drop their records.
            kept = [r for r in read_metrics(metrics_path) if r.get("step", 0) <= start_step]
            atomic_write_text(metrics_path, "".join(json.dumps(r) + "\n" for r in kept))
        self.metrics = metrics_path.open("a", encoding="utf-8")
        self.tensorboard = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_step + 1 if resumed else None)
        self.max_steps, self.start_step, self.start_time = max_steps, start_step, time.perf_counter()
        # disable=None: no bar when stderr is not a terminal (logs to a file); ETA is in the lines too.
        self.bar = tqdm(total=max_steps, initial=start_step, unit="step", dynamic_ncols=True, file=sys.stderr, disable=None)

    def advance(self) -> None:
        if self.active:
            self.bar.update(1)

    def train(self, step: int, epoch: int, values: dict[str, float]) -> None:
        if not self.active:
            return
        logger.info(f"Epoch {epoch}, step {step}:")
        for key, label in LOSS_LINES:
            if key in values:
                logger.info(f"{label}: {values[key]:.4f}")
        eta = (self.max_steps - step) * (time.perf_counter() - self.start_time) / max(step - self.start_step, 1)
        logger.info(f"  lr {values['lr']:.3g}, {values['samples_per_s']:.1f} samples/s, ETA {tqdm.format_interval(eta)}")
        self._record({"step": step, "split": "train", "epoch": epoch, **values})
        if "loss_total" in values:
            self.bar.set_postfix(loss=f"{values['loss_total']:.4f}", samples_s=f"{values['samples_per_s']:.1f}")

    def val(self, step: int, values: dict[str, float]) -> None:
        if not self.active:
            return
        logger.info(
            f"Validation, step {step}: loss {values['loss_total']:.4f}, task acc {values['task_acc']:.3f}, "
            f"layout acc {values['layout_acc']:.3f}, first token top-1 {values['token_top1']:.3f} "
            f"top-5 {values['token_top5']:.3f}, token acc {values['token_acc']:.3f}"
        )
        self._record({"step": step, "split": "val", **values})

    def nonfinite(self, step: int, consecutive: int, grad_norm: float, loss: float) -> None:
        if not self.active:
            return
        logger.warning(f"step {step}: non-finite loss {loss} / gradient norm {grad_norm}: step skipped "
                       f"({consecutive} in a row)")
        # Strings: JSON has no NaN or Infinity.
        self._record({"step": step, "split": "train", "event": "nonfinite", "consecutive": consecutive,
                      "loss_total": str(loss), "grad_norm": str(grad_norm)})

    def _record(self, record: dict[str, Any]) -> None:
        self.metrics.write(json.dumps(record) + "\n")
        self.metrics.flush()
        split = record["split"]
        for key, value in record.items():
            if key != "step" and isinstance(value, float):
                self.tensorboard.add_scalar(f"{split}/{key}", value, record["step"])

    def close(self) -> None:
        if not self.active:
            return
        self.bar.close()
        self.metrics.close()
        self.tensorboard.close()
        plot_loss_curves(self.run_dir / "metrics.jsonl", self.run_dir / "loss_curves.png")


def read_metrics(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_loss_curves(metrics_path: str | Path, out_path: str | Path) -> None:
    """One panel per ``loss_*`` key: the training curve, and validation points where logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    train = [r for r in records if r.get("split") == "train" and isinstance(r.get("loss_total"), float)]
    val = [r for r in records if r.get("split") == "val"]
    keys = [key for key in LOSS_KEYS if any(key in r for r in train + val)]
    if not keys:
        return
    cols = 4
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        points = [(r["step"], r[key]) for r in train if key in r]
        if points:
            ax.plot(*zip(*points), label="train", linewidth=1)
        points = [(r["step"], r[key]) for r in val if key in r]
        if points:
            ax.plot(*zip(*points), "o-", label="val", markersize=3)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(out_path, buffer.getvalue())
