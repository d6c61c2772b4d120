"""``Priors``: load the built folder once, then ``propose`` at every keystroke.

Torch-free: the query side needs only the standard library, numpy and marisa-trie.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from keypilot.labels import lang_of
from keypilot.priors import store
from keypilot.priors.chinese import ChinesePriors
from keypilot.priors.emojis import EmojiPriors
from keypilot.priors.english import EnglishPriors
from keypilot.priors.keystroke import FEATURE_INDEX, KeystrokePriors, PriorCandidate
from keypilot.priors.replies import ReplyPriors
from keypilot.priors.screen import ScreenReading, extends, read_screen, typed_field
from keypilot.priors.symbols import NextClass, NumberPriors, SymbolPriors, ranked_list
from keypilot.priors.text import char_class, clean, last_char_class, trailing_latin, trailing_pinyin
from keypilot.screen_text import ScreenText

# Only the end of a long text matters to the next keystroke.
MAX_CONTEXT = 256
# Share of the English completion list that words on the screen extending the typed prefix
# take (names, rare words of the thread).
SCREEN_WORD_SHARE = 0.5


class Priors:
    """The priors of one run folder (``RUN/priors``), for every language class."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.english = EnglishPriors(self.directory)
        self.chinese = ChinesePriors(self.directory)
        self.symbols = SymbolPriors(self.directory)
        self.emoji = EmojiPriors(self.directory)
        self.numbers = NumberPriors(self.directory)
        self.next_class = NextClass(self.directory)
        self.replies = ReplyPriors(self.directory)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Priors:
        """Load a folder written by ``build_priors``; a missing or foreign folder is a clear error."""
        directory = Path(directory)
        manifest = directory / "manifest.json"
        if not manifest.is_file():
            raise FileNotFoundError(f"{directory}: no priors here (no manifest.json); "
                                    f"build them with `keypilot priors build --data DATA --out {directory}`")
        version = store.load_json(manifest).get("format_version")
        if version != store.FORMAT_VERSION:
            raise ValueError(f"{manifest}: priors format {version}, this keypilot reads {store.FORMAT_VERSION}; "
                             "rebuild them")
        return cls(directory)

    def in_ime_dictionary(self, word: str) -> bool:
        """Is ``word`` a word of the pinyin IME's lexicon (so that a buffer can reach it)?"""
        return isinstance(word, str) and self.chinese.in_dictionary(word)

    def propose(self, context: str, k: int = 16, *,
                screen: Sequence[ScreenText] | ScreenReading | None = None) -> KeystrokePriors:
        """Candidates per task and language and the router features for the text ``context``.

        ``screen``: the screen's text lines, or their ``read_screen`` (cache it per screen):
        numbers and words on the screen become copy candidates, the last incoming message the
        suggestion's ``reply_to``.
        """
        if not isinstance(context, str):
            raise TypeError(f"context must be a str, not {type(context).__name__}")
        k = max(1, int(k))
        reading = screen if isinstance(screen, ScreenReading) else read_screen(screen)
        empty = not context.strip()
        ctx = clean(context[-MAX_CONTEXT:])
        out = KeystrokePriors()
        features = out.features
        features[FEATURE_INDEX["field_empty"]] = empty
        cls = "space" if context[-1:].isspace() else last_char_class(ctx)
        if cls:
            features[FEATURE_INDEX[f"last_{cls}"]] = 1.0

        _, word = trailing_latin(ctx)
        info: dict[str, float] = {}
        if word:
            out.corrections["EN"], info = self.english.correct(ctx, k)
            features[FEATURE_INDEX["word_in_lexicon"]] = self.english.in_lexicon(word)
            features[FEATURE_INDEX["word_is_prefix"]] = self.english.is_prefix(word)
            features[FEATURE_INDEX["correction_cost"]] = 1.0 if info["cost"] < 0 else min(1.0, info["cost"] / 3.0)
            features[FEATURE_INDEX["p_typo"]] = info["p_typo"]
            features[FEATURE_INDEX["correction_confidence"]] = info["confidence"]
        out.completions["EN"] = self.english.complete(ctx, k)
        screen_words = extends(word, reading.words) if word else {}
        if screen_words:
            out.completions["EN"] = _blend(out.completions["EN"], screen_words, k)

        kind = typed_field(reading, context) if reading.fields and not empty else ""
        features[FEATURE_INDEX["field_email"]] = kind == "email"
        features[FEATURE_INDEX["field_number"]] = kind == "number"
        head, buffer = trailing_pinyin(ctx)
        if buffer and self._pinyin_open(head, buffer):
            out.pinyin_buffer = buffer
            out.pinyin_certain = kind != "email" and self._pinyin_certain(head, buffer, info["cost"] if word else -1.0)
            features[FEATURE_INDEX["pinyin_certain"]] = out.pinyin_certain
            out.completions["ZH"] = self.chinese.ime(buffer, head, k)
            features[FEATURE_INDEX["pinyin_open"]] = 1.0
            features[FEATURE_INDEX["pinyin_after_cjk"]] = _after_chinese(head)
            features[FEATURE_INDEX["ime_candidates"]] = bool(out.completions["ZH"])
        elif ctx.rstrip() and _after_chinese(ctx):
            out.completions["ZH"] = self.chinese.next_words(ctx, k)
        if cls == "cjk":
            out.corrections["ZH"], p_typo = self.chinese.correct(ctx, k)
            features[FEATURE_INDEX["zh_p_typo"]] = p_typo

        out.completions["SYM"] = self.symbols.complete(ctx, k)
        out.completions["EMOJI"] = self.emoji.complete(ctx, k)
        out.completions["NUM"] = self.numbers.complete(ctx, k, reading.numbers)
        following = self.next_class.probs(ctx)
        for cls in ("symbol", "emoji", "digit"):
            features[FEATURE_INDEX[f"next_{cls}"]] = following[cls]
        if reading.has_text:
            features[FEATURE_INDEX["screen_read"]] = 1.0
            features[FEATURE_INDEX["screen_number"]] = min(1.0, max(reading.numbers.values(), default=0.0) / 5.0)
            features[FEATURE_INDEX["screen_code_near"]] = reading.code_near
            features[FEATURE_INDEX["screen_extends_typed"]] = bool(screen_words) or (
                cls == "digit" and any(c.source == "screen" for c in out.completions["NUM"]))
        if empty:
            out.reply_to = reading.reply_to
            features[FEATURE_INDEX["reply_open"]] = bool(reading.reply_to)
            out.suggestions["NUM"] = ranked_list({(n, "screen"): w for n, w in reading.numbers.items()}, k)
            for reply in self.replies.suggest(reading.reply_to, k) if reading.reply_to else ():
                lang = lang_of(reply.text)
                if lang != "NUM":  # a number to type is the screen's (above)
                    out.suggestions.setdefault(lang, []).append(reply)
        np.clip(features, 0.0, 1.0, out=features)
        return out

    def _pinyin_certain(self, head: str, buffer: str, cost: float) -> bool:
        """Is an open pinyin ``buffer`` surely one, so that the ZH layout shows whatever the router
        says? When, lowercase and not an English word, it follows a Chinese character, or it is
        made of whole syllables with no Latin text before it, no English word starting with it and
        none within one edit of it (``cost``: the best English correction's, -1 for none). On the
        training split of the demo's data the label was ZH for 120 of the 126 keystrokes it marks."""
        if not buffer.islower() or self.english.in_lexicon(buffer):
            return False
        if _after_chinese(head, no_letter=False):
            return True
        return (not any(c.isascii() and c.isalpha() for c in head) and self.chinese.whole_syllables(buffer)
                and not self.english.is_prefix(buffer) and not 0 <= cost < 0.9)

    def _pinyin_open(self, head: str, buffer: str) -> bool:
        """Is the lowercase word at the caret a pinyin composing string? Yes when it can be
        cut into syllables and follows Chinese text or nothing written in Latin letters, or
        when it is made of whole syllables and is not an English word."""
        if not self.chinese.is_buffer(buffer):
            return False
        if _after_chinese(head) or not any(c.isascii() and c.isalpha() for c in head[-16:]):
            return True
        return self.chinese.whole_syllables(buffer) and not self.english.in_lexicon(buffer)


def _after_chinese(head: str, no_letter: bool = True) -> bool:
    """Is the last letter before the caret (spaces, digits, symbols and emoji skipped) a Chinese
    character? ``no_letter`` is the answer when there is no letter at all."""
    for ch in reversed(head[-32:]):
        cls = char_class(ch)
        if cls in ("cjk", "latin"):
            return cls == "cjk"
    return no_letter


def _blend(completions: list[PriorCandidate], screen_words: dict[str, float], k: int) -> list[PriorCandidate]:
    """The lexicon's completions with the screen's words that extend the typed prefix mixed in
    (``SCREEN_WORD_SHARE`` of the mass), one entry per word."""
    total = sum(screen_words.values())
    weights: dict[tuple[str, str], float] = {}
    for c in completions:
        weights[(c.text, c.source)] = (1 - SCREEN_WORD_SHARE) * math.exp(c.logp)
    for text, w in screen_words.items():
        weights[(text, "screen")] = weights.get((text, "screen"), 0.0) + SCREEN_WORD_SHARE * w / total
    return ranked_list(weights, k)
