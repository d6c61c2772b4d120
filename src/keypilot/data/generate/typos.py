"""How people mistype: real misspellings, slips to a neighbouring key, and Chinese
homophones picked from the pinyin candidate list.
"""

from __future__ import annotations

import random

from pypinyin import Style, lazy_pinyin

from keypilot.data.generate.corpus import Corpus

QWERTY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _neighbours() -> dict[str, str]:
    pos = {ch: (r, c + 0.5 * r) for r, row in enumerate(QWERTY_ROWS) for c, ch in enumerate(row)}
    out: dict[str, str] = {}
    for ch, (r, c) in pos.items():
        out[ch] = "".join(o for o, (r2, c2) in pos.items() if o != ch and abs(r - r2) <= 1 and abs(c - c2) <= 1.0)
    return out


NEIGHBOURS = _neighbours()


def keyboard_typo(word: str, rng: random.Random) -> str:
    """One slip on a touch keyboard: a neighbouring key, a dropped, doubled or swapped letter."""
    letters = [i for i, ch in enumerate(word) if ch.lower() in NEIGHBOURS]
    if len(word) < 2 or not letters:
        return word
    for _ in range(8):
        i = rng.choice(letters)
        op = rng.choices(("neighbour", "drop", "double", "swap"), weights=(5, 2, 2, 2))[0]
        if op == "neighbour":
            sub = rng.choice(NEIGHBOURS[word[i].lower()])
            typo = word[:i] + (sub.upper() if word[i].isupper() else sub) + word[i + 1 :]
        elif op == "drop" and len(word) > 2:
            typo = word[:i] + word[i + 1 :]
        elif op == "double":
            typo = word[: i + 1] + word[i] + word[i + 1 :]
        elif i + 1 < len(word):
            typo = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        else:
            continue
        if typo != word:
            return typo
    return word


def misspell(word: str, rng: random.Random, corpus: Corpus, real_rate: float = 0.6) -> str:
    """A misspelling of ``word``: a real one from codespell when known, else a key slip.

    Returns ``word`` unchanged when no plausible typo exists (callers skip those).
    """
    lower = word.lower()
    real = corpus.misspellings.get(lower)
    if real and rng.random() < real_rate:
        typo = rng.choice(real)
        return typo.capitalize() if word[:1].isupper() else typo
    typo = keyboard_typo(word, rng)
    # A slip that makes another common word is a wrong-word error the model can't see: avoid it.
    return word if typo.lower() in corpus.en_common else typo


def homophone(word: str, rng: random.Random, corpus: Corpus) -> str | None:
    """A different common word with the same toneless pinyin (the wrong IME candidate)."""
    options = [w for w in corpus.homophones.get(corpus.to_pinyin(word), []) if w != word and len(w) == len(word)]
    return rng.choice(options[:6]) if options else None


def pinyin_buffer(word: str, rng: random.Random, corpus: Corpus) -> str:
    """What sits in the composing buffer while typing ``word``: full, partial or initials."""
    syllables = lazy_pinyin(word)
    r = rng.random()
    if r < 0.55 or len(syllables) == 1:
        full = "".join(syllables)
        return full if r < 0.4 or len(full) < 3 else full[: rng.randint(max(1, len(syllables[0]) - 1), len(full) - 1)]
    if r < 0.8:
        return syllables[0] + "".join(s[0] for s in syllables[1:])
    return "".join(lazy_pinyin(word, style=Style.FIRST_LETTER))
