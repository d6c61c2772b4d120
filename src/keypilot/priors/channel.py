"""The typing channel: how far a typed word is from the word meant, on a QWERTY touch keyboard.

A weighted Damerau-Levenshtein cost (optimal string alignment). Errors that fingers make on
glass cost less than arbitrary edits:

- substituting a key for one that touches it (``yet`` -> ``yst``)            0.55
- substituting one vowel for another (spelling, ``definately``)              0.8
- any other substitution                                                      1.0
- swapping two neighbouring letters (``teh``)                                 0.6
- a doubled letter typed once or a letter typed twice (``tton``, ``beter``)   0.45
- an extra letter next to a key it touches (``funhy`` has no such, ``thev``) 0.75
- an apostrophe left out or added (``dont``)                                  0.3
- any other insertion or deletion                                             1.0

``log P(typed | word) = -CHANNEL_SCALE * cost``. The common prefix and suffix are cut off
before the dynamic programme (the alignment of the rest is the same), so most pairs cost a
table of 1-3 cells.
"""

from __future__ import annotations

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_ROW_OFFSET = (0.0, 0.25, 0.75)  # stagger of a phone keyboard's rows, in key widths
VOWELS = frozenset("aeiouy")

SUB_NEIGHBOUR = 0.55
SUB_VOWEL = 0.8
SUB_OTHER = 1.0
TRANSPOSE = 0.6
DOUBLE = 0.45
INSERT_NEIGHBOUR = 0.75
APOSTROPHE = 0.3
INDEL = 1.0
# Nats of log-probability per unit of cost.
CHANNEL_SCALE = 4.0


def _neighbours() -> dict[str, frozenset[str]]:
    pos = {ch: (c + _ROW_OFFSET[r], float(r)) for r, row in enumerate(_ROWS) for c, ch in enumerate(row)}
    return {a: frozenset(b for b, (bx, by) in pos.items() if b != a and abs(ax - bx) <= 1.25 and abs(ay - by) <= 1)
            for a, (ax, ay) in pos.items()}


NEIGHBOURS = _neighbours()


def _substitution_table() -> dict[str, float]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    table = {}
    for a in letters:
        for b in letters:
            if a != b:
                table[a + b] = (SUB_NEIGHBOUR if b in NEIGHBOURS[a] else
                                SUB_VOWEL if a in VOWELS and b in VOWELS else SUB_OTHER)
    return table


SUBSTITUTION = _substitution_table()  # "ab": cost of typing b for a; absent pairs cost SUB_OTHER


def insert_costs(typed: str) -> list[float]:
    """Cost of each ``typed[k]`` being an extra key press."""
    costs = []
    for k, ch in enumerate(typed):
        prev = typed[k - 1] if k > 0 else ""
        nxt = typed[k + 1] if k + 1 < len(typed) else ""
        if ch in "'’":
            costs.append(APOSTROPHE)
        elif ch == prev or ch == nxt:
            costs.append(DOUBLE)
        elif prev in NEIGHBOURS.get(ch, ()) or nxt in NEIGHBOURS.get(ch, ()):
            costs.append(INSERT_NEIGHBOUR)
        else:
            costs.append(INDEL)
    return costs


def _delete(word: str, j: int) -> float:
    """Cost of ``word[j]`` being left out."""
    ch = word[j]
    if ch in "'’":
        return APOSTROPHE
    if (j > 0 and word[j - 1] == ch) or (j + 1 < len(word) and word[j + 1] == ch):
        return DOUBLE
    return INDEL


def edit_cost(typed: str, word: str, limit: float = 3.0, inserts: list[float] | None = None) -> float:
    """Weighted OSA distance from ``word`` (meant) to ``typed`` (both lowercase); any value
    above ``limit`` may be returned as ``limit + 1`` (early exit). ``inserts`` is
    ``insert_costs(typed)`` when the caller scores many words against one typed word."""
    if typed == word:
        return 0.0
    n, m = len(typed), len(word)
    p = 0
    while p < n and p < m and typed[p] == word[p]:
        p += 1
    s = 0
    while s < n - p and s < m - p and typed[n - 1 - s] == word[m - 1 - s]:
        s += 1
    a_end, b_end = n - s, m - s
    if abs(a_end - b_end) * APOSTROPHE > limit:
        return limit + 1.0
    if inserts is None:
        inserts = insert_costs(typed)
    sub = SUBSTITUTION
    dels = [_delete(word, j) for j in range(p, b_end)]
    # d[i][j]: cost of typed[p:p+i] from word[p:p+j].
    cols = b_end - p + 1
    prev2: list[float] = []
    prev = [0.0] * cols
    for j in range(1, cols):
        prev[j] = prev[j - 1] + dels[j - 1]
    for i in range(1, a_end - p + 1):
        ti = p + i - 1
        tc = typed[ti]
        ins = inserts[ti]
        cur = [prev[0] + ins] + [0.0] * (cols - 1)
        best = cur[0]
        for j in range(1, cols):
            wc = word[p + j - 1]
            cost = prev[j - 1] if tc == wc else prev[j - 1] + sub.get(wc + tc, SUB_OTHER)
            cost = min(cost, prev[j] + ins)
            cost = min(cost, cur[j - 1] + dels[j - 1])
            if i > 1 and j > 1 and tc == word[p + j - 2] and typed[ti - 1] == wc and prev2[j - 2] + TRANSPOSE < cost:
                cost = prev2[j - 2] + TRANSPOSE
            cur[j] = cost
            best = min(best, cost)
        if best > limit:
            return limit + 1.0
        prev2, prev = prev, cur
    return prev[cols - 1]
