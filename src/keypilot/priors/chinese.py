"""Chinese: a pinyin IME, homophone corrections and the next word after Chinese text.

Lexicon: the words of jieba's dictionary and wordfreq's Chinese list (1-4 characters) and of
the training split, ranked by ``P(w)``: general frequency (wordfreq, or jieba's counts scaled
to it) mixed with training counts (built by :mod:`keypilot.priors.chinese_build`). A word's
id is its rank.

- IME (:mod:`keypilot.priors.pinyin`): every word whose syllables the buffer's pieces
  start, scored ``log P(w | previous characters) - ABBREVIATION * (pieces not a whole
  syllable) - RARE_READING * (how rare the reading of a character is)``; frequent longer
  words whose pinyin starts with the buffer; and, when no word matches, the best sentence of
  words.
- Corrections: the last 1-3 characters are replaced by a word of the same length that reads
  the same (``得`` -> ``的``, ``陆上`` -> ``路上``) or nearly (z/zh, c/ch, s/sh, l/n, -n/-ng).
  Spans of different lengths are compared on one window of text ending at the caret, scored
  by a word-unigram segmentation (so ``作业防灾`` prefers ``放在`` for ``防灾`` to ``在`` for
  ``灾``), plus the channel's log-probability of a homophone (or near-homophone) slip.
- Next word: a Witten-Bell interpolated n-gram of the training split, conditioned on the last
  one or two characters, over the lexicon unigram.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

from keypilot.priors import store
from keypilot.priors.keystroke import PriorCandidate
from keypilot.priors.pinyin import RANK_WIDTH, Syllables, near_syllables, parse_key
from keypilot.priors.store import SEP, FollowerTable
from keypilot.priors.text import is_cjk_letter, trailing_cjk

MAX_WORD = 4
ABBREVIATION = 1.5  # nats per piece that is only the start of its syllable
RARE_READING = 2.5  # nats per step down pypinyin's list of a character's readings
PREDICTION = 1.0  # nats for a longer word whose pinyin only starts with the buffer
PREDICTIONS = 4  # longer words stored per pinyin prefix
PREDICT_RANKS = 60_000  # only words of this frequency rank or better are predicted
COMPOSE_BLOCKS = 200  # index blocks a sentence may read (a bound on its time)
SCAN_LIMIT = 200  # index keys read for one homophone query
EXACT_BLOCK = 16  # keys read (plus 2 k) from a block whose first syllable is the first piece
PARTIAL_BLOCK = 8  # keys read from a block whose first syllable the first piece only starts
LOG_HOMOPHONE = math.log(0.02)  # P(this homophone | the word meant), per span
LOG_NEAR = math.log(0.004)  # the same for a near-homophone
LOG_KEEP = math.log(0.95)  # the characters typed are the ones meant
WINDOW = 3  # characters before the longest span that the segmentation scores
PER_SPAN = 10  # candidates per span length kept for the segmentation score


class ChinesePriors:
    """Query side. Files: ``zh_words.marisa`` + ``zh_rank.npy`` (lexicon -> rank),
    ``zh_logp.npy`` (log P by rank), ``zh_ime.marisa`` (pinyin index), ``zh_predict.marisa``
    (``pinyin start SEP rank word`` for predictions), ``zh_chars.marisa`` (``char SEP i
    reading``, i-th most common), ``zh_ngram.*`` (training n-gram), ``zh_meta.json``."""

    def __init__(self, directory: Path) -> None:
        d = Path(directory)
        self.words = store.load_trie(d / "zh_words.marisa")
        self.rank = store.load_array(d / "zh_rank.npy")
        self.logp = store.load_array(d / "zh_logp.npy")
        self.index = store.load_trie(d / "zh_ime.marisa")
        self.predict = store.load_trie(d / "zh_predict.marisa")
        self.chars = store.load_trie(d / "zh_chars.marisa")
        self.ngram = FollowerTable.load(d / "zh_ngram")
        meta = store.load_json(d / "zh_meta.json")
        self.syllables = Syllables(meta["syllables"])
        self.starting: dict[str, list[str]] = {}  # piece -> the syllables it starts
        for s in sorted(self.syllables.full):
            for i in range(1, len(s) + 1):
                self.starting.setdefault(s[:i], []).append(s)
        self.floor: float = meta["floor_logp"]
        self.top_words: list[str] = meta["top_words"]

    # -- lexicon and language model -----------------------------------------------------------
    def word_logp(self, word: str) -> float | None:
        kid = self.words.get(word)
        return None if kid is None else float(self.logp[self.rank[kid]])

    def context(self, head: str) -> list[tuple[str, int, int]]:
        """The one- and two-character histories before the caret with their (total, types)."""
        units = [ch for ch in head[-6:] if not ch.isspace()][-2:]
        out = []
        for n in (1, 2):
            if len(units) >= n:
                key = "".join(units[-n:])
                total, types = self.ngram.history(key)
                if total:
                    out.append((key, total, types))
        return out

    def lm(self, context: list[tuple[str, int, int]], word: str, logp: float) -> float:
        p = math.exp(logp)
        for key, total, types in context:
            p = (self.ngram.count(key, word) + types * p) / (total + types)
        return math.log(p)

    def readings(self, ch: str) -> list[str]:
        """Toneless readings of a character, most common first."""
        return [key[len(ch) + 2:] for key in self.chars.iterkeys(ch + SEP)]

    # -- pinyin IME ---------------------------------------------------------------------------
    def is_buffer(self, buffer: str) -> bool:
        return self.syllables.is_buffer(buffer)

    def whole_syllables(self, buffer: str) -> bool:
        """Is ``buffer`` made only of whole syllables (``mingtian``, not ``hello``)?"""
        cut = next(self.syllables.cuts(buffer, limit=1), None)
        return cut is not None and all(p in self.syllables.full for p in cut)

    def ime(self, buffer: str, head: str, k: int) -> list[PriorCandidate]:
        """Words the pinyin ``buffer`` spells, best first, after the text ``head``; when it
        spells no word, the best sentence of words (``woxianghuijia`` -> 我想回家)."""
        found: dict[str, float] = {}
        cuts = list(self.syllables.cuts(buffer))
        for pieces in cuts:
            if len(pieces) <= MAX_WORD:
                self._words(pieces, EXACT_BLOCK + 2 * k, found)
        if cuts and len(cuts[0]) > 1 and not found:
            sentence = self._compose(cuts[0])
            if sentence and sentence[0] not in found:
                found[sentence[0]] = sentence[1]
        plain = buffer.replace("'", "")
        start = len(plain) + 1
        for key in self.predict.iterkeys(plain + SEP):
            rank, word = int(key[start:start + RANK_WIDTH]), key[start + RANK_WIDTH:]
            score = float(self.logp[rank]) - PREDICTION
            if score > found.get(word, -math.inf):
                found[word] = score
        if not found:
            return []
        history = self.context(head)
        pool = sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))[: k + 8]
        return _normalised([(self.lm(history, w, s), w) for w, s in pool], k, "pinyin")

    def _words(self, pieces: list[str], limit: int, found: dict[str, float], *, exact: bool = False,
               partial_limit: int = PARTIAL_BLOCK) -> int:
        """Add to ``found`` the words one cut spells, scored ``log P(w) - ABBREVIATION *
        (pieces that only start their syllable)``, reading ``limit`` keys of the block whose
        first syllable is the first piece and ``partial_limit`` of the others; ``exact``: a
        first piece that is a whole syllable is not also read as the start of longer ones.
        Returns the number of blocks read."""
        initials = "".join(p[0] for p in pieces)
        firsts = self.starting.get(pieces[0], ())
        if exact and pieces[0] in self.syllables.full:
            firsts = (pieces[0],)
        for first in firsts:
            # A block (initials, first syllable) lists its words by rank: the best few of a
            # block whose syllable the piece only starts are enough.
            prefix = f"{initials}{SEP}{first}{SEP}"
            for key in itertools.islice(self.index.iterkeys(prefix), limit if first == pieces[0] else partial_limit):
                rest, rank, reading, word = parse_key(key, len(prefix))
                if len(rest) != len(pieces) - 1 or not all(s.startswith(p) for s, p in zip(rest, pieces[1:])):
                    continue
                partial = (pieces[0] != first) + sum(p != s for s, p in zip(rest, pieces[1:]))
                score = float(self.logp[rank]) - ABBREVIATION * partial - RARE_READING * reading
                if score > found.get(word, -math.inf):
                    found[word] = score
        return len(firsts)

    def _compose(self, pieces: list[str]) -> tuple[str, float] | None:
        """The best sequence of two or more words for one cut (a Viterbi over runs of up to
        MAX_WORD pieces, each run its best word), with its score; None when there is none."""
        best: list[tuple[float, list[str]]] = [(0.0, [])] + [(-math.inf, [])] * len(pieces)
        blocks = 0
        for j in range(1, len(pieces) + 1):
            for i in range(max(0, j - MAX_WORD), j):
                if best[i][0] == -math.inf:
                    continue
                words: dict[str, float] = {}
                blocks += self._words(pieces[i:j], PARTIAL_BLOCK, words, exact=True, partial_limit=2)
                if blocks > COMPOSE_BLOCKS:
                    return None  # a long run of lone initials: too many readings to weigh now
                if words:
                    word, score = max(words.items(), key=lambda kv: (kv[1], kv[0]))
                    if best[i][0] + score > best[j][0]:
                        best[j] = (best[i][0] + score, best[i][1] + [word])
        score, words = best[-1]
        return ("".join(words), score) if len(words) > 1 else None

    # -- next word ----------------------------------------------------------------------------
    def next_words(self, head: str, k: int) -> list[PriorCandidate]:
        history = self.context(head)
        pool: set[str] = set()
        for key, _, _ in history:
            pool.update(w for w, _ in self.ngram.followers(key, limit=128))
        pool.update(self.top_words[: 2 * k])
        scored = []
        for w in pool:
            if not all(is_cjk_letter(c) for c in w):
                continue
            logp = self.word_logp(w)
            scored.append((self.lm(history, w, self.floor if logp is None else logp), w))
        return _normalised(scored, k, "ngram")

    # -- homophone corrections ----------------------------------------------------------------
    def correct(self, context: str, k: int) -> tuple[list[PriorCandidate], float]:
        """Replacements for the last 1-3 Chinese characters and the posterior of a slip."""
        tail = trailing_cjk(context, WINDOW + 3)
        if not tail:
            return [], 0.0
        longest = min(3, len(tail))
        start = len(tail) - longest - min(WINDOW, len(tail) - longest)
        window = tail[start:]
        scored: list[tuple[float, str]] = []
        for span_len in range(1, longest + 1):
            span = window[-span_len:]
            left = window[: len(window) - span_len]
            left_best = self._segment(left)
            options = sorted(self._homophones(span), key=lambda t: (-t[0] - t[1], t[2]))[:PER_SPAN]
            for channel, _, word in options:
                scored.append((self._extend(left, left_best, word) + channel, word))
        if not scored:
            return [], 0.0
        keep = self._segment(window)[-1] + LOG_KEEP
        top = max(keep, max(s for s, _ in scored))
        total = math.exp(keep - top) + sum(math.exp(s - top) for s, _ in scored)
        scored.sort(key=lambda t: (-t[0], t[1]))
        out, seen = [], set()
        for s, w in scored:
            if w not in seen:
                seen.add(w)
                out.append(PriorCandidate(w, s - top - math.log(total), "homophone"))
        return out[:k], 1.0 - math.exp(keep - top) / total

    def _homophones(self, span: str) -> list[tuple[float, float, str]]:
        """(channel log-prob, log P(w), w) for lexicon words that read like ``span``: the
        same syllables for up to four readings of its characters, and near syllables
        (:func:`near_syllables`) one at a time for its most likely reading."""
        per_char = [list(enumerate(self.readings(ch)[:3])) for ch in span]
        if not all(per_char):
            return []
        # A rarer reading of a typed character is a less likely way to have typed it.
        readings = [([syl for _, syl in combo], RARE_READING * sum(i for i, _ in combo))
                    for combo in itertools.islice(itertools.product(*per_char), 4 if len(span) > 1 else 3)]
        queries = [(r, LOG_HOMOPHONE - rare) for r, rare in readings]
        for reading, rare in readings[: 1 if len(span) > 1 else 3]:
            for i, syl in enumerate(reading):
                for near in near_syllables(syl, self.syllables.full):
                    queries.append(([*reading[:i], near, *reading[i + 1:]], LOG_NEAR - rare))
        best: dict[str, tuple[float, int]] = {}  # word -> (best channel, rank)
        for syllables, channel in queries:
            initials = "".join(s[0] for s in syllables)
            prefix = f"{initials}{SEP}{syllables[0]}{SEP}"
            for key in itertools.islice(self.index.iterkeys(prefix), SCAN_LIMIT):
                rest, rank, reading, word = parse_key(key, len(prefix))
                if rest != syllables[1:] or word == span:
                    continue
                score = channel - RARE_READING * reading
                if score > best.get(word, (-math.inf, 0))[0]:
                    best[word] = (score, rank)
        return [(channel, float(self.logp[rank]), w) for w, (channel, rank) in best.items()]

    def _segment(self, text: str) -> list[float]:
        """best[i]: log-probability of the best cut of ``text[:i]`` into lexicon words (an
        unknown character costs the floor)."""
        best = [0.0] + [-math.inf] * len(text)
        for i in range(1, len(text) + 1):
            best[i] = self._best_at(text, best, i)
        return best

    def _extend(self, left: str, left_best: list[float], word: str) -> float:
        text = left + word
        best = left_best + [-math.inf] * len(word)
        for i in range(len(left) + 1, len(text) + 1):
            best[i] = self._best_at(text, best, i)
        return best[-1]

    def _best_at(self, text: str, best: list[float], i: int) -> float:
        value = best[i - 1] + (self.word_logp(text[i - 1]) or self.floor)
        for j in range(max(0, i - MAX_WORD), i - 1):
            logp = self.word_logp(text[j:i])
            if logp is not None and best[j] + logp > value:
                value = best[j] + logp
        return value

    def in_dictionary(self, word: str) -> bool:
        return word in self.words


def _normalised(scored: list[tuple[float, str]], k: int, source: str) -> list[PriorCandidate]:
    """Top ``k`` of (score, text) as candidates whose log-probabilities are normalised over
    the whole pool."""
    if not scored:
        return []
    scored = sorted(scored, key=lambda t: (-t[0], t[1]))
    top = scored[0][0]
    log_total = math.log(sum(math.exp(s - top) for s, _ in scored))
    return [PriorCandidate(w, s - top - log_total, source) for s, w in scored[:k]]
