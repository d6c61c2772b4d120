"""Forward latency of KeyPilotModel at batch 1 on one CPU thread (a benchmark, not a test).

Prints p50/p95 in ms for the full forward, ``encode_screen`` alone (backbone on the screen
and on the four ROI crops, SAM-Lite), ``encode_keystroke`` alone (text, fusion, routers,
first-token decoder: the per-keystroke cost on a cached screen), the backbone on the
screen only, and a 5-token suggestion beam search (width 4).

    python benchmarks/bench_model.py [--config configs/keypilot.yaml] [--runs 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from keypilot.config import load_config
from keypilot.models.keypilot_model import KeyPilotModel

ROOT = Path(__file__).resolve().parents[1]


def measure(fn: Callable[[], object], runs: int, warmup: int = 3) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "keypilot.yaml")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = load_config(args.config)
    mc = config["model"]
    model = KeyPilotModel.from_config(config).eval()
    image = torch.rand(1, 3, mc["image_height"], mc["image_width"])
    input_ids = torch.randint(6, mc["vocab_size"], (1, mc["max_context_tokens"]))
    attention_mask = torch.ones_like(input_ids)
    prev_layout = torch.zeros(1, dtype=torch.long)

    with torch.inference_mode():
        screen = model.encode_screen(image)
        outputs = model.encode_keystroke(screen, input_ids, attention_mask, prev_layout=prev_layout)
        cases = {
            "full forward": lambda: model(image, input_ids, attention_mask, prev_layout=prev_layout),
            "encode_screen": lambda: model.encode_screen(image),
            "  backbone on the screen": lambda: model.encoder.backbone(image),
            "encode_keystroke (cached screen)": lambda: model.encode_keystroke(screen, input_ids, attention_mask, prev_layout=prev_layout),
            "suggestion beam (width 4, 5 tokens)": lambda: model.generate(outputs, eos_id=-1, beam_width=4),
        }
        print(f"KeyPilot forward latency, batch 1, {args.threads} thread(s), {mc['image_height']}x{mc['image_width']}, config {args.config}")
        for name, fn in cases.items():
            p50, p95 = measure(fn, args.runs)
            print(f"{name:<38} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")


if __name__ == "__main__":
    main()
