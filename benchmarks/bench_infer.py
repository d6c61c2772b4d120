"""Inference of torch FP32, ONNX FP32 and ONNX INT8 measured in one run, for a comparable table.

One invocation prepares the model once (a trained run, or random weights of a config with a
throwaway tokenizer), exports it, measures the core's peak MAC rate, then measures each
backend in its own fresh worker process (peak RSS is that process's own), one after another
on the same screens and texts, and the previous design (``--baseline``, by default
``configs/keypilot-v1.yaml`` for ``configs/keypilot.yaml``) right before each. Prints the
Markdown tables of ``docs/export.md`` (stages beside their arithmetic floor, and previous vs
current) and, with ``--json FILE``, writes the figures.

    python benchmarks/bench_infer.py [--config configs/keypilot.yaml | --run RUN] [--threads 1]
        [--repeats 3] [--screens 8] [--baseline CONFIG|none] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from keypilot.inference.bench import (
    BACKENDS,
    bench_infer,
    default_baseline,
    format_side_by_side,
    format_table,
    machine_description,
)

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", type=Path, default=None, help="default: configs/keypilot.yaml")
    source.add_argument("--run", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--screens", type=int, default=8)
    parser.add_argument("--data", type=Path, default=None, help="screens from this data set (default: generated)")
    parser.add_argument("--baseline", default="auto", help="previous design's config (default: <config>-v1.yaml; 'none' to skip)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args()
    config = None if args.run else (args.config or ROOT / "configs" / "keypilot.yaml")
    baseline = default_baseline(config) if args.baseline == "auto" else (None if args.baseline == "none" else Path(args.baseline))
    machine = machine_description(args.threads)
    report = bench_infer(run=args.run, config=config, backends=BACKENDS, threads=args.threads, repeats=args.repeats,
                         num_screens=args.screens, data=args.data, baseline=baseline)
    print(format_table(report["results"], machine, report["peak"]))
    if "baseline" in report:
        print()
        print(format_side_by_side(report["baseline"], report["results"], str(baseline), str(config or args.run)))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, **report}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
