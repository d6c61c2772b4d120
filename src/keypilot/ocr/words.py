"""Putting back the English word spaces that text recognition drops.

A recogniser reading a tightly set line often returns "Ithinkyouleft it at mine" or
"meetingyesterday.Please". ``WordSplitter`` splits such runs with a unigram lexicon: the
split of a letter run that minimises the summed ``-log P(word)`` over lexicon words, taken
only when every piece is a common lexicon word and the split is far likelier than the run
left whole.
Anything that is not a plain letter run is left exactly as read: digit groups, codes, amounts,
e-mail addresses, URLs, handles and mixed letter-digit tokens, since those are what a user
copies from the screen and a wrong space would break them.

The lexicon is ``wordfreq``'s English list by default, or any ``log P(word)`` function (the
run's priors lexicon, ``keypilot.priors.english.EnglishPriors``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping

# Letter runs shorter than this are left alone: short runs are rarely two glued words, and
# "isit" / "atom" style ambiguities are common among them.
MIN_RUN = 6
MAX_WORD = 20
# The split must beat the run left whole by this much (nats): an unknown run counts as
# UNKNOWN_COST, so any all-lexicon split of an unknown run wins, and a known run is split only
# when its pieces together are far likelier than the run itself ("together" stays whole).
SPLIT_MARGIN = 4.0
UNKNOWN_COST = 40.0
# One-letter words kept in a split (wordfreq lists every letter as a "word"), and how common
# a two-letter piece must be: the lexicon's rare two-letter entries ("ga", "hl") are what a
# misread or a pinyin syllable splits into.
ONE_LETTER = frozenset("ai")
TWO_LETTER_MIN_LOGP = math.log(1e-4)
# Every piece of a split must be a common word: a name or rare word the lexicon lacks
# ("Quillmarsh") would otherwise be cut into rare words ("Quill marsh"); glued everyday words
# ("thereport", "Taylorwrote") are what recognition produces.
PIECE_MIN_LOGP = math.log(1e-5)
# wordfreq's tail is noise (typos, fragments); words rarer than this are not lexicon words.
MIN_FREQUENCY = 1e-7

# A token that is (or contains) something to copy verbatim: an address, a link, a handle, a
# code with digits. Such tokens are never touched.
VERBATIM = re.compile(r"[@#/\\_=&%$€£¥+\d]|:\S|www\.|\.(com|org|net|io|cn|co|uk|de)\b", re.IGNORECASE)
# Sentence punctuation glued to the next sentence: "yesterday.Please", "Thanks,see".
GLUED_PUNCT = re.compile(r"(?<=[a-z])([.!?,;])(?=[A-Z])|(?<=[a-z])([!?,;])(?=[a-z])")
# A letter run with at most quotes or brackets before it and punctuation after it; a run glued
# to Chinese or other letters is left alone.
LETTER_RUN = re.compile(r"^([\"'(\[“‘]*)([A-Za-z']+)([\"').,!?:;\]”’|]*)$")

WordLogP = Callable[[str], "float | None"]


class WordSplitter:
    """``split(line)``: the line with missing English word spaces put back (see module doc)."""

    def __init__(self, logp: WordLogP) -> None:
        self.logp = logp

    @classmethod
    def from_frequencies(cls, frequencies: Mapping[str, float]) -> WordSplitter:
        return cls(lambda word: math.log(f) if (f := frequencies.get(word, 0.0)) >= MIN_FREQUENCY else None)

    @classmethod
    def from_wordfreq(cls) -> WordSplitter:
        """English word frequencies shipped with the ``wordfreq`` package (offline)."""
        from wordfreq import get_frequency_dict

        return cls.from_frequencies(get_frequency_dict("en"))

    @classmethod
    def from_priors(cls, priors) -> WordSplitter:
        """The run's English lexicon (``EnglishPriors``): its words and their ``log P(w)``."""
        return cls(lambda word: priors.unigram(word) if priors.in_lexicon(word) else None)

    def split(self, line: str) -> str:
        if not any("a" <= c.lower() <= "z" for c in line):
            return line  # Chinese, digits, symbols: nothing to do
        return " ".join(self._token(token) for token in line.split(" "))

    def _token(self, token: str) -> str:
        if not token or VERBATIM.search(token):
            return token
        token = GLUED_PUNCT.sub(lambda m: (m.group(1) or m.group(2)) + " ", token)
        return " ".join(self._run(part) for part in token.split(" "))

    def _run(self, part: str) -> str:
        match = LETTER_RUN.match(part)
        if match is None or len(match.group(2)) < MIN_RUN:
            return part
        lead, run, tail = match.groups()
        pieces = self._best_split(run)
        return lead + " ".join(pieces) + tail

    def _cost(self, word: str, piece: bool = True) -> float | None:
        low = word.lower()
        if len(low) == 1 and low not in ONE_LETTER:
            return None
        logp = self.logp(low)
        if logp is None or (piece and (logp < PIECE_MIN_LOGP or (len(low) == 2 and logp < TWO_LETTER_MIN_LOGP))):
            return None
        return -logp

    def _best_split(self, run: str) -> list[str]:
        """The run's likeliest all-lexicon split, or ``[run]`` when no split is clearly better."""
        n = len(run)
        best: list[float] = [0.0] + [math.inf] * n
        back = [0] * (n + 1)
        for end in range(1, n + 1):
            for start in range(max(0, end - MAX_WORD), end):
                if best[start] == math.inf:
                    continue
                cost = self._cost(run[start:end])
                if cost is not None and best[start] + cost < best[end]:
                    best[end], back[end] = best[start] + cost, start
        if best[n] == math.inf:
            return [run]
        whole = self._cost(run, piece=False)
        if best[n] > (UNKNOWN_COST if whole is None else whole) - SPLIT_MARGIN:
            return [run]
        pieces, end = [], n
        while end > 0:
            pieces.append(run[back[end]:end])
            end = back[end]
        return pieces[::-1]

