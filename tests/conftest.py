"""Helpers and fixtures shared by several test modules.

Plain helpers are imported as ``from conftest import ...``; the fixtures need no import.
Nothing here imports torch at module level: collecting the torch-free tests must not load it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from keypilot.config import load_config

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "configs" / "tiny.yaml"


# ---------------------------------------------------------------- training runs (train, checkpoint, distributed)


def write_config(folder: Path, **training) -> Path:
    """configs/tiny.yaml shrunk further (images 128 x 64, d_model 32) with ``training`` overrides."""
    config = load_config(TINY_CONFIG)
    config["model"].update(d_model=32, image_height=128, image_width=64, roi_size=32, max_context_tokens=16)
    config["model"]["backbone"].update(width_multiplier=0.25, transformer_dims=[16, 24, 32], dense_channels=16)
    config["model"]["text_encoder"].update(hidden=32, heads=2, ffn=64, layers=1)
    config["model"]["fusion"].update(heads=2, ffn=64)
    config["model"]["layout_router"].update(heads=2, ffn=64)
    config["model"]["moe"].update(heads=2, ffn=64, router_hidden=16)
    config["training"].update(batch_size=4, warmup_steps=5, num_workers=0, log_every=1, eval_every=1000,
                              save_every=1000, keep_last=3)
    config["training"].update(training)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"config-{len(list(folder.glob('config-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


# Lexicon sizes of the priors built for tests: small, so a build takes seconds.
TEST_PRIOR_WORDS = {"en_words": 3000, "zh_words": 5000}


def build_test_priors(data: Path) -> Path:
    """``data/priors`` from ``data/train.jsonl`` with small lexicons (what training copies)."""
    from keypilot.data.format import read_records
    from keypilot.priors import build_priors

    if not (data / "priors").is_dir():
        build_priors(read_records(data / "train.jsonl", check_images=False), data / "priors", progress=False,
                     **TEST_PRIOR_WORDS)
    return data / "priors"


def shared_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 generated samples, a tokenizer trained on them and small priors, once per test session."""
    from keypilot.data.generate import generate_dataset
    from keypilot.tokenizer import train_tokenizer

    data = tmp_path_factory.getbasetemp() / "train-data"
    if not (data / "tokenizer.json").exists():
        generate_dataset(data, num=48, seed=0, workers=2, progress=False)
        train_tokenizer(data / "train.jsonl", data / ".tokenizer.json", vocab_size=32000)
        (data / ".tokenizer.json").replace(data / "tokenizer.json")
    build_test_priors(data)
    return data


def data_copy(data: Path, folder: Path, *, tokenizer: bool, extra_train_line: str | None = None) -> Path:
    """A data folder sharing ``data``'s images, optionally without the tokenizer or with one more line."""
    folder.mkdir(parents=True)
    (folder / "images").symlink_to(data / "images")
    if (data / "priors").is_dir():
        (folder / "priors").symlink_to(data / "priors")
    shutil.copy(data / "val.jsonl", folder / "val.jsonl")
    train = (data / "train.jsonl").read_text(encoding="utf-8")
    (folder / "train.jsonl").write_text(train + (extra_train_line + "\n" if extra_train_line else ""), encoding="utf-8")
    if tokenizer:
        shutil.copy(data / "tokenizer.json", folder / "tokenizer.json")
    return folder


def run_train_subprocess(*args: str | Path, launcher: tuple[str, ...] = (), **popen) -> subprocess.Popen:
    """``python [launcher] -m keypilot train ARGS`` in a fresh process, output in pipes."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, *launcher, "-m", "keypilot", "train", *map(str, args)]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------- serving (serve, browser)


def make_tiny_run(folder: Path) -> tuple[Path, Path]:
    """A run folder with an untrained tiny model and a tokenizer trained on a tiny generated
    data set; returns (run, data)."""
    from keypilot.data.generate import generate_dataset
    from keypilot.models.keypilot_model import KeyPilotModel
    from keypilot.tokenizer import train_tokenizer

    run, data = folder / "run", folder / "data"
    if (run / "model.safetensors").is_file():
        return run, data
    generate_dataset(data, num=24, seed=0, workers=1, progress=False)
    run.mkdir(parents=True, exist_ok=True)
    train_tokenizer(data / "train.jsonl", run / "tokenizer.json")
    KeyPilotModel.from_config(load_config(TINY_CONFIG)).save_pretrained(run)
    return run, data


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread for a module's small-model tests: many times faster on a small,
    busy CI machine than oversubscribed threads; restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def password_focused(screen):
    """``screen`` (a generated form) with its password field focused and it and the fields below
    it empty, as while a password is typed: the generator makes no such sample, since the
    keyboard predicts nothing in a password field, but both renderers must still draw it masked."""
    at = next(i for i, field in enumerate(screen.fields) if field.kind == "password")
    fields = [dataclasses.replace(field, value="") if i >= at else field for i, field in enumerate(screen.fields)]
    return dataclasses.replace(screen, focus=at, fields=fields)
