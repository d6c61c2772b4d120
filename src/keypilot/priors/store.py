"""On-disk pieces of the priors: tries, arrays and keyed count tables.

Everything is a ``marisa-trie`` (compact string sets with prefix search) or a ``.npy`` array,
both memory-mapped when loaded: loading parses nothing and a keystroke makes resident only the
pages it reads (docs/export.md, "Memory"). The tables are
written into a temporary folder and renamed into place by :mod:`keypilot.priors.build`.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

import marisa_trie
import numpy as np

FORMAT_VERSION = 3  # of the priors folder; Priors.load refuses another
# The training split's share of a unigram is N / (N + TRAIN_PRIOR_TOKENS) for N training
# tokens (a Dirichlet prior worth this many tokens of general text): a small split leans on
# the word lists, a large one on itself.
TRAIN_PRIOR_TOKENS = 10_000
# Separates a history from a follower inside one trie key; never part of a cleaned token.
SEP = "\x1d"


def save_trie(keys: Iterable[str], path: Path, *, label_order: bool = False) -> marisa_trie.Trie:
    """Build a trie of ``keys`` and save it; label order makes ``iterkeys`` lexicographic."""
    kwargs = {"order": marisa_trie.LABEL_ORDER} if label_order else {}
    trie = marisa_trie.Trie(sorted(set(keys)), **kwargs)
    trie.save(str(path))
    return trie


def load_trie(path: Path) -> marisa_trie.Trie:
    """The trie at ``path``, memory-mapped: only the pages a query walks become resident."""
    trie = marisa_trie.Trie()
    trie.mmap(str(path))
    return trie


def save_array(array: np.ndarray, path: Path) -> None:
    np.save(path, np.ascontiguousarray(array), allow_pickle=False)


def load_array(path: Path) -> np.ndarray:
    """The array at ``path``, memory-mapped and read-only (a plain ``ndarray`` view of the map):
    a keystroke reads a few entries of tables of up to a million."""
    return np.asarray(np.load(path, mmap_mode="r", allow_pickle=False))


def save_json(obj: object, path: Path) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=0), encoding="utf-8")


def load_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


class FollowerTable:
    """Counts of what follows a history: ``count(history, follower)``, stored as one trie of
    ``history SEP follower`` keys (label order, so followers of a history come out sorted and
    a typed prefix narrows them for free) and a count per key.

    Each history also has a ``history SEP`` key holding its total count and its number of
    distinct followers (for Witten-Bell interpolation).
    """

    def __init__(self, trie: marisa_trie.Trie, counts: np.ndarray, types: np.ndarray) -> None:
        self.trie = trie
        self.counts = counts  # [keys]: follower count, or the history total on SEP-final keys
        self.types = types  # [keys]: distinct followers on SEP-final keys, 0 elsewhere

    @classmethod
    def build(cls, counts: Mapping[str, Counter], path: Path, *, max_followers: int = 64) -> FollowerTable:
        """Write the table for ``{history: Counter(follower -> count)}``, keeping the
        ``max_followers`` most frequent followers of each history (ties by text)."""
        entries: dict[str, tuple[int, int]] = {}
        for history, followers in counts.items():
            if not followers:
                continue
            total = sum(followers.values())
            entries[history + SEP] = (total, len(followers))
            kept = sorted(followers.items(), key=lambda kv: (-kv[1], kv[0]))[:max_followers]
            for follower, n in kept:
                entries[history + SEP + follower] = (n, 0)
        trie = save_trie(entries, path.with_suffix(".marisa"), label_order=True)
        n_keys = len(trie)
        count_arr = np.zeros(n_keys, np.int32)
        type_arr = np.zeros(n_keys, np.int32)
        for key, (n, t) in entries.items():
            kid = trie[key]
            count_arr[kid], type_arr[kid] = n, t
        save_array(count_arr.astype(np.min_scalar_type(int(count_arr.max(initial=0)))), path.with_suffix(".counts.npy"))
        save_array(type_arr.astype(np.min_scalar_type(int(type_arr.max(initial=0)))), path.with_suffix(".types.npy"))
        return cls(trie, count_arr, type_arr)

    @classmethod
    def load(cls, path: Path) -> FollowerTable:
        return cls(load_trie(path.with_suffix(".marisa")), load_array(path.with_suffix(".counts.npy")),
                   load_array(path.with_suffix(".types.npy")))

    def history(self, history: str) -> tuple[int, int]:
        """(total count, distinct followers) of ``history``; (0, 0) when never seen."""
        kid = self.trie.get(history + SEP)
        if kid is None:
            return 0, 0
        return int(self.counts[kid]), int(self.types[kid])

    def followers(self, history: str, prefix: str = "", limit: int = 256) -> list[tuple[str, int]]:
        """(follower, count) for the followers of ``history`` that start with ``prefix``,
        in text order, at most ``limit``."""
        head = history + SEP
        start = len(head)
        items = [(key[start:], kid) for key, kid in itertools.islice(self.trie.iteritems(head + prefix), limit)
                 if len(key) > start]
        if not items:
            return []
        counts = self.counts[[kid for _, kid in items]].tolist()
        return [(follower, n) for (follower, _), n in zip(items, counts)]

    def count(self, history: str, follower: str) -> int:
        kid = self.trie.get(history + SEP + follower)
        return 0 if kid is None else int(self.counts[kid])


def witten_bell(table: FollowerTable, keys: list[str], base: dict[str, float], n: int,
                limit: int = 128) -> list[tuple[str, float]]:
    """Top ``n`` of ``P(x | keys[-1])``: Witten-Bell interpolation of the histories ``keys``
    (general to specific) over the distribution ``base``.

    Unrolled, ``P(x) = B * base(x) + sum_i a_i * count_i(x)``, so only the followers of the
    histories and the best ``n`` of ``base`` can reach the top.
    """
    levels = []
    for key in keys:
        total, types = table.history(key)
        if total:
            levels.append((total, types, dict(table.followers(key, limit=limit))))
    coef_base = 1.0
    coefs = []
    for i, (total, types, _) in enumerate(levels):
        coef_base *= types / (total + types)
        a = 1.0 / (total + types)
        for later_total, later_types, _ in levels[i + 1:]:
            a *= later_types / (later_total + later_types)
        coefs.append(a)
    candidates = set(sorted(base, key=lambda x: (-base[x], x))[:n])
    for _, _, counts in levels:
        candidates.update(counts)
    scored = [(x, coef_base * base.get(x, 0.0) + sum(a * counts.get(x, 0) for a, (_, _, counts) in zip(coefs, levels)))
              for x in candidates]
    scored.sort(key=lambda kv: (-kv[1], kv[0]))
    return scored[:n]
