"""Throughput of the built-in data generator: samples per second, all cores.

    python benchmarks/bench_generate.py [--num 1000] [--workers N]

Corpus loading (once per run, a few seconds) is timed separately from generation.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from keypilot.data.generate import generate_dataset
from keypilot.data.generate.corpus import load_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    load_corpus()
    loaded = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        generate_dataset(Path(tmp), args.num, seed=args.seed, workers=args.workers, progress=False)
        done = time.perf_counter()
        size = sum(p.stat().st_size for p in (Path(tmp) / "images").iterdir())
    rate = args.num / (done - loaded)
    print(f"corpus load: {loaded - start:.1f} s")
    print(f"generate: {args.num} samples in {done - loaded:.1f} s with {args.workers or os.cpu_count()} workers "
          f"-> {rate:.1f} samples/s ({size / args.num / 1024:.0f} KiB per image)")


if __name__ == "__main__":
    main()
