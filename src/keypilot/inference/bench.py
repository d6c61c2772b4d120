"""``keypilot bench infer``: per-stage latency, model size and peak memory of a predictor.

Each backend is measured in a fresh ``python -m keypilot.inference.bench`` worker process, so
that its peak RSS (``peak_rss_mb``) is the predictor's own: the ONNX workers never import torch,
and the parent's torch (needed to build a model from ``--config`` and export it) is not counted.

Stages (milliseconds, p50/p95 over sample screens x texts, after one warm-up round):

Every figure is a stage time the predictor itself reports in ``Prediction.timing_ms``:

- ``new_screen``: hash + letterbox + screen encoder on a screenshot not in the cache;
- ``keystroke``: ``predict(full=False)`` on a cached screen with text in the field - priors,
  keystroke graph and the strip's 5 candidates: what the user waits for while typing;
- ``keystroke_full``: the same with ``full=True`` (corrections and completions both ranked);
- ``priors``: the priors' candidates and features for the text;
- ``keystroke_graph``: the text/fusion/router part alone;
- ``candidates``: one list of 5 candidates (first-token logits of the decoder fused with the prior);
- ``suggestion``: the suggestion beam (width 4, up to 5 tokens) on a screen's first empty field;
- ``end_to_end_new`` / ``end_to_end_cached``: ``predict(full=False)`` on a new screen / on a
  cached screen with an empty field (the strip is then the suggestion).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BACKENDS: tuple[str, ...] = ("torch", "onnx", "onnx-int8")
STAGES: tuple[str, ...] = ("new_screen", "keystroke", "keystroke_full", "priors", "keystroke_graph", "candidates",
                           "suggestion", "end_to_end_new", "end_to_end_cached")
# Reference targets for this project (1 thread, 2-core CPU; docs/export.md).
TARGETS: dict[str, str] = {
    "new_screen + keystroke": "<= 25 ms (INT8 p50)",
    "keystroke": "<= 5 ms (p50, cached screen)",
    "model_files_mb": "<= 30 MB (INT8)",
    "peak_rss_mb": "<= 100 MB (without torch)",
}
SAMPLE_TEXTS: tuple[str, ...] = ("", "see you tomor", "I am runing late", "我们明天", "call me at 138", "haha ")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


# ----------------------------------------------------------------------------- worker side


def load_predictor(backend: str, path: Path, threads: int) -> Any:
    """The backend's predictor, with ``threads`` intra-op threads."""
    if backend == "torch":
        import torch

        from keypilot.inference.predictor import Predictor

        torch.set_num_threads(threads)
        return Predictor.from_pretrained(path)
    from keypilot.inference.onnx_predictor import OnnxPredictor

    return OnnxPredictor.from_pretrained(path, threads=threads, int8=backend == "onnx-int8")


def peak_rss_mb() -> float:
    """Peak resident memory of this process, MB.

    ``ru_maxrss`` alone would be wrong here: Linux carries the parent's high-water mark over
    fork + exec, so a worker started by a parent holding torch would report torch's memory.
    ``VmHWM`` is the high-water mark of this process's own address space.
    """
    try:
        with open("/proc/self/status", encoding="utf-8") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_worker(backend: str, path: Path, screens: list[Path], threads: int, repeats: int) -> dict[str, Any]:
    """Time every stage of one backend in this process; returns the figures and peak RSS."""
    from PIL import Image

    predictor = load_predictor(backend, path, threads)
    images = []
    for screen in screens:
        with Image.open(screen) as opened:
            images.append(opened.convert("RGB"))
    times: dict[str, list[float]] = {name: [] for name in STAGES}
    for round_ in range(repeats + 1):  # round 0 warms up (allocations, first-call kernels)
        for i, image in enumerate(images):
            text = SAMPLE_TEXTS[(i + round_) % len(SAMPLE_TEXTS)] or "ok"  # keystroke: a non-empty field
            predictor.clear_cache()
            new = predictor.predict(image, text, full=False)
            typed = predictor.predict(image, text, full=False)  # the screen is cached now
            empty = predictor.predict(image, "", full=False)  # the suggestion is decoded (then kept per screen)
            sample = {
                "end_to_end_new": [new.timing_ms["total"]],
                "new_screen": [new.timing_ms["screen"]],
                "keystroke": [typed.timing_ms["keystroke"]],
                "priors": [typed.timing_ms["priors"]],
                "keystroke_graph": [typed.timing_ms["network"]],
                "candidates": [typed.timing_ms["candidates"]],
                "keystroke_full": [predictor.predict(image, text).timing_ms["keystroke"]],
                "end_to_end_cached": [empty.timing_ms["total"]],
                "suggestion": [empty.timing_ms["suggestion"]],
            }
            if round_:
                for name, values in sample.items():
                    times[name] += values
    return {
        "backend": backend,
        "threads": threads,
        "samples": len(images) * repeats,
        "times_ms": times,
        "peak_rss_mb": peak_rss_mb(),
        "torch_imported": "torch" in sys.modules,
    }


def _worker_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m keypilot.inference.bench")
    parser.add_argument("--backend", choices=BACKENDS, required=True)
    parser.add_argument("--path", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("screens", type=Path, nargs="+")
    args = parser.parse_args(argv)
    result = measure_worker(args.backend, args.path, args.screens, args.threads, args.repeats)
    print(json.dumps(result))
    return 0


# ----------------------------------------------------------------------------- parent side


def run_worker(backend: str, path: Path, screens: list[Path], threads: int, repeats: int) -> dict[str, Any]:
    """Measure ``backend`` in a fresh interpreter (its own peak RSS, no torch for ONNX)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "keypilot.inference.bench", "--backend", backend, "--path", str(path),
           "--threads", str(threads), "--repeats", str(repeats), *map(str, screens)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode:
        raise RuntimeError(f"bench worker for {backend} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarize(raw: dict[str, Any], files_mb: float, params: int | None) -> dict[str, Any]:
    """Flat figures of one backend: ``<stage>_ms_p50`` / ``_p95``, sizes, RSS."""
    out: dict[str, Any] = {"backend": raw["backend"], "threads": raw["threads"], "samples": raw["samples"]}
    for name, values in raw["times_ms"].items():
        out[f"{name}_ms_p50"] = round(percentile(values, 50), 3)
        out[f"{name}_ms_p95"] = round(percentile(values, 95), 3)
    out["model_files_mb"] = round(files_mb, 2)
    out["parameters"] = params
    out["peak_rss_mb"] = round(raw["peak_rss_mb"], 1)
    out["torch_imported"] = raw["torch_imported"]
    return out


ROWS: tuple[tuple[str, str, str], ...] = (
    ("new screen: screen encoder (+ hash, letterbox)", "new_screen", ""),
    ("keystroke on a cached screen (graph + the strip's 5 candidates)", "keystroke", TARGETS["keystroke"]),
    ("  same, both lists decoded (full=True)", "keystroke_full", ""),
    ("  priors", "priors", ""),
    ("  keystroke graph alone", "keystroke_graph", ""),
    ("  5 candidates (first token fused with the prior)", "candidates", ""),
    ("suggestion beam (width 4, <= 5 tokens)", "suggestion", ""),
    ("predict(full=False), new screen", "end_to_end_new", TARGETS["new_screen + keystroke"]),
    ("predict(full=False), cached screen, empty field", "end_to_end_cached", ""),
)


def format_table(results: list[dict[str, Any]], machine: str) -> str:
    """A Markdown table, one column per backend (p50 / p95 ms), with the targets beside the figures."""
    lines = [f"Machine: {machine}", "", "| stage, ms p50 / p95 | " + " | ".join(r["backend"] for r in results) + " | target |",
             "|---|" + "---|" * (len(results) + 1)]
    for label, key, target in ROWS:
        cells = [f"{r[key + '_ms_p50']:.1f} / {r[key + '_ms_p95']:.1f}" for r in results]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {target} |")
    lines.append("| model files (MB) | " + " | ".join(f"{r['model_files_mb']:.1f}" for r in results) + f" | {TARGETS['model_files_mb']} |")
    lines.append("| peak RSS of the predictor process (MB) | " + " | ".join(f"{r['peak_rss_mb']:.0f}" for r in results)
                 + f" | {TARGETS['peak_rss_mb']} |")
    lines.append("| torch imported | " + " | ".join("yes" if r["torch_imported"] else "no" for r in results) + " | |")
    params = next((r["parameters"] for r in results if r["parameters"]), None)
    if params:
        lines += ["", f"Parameters: {params / 1e6:.2f} M; samples per stage: {results[0]['samples']}"]
    return "\n".join(lines)


def machine_description(threads: int) -> str:
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} cores, {threads} intra-op thread(s), onnxruntime CPU, "
            f"Python {platform.python_version()}, load average {load:.1f} at start")


@dataclass
class BenchSetup:
    run_dir: Path
    export_dir: Path
    screens: list[Path]
    files_mb: dict[str, float]
    parameters: int


def prepare(work: Path, run: Path | None, config: Path | None, data: Path | None, num_screens: int,
            onnx: bool, int8: bool) -> BenchSetup:
    """Run folder (``run``, or a random model of ``config`` with a throwaway tokenizer), sample
    screens (``data``, or a small generated set) and, for the ONNX backends, the export."""
    from keypilot.data.format import read_records
    from keypilot.inference.export import export_run
    from keypilot.inference.quantize import file_mb

    if data is None:
        from keypilot.data.generate import generate_dataset

        data = work / "data"
        generate_dataset(data, num=max(2 * num_screens, 10), seed=7, workers=None, progress=False)
    if run is None:
        from keypilot.config import load_config
        from keypilot.models.keypilot_model import KeyPilotModel
        from keypilot.tokenizer import train_tokenizer

        run = work / "run"
        run.mkdir(parents=True, exist_ok=True)
        train_tokenizer(data, run / "tokenizer.json")
        KeyPilotModel.from_config(load_config(config)).save_pretrained(run)
    records = read_records(data, skip_bad=True, check_images=False)
    screens = list(dict.fromkeys(r.image for r in records))[:num_screens]
    export_dir = work / "export"
    if onnx:
        export_run(run, export_dir, int8=int8, calib_images=num_screens, calib_data=data, parity=False)
    from safetensors import safe_open

    with safe_open(str(run / "model.safetensors"), framework="numpy") as weights:
        parameters = sum(int(np.prod(weights.get_slice(k).get_shape())) for k in weights.keys())
    files_mb = {"torch": file_mb(run / "model.safetensors")}
    if onnx:
        manifest = json.loads((export_dir / "manifest.json").read_text(encoding="utf-8"))
        for backend, key in (("onnx", "graphs"), ("onnx-int8", "int8_graphs")):
            if key in manifest:
                files_mb[backend] = sum(file_mb(export_dir / g["file"]) for g in manifest[key].values())
    return BenchSetup(Path(run), export_dir, screens, files_mb, parameters)


def bench_infer(run: Path | None = None, config: Path | None = None, backends: Sequence[str] = ("onnx-int8",),
                threads: int = 1, repeats: int = 3, num_screens: int = 8, data: Path | None = None,
                workdir: Path | None = None) -> list[dict[str, Any]]:
    """Benchmark ``backends`` on a trained ``run`` or a randomly initialised ``config``.

    Everything the backends need is prepared once in ``workdir`` (a temporary folder by
    default); each backend is then measured in its own worker process, one after another.
    """
    if (run is None) == (config is None):
        raise ValueError("give exactly one of run and config")
    with tempfile.TemporaryDirectory(prefix="keypilot-bench-") as tmp:
        work = Path(workdir or tmp)
        setup = prepare(work, run, config, data, num_screens, onnx=any(b != "torch" for b in backends),
                        int8="onnx-int8" in backends)
        results = []
        for backend in backends:
            path = setup.run_dir if backend == "torch" else setup.export_dir
            raw = run_worker(backend, path, setup.screens, threads, repeats)
            results.append(summarize(raw, setup.files_mb[backend], setup.parameters))
        return results


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
