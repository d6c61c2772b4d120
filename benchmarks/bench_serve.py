"""Load test of the HTTP API: ``python benchmarks/bench_serve.py --run runs/demo``.

The same as ``keypilot bench serve``: starts the server on a free loopback port, runs N
clients typing one character per request for a fixed time, and prints throughput, latency
percentiles and the error count.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keypilot.run_folder import missing_run_files
from keypilot.serve.loadtest import bench_serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/demo"))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    parser.add_argument("--threads", type=int, default=None, help="the server's model intra-op threads")
    parser.add_argument("--int8", action="store_true", help="with --backend onnx: the export's INT8 graphs")
    args = parser.parse_args(argv)
    if missing_run_files(args.run):
        print(f"bench_serve: no trained run at {args.run} (run `make demo` first); skipped")
        return 0
    figures = bench_serve(args.run, clients=args.clients, seconds=args.seconds, backend=args.backend, threads=args.threads, int8=args.int8)
    print(f"serve load test, {args.backend} backend, run {args.run}")
    for key, value in figures.items():
        print(f"  {key:>15}: {value}")
    return 1 if figures["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
