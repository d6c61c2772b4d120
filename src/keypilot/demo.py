"""`make demo`: the main job end to end on the built-in defaults.

generate a data set -> train the tokenizer -> build the field's priors -> letterbox the screens
once into the shard cache -> train the tiny config on the CPU -> evaluate on the test split (with baselines) -> print a
handful of predictions beside their screens.
Each step is one call of a `keypilot` subcommand, so the demo shows exactly what a user runs.
Steps whose outputs already exist are skipped, so a second `make demo` resumes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from keypilot.run_folder import CHECKPOINT_DIR, PRIORS_DIR, TOKENIZER_FILE

DEMO_SAMPLES = 6000
DEMO_CONFIG = "tiny"  # the shipped configs/tiny.yaml
# 1600 steps of 32 = 51,200 samples, 3.6x the 14,400 (900 x 16) that the decoded-screenshot
# loader and the plain fp32 step fitted in about the same minutes. Batch 32: ~15% more
# samples/s than 16 on 2 cores. Validation (and a checkpoint) every 400 steps, the last at the end.
DEMO_STEPS = 1600
DEMO_BATCH = 32
DEMO_EVAL_EVERY = 400
# Wall-time budget on 2 cores, ~10 of the 12 minutes `make demo` may take (measured with 1200
# steps: 8.2 min): generate 2, tokenizer 0.1, priors 0.2, cache 0.3, train 7, evaluate 0.5.


def _step(title: str) -> float:
    print(f"\n=== {title} ===", flush=True)
    return time.perf_counter()


class DemoStepFailed(RuntimeError):
    """A step's command failed; it has printed why."""


def run_demo(run_dir: Path, keypilot: Callable[[list[str]], int]) -> int:
    """The demo into ``run_dir`` (its data set beside it as ``RUN-data``); ``keypilot`` runs one
    command line (``keypilot.cli.main``, passed in so this module does not import the CLI)."""
    data_dir = run_dir.parent / f"{run_dir.name}-data"

    def _run(argv: list[str]) -> None:
        print("$ keypilot " + " ".join(argv), flush=True)
        code = keypilot(argv)
        if code:
            command = " ".join(word for word in argv[:2] if not word.startswith("-"))
            raise DemoStepFailed(f"`keypilot {command}` failed (exit status {code}); fix what it said and run the demo again")

    started = time.perf_counter()

    t = _step(f"1/7 generate {DEMO_SAMPLES} phone screens and typing steps into {data_dir}")
    if not (data_dir / "test.jsonl").exists():
        _run(["data", "generate", "--out", str(data_dir), "--num", str(DEMO_SAMPLES), "--seed", "0"])
    print(f"({time.perf_counter() - t:.0f} s)")

    t = _step("2/7 train the multilingual byte-level BPE tokenizer")
    if not (data_dir / TOKENIZER_FILE).exists():
        _run(["tokenizer", "train", "--data", str(data_dir / "train.jsonl"), "--out", str(data_dir / TOKENIZER_FILE)])
    print(f"({time.perf_counter() - t:.0f} s)")

    t = _step(f"3/7 build the field's priors (lexicons, pinyin IME, emoji, n-grams) into {data_dir / PRIORS_DIR}")
    if not (data_dir / PRIORS_DIR).is_dir():
        _run(["priors", "build", "--data", str(data_dir)])
    print(f"({time.perf_counter() - t:.0f} s)")

    t = _step(f"4/7 letterbox the screens to {DEMO_CONFIG}'s size once (the shard cache in {data_dir / '.cache'})")
    _run(["data", "cache", "--data", str(data_dir), "--config", DEMO_CONFIG])
    print(f"({time.perf_counter() - t:.0f} s)")

    t = _step(f"5/7 train {DEMO_CONFIG} for {DEMO_STEPS} steps of {DEMO_BATCH} on the CPU -> {run_dir}")
    train = ["train", "--config", DEMO_CONFIG, "--data", str(data_dir), "--out", str(run_dir),
             "--max-steps", str(DEMO_STEPS), "--batch-size", str(DEMO_BATCH), "--eval-every", str(DEMO_EVAL_EVERY),
             "--save-every", str(DEMO_EVAL_EVERY)]
    if (run_dir / CHECKPOINT_DIR).exists():
        train.append("--resume")
    _run(train)
    print(f"({time.perf_counter() - t:.0f} s)")

    t = _step("6/7 evaluate on the test split, with baselines")
    eval_dir = run_dir / "eval"
    _run(["evaluate", "--run", str(run_dir), "--data", str(data_dir / "test.jsonl"), "--out", str(eval_dir),
          "--baselines"])
    print((eval_dir / "report.md").read_text(encoding="utf-8").split("\n## ", 2)[0])
    print(f"full report: {eval_dir / 'report.md'}  ({time.perf_counter() - t:.0f} s)")

    _step("7/7 a few predictions on test screens")
    show_predictions(run_dir, data_dir / "test.jsonl")
    print(f"\ndemo finished in {(time.perf_counter() - started) / 60:.1f} min; the trained run is in {run_dir}")
    return 0


def show_predictions(run_dir: Path, records_file: Path, count: int = 8) -> None:
    """Print what the keyboard would show for a few records, one per task and layout where possible."""
    from keypilot.data.format import read_records
    from keypilot.inference.predictor import Predictor

    predictor = Predictor.from_pretrained(run_dir)
    records = read_records(records_file)
    picked, seen = [], set()
    for record in records:  # a varied handful: first of each (task, layout) pair
        key = (record.task, record.layout)
        if key not in seen:
            seen.add(key)
            picked.append(record)
        if len(picked) == count:
            break
    for record in picked:
        result = predictor.predict(record.image, record.context, prev_layout=record.prev_layout,
                                   user_id=record.user_id).to_dict()
        print(f"\nscreen  {record.image.name}  ({record.id})")
        print(f"typed   {json.dumps(record.context, ensure_ascii=False)}   keyboard was {record.prev_layout}")
        print(f"truth   {record.task}: {json.dumps(record.target, ensure_ascii=False)}, next layout {record.layout}")
        print(f"model   {result['task']}: strip {json.dumps(result['shown'], ensure_ascii=False)}, "
              f"next layout {result['layout']} (raw {result['layout_raw']})")
