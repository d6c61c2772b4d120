"""Training speed of the configs: ``python benchmarks/bench_train.py [--config C ...]``.

Prints forward + backward + optimizer-step samples/s at each config's batch size
(default: configs/tiny.yaml and configs/keypilot.yaml). Same as ``keypilot bench train``.
"""

import argparse
import sys
from pathlib import Path

from keypilot.train.bench import print_bench_train

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, action="append", default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    sys.exit(print_bench_train(args.config, batch_size=args.batch_size, steps=args.steps, device=args.device))
