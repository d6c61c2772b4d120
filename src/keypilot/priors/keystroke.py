"""What the priors answer at one keystroke: candidate lists per language and router features."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PRIORS_DIR = "priors"  # the sub-folder of a run folder that holds the priors

# The router features, in vector order. Every value lies in [0, 1].
FEATURE_NAMES: tuple[str, ...] = (
    "field_empty",            # 1: nothing but white space typed
    "last_latin",             # one-hot class of the last character: Latin letter,
    "last_cjk",               #   Chinese character,
    "last_digit",             #   digit,
    "last_emoji",             #   emoji,
    "last_symbol",            #   punctuation or other symbol,
    "last_space",             #   white space (all six are 0 for an empty field)
    "word_in_lexicon",        # the Latin word at the caret is an English lexicon word
    "word_is_prefix",         # it is the start of a longer lexicon word
    "correction_cost",        # best English correction's edit cost / 3 (1: no word within reach)
    "p_typo",                 # posterior that the Latin word at the caret is mistyped
    "correction_confidence",  # share of the top English correction in its list
    "pinyin_open",            # a pinyin composing string is open at the caret
    "pinyin_after_cjk",       # ... and it follows Chinese text (or starts the field)
    "ime_candidates",         # the pinyin IME has candidates for it
    "zh_p_typo",              # posterior that the Chinese characters at the caret are a homophone typo
    "screen_read",            # the screen's text was read (the screen-text channel is on)
    "screen_number",          # a number worth typing (code, amount, phone) is on the screen
    "screen_code_near",       # a code-like number sits beside a code word or near the field
    "screen_extends_typed",   # the typed digits or word are the start of something on the screen
    "reply_open",             # the field is empty and there is an incoming message to answer
    "next_symbol",            # P(the next character typed is a symbol | the text), from the training texts
    "next_emoji",             # ... an emoji
    "next_digit",             # ... a digit
    "field_email",            # the field being typed in is labelled e-mail on the screen
    "field_number",           # ... labelled phone, code, amount, card or postal number
    "pinyin_certain",         # the Latin letters at the caret can only be a pinyin buffer (pinyin_certain)
)
NUM_FEATURES = len(FEATURE_NAMES)
FEATURE_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}


@dataclass(frozen=True)
class PriorCandidate:
    """One candidate of a prior list.

    ``text`` is what the keyboard would insert (the corrected span for a correction, the whole
    word for a completion), in the case the user is typing; ``logp`` its prior log-probability,
    normalised over its list (the ``exp`` of a list sums to at most 1); ``source`` the knowledge
    it came from: ``edit``, ``lexicon``, ``ngram``, ``pinyin``, ``homophone``, ``emoji``,
    ``symbol``, ``number`` or ``screen``.
    """

    text: str
    logp: float
    source: str


@dataclass
class KeystrokePriors:
    """The priors at one keystroke. Keys of ``corrections`` / ``completions`` are language
    classes of ``keypilot.labels.LAYOUTS``; a missing key or an empty list means the prior has
    nothing for that language. Lists are best first."""

    corrections: dict[str, list[PriorCandidate]] = field(default_factory=dict)
    completions: dict[str, list[PriorCandidate]] = field(default_factory=dict)
    suggestions: dict[str, list[PriorCandidate]] = field(default_factory=dict)  # empty field: copy candidates
    features: np.ndarray = field(default_factory=lambda: np.zeros(NUM_FEATURES, np.float32))
    pinyin_buffer: str = ""
    pinyin_certain: bool = False  # the buffer follows Chinese text or cannot be English: the ZH layout shows
    reply_to: str = ""  # the last incoming message on the screen (conditions the suggested reply)

    def feature(self, name: str) -> float:
        return float(self.features[FEATURE_INDEX[name]])
