"""The torch-free install: `pip install keypilot[onnx]` predicts on an export made by the full install.

``test_onnx_path_imports_no_training_packages`` checks in this environment that no module of
the ONNX path (predictor, pre/post-processing, beam search, tokenizer, server, CLI) imports
torch, onnx or the generator's packages. ``test_onnx_extra_in_a_fresh_venv`` proves it for real:
a new virtual environment gets the project's wheel with the ``onnx`` extra alone from the
package index, has none of those packages at all, and answers ``keypilot predict --backend
onnx`` on the tiny export. It needs the package index (skipped, with the reason, when it is
unreachable); the install took 12 s with pip's cache warm and 17 s cold here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_export import make_tiny_export

from keypilot.labels import LAYOUTS

ROOT = Path(__file__).resolve().parents[1]
# What the `train` extra brings and the ONNX path must never import.
TRAINING_ONLY = ("torch", "onnx", "safetensors", "matplotlib", "tensorboard", "wordfreq", "jieba", "pypinyin", "emoji",
                 "faker", "symspellpy", "codespell_lib", "chitchat_dataset")
ONNX_PATH_MODULES = ("keypilot", "keypilot.labels", "keypilot.tokenizer", "keypilot.bpe", "keypilot.beam",
                     "keypilot.preprocess", "keypilot.prior_fusion", "keypilot.priors", "keypilot.inference.candidates",
                     "keypilot.inference.postprocess", "keypilot.inference.onnx_predictor", "keypilot.serve.app",
                     "keypilot.cli")
INSTALL_TIMEOUT_S = 900


def _imported_training_packages(python: str) -> list[str]:
    script = textwrap.dedent(f"""
        import importlib, json, sys
        for name in {ONNX_PATH_MODULES!r}:
            importlib.import_module(name)
        print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set({TRAINING_ONLY!r}))))
    """)
    proc = subprocess.run([python, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_onnx_path_imports_no_training_packages() -> None:
    assert _imported_training_packages(sys.executable) == []


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_tiny_export(tmp_path_factory.getbasetemp() / "onnx-tiny")


def _run(cmd: list[str], timeout: float = INSTALL_TIMEOUT_S, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, check=False, **kwargs)


def _project_wheel(out: Path) -> Path:
    """The project's wheel, built from a copy of its sources (the checkout stays clean) with the
    build tools of this environment (no download for the build)."""
    source = out / "source"
    source.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    proc = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", out / "wheels", source])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return next((out / "wheels").glob("keypilot-*.whl"))


@pytest.mark.slow
def test_onnx_extra_in_a_fresh_venv(tmp_path: Path, tiny_export: tuple[Path, Path, Path]) -> None:
    _, data, export = tiny_export
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], timeout=120).check_returncode()
    pip = [venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check", "--timeout", "20", "--retries", "1"]
    if _run([*pip, "index", "versions", "onnxruntime"], timeout=120).returncode:
        pytest.skip("the package index is unreachable: the fresh-venv install of keypilot[onnx] needs it")
    wheel = _project_wheel(tmp_path)
    started = time.perf_counter()
    proc = _run([*pip, "install", "-q", f"{wheel}[onnx]"])
    install_s = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"\nfresh venv: pip install keypilot[onnx] took {install_s:.0f} s")

    python = str(venv / "bin" / "python")
    missing = _run([python, "-c", f"import importlib.util as u; print([m for m in {TRAINING_ONLY!r} if u.find_spec(m)])"])
    assert missing.stdout.strip() == "[]", f"the onnx extra installed training packages: {missing.stdout}"
    assert _imported_training_packages(python) == []

    image = min((data / "images").iterdir())
    for flags in ([], ["--int8"]):
        proc = _run([venv / "bin" / "keypilot", "predict", "--backend", "onnx", *flags, "--run", export, "--image", image,
                     "--text", "see you tomor", "--json"], timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        assert result["layout"] in LAYOUTS and result["task"] in result["task_probs"]
        assert isinstance(result["shown"], list)
