"""Train KeyPilot: ``python scripts/train.py --config configs/tiny.yaml --data DATA --out RUN``.

The same as ``keypilot train``; the loop body, ``train_epoch``, lives in ``keypilot.train.loop``.
"""

import sys

from keypilot.train.loop import main, train_epoch  # noqa: F401  (train_epoch: the name the seed promises)

if __name__ == "__main__":
    sys.exit(main())
