"""``build_priors``: the priors' folder from a training split and the installed libraries.

Build-time only (imports wordfreq, jieba, pypinyin and emoji); the query side never imports
this module. The folder is written into a temporary sibling and renamed into place, so a
reader sees the old priors or the new ones, never half of them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from keypilot.labels import lang_of
from keypilot.priors import store
from keypilot.priors.text import clean, trailing_cjk, trailing_latin, trailing_pinyin


def record_text(context: str, task: str, target: str) -> str:
    """The text the user ends up with after accepting ``target``: the context with the typo or
    the word being typed replaced, or with the next word appended."""
    context = clean(context)
    target = clean(target)
    if task == "suggestion":
        return target
    if task == "error_correction":
        if lang_of(target) == "ZH":
            span = trailing_cjk(context.rstrip())
            cut = min(len(span), len(target))
            return context.rstrip()[: len(context.rstrip()) - cut] + target
        head, word = trailing_latin(context)
        return (head if word else context) + target
    head, word = trailing_latin(context)
    if word and target.lower().startswith(word.lower()):
        return head + target
    head, buffer = trailing_pinyin(context)
    if buffer and lang_of(target) == "ZH":
        return head + target
    return context + target


def training_texts(records: Iterable[Any]) -> list[str]:
    """One text per typed message: each record's final text, without duplicates and without
    texts that are the beginning of another (the steps of one session share a message)."""
    texts = sorted({record_text(r.context, r.task, r.target) for r in records} - {""})
    return [t for i, t in enumerate(texts) if i + 1 == len(texts) or not texts[i + 1].startswith(t)]


def reply_pairs(records: Iterable[Any]) -> list[tuple[str, str]]:
    """(last incoming message on the screen, suggestion) of every suggestion record whose
    screen text shows a message being answered."""
    from PIL import Image

    from keypilot.priors.screen import read_screen

    pairs = []
    for r in records:
        lines = getattr(r, "screen_text", None)
        if r.task != "suggestion" or r.context.strip() or not lines:
            continue
        with Image.open(r.image) as im:
            size = im.size
        message = read_screen(lines, size).reply_to
        if message:
            pairs.append((message, r.target))
    return pairs


def build_priors(records: Iterable[Any], out_dir: str | os.PathLike, *, progress: bool = True,
                 en_words: int = 50_000, zh_words: int = 200_000) -> dict:
    """Build the priors from training ``records`` (objects with ``context``, ``task``,
    ``target``) into ``out_dir`` (replaced atomically). ``en_words`` / ``zh_words``: size of
    the general part of each lexicon (the training split's words are always added). Returns a
    summary: counts, bytes written and seconds."""
    from keypilot.priors.chinese_build import build_chinese
    from keypilot.priors.emojis import build_emoji
    from keypilot.priors.english import build_english
    from keypilot.priors.replies import build_replies
    from keypilot.priors.symbols import build_next_class, build_numbers, build_symbols

    start = time.perf_counter()
    out_dir = Path(out_dir)
    records = list(records)
    texts = training_texts(records)
    targets = Counter(clean(r.target) for r in records if r.task != "suggestion" and lang_of(r.target) == "ZH")
    steps = [
        ("english", lambda tmp: build_english(texts, tmp, lexicon_size=en_words)),
        ("chinese", lambda tmp: build_chinese(texts, tmp, targets=targets, max_words=zh_words)),
        ("symbols", lambda tmp: build_symbols(texts, tmp)),
        ("next class", lambda tmp: build_next_class(texts, tmp)),
        ("emoji", lambda tmp: build_emoji(texts, tmp)),
        ("numbers", lambda tmp: build_numbers(texts, tmp)),
        ("replies", lambda tmp: build_replies(reply_pairs(records), tmp)),
    ]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    summary: dict[str, Any] = {"records": len(records), "texts": len(texts)}
    try:
        for name, step in steps:
            t0 = time.perf_counter()
            summary.update(step(tmp))
            if progress:
                print(f"priors: {name} built in {time.perf_counter() - t0:.1f} s", flush=True)
        store.save_json({"format_version": store.FORMAT_VERSION, "records": len(records), "texts": len(texts),
                         "en_words": en_words, "zh_words": zh_words}, tmp / "manifest.json")
        summary["files"] = sum(1 for _ in tmp.iterdir())
        summary["bytes"] = sum(p.stat().st_size for p in tmp.iterdir())
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary["seconds"] = round(time.perf_counter() - start, 2)
    return summary


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Move the finished ``tmp`` folder to ``out_dir``, replacing an older one."""
    os.chmod(tmp, 0o755)
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
        os.replace(out_dir, old / "priors")
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)
