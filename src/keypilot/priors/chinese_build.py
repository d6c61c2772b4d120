"""Building the Chinese priors: lexicon, pinyin index, character readings and n-gram.

Build-time only (jieba, wordfreq, pypinyin). Readings come from pypinyin's tables directly
(its phrase table for a word, greedy longest phrases inside it, else each character's most
common reading), which is what ``lazy_pinyin`` does for a word, at a fraction of the cost.
A single character is indexed under each of its readings.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np

from keypilot.priors import store
from keypilot.priors.chinese import MAX_WORD, PREDICT_RANKS, PREDICTIONS, RARE_READING
from keypilot.priors.pinyin import RANK_WIDTH, index_key
from keypilot.priors.store import SEP, FollowerTable
from keypilot.priors.text import is_cjk_letter

_CHINESE = re.compile(rf"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]{{1,{MAX_WORD}}}")
CHARS_PER_SYLLABLE = 40  # single characters of one syllable the IME index keeps (by frequency)
MAX_READING = 2  # a character is indexed under its three most common readings at most


@functools.cache
def _toneless(reading: str) -> str:
    from pypinyin.contrib.tone_convert import to_normal

    return to_normal(reading).replace("ü", "v")


class Readings:
    """Toneless readings of characters and words from pypinyin's tables."""

    def __init__(self) -> None:
        from pypinyin import phrases_dict, pinyin_dict

        self.chars = {chr(cp): list(dict.fromkeys(_toneless(r) for r in readings.split(",")))
                      for cp, readings in pinyin_dict.pinyin_dict.items()}
        self.phrases = phrases_dict.phrases_dict
        self.valid = frozenset(r for rs in self.chars.values() for r in rs if r.isascii() and r.isalpha())

    def word(self, word: str) -> list[str] | None:
        """The syllables of ``word`` (None when a character has no usable reading)."""
        syllables: list[str] = []
        i = 0
        while i < len(word):
            for j in range(len(word), i + 1, -1):
                if word[i:j] in self.phrases:
                    syllables += [_toneless(r[0]) for r in self.phrases[word[i:j]]]
                    i = j
                    break
            else:
                syllables.append((self.chars.get(word[i]) or [""])[0])
                i += 1
        return syllables if len(syllables) == len(word) and all(s in self.valid for s in syllables) else None


def build_chinese(texts: list[str], out: Path, *, targets: Counter | None = None, max_words: int = 200_000) -> dict:
    """Write the Chinese files from the training texts (and the Chinese words the training
    targets name, which are words by definition), jieba, wordfreq and pypinyin."""
    import jieba
    import wordfreq

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()

    # Training words and n-gram events: a jieba word after the last one or two characters.
    train: Counter[str] = Counter()
    ngram: dict[str, Counter] = {}
    for text in texts:
        pos = 0
        for token in tokenizer.cut(text, HMM=False):
            if _CHINESE.fullmatch(token):
                train[token] += 1
                units = [ch for ch in text[max(0, pos - 6):pos] if not ch.isspace()][-2:]
                for n in range(len(units) + 1):
                    ngram.setdefault("".join(units[len(units) - n:]), Counter())[token] += 1
            pos += len(token)

    for word, n in (targets or {}).items():
        if _CHINESE.fullmatch(word):
            train[word] = max(train[word], n)

    # General frequency: wordfreq's, or jieba's count scaled to it (the median ratio).
    with tokenizer.get_dict_file() as f:
        jieba_counts = {}
        for line in f:
            word, count = line.decode("utf-8").split()[:2]
            if int(count) >= 3 and _CHINESE.fullmatch(word):
                jieba_counts[word] = int(count)
    general = {w: p for w, p in wordfreq.get_frequency_dict("zh").items() if _CHINESE.fullmatch(w)}
    jieba_total = sum(jieba_counts.values())
    shared = sorted(math.log(general[w] * jieba_total / jieba_counts[w]) for w in general if w in jieba_counts)
    scale = math.exp(shared[len(shared) // 2]) / jieba_total
    for w, c in jieba_counts.items():
        general.setdefault(w, c * scale)
    kept = sorted(general, key=lambda w: (-general[w], w))[:max_words]
    words = set(kept) | set(train)
    g_total = math.fsum(general.get(w, 0.0) for w in words)  # exact: the same whatever the set order
    t_total = sum(train.values())
    weight = t_total / (t_total + store.TRAIN_PRIOR_TOKENS)
    prob = {w: (1 - weight) * general.get(w, 0.0) / g_total + weight * train[w] / max(t_total, 1) for w in words}
    floor = math.log(min(p for p in prob.values() if p > 0) * 0.1)
    ranked = sorted(words, key=lambda w: (-prob[w], w))

    readings = Readings()
    keys, predict, per_prefix = [], [], Counter()
    singles: dict[str, list[tuple[float, str]]] = {}  # syllable -> (score, key) of characters
    for rank, word in enumerate(ranked):
        if len(word) == 1:
            for i, r in enumerate(r for r in readings.chars.get(word, []) if r in readings.valid):
                if i <= MAX_READING:
                    score = math.log(max(prob[word], 1e-300)) - RARE_READING * i
                    singles.setdefault(r, []).append((score, index_key(r[0], [r], rank, word, i)))
            continue
        syllables = readings.word(word)
        if not syllables:
            continue
        keys.append(index_key("".join(s[0] for s in syllables), syllables, rank, word))
        if rank < PREDICT_RANKS:  # the most frequent longer words for each start of their pinyin
            spelled = "".join(syllables)
            for end in range(2, min(len(spelled), 8)):
                per_prefix[spelled[:end]] += 1
                if per_prefix[spelled[:end]] <= PREDICTIONS:
                    predict.append(f"{spelled[:end]}{SEP}{rank:0{RANK_WIDTH}d}{word}")
    for entries in singles.values():  # the characters a syllable most likely stands for
        keys.extend(key for _, key in sorted(entries, key=lambda e: (-e[0], e[1]))[:CHARS_PER_SYLLABLE])
    ime = store.save_trie(keys, out / "zh_ime.marisa", label_order=True)
    store.save_trie(predict, out / "zh_predict.marisa", label_order=True)
    trie = store.save_trie(words, out / "zh_words.marisa")
    rank_of_kid = np.zeros(len(trie), np.int32)
    for rank, word in enumerate(ranked):
        rank_of_kid[trie[word]] = rank
    store.save_array(rank_of_kid, out / "zh_rank.npy")
    logp = np.log(np.maximum(np.asarray([prob[w] for w in ranked], np.float64), math.exp(floor)))
    store.save_array(logp.astype(np.float16), out / "zh_logp.npy")

    # A character's readings keep pypinyin's order (most common first) through a one-digit
    # position after the separator; label order would otherwise sort them alphabetically.
    char_keys = [f"{ch}{SEP}{min(i, 9)}{r}" for ch, rs in readings.chars.items() if is_cjk_letter(ch)
                 for i, r in enumerate(r for r in rs if r in readings.valid)]
    store.save_trie(char_keys, out / "zh_chars.marisa", label_order=True)
    FollowerTable.build(ngram, out / "zh_ngram", max_followers=64)
    store.save_json({"syllables": sorted(readings.valid), "floor_logp": floor, "top_words": ranked[:64]},
                    out / "zh_meta.json")
    return {"zh_words": len(trie), "zh_ime_keys": len(ime), "zh_predict_keys": len(predict),
            "zh_chars": len(char_keys), "zh_ngram_histories": len(ngram)}
