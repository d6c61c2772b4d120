"""How people mistype: real misspellings, slips to a neighbouring key, and Chinese
homophones and near-homophones picked from the pinyin candidate list.

Near-homophones follow the confusions a pinyin keyboard's "fuzzy pinyin" setting exists for:
z/zh, c/ch, s/sh, n/l, h/f and the -n/-ng finals (an/ang, en/eng, in/ing).
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
        typo = typo.capitalize() if word[:1].isupper() else typo
    else:
        typo = keyboard_typo(word, rng)
        # A slip that makes another common word is a wrong-word error the model can't see: avoid it.
        if typo.lower() in corpus.en_common:
            return word
    # A "typo" that is a prefix of the word (a dropped last letter) is a word still being typed.
    return word if word.lower().startswith(typo.lower()) else typo


def fuzzy_key(pinyin: str) -> str:
    """Toneless pinyin with the fuzzy-pinyin pairs merged (zh=z, ch=c, sh=s, l=n, f=h, -ng=-n)."""
    return pinyin.replace("zh", "z").replace("ch", "c").replace("sh", "s").replace("ng", "n").replace("l", "n").replace("f", "h")


_NEAR: dict[int, dict[str, list[str]]] = {}  # id(corpus) -> fuzzy key -> words, built on first use


def _near_homophones(corpus: Corpus) -> dict[str, list[str]]:
    table = _NEAR.get(id(corpus))
    if table is None:
        table = {}
        for word, py in corpus.pinyin.items():
            table.setdefault(fuzzy_key(py), []).append(word)
        _NEAR.clear()
        _NEAR[id(corpus)] = table
    return table


def homophone(word: str, rng: random.Random, corpus: Corpus, near_rate: float = 0.3) -> str | None:
    """A different common word with the same toneless pinyin (the wrong IME candidate), or
    with ``near_rate`` one that only sounds alike (zh/z, l/n, -ng/-n: a fuzzy-pinyin slip)."""
    py = corpus.to_pinyin(word)
    exact = [w for w in corpus.homophones.get(py, []) if w != word and len(w) == len(word)]
    if rng.random() < near_rate or not exact:
        near = [w for w in _near_homophones(corpus).get(fuzzy_key(py), [])
                if len(w) == len(word) and corpus.pinyin.get(w) != py]
        if near:
            return rng.choice(near[:6])
    return rng.choice(exact[:6]) if exact else None


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
