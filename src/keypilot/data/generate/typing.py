"""Whole typing sessions for judging layout stability: every labelled keystroke state of each
message in typing order (not the few picked per session of a training set), so the switches a
keyboard shows can be compared with the few a message needs, as in real typing logs.

    python -m keypilot.data.generate.typing --out DIR --num 1500 [--seed 1] [--renderer mixed]
    keypilot evaluate --run RUN --data DIR --out EVAL   # "Layout switches per session"

Same record format, same scenarios and renderers as ``keypilot data generate``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from keypilot.data.generate.writer import RENDERERS, generate_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--num", type=int, required=True, help="records (the last session may be cut)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--renderer", choices=RENDERERS, default="mixed")
    args = parser.parse_args()
    counts = generate_dataset(args.out, args.num, seed=args.seed, workers=args.workers, renderer=args.renderer,
                              whole_sessions=True)
    print(f"wrote {sum(counts.values())} records of whole typing sessions to {args.out}")


if __name__ == "__main__":
    main()
