"""Emoji: what to offer on the emoji keyboard at this keystroke.

``P(e | text) = R * recent(e) + (1 - R) * (K * keyword(e) + (1 - K) * usage(e | last token))``

- ``recent``: emoji already in the text, the latest first (people repeat emoji); ``R`` is
  the share of emoji in the training texts that repeat the last emoji before them, applied
  only when the text has an emoji.
- ``keyword``: emoji whose English name or alias (``emoji`` package) contains one of the last
  words, or whose Chinese name is two to four of the last Chinese characters;
  weighted by how specific the keyword is (1 / emoji sharing it). ``K`` = 0.3 when a keyword
  matched, else 0.
- ``usage``: training-split counts of each emoji after the last token (Witten-Bell over the
  training unigram, over a default order: faces first, then by Unicode block and age).

The last emoji of the text is found with a trie of every emoji sequence written backwards,
so that ``❤️‍🔥`` and ``👍🏻`` are read as one emoji without the ``emoji`` package.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from keypilot.priors import store
from keypilot.priors.keystroke import PriorCandidate
from keypilot.priors.store import FollowerTable
from keypilot.priors.text import is_cjk_letter, tokens, trailing_cjk

KEYWORD_WEIGHT = 0.3
MAX_KEYWORD_EMOJI = 40  # a name word shared by more emoji than this is not a keyword
_STOP = frozenset(["a", "an", "and", "the", "of", "with", "in", "on", "for", "to", "at", "by",
                   "button", "sign", "symbol", "mark", "face", "person", "man", "woman"])


def _key_for_emoji(text: str) -> str:
    """The n-gram history of an emoji: the last token before it (``""`` at the start)."""
    toks = tokens(text[-32:])
    return toks[-1] if toks else ""


class EmojiPriors:
    """Query side. Files: ``emoji_rev.marisa`` (emoji sequences reversed), ``emoji_kw.*``
    (keyword -> emoji, counts = 1000 * specificity), ``emoji_ngram.*`` (training counts after
    a token, unigram under ``""``), ``emoji_meta.json`` (repeat share, default order)."""

    def __init__(self, directory: Path) -> None:
        d = Path(directory)
        self.reversed = store.load_trie(d / "emoji_rev.marisa")
        self.keywords = FollowerTable.load(d / "emoji_kw")
        self.ngram = FollowerTable.load(d / "emoji_ngram")
        meta = store.load_json(d / "emoji_meta.json")
        self.repeat: float = meta["repeat"]
        weights = [0.5 ** (i / 8) for i in range(len(meta["default"]))]
        prior = {e: w / sum(weights) for e, w in zip(meta["default"], weights)}
        # The training unigram over the default order does not depend on the text: done once.
        self.base = dict(store.witten_bell(self.ngram, [""], prior, 1 << 30, limit=1 << 30))

    def split_last(self, text: str) -> tuple[str, str]:
        """(text before, last emoji) when ``text`` ends with an emoji, else (text, "")."""
        tail = text[-16:][::-1]
        found = self.reversed.prefixes(tail)
        if not found:
            return text, ""
        last = max(found, key=len)[::-1]
        return text[: len(text) - len(last)], last

    def recent(self, text: str, limit: int = 3) -> list[str]:
        """Distinct emoji in ``text``, the latest first."""
        out: list[str] = []
        stripped = text.rstrip()
        for _ in range(24):
            if len(out) >= limit or not stripped:
                break
            head, last = self.split_last(stripped)
            if last:
                if last not in out:
                    out.append(last)
                stripped = head.rstrip()
            else:
                stripped = stripped[:-1].rstrip()
        return out

    def complete(self, context: str, k: int) -> list[PriorCandidate]:
        mixture: Counter[str] = Counter()
        recent = self.recent(context)
        rest = 1.0
        if recent:
            weights = [1.0 / (i + 1) for i in range(len(recent))]
            for e, w in zip(recent, weights):
                mixture[e] += self.repeat * w / sum(weights)
            rest -= self.repeat
        keyword = self._keywords(context)
        if keyword:
            total = sum(keyword.values())
            for e, w in keyword.items():
                mixture[e] += rest * KEYWORD_WEIGHT * w / total
            rest *= 1.0 - KEYWORD_WEIGHT
        for e, p in self._usage(context, 2 * k).items():
            mixture[e] += rest * p
        ranked = sorted(mixture.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return [PriorCandidate(e, math.log(p), "emoji") for e, p in ranked if p > 0]

    def _keywords(self, context: str) -> Counter[str]:
        found: Counter[str] = Counter()
        words = [t for t in tokens(context[-48:]) if t[:1].isalpha() and t.isascii()][-2:]
        for word in words:
            for form in {word, word.rstrip("s"), word.removesuffix("ing"), word.removesuffix("ed")}:
                if len(form) >= 3:
                    for e, n in self.keywords.followers(form, limit=MAX_KEYWORD_EMOJI):
                        found[e] = max(found[e], n / 1000.0)
        cjk = trailing_cjk(context.rstrip(), 6)
        for i in range(len(cjk)):
            for j in range(i + 2, min(len(cjk), i + 4) + 1):
                for e, n in self.keywords.followers(cjk[i:j], limit=MAX_KEYWORD_EMOJI):
                    found[e] = max(found[e], n / 1000.0 * (j - i) / 2)
        return found

    def _usage(self, context: str, n: int) -> dict[str, float]:
        """Witten-Bell: training counts after the last token, over the training unigram, over
        the default order (a geometric prior)."""
        history = _key_for_emoji(context)
        return dict(store.witten_bell(self.ngram, [history] if history else [], self.base, n))


# Unicode blocks in the order a keyboard shows them when nothing else is known: faces, then
# the supplemental faces and hands, dingbats (hearts, sparkles), other pictographs; keycaps,
# flags and letters come last.
_BLOCKS = ((0x1F600, 0x1F64F), (0x1F910, 0x1F9FF), (0x2600, 0x27BF), (0x1F300, 0x1F5FF), (0x1F680, 0x1F6FF))


def _default_rank(e: str, info: dict) -> tuple[int, float, str]:
    cp = ord(e[0])
    block = next((i for i, (lo, hi) in enumerate(_BLOCKS) if lo <= cp <= hi), len(_BLOCKS))
    return block, float(info.get("E", 99)), e


# -- build ----------------------------------------------------------------------------------
def build_emoji(texts: list[str], out: Path) -> dict:
    import emoji
    import jieba

    emoji.config.load_language("zh")
    data = emoji.EMOJI_DATA
    store.save_trie((e[::-1] for e in data), out / "emoji_rev.marisa")
    base = [e for e, v in data.items() if v["status"] == emoji.STATUS["fully_qualified"] and "skin_tone" not in v["en"]]

    owners: dict[str, set[str]] = {}
    for e in base:
        names = [data[e]["en"], *data[e].get("alias", [])]
        for name in names:
            for word in name.strip(":").lower().replace("-", "_").split("_"):
                if len(word) >= 3 and word.isalpha() and word not in _STOP:
                    owners.setdefault(word, set()).add(e)
        zh = data[e].get("zh", "").strip(":")
        if zh and all(is_cjk_letter(c) for c in zh):
            for word in {zh, *(w for w in jieba.lcut_for_search(zh, HMM=False) if len(w) >= 2 and is_cjk_letter(w[0]))}:
                owners.setdefault(word, set()).add(e)
    keywords = {w: Counter({e: max(1, round(1000 / len(es))) for e in es})
                for w, es in owners.items() if len(es) <= MAX_KEYWORD_EMOJI}
    FollowerTable.build(keywords, out / "emoji_kw", max_followers=MAX_KEYWORD_EMOJI)

    usage: dict[str, Counter] = {"": Counter()}
    repeats = with_history = 0
    for text in texts:
        previous = ""
        for match in emoji.emoji_list(text):
            e = match["emoji"]
            before = text[: match["match_start"]]
            usage[""][e] += 1
            key = _key_for_emoji(before)
            if key:
                usage.setdefault(key, Counter())[e] += 1
            if previous:
                with_history += 1
                repeats += e == previous
            previous = e
    FollowerTable.build(usage, out / "emoji_ngram", max_followers=64)
    default = sorted(base, key=lambda e: (-usage[""][e], _default_rank(e, data[e])))[:64]
    repeat = (repeats + 1) / (with_history + 2)
    store.save_json({"repeat": repeat, "default": default}, out / "emoji_meta.json")
    return {"emoji": len(data), "emoji_keywords": len(keywords), "emoji_events": sum(usage[""].values()),
            "emoji_repeat": round(repeat, 3)}
