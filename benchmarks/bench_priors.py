"""Priors: build time, size, memory, keystroke speed and top-1/top-5 per task and language.

    python benchmarks/bench_priors.py --data DATA [--priors DIR] [--split test]

DATA is a data folder with ``train.jsonl`` and the split to score. The priors are built from
``train.jsonl`` into a temporary folder (or loaded from ``--priors``). Speed and memory are
measured in a fresh interpreter with one thread: the RSS increase of ``Priors.load`` and the
time of ``propose`` over the contexts of the split. Quality is scored with the language of the
target (oracle) and with the language a simple text rule picks (``rule_language``), side by
side with the repository's n-gram (completions) and SymSpell (English corrections) baselines
on the same records. Nothing is asserted; compare figures from one run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

_WORKER = r"""
import json, os, sys, time
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
import numpy
from keypilot.priors import Priors
before = rss_mb()
t0 = time.perf_counter()
priors = Priors.load(sys.argv[1])
load_s = time.perf_counter() - t0
after = rss_mb()
contexts = json.load(open(sys.argv[2]))
for c in contexts[:50]:
    priors.propose(c)
times = []
for c in contexts:
    t = time.perf_counter()
    priors.propose(c)
    times.append(time.perf_counter() - t)
times.sort()
pick = lambda q: times[min(len(times) - 1, int(q * len(times)))] * 1e3
print(json.dumps({"rss_before_mb": before, "rss_increase_mb": after - before, "load_s": load_s,
                  "p50_ms": pick(0.5), "p95_ms": pick(0.95), "p99_ms": pick(0.99), "max_ms": times[-1] * 1e3,
                  "mean_ms": sum(times) / len(times) * 1e3, "n": len(times),
                  "heavy_modules": sorted(m for m in ("torch", "jieba", "pypinyin", "wordfreq", "symspellpy", "emoji")
                                          if m in sys.modules)}))
"""


def measure_speed(priors_dir: Path, contexts: list[str]) -> dict:
    """Memory and keystroke time in a fresh single-threaded interpreter."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(contexts, f)
    env = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    import os

    proc = subprocess.run([sys.executable, "-c", _WORKER, str(priors_dir), f.name], capture_output=True, text=True,
                          env={**os.environ, **env}, check=True)
    Path(f.name).unlink()
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rule_language(context: str, task: str, pinyin_buffer: str) -> str:
    """The language a keyboard would guess from the text alone: an open pinyin buffer is
    Chinese; otherwise the class of the last character that is not a space (a correction is
    Chinese after a Chinese character, else English)."""
    from keypilot.priors.text import last_char_class

    cls = last_char_class(context.rstrip())
    if task == "error_correction":
        return "ZH" if cls == "cjk" else "EN"
    if pinyin_buffer:
        return "ZH"
    return {"cjk": "ZH", "digit": "NUM", "emoji": "EMOJI", "symbol": "SYM"}.get(cls, "EN")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--priors", type=Path, default=None, help="an already built priors folder")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()

    from keypilot.data.format import read_records
    from keypilot.evaluation.baselines import NgramBaseline, SymSpellBaseline
    from keypilot.priors import Priors, build_priors

    train = read_records(args.data / "train.jsonl")
    records = read_records(args.data / f"{args.split}.jsonl")
    tmp = tempfile.TemporaryDirectory()
    priors_dir = args.priors
    if priors_dir is None:
        priors_dir = Path(tmp.name) / "priors"
        summary = build_priors(train, priors_dir, progress=False)
        print(f"build: {summary['seconds']:.1f} s from {summary['records']} records ({summary['texts']} texts)")
    files = sorted(priors_dir.iterdir())
    print(f"files: {len(files)}, {sum(p.stat().st_size for p in files) / 2**20:.2f} MiB")

    speed = measure_speed(priors_dir, [r.context for r in records])
    print(f"memory: RSS +{speed['rss_increase_mb']:.1f} MiB for Priors.load ({speed['load_s'] * 1e3:.0f} ms); "
          f"modules beyond numpy/marisa at query time: {speed['heavy_modules'] or 'none'}")
    print(f"propose (1 thread, {speed['n']} contexts of {args.split}): p50 {speed['p50_ms']:.3f} ms, "
          f"p95 {speed['p95_ms']:.3f} ms, p99 {speed['p99_ms']:.3f} ms, max {speed['max_ms']:.2f} ms, "
          f"mean {speed['mean_ms']:.3f} ms")

    priors = Priors.load(priors_dir)
    ngram, symspell = NgramBaseline(), SymSpellBaseline()
    t0 = time.perf_counter()
    ngram.fit(train)
    symspell.fit(train)
    print(f"baselines fitted in {time.perf_counter() - t0:.1f} s")

    rows: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in records:
        if r.task == "suggestion":
            continue
        lang = r.lang or "EN"
        out = priors.propose(r.context)
        lists = out.corrections if r.task == "error_correction" else out.completions
        picked = rule_language(r.context, r.task, out.pinyin_buffer)
        oracle = [c.text for c in lists.get(lang, [])]
        ruled = [c.text for c in lists.get(picked, [])]
        base = symspell.correct(r.context) if r.task == "error_correction" else ngram.complete(r.context)
        row = rows[(r.task, lang)]
        row["n"] += 1
        row["top1"] += oracle[:1] == [r.target]
        row["top5"] += r.target in oracle[:5]
        row["rule5"] += r.target in ruled[:5]
        row["base5"] += r.target in base[:5]
        if r.task == "auto_completion" and lang == "ZH" and out.pinyin_buffer:
            ime = rows[("auto_completion", "ZH pinyin, in IME dict")]
            if priors.in_ime_dictionary(r.target):
                ime["n"] += 1
                ime["top1"] += oracle[:1] == [r.target]
                ime["top5"] += r.target in oracle[:5]
                ime["rule5"] += r.target in ruled[:5]
                ime["base5"] += r.target in base[:5]

    print(f"\nquality on {args.split} ({len(records)} records; suggestions left out)")
    print("| task | language | n | top-1 | top-5 | top-5, rule language | baseline top-5 |")
    print("|---|---|---|---|---|---|---|")
    for (task, lang), row in sorted(rows.items()):
        n = row["n"]
        baseline = "SymSpell" if task == "error_correction" else "n-gram"
        if task == "error_correction" and lang != "EN":
            baseline = "SymSpell (EN only)"
        print(f"| {task} | {lang} | {n} | {row['top1'] / n:.1%} | {row['top5'] / n:.1%} | {row['rule5'] / n:.1%} | "
              f"{baseline} {row['base5'] / n:.1%} |")
    tmp.cleanup()


if __name__ == "__main__":
    main()
