"""Train KeyPilot: ``python scripts/train.py --config tiny --data DATA --out RUN``.

The same as ``keypilot train`` (it runs that command); the loop body, ``train_epoch``, lives in
``keypilot.train.loop``.
"""

import sys

from keypilot.cli import main
from keypilot.train.loop import train_epoch  # noqa: F401  (train_epoch: the name the seed promises)

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
