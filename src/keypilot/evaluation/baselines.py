"""Baselines that the model is compared with, behind one interface.

Every baseline answers a record with a :class:`BaselineOutput` (any field may be ``None``
where the baseline has no opinion) so that the report can score them side by side with the
same metric code as the model. They read only what the model reads as text (``context``,
``prev_layout``, ``user_id``), never the labels of the record being predicted.

- :class:`SymSpellBaseline`: English error correction with SymSpell's bundled frequency
  dictionary, re-ranked by the bundled bigram counts given the previous word.
- :class:`NgramBaseline`: word n-gram (stupid backoff, up to trigrams) fitted on the training
  split, with prefix filtering for mid-word completion and pinyin-prefix filtering for a
  Chinese composing buffer; also the most common suggestion for the previous layout.
- :class:`KeepLayoutBaseline`: the keyboard keeps the previous layout.
- :class:`TextRuleBaseline`: layout from the language of the last typed chunk and task from
  the priority rule applied to text alone (empty -> suggestion, unknown last word -> correction).
- :class:`PriorsAloneBaseline`: the run's priors without the network ("priors alone").

The model with a blank screen (text-only ablation) is not here: it is the predictor fed a
black image, run by :mod:`keypilot.evaluation.evaluate`.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from keypilot.labels import is_cjk, lang_of

NUM_CANDIDATES = 5
# Stupid-backoff discount per order dropped (Brants et al., 2007).
BACKOFF = 0.4

_LATIN_WORD = re.compile(r"[A-Za-z0-9']+")
_WORD_TAIL = re.compile(r"[A-Za-z0-9']+$")


@dataclass
class BaselineOutput:
    """One baseline's answer for one record; ``None`` = this baseline does not predict it."""

    task: str | None = None
    corrections: list[str] | None = None
    completions: list[str] | None = None
    suggestion: str | None = None
    layout: str | None = None


class Baseline(Protocol):
    """What the report needs from a baseline."""

    name: str

    def fit(self, records: Sequence[Any]) -> None:
        """Learn from training records (may do nothing)."""

    def predict(self, record: Any) -> BaselineOutput:
        """Answer one record using only its inputs."""


def split_context(context: str) -> tuple[str, str]:
    """Split C_t into (committed text, word being typed).

    The word being typed is the trailing run of Latin letters, digits and apostrophes (a
    pinyin composing string after Chinese text is one: ``"我们明天jian"`` ->
    ``("我们明天", "jian")``); after a space, Chinese text, punctuation or an emoji it is empty.
    """
    match = _WORD_TAIL.search(context)
    if not match:
        return context, ""
    return context[: match.start()], match.group()


def history_tokens(text: str) -> list[str]:
    """Tokens an n-gram conditions on: lowercased Latin words, single CJK characters.

    Chinese is not segmented: the previous one or two characters are a usable history for
    the word that follows, and segmentation would add a dependency to a baseline.
    """
    tokens: list[str] = []
    for chunk in re.findall(r"[A-Za-z0-9']+|\S", text):
        tokens.append(chunk.lower() if _LATIN_WORD.fullmatch(chunk) else chunk)
    return tokens


def is_pinyin_buffer(context: str) -> bool:
    """A lowercase Latin word typed right after Chinese text is a pinyin composing string."""
    head, partial = split_context(context)
    return partial.isalpha() and partial.islower() and bool(head) and is_cjk(head[-1])


@functools.lru_cache(maxsize=4096)
def _pinyin_of(word: str) -> str:
    from pypinyin import lazy_pinyin

    return "".join(lazy_pinyin(word))


def _matches_prefix(candidate: str, partial: str) -> bool:
    """Does ``candidate`` complete the word being typed (its Latin prefix, or for a Chinese
    candidate the pinyin the user has started)?"""
    if not partial or candidate.lower().startswith(partial.lower()):
        return True
    return partial.isascii() and partial.isalpha() and lang_of(candidate) == "ZH" and \
        _pinyin_of(candidate).startswith(partial.lower())


@functools.lru_cache(maxsize=1)
def _symspell() -> Any:
    """SymSpell with the bundled English unigram and bigram dictionaries (loads once, ~5 s)."""
    from symspellpy import SymSpell

    data = importlib.resources.files("symspellpy")
    sym = SymSpell(max_dictionary_edit_distance=2, prefix_length=7)
    sym.load_dictionary(str(data / "frequency_dictionary_en_82_765.txt"), term_index=0, count_index=1)
    sym.load_bigram_dictionary(str(data / "frequency_bigramdictionary_en_243_342.txt"), term_index=0, count_index=2)
    return sym


def last_word(context: str) -> tuple[str, str]:
    """(text before the last word, last word): the white-space separated word at the end."""
    stripped = context.rstrip()
    match = re.search(r"\S+$", stripped)
    if not match:
        return context, ""
    return stripped[: match.start()], match.group()


def correction_base(context: str, correction: str) -> str:
    """The text a correction is appended to: the context without its wrong last word.

    Chinese is not separated by spaces, so after Chinese text the wrong span is taken to be as
    long as the correction (a homophone typo keeps the length: 小新 -> 小心).
    """
    stripped = context.rstrip()
    if stripped and is_cjk(stripped[-1]) and lang_of(correction) == "ZH":
        return stripped[: max(0, len(stripped) - len(correction))]
    return last_word(context)[0]


def completion_base(context: str, completion: str) -> str:
    """The text a completion is appended to: without the word being typed when the completion
    finishes it (Latin prefix or pinyin buffer), else the whole context (a next word/symbol)."""
    committed, partial = split_context(context)
    return committed if partial and _matches_prefix(completion, partial) else context


class SymSpellBaseline:
    """English error correction: top-5 SymSpell candidates for the last word.

    Candidates are ordered by edit distance, then by the bigram count with the previous
    word, then by unigram frequency; a word that is already in the dictionary is offered
    first as-is (distance 0). Non-Latin words get no candidates.
    """

    name = "SymSpell"

    def fit(self, records: Sequence[Any]) -> None:
        _symspell()  # load now so that the first prediction is not the slow one

    def correct(self, context: str, k: int = NUM_CANDIDATES) -> list[str]:
        from symspellpy import Verbosity

        head, word = last_word(context)
        core = word.strip(".,!?;:\"()")
        if not core or not _LATIN_WORD.fullmatch(core) or core.isdigit():
            return []
        sym = _symspell()
        prev = history_tokens(head)[-1:] or [""]
        found = sym.lookup(core.lower(), Verbosity.ALL, max_edit_distance=2)

        def rank(item: Any) -> tuple[int, int, int]:
            return (item.distance, -sym.bigrams.get(f"{prev[0]} {item.term.lower()}", 0), -item.count)

        return [_match_case(item.term, core) for item in sorted(found, key=rank)[:k]]

    def is_known(self, word: str) -> bool:
        return word.lower() in _symspell().words

    def predict(self, record: Any) -> BaselineOutput:
        return BaselineOutput(corrections=self.correct(record.context))


class NgramBaseline:
    """Word n-gram completion (stupid backoff, orders 1-3) fitted on the training split.

    Training sequences are the committed context tokens followed by the target as one item
    (a Chinese target stays one multi-character word). At prediction the candidates that
    follow the last two, then one, then zero history tokens are scored
    ``count / history_count * 0.4^(orders dropped)`` and filtered by the word being typed
    (its Latin prefix or, for a pinyin buffer, the pinyin prefix of the candidate). When
    nothing matches an English prefix, SymSpell's frequency dictionary supplies words.
    """

    name = "n-gram"

    def __init__(self, order: int = 3) -> None:
        self.order = order
        self.counts: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
        self.suggestions: dict[str, Counter[str]] = defaultdict(Counter)

    def _add_sequence(self, tokens: list[str]) -> None:
        for i, token in enumerate(tokens):
            for n in range(self.order):
                if i - n < 0:
                    break
                self.counts[tuple(tokens[i - n : i])][token] += 1

    def fit(self, records: Sequence[Any]) -> None:
        for record in records:
            if record.task == "suggestion":
                self.suggestions[record.prev_layout or "EN"][record.target] += 1
                self.suggestions["*"][record.target] += 1
                self._add_sequence(history_tokens(record.target))
                continue
            target = record.target.strip()
            committed = (correction_base(record.context, target) if record.task == "error_correction"
                         else completion_base(record.context, target))
            item = target if lang_of(target) == "ZH" or " " not in target else target.split()[0]
            self._add_sequence(history_tokens(committed) + [item.lower() if _LATIN_WORD.fullmatch(item) else item])

    def complete(self, context: str, k: int = NUM_CANDIDATES) -> list[str]:
        committed, partial = split_context(context)
        ranked = self._ranked(tuple(history_tokens(committed)), partial, k)
        if len(ranked) < k and partial:
            # Some dictionary words for a Latin prefix, then what follows the whole context
            # (the partial may be a finished token: "Lee700" -> "?").
            if not is_pinyin_buffer(context):
                ranked += [w for w in _dictionary_completions(partial.lower(), k) if w not in ranked]
            ranked += [w for w in self._ranked(tuple(history_tokens(context)), "", k) if w not in ranked]
        return [_match_case(word, partial) for word in ranked[:k]]

    def _ranked(self, history: tuple[str, ...], partial: str, k: int) -> list[str]:
        """Top ``k`` followers of ``history`` matching ``partial``, by stupid-backoff score."""
        scores: dict[str, float] = {}
        for n in range(self.order - 1, -1, -1):
            key = history[len(history) - n :] if n else ()
            if n > len(history) or key not in self.counts:
                continue
            followers = self.counts[key]
            total = sum(followers.values())
            weight = BACKOFF ** (self.order - 1 - n)
            for word, count in followers.items():
                if word not in scores and _matches_prefix(word, partial):
                    scores[word] = weight * count / total
        return sorted(scores, key=lambda w: -scores[w])[:k]

    def suggest(self, prev_layout: str | None) -> str | None:
        table = self.suggestions.get(prev_layout or "EN") or self.suggestions.get("*")
        return table.most_common(1)[0][0] if table else None

    def predict(self, record: Any) -> BaselineOutput:
        return BaselineOutput(completions=self.complete(record.context), suggestion=self.suggest(record.prev_layout))


@functools.lru_cache(maxsize=1024)
def _dictionary_completions(prefix: str, k: int) -> list[str]:
    words = _symspell().words
    return sorted((w for w in words if w.startswith(prefix)), key=lambda w: -words[w])[:k]


def _match_case(word: str, partial: str) -> str:
    """Capitalise a completion when the user started the word with a capital."""
    if partial[:1].isupper() and word[:1].islower():
        return word[:1].upper() + word[1:]
    return word


class KeepLayoutBaseline:
    """The keyboard never switches by itself: next layout = previous layout."""

    name = "keep previous layout"

    def fit(self, records: Sequence[Any]) -> None:
        """Nothing to learn."""

    def predict(self, record: Any) -> BaselineOutput:
        return BaselineOutput(layout=record.prev_layout or "EN")


class TextRuleBaseline:
    """Layout and task from the typed text alone.

    Layout: the language of the last typed chunk (a pinyin buffer or Chinese text -> ZH,
    digits -> NUM, emoji -> EMOJI, punctuation -> SYM, Latin -> EN); an empty field keeps
    the previous layout. Task: empty field -> suggestion; a last word SymSpell does not
    know, unless it is a prefix still being typed -> correction; otherwise completion.
    """

    name = "text rule"

    def __init__(self) -> None:
        self._speller = SymSpellBaseline()

    def fit(self, records: Sequence[Any]) -> None:
        self._speller.fit(records)

    def layout(self, context: str, prev_layout: str | None) -> str:
        if not context.strip():
            return prev_layout or "EN"
        if is_pinyin_buffer(context):
            return "ZH"
        return lang_of(context.split()[-1])

    def task(self, context: str) -> str:
        if not context.strip():
            return "suggestion"
        _, word = last_word(context)
        core = word.strip(".,!?;:\"()")
        if not _LATIN_WORD.fullmatch(core) or core.isdigit() or self._speller.is_known(core):
            return "auto_completion"
        # An unknown word is still being typed if some dictionary word starts with it.
        if context[-1].isspace() or not _dictionary_completions(core.lower(), 1):
            return "error_correction"
        return "auto_completion"

    def predict(self, record: Any) -> BaselineOutput:
        return BaselineOutput(task=self.task(record.context), layout=self.layout(record.context, record.prev_layout))


class PriorsAloneBaseline:
    """The keyboard without its network: the run's priors (``keypilot.priors``) answer alone.

    Task and layout come from the text rule (``TextRuleBaseline``); corrections and
    completions are the priors' lists for that layout's language, in the priors' order (with the
    record's ``screen_text`` when it has one); on an empty field the suggestion is the priors'
    first copy candidate from the screen, else their first completion. Comparing the model with this
    row shows what the network itself adds to the priors it is fused with.
    """

    name = "priors alone"

    def __init__(self, priors: Any) -> None:
        self.priors = priors
        self._rule = TextRuleBaseline()

    def fit(self, records: Sequence[Any]) -> None:
        self._rule.fit(records)  # the priors themselves were built from the training split

    def predict(self, record: Any) -> BaselineOutput:
        proposal = self.priors.propose(record.context, screen=getattr(record, "screen_text", None))
        layout = self._rule.layout(record.context, record.prev_layout)
        corrections = [c.text for c in proposal.corrections.get(layout, [])][:NUM_CANDIDATES]
        completions = [c.text for c in proposal.completions.get(layout, [])][:NUM_CANDIDATES]
        # On an empty field the priors' best guess is their first copy from the screen for that
        # layout, else their first completion ("" when they have neither).
        copies = [c.text for c in proposal.suggestions.get(layout, [])]
        suggestion = (copies[:1] or completions[:1] or [""])[0] if not record.context.strip() else None
        return BaselineOutput(task=self._rule.task(record.context), corrections=corrections, completions=completions,
                              suggestion=suggestion, layout=layout)


def default_baselines(priors: Any = None) -> list[Baseline]:
    """The baselines the report runs beside the model, in table order ("priors alone" first,
    when the run has priors)."""
    alone: list[Baseline] = [PriorsAloneBaseline(priors)] if priors is not None else []
    return alone + [SymSpellBaseline(), NgramBaseline(), KeepLayoutBaseline(), TextRuleBaseline()]


def fit_all(baselines: Iterable[Baseline], train_records: Sequence[Any]) -> None:
    for baseline in baselines:
        baseline.fit(train_records)
