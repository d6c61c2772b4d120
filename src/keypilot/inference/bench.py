"""``keypilot bench infer``: per-stage latency, model size and peak memory of a predictor.

Each backend is measured in a fresh ``python -m keypilot.inference.bench`` worker process, so
that its peak RSS (``peak_rss_mb``) is the predictor's own: the ONNX workers never import torch,
and the parent's torch (needed to build a model from ``--config`` and export it) is not counted.
The peak is read after one pass of full predictions on the screenshot files, before the timed
rounds load the screens into memory.

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

Beside each stage stands its arithmetic floor (``keypilot.inference.floor``): the ONNX
workers record every graph call of every stage with its input shapes, the parent counts the
MACs of those calls on the FP32 graphs and divides by the core's peak MAC rate measured in
the same run (a large FP32 ``MatMul`` and a large INT8 ``MatMulInteger`` at the same thread
count). ``measured / floor`` is how far a stage runs from the hardware limit.

With a ``baseline`` config (the previous design, ``configs/keypilot-v1.yaml``) the same
backends are measured on it in the same run, one worker after another, and a side-by-side
table gives previous vs current per stage.

Last, screen-text recognition per new screen (``keypilot.ocr.bench``): p50/p95 of one
``ScreenReader`` at the same thread count on the sample screenshots as stored and upscaled to
a phone's 1080-pixel width (``"recognition"`` in ``--json``; skipped with a note when the
``ocr`` extra is not installed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keypilot.labels import EXPERTS
from keypilot.run_folder import PRIORS_DIR

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
# The graphs that rank candidates and decode the suggestion.
DECODER_GRAPHS: tuple[str, ...] = ("decode_head", *(f"expert_{name}" for name in EXPERTS))
SAMPLE_TEXTS: tuple[str, ...] = ("", "see you tomor", "I am runing late", "我们明天", "call me at 138", "haha ")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


# ----------------------------------------------------------------------------- worker side


class _RecordedSession:
    """An onnxruntime session that notes each call's graph and input shapes (for the MAC count)."""

    def __init__(self, name: str, session: Any, calls: list[tuple]) -> None:
        self._name, self._session, self._calls = name, session, calls

    def run(self, outputs: Any, feeds: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        # shapes only (cheap, inside the timed call); turned into JSON after the timing
        self._calls.append((self._name, tuple((key, np.shape(value)) for key, value in feeds.items())))
        return self._session.run(outputs, feeds, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def load_predictor(backend: str, path: Path, threads: int, calls: list[tuple]) -> Any:
    """The backend's predictor with ``threads`` intra-op threads; an ONNX predictor's graph calls
    are appended to ``calls`` (``_RecordedSession``)."""
    if backend == "torch":
        import torch

        from keypilot.inference.predictor import Predictor

        torch.set_num_threads(threads)
        return Predictor.from_pretrained(path)
    from keypilot.inference.onnx_predictor import OnnxPredictor

    predictor = OnnxPredictor.from_pretrained(path, threads=threads, int8=backend == "onnx-int8")
    predictor.sessions = {name: _RecordedSession(name, session, calls) for name, session in predictor.sessions.items()}
    return predictor


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

    calls_made: list[tuple] = []
    predictor = load_predictor(backend, path, threads, calls_made)
    # Peak RSS first, as a keyboard process works: screenshot files in, every kind of answer
    # out. The timed rounds below hold the decoded screens in memory (so that decoding is not
    # timed), which is the benchmark's memory, not the predictor's.
    for i, screen in enumerate(screens):
        for text in (SAMPLE_TEXTS[i % len(SAMPLE_TEXTS)], ""):
            predictor.predict(screen, text)
        predictor.clear_cache()
    peak_rss = peak_rss_mb()
    images = []
    for screen in screens:
        with Image.open(screen) as opened:
            images.append(opened.convert("RGB"))
    times: dict[str, list[float]] = {name: [] for name in STAGES}
    # per stage and sample: {graph call: count}, the graph calls of that one timed call
    calls: dict[str, list[dict[str, int]]] = {name: [] for name in STAGES}

    def timed(stage: str, sample: dict[str, float], sample_calls: dict[str, dict[str, int]], fn: Callable[..., Any],
              *args: Any, **kwargs: Any) -> Any:
        calls_made.clear()
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        sample[stage] = 1000 * (time.perf_counter() - start)
        keys = [json.dumps([name, {k: list(shape) for k, shape in feeds}], sort_keys=True) for name, feeds in calls_made]
        sample_calls[stage] = {key: keys.count(key) for key in set(keys)}
        return result

    for round_ in range(repeats + 1):  # round 0 warms up (allocations, first-call kernels)
        for i, image in enumerate(images):
            text = SAMPLE_TEXTS[(i + round_) % len(SAMPLE_TEXTS)] or "ok"  # keystroke: a non-empty field
            predictor.clear_cache()
            sample: dict[str, float] = {}
            calls_of: dict[str, dict[str, int]] = {}
            new = timed("end_to_end_new", sample, calls_of, predictor.predict, image, text, full=False)
            typed = timed("keystroke", sample, calls_of, predictor.predict, image, text, full=False)
            timed("keystroke_full", sample, calls_of, predictor.predict, image, text)
            empty = timed("end_to_end_cached", sample, calls_of, predictor.predict, image, "", full=False)
            # The stages inside those calls, as the predictor itself times them (Prediction.timing_ms),
            # and their graph calls: the screen graph of a new screen, the keystroke graph of a
            # keystroke, the decoder of the typed keystroke (candidates) and of the empty field (suggestion).
            for stage, prediction, timing, whole, graphs in (
                ("new_screen", new, "screen", "end_to_end_new", ("screen",)),
                ("priors", typed, "priors", "keystroke", ()),
                ("keystroke_graph", typed, "network", "keystroke", ("keystroke",)),
                ("candidates", typed, "candidates", "keystroke", DECODER_GRAPHS),
                ("suggestion", empty, "suggestion", "end_to_end_cached", DECODER_GRAPHS),
            ):
                sample[stage] = prediction.timing_ms[timing]
                calls_of[stage] = {key: n for key, n in calls_of[whole].items() if json.loads(key)[0] in graphs}
            if round_:
                for name, value in sample.items():
                    times[name].append(value)
                    calls[name].append(calls_of[name])
    return {
        "backend": backend,
        "threads": threads,
        "samples": len(images) * repeats,
        "times_ms": times,
        "calls": calls if backend != "torch" else {},
        "peak_rss_mb": peak_rss,
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


def stage_macs(export_dir: Path, calls: dict[str, list[dict[str, int]]]) -> dict[str, float]:
    """MACs of each stage (median over its samples) from a worker's recorded graph calls,
    counted on the export's FP32 graphs (the INT8 ones compute the same products)."""
    from keypilot.inference.floor import MacCounter

    graphs = json.loads((export_dir / "manifest.json").read_text(encoding="utf-8"))["graphs"]
    counters: dict[str, MacCounter] = {}
    macs: dict[str, float] = {}
    for stage, samples in calls.items():
        totals = []
        for sample in samples:
            total = 0
            for key, count in sample.items():
                name, shapes = json.loads(key)
                if name not in counters:
                    counters[name] = MacCounter(export_dir / graphs[name]["file"])
                total += count * counters[name].macs(shapes)
            totals.append(total)
        if totals:
            macs[stage] = float(np.median(totals))
    return macs


def summarize(raw: dict[str, Any], files_mb: float, params: int | None, macs: dict[str, float] | None = None,
              peak: dict[str, float] | None = None) -> dict[str, Any]:
    """Flat figures of one backend: ``<stage>_ms_p50`` / ``_p95``, sizes, RSS; with ``macs`` and
    ``peak`` (GMAC/s) also ``<stage>_mmac``, ``<stage>_floor_ms`` (FP32 peak for torch and onnx,
    INT8 peak for onnx-int8) and ``<stage>_x_floor`` (p50 / floor)."""
    out: dict[str, Any] = {"backend": raw["backend"], "threads": raw["threads"], "samples": raw["samples"]}
    rate = None if peak is None else peak["int8_gmacs" if raw["backend"] == "onnx-int8" else "fp32_gmacs"]
    for name, values in raw["times_ms"].items():
        out[f"{name}_ms_p50"] = round(percentile(values, 50), 3)
        out[f"{name}_ms_p95"] = round(percentile(values, 95), 3)
        if macs and name in macs and rate:
            floor_ms = macs[name] / (rate * 1e9) * 1e3
            out[f"{name}_mmac"] = round(macs[name] / 1e6, 1)
            out[f"{name}_floor_ms"] = round(floor_ms, 3)
            out[f"{name}_x_floor"] = round(out[f"{name}_ms_p50"] / floor_ms, 2) if floor_ms > 0 else None
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


def _cell(result: dict[str, Any], key: str) -> str:
    cell = f"{result[key + '_ms_p50']:.1f} / {result[key + '_ms_p95']:.1f}"
    ratio = result.get(key + "_x_floor")
    return cell + (f" ({ratio:.1f}x)" if ratio else "")


def format_table(results: list[dict[str, Any]], machine: str, peak: dict[str, float] | None = None) -> str:
    """A Markdown table, one column per backend (p50 / p95 ms, and p50 / floor), the stage's
    MACs and floors (FP32 / INT8 peak), and the targets beside the figures."""
    with_floor = any(key.endswith("_mmac") for r in results for key in r)
    floor_head = " MMAC | floor ms FP32 / INT8 |" if with_floor else ""
    lines = [f"Machine: {machine}"]
    if peak:
        lines.append(f"Peak MAC rate ({peak['threads']} thread(s), onnxruntime {peak['size']}^3 product): "
                     f"FP32 {peak['fp32_gmacs']:.1f} GMAC/s, INT8 {peak['int8_gmacs']:.1f} GMAC/s")
    lines += ["", "| stage, ms p50 / p95 (p50 / floor) | " + " | ".join(r["backend"] for r in results) + f" |{floor_head} target |",
              "|---|" + "---|" * (len(results) + 1 + (2 if with_floor else 0))]
    for label, key, target in ROWS:
        cells = [_cell(r, key) for r in results]
        floor = ""
        if with_floor:
            source = next((r for r in results if key + "_mmac" in r), None)
            floor = " |  |  |" if source is None else (
                f" {source[key + '_mmac']:.0f} | {source[key + '_mmac'] / peak['fp32_gmacs']:.2f} / "
                f"{source[key + '_mmac'] / peak['int8_gmacs']:.2f} |" if peak else " |  |  |")  # MMAC / (GMAC/s) = ms
        lines.append(f"| {label} | " + " | ".join(cells) + f" |{floor} {target} |")
    pad = " |  |  |" if with_floor else " |"
    lines.append("| model files (MB) | " + " | ".join(f"{r['model_files_mb']:.1f}" for r in results) + f"{pad} {TARGETS['model_files_mb']} |")
    lines.append("| peak RSS of the predictor process (MB) | " + " | ".join(f"{r['peak_rss_mb']:.0f}" for r in results)
                 + f"{pad} {TARGETS['peak_rss_mb']} |")
    lines.append("| torch imported | " + " | ".join("yes" if r["torch_imported"] else "no" for r in results) + f"{pad} |")
    params = next((r["parameters"] for r in results if r["parameters"]), None)
    if params:
        lines += ["", f"Parameters: {params / 1e6:.2f} M; samples per stage: {results[0]['samples']}"]
    return "\n".join(lines)


SIDE_BY_SIDE_ROWS: tuple[tuple[str, str], ...] = (
    ("new screen (screen graph)", "new_screen"),
    ("keystroke graph alone", "keystroke_graph"),
    ("keystroke on a cached screen", "keystroke"),
    ("predict(full=False), new screen", "end_to_end_new"),
    ("predict(full=False), cached screen, empty field", "end_to_end_cached"),
)


def format_side_by_side(previous: list[dict[str, Any]], current: list[dict[str, Any]], previous_name: str,
                        current_name: str) -> str:
    """Previous vs current design, measured in the same run: p50 ms per stage, the screen
    graph's MACs, files and peak RSS, and current / previous, for each backend measured on both."""
    pairs = [(p, c) for p in previous for c in current if p["backend"] == c["backend"]]
    head = " | ".join(f"{c['backend']}: previous | current | ratio" for _, c in pairs)
    lines = [f"Previous design ({previous_name}) vs current ({current_name}), same run, p50:", "",
             f"| stage | {head} |", "|---|" + "---|---|---|" * len(pairs)]

    def row(label: str, values: list[tuple[float | None, float | None]], fmt: str) -> str:
        cells = []
        for before, after in values:
            ratio = f"{after / before:.2f}x" if before and after is not None else ""
            cells.append(f"{'' if before is None else format(before, fmt)} | {'' if after is None else format(after, fmt)} | {ratio}")
        return f"| {label} | " + " | ".join(cells) + " |"

    for label, key in SIDE_BY_SIDE_ROWS:
        lines.append(row(label + ", ms", [(p[key + "_ms_p50"], c[key + "_ms_p50"]) for p, c in pairs], ".1f"))
    lines.append(row("screen graph, MMAC", [(p.get("new_screen_mmac"), c.get("new_screen_mmac")) for p, c in pairs], ".0f"))
    lines.append(row("model files, MB", [(p["model_files_mb"], c["model_files_mb"]) for p, c in pairs], ".1f"))
    lines.append(row("peak RSS, MB", [(p["peak_rss_mb"], c["peak_rss_mb"]) for p, c in pairs], ".0f"))
    lines.append(row("parameters, M", [((p["parameters"] or 0) / 1e6, (c["parameters"] or 0) / 1e6) for p, c in pairs], ".2f"))
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
    data: Path
    screens: list[Path]
    files_mb: dict[str, float]
    parameters: int


def prepare(work: Path, run: Path | None, config: Path | None, data: Path | None, num_screens: int,
            onnx: bool, int8: bool, tokenizer: Path | None = None) -> BenchSetup:
    """Run folder (``run``, or a random model of ``config`` with a throwaway tokenizer, or a
    copy of ``tokenizer``, and the data's priors: its ``priors/`` folder or ones built from it,
    so that the keystroke is timed with them), sample screens (``data``, or a small generated
    set) and, for the ONNX backends, the export."""
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
        if tokenizer is None:
            train_tokenizer(data, run / "tokenizer.json")
        else:
            shutil.copyfile(tokenizer, run / "tokenizer.json")
        KeyPilotModel.from_config(load_config(config)).save_pretrained(run)
        _bench_priors(data, run / PRIORS_DIR)
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
    return BenchSetup(Path(run), export_dir, Path(data), screens, files_mb, parameters)


def _bench_priors(data: Path, out: Path) -> None:
    """The priors of a throwaway run: a copy of the data set's, else built from its records."""
    from keypilot.data.format import read_records
    from keypilot.priors import build_priors

    folder = data if data.is_dir() else data.parent
    if (folder / PRIORS_DIR).is_dir():
        shutil.copytree(folder / PRIORS_DIR, out)
    else:
        build_priors(read_records(data, skip_bad=True, check_images=False), out, progress=False)


def _measure(setup: BenchSetup, backend: str, threads: int, repeats: int, peak: dict[str, float],
             macs: dict[str, float] | None) -> tuple[dict[str, Any], dict[str, float] | None]:
    """One backend in its own worker; returns its figures and the stages' MACs (from an ONNX
    worker's calls, else ``macs`` as given: torch runs the same products)."""
    path = setup.run_dir if backend == "torch" else setup.export_dir
    raw = run_worker(backend, path, setup.screens, threads, repeats)
    if raw.get("calls"):
        macs = stage_macs(setup.export_dir, raw["calls"])
    return summarize(raw, setup.files_mb[backend], setup.parameters, macs, peak), macs


def bench_infer(run: Path | None = None, config: Path | None = None, backends: Sequence[str] = ("onnx-int8",),
                threads: int = 1, repeats: int = 3, num_screens: int = 8, data: Path | None = None,
                workdir: Path | None = None, baseline: Path | None = None) -> dict[str, Any]:
    """Benchmark ``backends`` on a trained ``run`` or a randomly initialised ``config`` (and on
    a ``baseline`` config, the previous design, in the same run).

    Everything is prepared once in ``workdir`` (a temporary folder by default); the core's
    peak MAC rate is measured, then each backend in its own worker process, one after
    another, the baseline's worker right before the current one's. Returns ``{"peak": ...,
    "results": [per backend], "baseline": [per backend] (with a baseline)}``; ONNX stages
    carry their MACs and floors (torch's use the ONNX graphs' MACs when an ONNX backend ran).
    """
    from keypilot.inference.floor import describe_peak

    if (run is None) == (config is None):
        raise ValueError("give exactly one of run and config")
    onnx = any(b != "torch" for b in backends)
    ordered = sorted(backends, key=lambda b: b == "torch")  # ONNX first: torch reuses their MAC counts
    with tempfile.TemporaryDirectory(prefix="keypilot-bench-") as tmp:
        work = Path(workdir or tmp)
        setup = prepare(work / "current", run, config, data, num_screens, onnx=onnx, int8="onnx-int8" in backends)
        previous = None
        if baseline is not None:
            tokenizer = setup.run_dir / "tokenizer.json"
            previous = prepare(work / "baseline", None, baseline, setup.data, num_screens, onnx=onnx,
                               int8="onnx-int8" in backends, tokenizer=tokenizer)
        peak = describe_peak(threads)
        results: dict[str, dict[str, Any]] = {}
        before: dict[str, dict[str, Any]] = {}
        macs: dict[str, float] | None = None
        previous_macs: dict[str, float] | None = None
        for backend in ordered:
            if previous is not None:
                before[backend], previous_macs = _measure(previous, backend, threads, repeats, peak, previous_macs)
            results[backend], macs = _measure(setup, backend, threads, repeats, peak, macs)
        report: dict[str, Any] = {"peak": peak, "results": [results[b] for b in backends]}
        if previous is not None:
            report["baseline"] = [before[b] for b in backends]
        from keypilot.ocr.bench import measure_recognition

        report["recognition"] = measure_recognition(setup.screens, threads=threads)
        return report


def default_baseline(config: Path | None) -> Path | None:
    """The previous design's config kept beside ``config``: ``<stem>-v1.yaml``, when present."""
    if config is None:
        return None
    candidate = Path(config).with_name(f"{Path(config).stem}-v1.yaml")
    return candidate if candidate.is_file() and candidate.resolve() != Path(config).resolve() else None


def run_bench_infer(run: Path | None, config: Path | None, backend: str, threads: int, repeats: int, screens: int,
                    data: Path | None, as_json: bool, baseline: str | None = "auto") -> int:
    """``keypilot bench infer``: measure, then print the table(s) or one JSON object.
    ``baseline``: a config path, ``"auto"`` (``default_baseline``) or ``"none"``/``None``."""
    backends = BACKENDS if backend == "all" else (backend,)
    previous = default_baseline(config) if baseline == "auto" else (None if baseline in (None, "none") else Path(baseline))
    machine = machine_description(threads)
    report = bench_infer(run=run, config=config, backends=backends, threads=threads, repeats=repeats,
                         num_screens=screens, data=data, baseline=previous)
    if as_json:
        print(json.dumps({"machine": machine, **report}))
        return 0
    from keypilot.ocr.bench import format_recognition

    print(format_table(report["results"], machine, report["peak"]))
    if "baseline" in report:
        print()
        print(format_side_by_side(report["baseline"], report["results"], str(previous), str(config or run)))
    print()
    print(format_recognition(report["recognition"]))
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
