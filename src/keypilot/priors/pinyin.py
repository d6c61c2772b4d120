"""Pinyin for the IME: cutting a typed buffer into syllables and finding the words it spells.

A buffer is read as a sequence of *pieces*, each the start of one syllable: ``ganxienin`` ->
``gan|xie|nin``, ``jintia`` -> ``jin|tia`` (the last syllable still being typed), ``zf`` ->
``z|f`` (initials only), ``buhys`` -> ``bu|h|y|s``. A word matches when it has as many
syllables as there are pieces and each piece starts the syllable under it. That one rule
covers full, partial and abbreviated pinyin and any mix of them.

The index is one marisa trie in label order with a key per (word, reading):
``initials SEP first-syllable SEP rank reading rest-syllables SEP word``. A cut of the
buffer becomes prefix searches (``initials SEP first-syllable SEP``); the rest of the pieces
are checked against the rest of the syllables. ``rank`` is the word's frequency rank (its
id), fixed width, so that a word's prior comes from an array without another lookup;
``reading`` (one digit) says whether a character is read its most common way (0) or not.
"""

from __future__ import annotations

from collections.abc import Iterator

from keypilot.priors.store import SEP

RANK_WIDTH = 6
MAX_PIECES = 12  # syllables of the longest buffer read
MAX_CUTS = 12  # cuts of one buffer that are tried


def index_key(initials: str, syllables: list[str], rank: int, word: str, reading: int = 0) -> str:
    """The key of ``word`` read as ``syllables``; ``reading``: 0 for the most common reading
    of a character, 1, 2 for rarer ones."""
    rest = "'".join(syllables[1:])
    return f"{initials}{SEP}{syllables[0]}{SEP}{rank:0{RANK_WIDTH}d}{reading}{rest}{SEP}{word}"


def parse_key(key: str, start: int) -> tuple[list[str], int, int, str]:
    """(syllables after the first, rank, reading, word) of an index key; ``start`` is where
    the rank begins (the length of the searched ``initials SEP first SEP``)."""
    tail, word = key[start:].split(SEP, 1)
    rest = tail[RANK_WIDTH + 1:]
    return rest.split("'") if rest else [], int(tail[:RANK_WIDTH]), int(tail[RANK_WIDTH]), word


class Syllables:
    """The toneless syllables (``ü`` written ``v``) and every prefix of them."""

    def __init__(self, syllables: list[str]) -> None:
        self.full = frozenset(syllables)
        self.prefixes = frozenset(s[:i] for s in syllables for i in range(1, len(s) + 1))
        self.longest = max(map(len, syllables))

    def is_buffer(self, text: str) -> bool:
        """Can ``text`` (lowercase letters and apostrophes) be cut into syllable pieces?"""
        return bool(text) and next(self.cuts(text, limit=1), None) is not None

    def cuts(self, buffer: str, limit: int = MAX_CUTS) -> Iterator[list[str]]:
        """Ways to cut ``buffer`` into pieces, fewest pieces first (at most one more than the
        fewest), longest first piece first; an apostrophe forces a cut."""
        chunks = [c for c in buffer.replace("lue", "lve").replace("nue", "nve").split("'") if c]
        if not chunks:
            return
        per_chunk: list[list[list[str]]] = []
        for chunk in chunks:
            options = self._chunk_cuts(chunk)
            if not options:
                return
            per_chunk.append(options)
        count = 0
        for combo in _product(per_chunk):
            pieces = [p for part in combo for p in part]
            if len(pieces) <= MAX_PIECES:
                yield pieces
                count += 1
                if count >= limit:
                    return

    def _chunk_cuts(self, chunk: str) -> list[list[str]]:
        n = len(chunk)
        # fewest[i]: the fewest pieces that cut chunk[i:] (99: it cannot be cut).
        fewest = [0] * (n + 1)
        for i in range(n - 1, -1, -1):
            fewest[i] = min((1 + fewest[j] for j in range(i + 1, min(n, i + self.longest) + 1)
                             if chunk[i:j] in self.prefixes and fewest[j] < 99), default=99)
        if fewest[0] >= 99:
            return []
        bound = fewest[0] + 1
        out: list[list[str]] = []

        def walk(i: int, pieces: list[str]) -> None:
            if len(out) >= MAX_CUTS:
                return
            if i == n:
                out.append(list(pieces))
                return
            for j in range(min(n, i + self.longest), i, -1):
                piece = chunk[i:j]
                if piece in self.prefixes and len(pieces) + 1 + fewest[j] <= bound:
                    pieces.append(piece)
                    walk(j, pieces)
                    pieces.pop()

        walk(0, [])
        out.sort(key=len)
        return out


def _product(options: list[list[list[str]]]) -> Iterator[tuple[list[str], ...]]:
    if not options:
        yield ()
        return
    for first in options[0]:
        for rest in _product(options[1:]):
            yield (first, *rest)


def near_syllables(syllable: str, valid: frozenset[str]) -> list[str]:
    """Syllables a typist may have meant when writing ``syllable`` (fuzzy pinyin: z/zh, c/ch,
    s/sh, l/n and -n/-ng)."""
    out = []
    for retroflex, flat in (("zh", "z"), ("ch", "c"), ("sh", "s")):
        if syllable.startswith(retroflex):
            out.append(flat + syllable[2:])
        elif syllable.startswith(flat):
            out.append(retroflex + syllable[1:])
    if syllable[:1] in ("l", "n"):
        out.append(("n" if syllable[0] == "l" else "l") + syllable[1:])
    for final in ("an", "en", "in"):
        if syllable.endswith(final + "g"):
            out.append(syllable[:-1])
        elif syllable.endswith(final):
            out.append(syllable + "g")
    return [s for s in out if s in valid]
