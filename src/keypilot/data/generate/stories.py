"""From a message the user is writing to the keystroke states worth labelling.

A message is cut into tokens (words, jieba words, numbers, symbols, emoji clusters); each
token yields the moments a keyboard sees while it is typed: the next word after a space,
a half-typed word, a pinyin composing buffer, a misspelled word or a wrong homophone.
Every label follows data-format.md; ``layout`` is always the language class of the target.
"""

from __future__ import annotations

import random
import re

from keypilot.data.generate.corpus import Corpus, segment_zh
from keypilot.data.generate.fonts import break_units, split_runs
from keypilot.data.generate.scenes import Moment, User
from keypilot.data.generate.typos import homophone, misspell, pinyin_buffer
from keypilot.labels import lang_of

_LATIN_TOKEN = re.compile(r"[A-Za-z][A-Za-z']*|\d+(?:[.:,]\d+)*|[^\sA-Za-z\d]")


def token_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every token of ``text``; whitespace belongs to no token."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for script, run in split_runs(text):
        if script in ("latin", "symbol"):
            spans += [(pos + m.start(), pos + m.end()) for m in _LATIN_TOKEN.finditer(run)]
        elif script == "cjk":
            start = pos
            for word in segment_zh(run):
                spans.append((start, start + len(word)))
                start += len(word)
        else:
            start = pos
            for unit in break_units(run):
                spans.append((start, start + len(unit)))
                start += len(unit)
        pos += len(run)
    return spans


def typing_moments(text: str, rng: random.Random, corpus: Corpus, slip_rate: float = 0.15) -> list[Moment]:
    """Every labelled keystroke state met while typing ``text`` from an empty field, in order.

    With ``slip_rate`` an earlier word of the field keeps a typo the user never fixed (real
    fields are not clean); the labels concern the last word only, so they are unchanged.
    """
    out: list[Moment] = []
    spans = token_spans(text)
    slipped = _earlier_slip(text, spans, rng, corpus) if rng.random() < slip_rate else None
    for start, end in spans:
        tok, prefix = text[start:end], text[:start]
        if slipped and slipped[0] < start:
            prefix = slipped[1] + prefix[slipped[0]:]
        kind = lang_of(tok)
        if prefix.strip():
            out.append(Moment(prefix, "auto_completion", tok, kind, "type"))
        if kind == "EN" and len(tok) >= 3:
            out.append(Moment(prefix + tok[: rng.randint(1, len(tok) - 1)], "auto_completion", tok, "EN", "type"))
            typo = misspell(tok, rng, corpus)
            if typo != tok:
                out.append(Moment(prefix + typo, "error_correction", tok, "EN", "backspace"))
        elif kind == "ZH" and tok not in "，。？！、：":
            buffer = pinyin_buffer(tok, rng, corpus)
            out.append(Moment(prefix + buffer, "auto_completion", tok, "ZH", "type", _candidates(tok, buffer, rng, corpus)))
            wrong = homophone(tok, rng, corpus)
            if wrong:
                out.append(Moment(prefix + wrong, "error_correction", tok, "ZH", "backspace"))
        elif kind == "NUM" and len(tok) >= 2:
            out.append(Moment(prefix + tok[: rng.randint(1, len(tok) - 1)], "auto_completion", tok, "NUM", "type"))
    return out


def _earlier_slip(text: str, spans: list[tuple[int, int]], rng: random.Random, corpus: Corpus) -> tuple[int, str] | None:
    """(end, text up to ``end`` with one Latin word misspelled): a typo left behind."""
    words = [(a, b) for a, b in spans[:-1] if b - a >= 4 and text[a:b].isalpha() and lang_of(text[a:b]) == "EN"]
    if not words:
        return None
    a, b = rng.choice(words)
    typo = misspell(text[a:b], rng, corpus)
    return (b, text[:a] + typo) if typo != text[a:b] else None


def _candidates(word: str, buffer: str, rng: random.Random, corpus: Corpus) -> list[str]:
    """The IME candidate bar for a pinyin buffer: the intended word among its homophones and
    among words that share the first syllable, not always first (the model must pick)."""
    py = corpus.to_pinyin(word)
    others = [w for w in corpus.homophones.get(py, []) if w != word][:4]
    first = py[: max(1, len(buffer))]
    others += [w for w in corpus.zh_words[:3000] if corpus.pinyin.get(w, "").startswith(first) and w != word][:6]
    others = list(dict.fromkeys(others))[:7]
    others.insert(min(len(others), rng.choice((0, 0, 0, 1, 1, 2, 3))), word)
    return others


def decorate(text: str, user: User, rng: random.Random, corpus: Corpus, zh: bool) -> str:
    """Add the user's emoji habit (meaning-matched, favourite or common reactions) and punctuation."""
    if rng.random() < user.emoji_rate:
        pool = corpus.emoji_for(text, zh)[:3] or list(user.favourite_emoji)
        choice = rng.choice(pool if rng.random() < 0.6 else list(user.favourite_emoji))
        sep = "" if zh or rng.random() < 0.3 else " "
        text = text.rstrip("。.!！") + sep + choice * rng.choice((1, 1, 1, 2, 3))
    elif user.formal and text and text[-1].isalnum():
        text += "。" if zh else rng.choice((".", "!"))
    return text


def pick_moments(moments: list[Moment], n: int, rng: random.Random, task_weight: dict[str, float],
                 layout_weight: dict[str, float]) -> list[Moment]:
    """Choose ``n`` moments (weighted by task and layout, without replacement), kept in typing order."""
    idx = list(range(len(moments)))
    chosen: list[int] = []
    while idx and len(chosen) < n:
        weights = [task_weight[moments[i].task] * layout_weight[moments[i].layout] for i in idx]
        chosen.append(idx.pop(rng.choices(range(len(idx)), weights=weights)[0]))
    return [moments[i] for i in sorted(chosen)]


def short_phrase(text: str, max_tokens: int = 5) -> bool:
    """Whether ``text`` fits a suggestion (at most ``max_tokens`` tokens; a 6-digit code is one)."""
    return 0 < len(token_spans(text)) <= max_tokens
