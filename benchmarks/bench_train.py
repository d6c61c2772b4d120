"""Training speed of the configs: ``python benchmarks/bench_train.py [--config C ...] [--data DATA] [--compare]``.

Samples/s and where a step's time goes (data wait, forward, backward, optimizer), for each
config at its batch size (default: configs/tiny.yaml and configs/keypilot.yaml, synthetic
batch). The same command and flags as ``keypilot bench train``; docs/training.md ("Speed").
"""

import sys

from keypilot.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "train", *sys.argv[1:]]))
