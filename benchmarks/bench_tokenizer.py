"""Tokenizer training time and coverage: ``python benchmarks/bench_tokenizer.py [--data DIR]``.

Without ``--data`` it writes a stand-in data set of ``--num`` records (real English chat
messages from chitchat-dataset, Chinese phrases from wordfreq's vocabulary, emoji, one-time
codes and phone numbers) to a temporary folder, so the figures do not depend on the generator.
Prints the training time, the single-token coverage of the seeds, the token counts of number
targets against the 5-token suggestion budget, and encoding speed.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from keypilot.tokenizer import KeyPilotTokenizer, coverage, train_tokenizer


def write_standin_dataset(folder: Path, num: int, seed: int = 0) -> Path:
    """``num`` text-only records (the tokenizer never opens images) in ``folder/train.jsonl``."""
    import chitchat_dataset
    import emoji
    from wordfreq import top_n_list

    rng = random.Random(seed)
    english = [m["text"] for convo in chitchat_dataset.Dataset().values() for turn in convo["messages"] for m in turn]
    chinese = [w for w in top_n_list("zh", 20000) if all("\u4e00" <= c <= "\u9fff" for c in w)]
    emojis = sorted(emoji.EMOJI_DATA)
    lines = []
    for i in range(num):
        kind = rng.random()
        if kind < 0.55:
            words = rng.choice(english).split()
            cut = rng.randrange(len(words)) if words else 0
            context, target, layout = " ".join(words[:cut]) + (" " if cut else ""), (words[cut:] or ["ok"])[0], "EN"
        elif kind < 0.85:
            phrase = [rng.choice(chinese) for _ in range(rng.randint(2, 8))]
            context, target, layout = "".join(phrase[:-1]) + rng.choice(["", "，"]), phrase[-1], "ZH"
        elif kind < 0.93:
            context, target, layout = rng.choice(english)[:40] + " ", rng.choice(emojis), "EMOJI"
        else:
            code = "".join(rng.choice("0123456789") for _ in range(rng.choice([4, 6, 11])))
            context, target, layout = "", code, "NUM"
        lines.append({"id": f"s{i}", "image": "none.png", "context": context, "task": "auto_completion",
                      "target": target, "layout": layout})
    path = folder / "train.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in lines) + "\n", encoding="utf-8")
    return path


def report_numbers(tok: KeyPilotTokenizer) -> None:
    rng = random.Random(1)
    for name, width in [("4-digit code", 4), ("6-digit code", 6), ("8-digit number", 8), ("11-digit phone", 11)]:
        counts = [len(tok.encode_target("".join(rng.choice("0123456789") for _ in range(width)))) for _ in range(2000)]
        print(f"  {name:15s} encode_target tokens: max {max(counts)}, mean {sum(counts) / len(counts):.2f}")
    for text in ["482913", "¥1,299.00", "$25.99", "138-1234-5678", "Sounds good!", "我们明天见", "👨‍👩‍👧‍👦", "🇨🇳"]:
        print(f"  {text!r:20s} -> {len(tok.encode_target(text))} tokens")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="a data set (default: a stand-in set)")
    parser.add_argument("--num", type=int, default=10_000, help="records in the stand-in set")
    parser.add_argument("--vocab-size", type=int, default=32_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or write_standin_dataset(Path(tmp), args.num)
        print(f"training on {data}")
        start = time.perf_counter()
        tok = train_tokenizer(data, Path(tmp) / "tokenizer.json", vocab_size=args.vocab_size)
        print(f"train_tokenizer total (incl. reading, saving, coverage): {time.perf_counter() - start:.1f} s")

    print("coverage (single tokens):")
    for name, (single, total) in coverage(tok).items():
        print(f"  {name:22s} {single}/{total} ({100 * single / total:.1f}%)")
    print("numbers and the 5-token suggestion budget:")
    report_numbers(tok)
    texts = ["See you tomorrow at the station, ok? 😂", "我们明天见，路上小心jian"] * 5000
    start = time.perf_counter()
    tok.encode_batch(texts)
    per_text = (time.perf_counter() - start) / len(texts) * 1e6
    start = time.perf_counter()
    for text in texts[:2000]:
        tok.encode(text)
    single = (time.perf_counter() - start) / 2000 * 1e6
    print(f"encode: {single:.0f} us per text one at a time, {per_text:.1f} us per text in a batch")


if __name__ == "__main__":
    main()
