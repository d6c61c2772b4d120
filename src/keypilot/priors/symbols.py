"""Punctuation and numbers.

Symbols: every punctuation mark or symbol in the training texts is an event, remembered
under three descriptions of the text before it, from specific to general:

1. the last token and whether a space follows it (``latin:there``, ``cjk:吗``, ``digit``),
2. the sentence so far: its first word when Latin (``is``, ``what``: questions), or its script,
3. the class of the last character, a trailing space, the script of the message and whether
   it is one token so far (a user name before ``@``).

``P(s | text)`` interpolates the three (Witten-Bell) over the training unigram of symbols
over a fixed inventory, so that the list is never empty.

What comes next: the class of the next character typed (Latin letter, Chinese character,
digit, emoji, symbol), under the same three histories, so the layout router knows when a
question mark, an emoji or a number is due.

Numbers: strings on the screen that extend the typed digits (source ``screen``; the screen
reader of issue #11 supplies them), numbers of the training texts with the typed prefix, and
the cents of a typed amount (``37.5`` -> ``37.50``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from keypilot.priors import store
from keypilot.priors.keystroke import PriorCandidate
from keypilot.priors.store import FollowerTable
from keypilot.priors.text import char_class, first_word_of_sentence, is_cjk_letter, last_char_class, tokens

# Symbols a keyboard's symbol page offers, in a default order (the prior under the data).
INVENTORY = tuple(".,!?'\"@#-:;()&%$*/_+=~，。？！、：；“”（）…·")
_INVENTORY_PRIOR = {s: 0.5 ** (i / 4) / sum(0.5 ** (j / 4) for j in range(len(INVENTORY)))
                    for i, s in enumerate(INVENTORY)}
_NUMBER_TAIL = re.compile(r"\d[\d.,:\-/]*$")
_NUMBER = re.compile(r"\d[\d.,:\-/]*\d|\d")


def describe(text: str) -> tuple[str, str, str]:
    """The three histories of a symbol typed after ``text`` (most specific first)."""
    cls = last_char_class(text)
    stripped = text.rstrip()
    space = "_" if len(stripped) < len(text) else ""
    toks = tokens(stripped[-40:])
    last = toks[-1] if toks else ""
    if last[:1].isdigit():
        last = "0"  # any number
    last = last[:16]
    script = "zh" if any(is_cjk_letter(c) for c in text[-64:]) else "en"
    first = first_word_of_sentence(stripped)
    shape = "one" if stripped and not any(c.isspace() for c in stripped[-40:]) else "many"  # one token: a handle?
    return (f"t:{last}{space}", f"s:{first or script}:{last_char_class(stripped)}", f"c:{cls}{space}:{script}:{shape}")


class SymbolPriors:
    """Query side. Files: ``sym_ngram.*`` (symbol counts under each history; ``""`` = unigram)."""

    def __init__(self, directory: Path) -> None:
        self.table = FollowerTable.load(Path(directory) / "sym_ngram")
        # The training unigram over the inventory does not depend on the text: done once.
        self.base = dict(store.witten_bell(self.table, [""], _INVENTORY_PRIOR, 1 << 30))

    def complete(self, context: str, k: int) -> list[PriorCandidate]:
        ranked = store.witten_bell(self.table, list(reversed(describe(context))), self.base, k)
        return [PriorCandidate(s, math.log(p), "symbol") for s, p in ranked if p > 0]


# Classes of the next character that ``NextClass`` predicts (spaces skipped).
NEXT_CLASSES = ("latin", "cjk", "digit", "emoji", "symbol")
# Characters of a text whose next-class events are counted (the end of a long text adds little).
MAX_EVENTS_PER_TEXT = 200


class NextClass:
    """Query side. Files: ``next_class.*`` (next-character classes under each history)."""

    def __init__(self, directory: Path) -> None:
        self.table = FollowerTable.load(Path(directory) / "next_class")
        self.base = dict(store.witten_bell(self.table, [""], dict.fromkeys(NEXT_CLASSES, 1 / len(NEXT_CLASSES)), 8))

    def probs(self, context: str) -> dict[str, float]:
        """``P(class of the next character typed | text)`` for each of ``NEXT_CLASSES``."""
        ranked = dict(store.witten_bell(self.table, list(reversed(describe(context))), self.base, len(NEXT_CLASSES)))
        return {c: ranked.get(c, 0.0) for c in NEXT_CLASSES}


def build_next_class(texts: list[str], out: Path) -> dict:
    counts: dict[str, Counter] = {"": Counter()}
    events = 0
    for text in texts:
        following = ""  # class of the next non-space character after position i
        classes = []
        for ch in reversed(text[:MAX_EVENTS_PER_TEXT]):
            cls = char_class(ch)
            following = following if cls == "space" else cls
            classes.append(following)
        classes.reverse()
        for i, cls in enumerate(classes):
            if cls not in NEXT_CLASSES:
                continue
            events += 1
            counts[""][cls] += 1
            for key in describe(text[:i]):
                counts.setdefault(key, Counter())[cls] += 1
    FollowerTable.build(counts, out / "next_class", max_followers=len(NEXT_CLASSES))
    return {"next_class_events": events, "next_class_histories": len(counts)}


def build_symbols(texts: list[str], out: Path) -> dict:
    counts: dict[str, Counter] = {"": Counter()}
    events = 0
    for text in texts:
        for i, ch in enumerate(text):
            if char_class(ch) != "symbol":
                continue
            events += 1
            counts[""][ch] += 1
            for key in describe(text[:i]):
                counts.setdefault(key, Counter())[ch] += 1
    FollowerTable.build(counts, out / "sym_ngram", max_followers=32)
    return {"sym_events": events, "sym_histories": len(counts)}


class NumberPriors:
    """Query side. Files: ``num_ngram.*`` (numbers of the training texts under ``""``)."""

    def __init__(self, directory: Path) -> None:
        self.table = FollowerTable.load(Path(directory) / "num_ngram")

    def complete(self, context: str, k: int, screen: Mapping[str, float] | None = None) -> list[PriorCandidate]:
        """``screen``: the screen's numbers and their weights (``priors.screen.read_screen``).

        The training texts' numbers with the typed prefix share a mass of 1, the cents of a
        typed amount 0.5; a number on the screen brings its own weight (about 1 for a plain
        number, up to 20 for a code beside "code"), so what the screen shows comes first.
        """
        match = _NUMBER_TAIL.search(context[-32:])
        typed = match.group() if match else ""
        weights: dict[tuple[str, str], float] = {}
        for number, weight in (screen or {}).items():
            if number.startswith(typed) and number != typed:
                weights[(number, "screen")] = weights.get((number, "screen"), 0.0) + weight
        if typed:
            seen = [(number, n) for number, n in self.table.followers("", typed, limit=64) if number != typed]
            total = sum(n for _, n in seen)
            for number, n in seen:
                weights[(number, "number")] = weights.get((number, "number"), 0.0) + n / total
            whole, dot, cents = typed.partition(".")
            if dot and len(cents) < 2 and whole.isdigit() and (not cents or cents.isdigit()):
                padded = typed + "0" * (2 - len(cents))
                weights[(padded, "number")] = weights.get((padded, "number"), 0.0) + 0.5
        return ranked_list(weights, k)


def ranked_list(weights: Mapping[tuple[str, str], float], k: int) -> list[PriorCandidate]:
    """``(text, source) -> weight`` as a prior list: best first, one entry per text, ``logp``
    normalised over all the weights."""
    total = sum(weights.values())
    if total <= 0:
        return []
    out, seen = [], set()
    for (text, source), w in sorted(weights.items(), key=lambda kv: (-kv[1], kv[0])):
        if text not in seen and w > 0:
            seen.add(text)
            out.append(PriorCandidate(text, math.log(w / total), source))
    return out[:k]


def build_numbers(texts: list[str], out: Path) -> dict:
    numbers: Counter[str] = Counter()
    for text in texts:
        numbers.update(_NUMBER.findall(text))
    FollowerTable.build({"": numbers}, out / "num_ngram", max_followers=20000)
    return {"num_numbers": len(numbers)}
