"""The file names of a run folder and of an export, in one place (``docs/contracts.md``, "Run folders").

Torch-free, so the CLI can check a folder before anything heavy is imported or loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

# A trained run (keypilot train --out RUN).
CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"  # the latest weights
BEST_WEIGHTS_FILE = "best.safetensors"  # the best validation loss so far
TOKENIZER_FILE = "tokenizer.json"
CHECKPOINT_DIR = "checkpoints"  # step-N.pt: the full training state
METRICS_FILE = "metrics.jsonl"
LOSS_CURVES_FILE = "loss_curves.png"
TENSORBOARD_DIR = "tensorboard"
PRIORS_DIR = "priors"  # the field's priors (keypilot.priors), also in an export
FUSION_FILE = "fusion.json"  # the prior weight fitted on the validation split
# An ONNX export (keypilot export --out EXPORT; by convention RUN/export).
EXPORT_DIR = "export"
MANIFEST_FILE = "manifest.json"
TOKENIZER_BPE_DIR = "tokenizer.bpe"  # the predictor's compact tokenizer (keypilot.bpe), beside tokenizer.json

# What a predictor loads from a run.
RUN_FILES: tuple[str, ...] = (CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE)


def missing_run_files(run: str | os.PathLike) -> list[str]:
    """The ``RUN_FILES`` that ``run`` lacks (all of them when it is not a folder)."""
    return [name for name in RUN_FILES if not (Path(run) / name).is_file()]


def export_folder(path: str | os.PathLike) -> Path | None:
    """The export at ``path`` itself or in ``path/export``; None when there is neither."""
    for folder in (Path(path), Path(path) / EXPORT_DIR):
        if (folder / MANIFEST_FILE).is_file():
            return folder
    return None
