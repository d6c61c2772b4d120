"""Inference of torch FP32, ONNX FP32 and ONNX INT8 measured in one run, for a comparable table.

One invocation prepares the model once (a trained run, or random weights of a config with a
throwaway tokenizer), exports it, then measures each backend in its own fresh worker process
(peak RSS is that process's own), one after another on the same screens and texts. Prints
the Markdown table of ``docs/export.md`` and, with ``--json FILE``, writes the figures.

    python benchmarks/bench_infer.py [--config configs/keypilot.yaml | --run RUN] [--threads 1]
        [--repeats 3] [--screens 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from keypilot.inference.bench import BACKENDS, bench_infer, format_table, machine_description

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
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args()
    config = None if args.run else (args.config or ROOT / "configs" / "keypilot.yaml")
    machine = machine_description(args.threads)
    results = bench_infer(run=args.run, config=config, backends=BACKENDS, threads=args.threads, repeats=args.repeats,
                          num_screens=args.screens, data=args.data)
    print(format_table(results, machine))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
