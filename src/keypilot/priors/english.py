"""English: a lexicon, a noisy-channel speller and a word n-gram.

Lexicon: the most frequent words of ``wordfreq`` plus the words of the training split;
``P(w)`` mixes wordfreq and training counts (the training share grows with the split, see
``store.TRAIN_PRIOR_TOKENS``). Corrections use SymSpell's symmetric-delete idea, stored
compactly: every lexicon word's first ``PREFIX`` letters with up to two letters deleted are
the keys of one marisa trie, whose key id points into flat arrays of word ids and deletion
counts. A typed word's own deletes (at most 22 keys) find every word within two edits; the
likeliest are scored ``log P(w | previous words) - CHANNEL_SCALE * edit_cost(typed, w)``.
Completions take the most frequent lexicon words with the typed prefix (a lexicographic
range of the lexicon and a partial sort) plus the n-grams' followers, scored by the same
language model: a Witten-Bell interpolated trigram of the training split over the unigram
mixed with a general bigram (symspellpy's English bigram counts).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from keypilot.priors import store
from keypilot.priors.channel import CHANNEL_SCALE, edit_cost, insert_costs
from keypilot.priors.keystroke import PriorCandidate
from keypilot.priors.store import FollowerTable
from keypilot.priors.text import display_form, match_case, sentence_start, tokens, trailing_domain, trailing_latin

PREFIX = 6  # letters of a word that its delete keys are made from
MAX_WORD = 24
# P(the typed word is what the user meant | it is a lexicon word): the no-typo hypothesis.
KEEP_PRIOR = 0.9
# Largest edit cost a correction may have, for a typed word of 1-3 letters / longer.
MAX_COST_SHORT, MAX_COST = 1.3, 2.0
# Words whose edit cost is computed, chosen by fewest matching deletes then frequency.
MAX_SCORED = 20
# The general bigram (symspellpy's English bigram counts): share of P(w | previous word) it
# takes from the unigram, followers kept per word, and the fixed-point scale of its shares.
GENERAL_WEIGHT = 0.5
GENERAL_FOLLOWERS = 16
GENERAL_SCALE = 10000


def _deletes(word: str, depth: int) -> dict[str, int]:
    """Every string made from ``word`` by deleting up to ``depth`` letters -> letters deleted."""
    out = {word: 0}
    frontier = [word]
    for d in range(1, depth + 1):
        nxt = []
        for x in frontier:
            for i in range(len(x)):
                y = x[:i] + x[i + 1:]
                if y not in out:
                    out[y] = d
                    nxt.append(y)
        frontier = nxt
    return out


class EnglishPriors:
    """Query side. Files: ``en_words.marisa`` (lexicon), ``en_logp.npy`` (log P(w) by word id),
    ``en_lex.npy`` (word ids in text order), ``en_del.marisa`` + ``en_del_off.npy`` +
    ``en_del_ids.npy`` + ``en_del_depth.npy`` (delete index: per key, the word ids and the
    letters deleted from each word), ``en_ngram.*`` (training n-gram, the training unigram
    under the empty history), ``en_general.*`` (general bigram), ``en_display.marisa``
    (``lower SEP Display`` forms), ``en_meta.json``."""

    def __init__(self, directory: Path) -> None:
        d = Path(directory)
        self.words = store.load_trie(d / "en_words.marisa")
        self.logp = store.load_array(d / "en_logp.npy")
        self.lex = store.load_array(d / "en_lex.npy")
        self.deletes = store.load_trie(d / "en_del.marisa")
        self.del_off = store.load_array(d / "en_del_off.npy")
        self.del_ids = store.load_array(d / "en_del_ids.npy")
        self.del_depth = store.load_array(d / "en_del_depth.npy")
        self.ngram = FollowerTable.load(d / "en_ngram")
        self.general = FollowerTable.load(d / "en_general")
        self.display = store.load_trie(d / "en_display.marisa")
        meta = store.load_json(d / "en_meta.json")
        self.train_weight: float = meta["train_weight"]
        self.train_tokens: int = meta["train_tokens"]
        self.floor: float = meta["floor_logp"]
        self.top_ids: list[int] = meta["top_ids"]
        self._lex_words = _LexView(self.words, self.lex)

    # -- language model ---------------------------------------------------------------------
    def unigram(self, word: str) -> float:
        """log P(word): the lexicon's, or the training split's for a token outside it."""
        kid = self.words.get(word)
        if kid is not None:
            return float(self.logp[kid])
        n = self.ngram.count("", word)
        return math.log(self.train_weight * n / self.train_tokens) if n else self.floor

    def context(self, history: list[str]) -> tuple[str, list[tuple[str, int, int]]]:
        """What the language model conditions on: the previous word when the general bigram
        knows it (else ``""``), and the training bigram and trigram histories of the last
        tokens with their (total, types)."""
        levels = []
        for n in (1, 2):
            if len(history) >= n:
                key = " ".join(history[-n:])
                total, types = self.ngram.history(key)
                if total:
                    levels.append((key, total, types))
        prev = history[-1] if history and self.general.history(history[-1])[0] else ""
        return prev, levels

    def lm(self, context: tuple[str, list[tuple[str, int, int]]], word: str) -> float:
        """log P(word | history) for ``context = self.context(history)``: the unigram mixed
        with the general bigram, under a Witten-Bell interpolation of the training bigram
        and trigram."""
        prev, levels = context
        p = math.exp(self.unigram(word))
        if prev:
            p = GENERAL_WEIGHT * self.general.count(prev, word) / GENERAL_SCALE + (1.0 - GENERAL_WEIGHT) * p
        for key, total, types in levels:
            p = (self.ngram.count(key, word) + types * p) / (total + types)
        return math.log(p)

    def _form(self, word: str, typed: str, capitalise: bool) -> str:
        for key in self.display.iterkeys(word + store.SEP):
            word = key[len(word) + 1:]
            break
        else:
            word = display_form(word)
        if capitalise and word[:1].islower():
            word = word[0].upper() + word[1:]
        return match_case(word, typed)

    def in_lexicon(self, word: str) -> bool:
        return word.lower().replace("’", "'") in self.words

    def is_prefix(self, word: str) -> bool:
        """Is ``word`` the start of a longer lexicon word?"""
        low = word.lower().replace("’", "'")
        return any(len(key) > len(low) for key in itertools.islice(self.words.iterkeys(low), 2))

    # -- corrections ------------------------------------------------------------------------
    def correct(self, context: str, k: int) -> tuple[list[PriorCandidate], dict[str, float]]:
        """Candidates for the Latin word at the end of ``context`` and what the features need:
        ``cost`` (best candidate's edit cost, or -1), ``p_typo`` (posterior that the word is
        mistyped), ``confidence`` (top-1 share)."""
        head, typed = trailing_latin(context)
        info = {"cost": -1.0, "p_typo": 0.0, "confidence": 0.0}
        low = typed.lower().replace("’", "'")
        if not low or len(low) > MAX_WORD:
            return [], info
        history = self.context(tokens(head)[-2:])
        limit = MAX_COST_SHORT if len(low) <= 3 else MAX_COST
        scored = self._edits(low, limit, max(k, 8) + 4)
        # Re-score the best few with the context.
        scored = sorted(((self.lm(history, w) - CHANNEL_SCALE * c, c, w) for _, c, w in scored),
                        key=lambda t: (-t[0], t[2]))
        keep = self.lm(history, low) + math.log(KEEP_PRIOR) if low in self.words else -math.inf
        top = max([keep] + [s for s, _, _ in scored[:1]])
        if top == -math.inf:
            return [], info
        total = math.exp(keep - top) + sum(math.exp(s - top) for s, _, _ in scored)
        out = [PriorCandidate(self._form(w, typed, False), s - top - math.log(total), "edit")
               for s, _, w in scored[:k]]
        if scored:
            info["cost"] = scored[0][1]
            info["p_typo"] = 1.0 - math.exp(keep - top) / total
            info["confidence"] = math.exp(out[0].logp)
        return out, info

    def _edits(self, low: str, limit: float, n: int) -> list[tuple[float, float, str]]:
        """The ``n`` best (unigram score, edit cost, word) within ``limit`` of ``low``."""
        # Every word sharing a delete key with the typed word, with the fewest deletes
        # (typed + word) that matched it: a cheap stand-in for its distance.
        spans, d1s = [], []
        for key, d1 in _deletes(low[:PREFIX], 1 if len(low) <= 3 else 2).items():
            kid = self.deletes.get(key)
            if kid is not None:
                spans.append((int(self.del_off[kid]), int(self.del_off[kid + 1])))
                d1s.append(d1)
        if not spans:
            return []
        wids = np.concatenate([self.del_ids[a:b] for a, b in spans])
        dsum = np.concatenate([self.del_depth[a:b] for a, b in spans]) + \
            np.repeat(np.asarray(d1s, np.uint8), [b - a for a, b in spans])
        order = np.lexsort((-self.logp[wids], dsum))
        ranked = wids[order]
        _, first = np.unique(ranked, return_index=True)
        shortlist = ranked[np.sort(first)[:MAX_SCORED]].tolist()
        inserts = insert_costs(low)
        scored: list[tuple[float, float, str]] = []
        bar = -math.inf  # the n-th best score so far: a word must beat it to matter
        for wid in shortlist:
            word = self.words.restore_key(wid)
            if word == low or abs(len(word) - len(low)) > 2:
                continue
            logp = float(self.logp[wid])
            reach = min(limit, (logp - bar) / CHANNEL_SCALE)
            if reach < 0:
                continue
            cost = edit_cost(low, word, reach, inserts)
            if cost <= reach:
                scored.append((logp - CHANNEL_SCALE * cost, cost, word))
                if len(scored) >= n:
                    scored.sort(key=lambda t: (-t[0], t[2]))
                    del scored[n:]
                    bar = scored[-1][0]
        return scored

    # -- completions ------------------------------------------------------------------------
    def complete(self, context: str, k: int) -> list[PriorCandidate]:
        """Words completing the Latin word at the caret, or the next word after a separator."""
        domain = trailing_domain(context)
        head, typed = domain if domain else trailing_latin(context)
        if not domain and not typed and context[-1:].isalnum():
            return []  # the caret is inside a non-Latin token (digits): nothing to complete
        history = self.context(tokens(head)[-2:])
        low = typed.lower().replace("’", "'")
        followers: set[str] = set()  # what the n-grams saw after this history
        for key, _, _ in history[1]:
            followers.update(w for w, _ in self.ngram.followers(key, low, limit=128))
        if history[0]:
            followers.update(w for w, _ in self.general.followers(history[0], low, limit=GENERAL_FOLLOWERS))
        pool = set(followers)
        if low and not domain:
            pool.update(self._prefix_top(low, 3 * k))
            pool.update(w for w, _ in self.ngram.followers("", low, limit=64))
        else:
            pool.update(self.words.restore_key(i) for i in self.top_ids[: 3 * k])
        pool.discard(low)
        pool = {w for w in pool if w[:1].isascii() and w[:1].isalnum()}
        if not pool:
            return []
        scored = sorted(((self.lm(history, w), w) for w in pool), key=lambda t: (-t[0], t[1]))
        top = scored[0][0]
        total = sum(math.exp(s - top) for s, _ in scored)
        capitalise = not typed and sentence_start(context)
        return [PriorCandidate(self._form(w, typed, capitalise), s - top - math.log(total),
                               "ngram" if w in followers else "lexicon")
                for s, w in scored[:k]]

    def _prefix_top(self, prefix: str, n: int) -> list[str]:
        """The ``n`` most frequent lexicon words starting with ``prefix``."""
        lo = bisect.bisect_left(self._lex_words, prefix)
        hi = bisect.bisect_left(self._lex_words, prefix + "\U0010ffff", lo)
        if hi <= lo:
            return []
        ids = self.lex[lo:hi]
        if len(ids) > n:
            ids = ids[np.argpartition(-self.logp[ids], n - 1)[:n]]
        return [self.words.restore_key(int(i)) for i in ids]


class _LexView:
    """The lexicon in text order as a read-only sequence (for ``bisect``)."""

    def __init__(self, trie, order: np.ndarray) -> None:
        self.trie, self.order = trie, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> str:
        return self.trie.restore_key(int(self.order[i]))


# -- build ----------------------------------------------------------------------------------
def build_english(texts: Iterable[str], out: Path, *, lexicon_size: int = 50000) -> dict:
    """Write the English files from the training texts and ``wordfreq``; returns counts."""
    import re

    import wordfreq

    texts = list(texts)
    word_re = re.compile(r"[a-z][a-z']*")
    train_unigram: Counter[str] = Counter()
    ngram: dict[str, Counter] = {}
    cased: dict[str, Counter] = {}
    for text in texts:
        toks = tokens(text)
        train_unigram.update(toks)
        for i, tok in enumerate(toks):
            for n in (1, 2):
                if i >= n:
                    ngram.setdefault(" ".join(toks[i - n:i]), Counter())[tok] += 1
        for match in re.finditer(r"(?<=[a-z] )[A-Za-z][a-z']*\b", text):  # mid-sentence forms only
            cased.setdefault(match.group().lower(), Counter())[match.group()] += 1
    ngram[""] = train_unigram
    train_tokens = max(1, sum(train_unigram.values()))

    general = [w for w in wordfreq.top_n_list("en", int(lexicon_size * 1.2)) if word_re.fullmatch(w)][:lexicon_size]
    words = set(general)
    words.update(w for w, n in train_unigram.items() if word_re.fullmatch(w) and len(w) <= MAX_WORD
                 and (n >= 2 or wordfreq.zipf_frequency(w, "en") > 1.0))
    trie = store.save_trie(words, out / "en_words.marisa")
    n_words = len(trie)
    # P(w): wordfreq (renormalised over the lexicon) mixed with the training relative frequency.
    wf = np.zeros(n_words, np.float64)
    tr = np.zeros(n_words, np.float64)
    for word in words:
        kid = trie[word]
        wf[kid] = wordfreq.word_frequency(word, "en") or 1e-9
        tr[kid] = train_unigram.get(word, 0)
    train_weight = train_tokens / (train_tokens + store.TRAIN_PRIOR_TOKENS)
    p = (1 - train_weight) * wf / wf.sum() + train_weight * tr / train_tokens
    floor = float(np.log(p.min() * 0.1))
    store.save_array(np.log(p).astype(np.float32), out / "en_logp.npy")
    keys = sorted(range(n_words), key=trie.restore_key)
    store.save_array(np.asarray(keys, np.int32), out / "en_lex.npy")

    index: dict[str, list[int]] = {}
    for word in sorted(words):
        for key, d in _deletes(word[:PREFIX], 2).items():
            index.setdefault(key, []).append(trie[word] << 2 | d)
    del_trie = store.save_trie(index, out / "en_del.marisa")
    offsets = np.zeros(len(del_trie) + 1, np.int64)
    for key, ids in index.items():
        offsets[del_trie[key] + 1] = len(ids)
    offsets = np.cumsum(offsets)
    flat = np.zeros(int(offsets[-1]), np.uint32)
    for key, ids in index.items():
        start = offsets[del_trie[key]]
        flat[start:start + len(ids)] = sorted(ids)
    store.save_array(offsets.astype(np.int32), out / "en_del_off.npy")
    store.save_array((flat >> 2).astype(np.uint16 if n_words < 65536 else np.uint32), out / "en_del_ids.npy")
    store.save_array((flat & 3).astype(np.uint8), out / "en_del_depth.npy")

    FollowerTable.build(ngram, out / "en_ngram", max_followers=64)
    FollowerTable.build(_general_bigrams(words), out / "en_general", max_followers=GENERAL_FOLLOWERS)
    # How a word is written in mid-sentence (Java, Teresa, I'm), when the training texts do it
    # one way at least half of the time and that differs from the default form.
    display = []
    for low, forms in sorted(cased.items()):
        form, n = min(forms.items(), key=lambda kv: (-kv[1], kv[0]))
        if 2 * n >= sum(forms.values()) and form != display_form(low):
            display.append(f"{low}{store.SEP}{form}")
    store.save_trie(display, out / "en_display.marisa", label_order=True)
    top_ids = [int(i) for i in np.argsort(-p, kind="stable")[:64]]
    store.save_json({"train_weight": train_weight, "train_tokens": train_tokens, "floor_logp": floor,
                     "top_ids": top_ids}, out / "en_meta.json")
    return {"en_words": n_words, "en_delete_keys": len(del_trie), "en_delete_entries": int(offsets[-1]),
            "en_ngram_histories": len(ngram)}


def _general_bigrams(words: set[str]) -> dict[str, Counter]:
    """P(next | word) from symspellpy's English bigram counts, as shares of GENERAL_SCALE,
    for the lexicon's words; the best GENERAL_FOLLOWERS followers are kept."""
    import importlib.resources

    path = importlib.resources.files("symspellpy") / "frequency_bigramdictionary_en_243_342.txt"
    counts: dict[str, Counter] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in words:
            counts.setdefault(parts[0], Counter())[parts[1]] += int(parts[2])
    shares = {}
    for first, followers in counts.items():
        total = sum(followers.values())
        kept = Counter({w: max(1, round(GENERAL_SCALE * n / total)) for w, n in followers.items() if w in words})
        if kept:
            shares[first] = kept
    return shares
