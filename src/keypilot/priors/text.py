"""Reading the typed text: character classes, the word at the caret, tokens, letter case.

Shared by the build (to cut the training texts into events) and by every query, so that
both see the text the same way. Stdlib only.
"""

from __future__ import annotations

import re
import unicodedata

from keypilot.labels import is_cjk, is_emoji

# Classes of the last character of the context (the feature vector one-hot uses this order).
CHAR_CLASSES: tuple[str, ...] = ("latin", "cjk", "digit", "emoji", "symbol", "space")

# A Latin word as a keyboard edits it: letters and apostrophes (straight or curly).
_LATIN_TAIL = re.compile(r"[A-Za-z][A-Za-z'’]*$")
# Dotted parts stay in the token (gmail.com, 2.5): a domain or a number is one word to type.
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’]*(?:\.[A-Za-z0-9]+)*|\S")
_EMAIL_TAIL = re.compile(r"@([A-Za-z0-9][A-Za-z0-9.\-]*)?$")
_PINYIN_TAIL = re.compile(r"[a-z][a-z']*$")
SENTENCE_END = frozenset(".!?。！？…")
# Unicode categories that never reach a lexicon: controls, format marks, surrogates, private use.
_BAD_CATEGORIES = frozenset(("Cc", "Cf", "Cs", "Co", "Cn"))
# An emoji sequence keeps its joiners and selectors (❤️‍🔥); other format characters are dropped.
_EMOJI_GLUE = frozenset("\u200d\ufe0f\u20e3")


def clean(text: str) -> str:
    """The text with control characters, lone surrogates and unassigned code points removed
    (emoji joiners and variation selectors kept): what every query reads."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(ch for ch in text if ch in _EMOJI_GLUE or ch in "\t\n " or
                   unicodedata.category(ch) not in _BAD_CATEGORIES)


def is_cjk_letter(ch: str) -> bool:
    """A Chinese character (not CJK punctuation, not a full-width digit or letter)."""
    return is_cjk(ch) and unicodedata.category(ch) == "Lo"


def char_class(ch: str) -> str:
    """Class of one character, one of ``CHAR_CLASSES``."""
    if ch.isspace():
        return "space"
    if is_cjk_letter(ch):
        return "cjk"
    if is_emoji(ch):
        return "emoji"
    if ch.isdigit():
        return "digit"
    if ch.isascii() and ch.isalpha() or ch.isalpha() and not is_cjk(ch):
        return "latin"
    return "symbol"


def last_char_class(text: str) -> str:
    """Class of the last character that is not an emoji joiner; ``""`` for empty text."""
    for ch in reversed(text):
        if ch not in _EMOJI_GLUE:
            return char_class(ch)
    return ""


def trailing_latin(text: str) -> tuple[str, str]:
    """(text before, Latin word at the caret): ``"I wan"`` -> ``("I ", "wan")``;
    ``"don'r"`` keeps its apostrophe. Empty when the text does not end inside a Latin word."""
    match = _LATIN_TAIL.search(text[-64:])
    if not match:
        return text, ""
    word = match.group()
    return text[: len(text) - len(word)], word


def trailing_domain(text: str) -> tuple[str, str] | None:
    """(text up to and including ``@``, domain typed after it) when the caret is in the domain
    of an e-mail address (``"bob@qq."`` -> ``("bob@", "qq.")``), else None."""
    match = _EMAIL_TAIL.search(text[-64:])
    if not match:
        return None
    domain = match.group(1) or ""
    return text[: len(text) - len(domain)], domain


def trailing_pinyin(text: str) -> tuple[str, str]:
    """(text before, lowercase letters at the caret) as a pinyin composing string could be."""
    match = _PINYIN_TAIL.search(text[-64:])
    if not match:
        return text, ""
    word = match.group().lstrip("'")
    return text[: len(text) - len(word)], word


def trailing_cjk(text: str, limit: int = 8) -> str:
    """The run of Chinese characters at the end of ``text`` (at most ``limit``)."""
    i = len(text)
    while i > 0 and len(text) - i < limit and is_cjk_letter(text[i - 1]):
        i -= 1
    return text[i:]


def tokens(text: str) -> list[str]:
    """Tokens of the English n-gram: lowercased Latin/digit words (apostrophes kept, curly
    ones straightened, dotted parts joined: ``gmail.com``) and every other non-space
    character on its own."""
    return [t.lower().replace("’", "'") for t in _TOKEN.findall(text)]


def sentence_start(text: str) -> bool:
    """Does the next word start a sentence (empty text, or after . ! ? and a space)?"""
    stripped = text.rstrip()
    return not stripped or (stripped[-1] in SENTENCE_END and len(stripped) < len(text))


def match_case(word: str, typed: str) -> str:
    """``word`` in the case the user is typing: ``"Bu"`` -> ``"But"``, ``"THA"`` -> ``"THANKS"``.

    A lowercase prefix keeps the word's own form (``"i'm"`` stays ``"I'm"`` if that is how the
    lexicon writes it).
    """
    if not typed:
        return word
    if len(typed) > 1 and typed.isupper():
        return word.upper()
    if typed[0].isupper() and word[:1].islower():
        return word[0].upper() + word[1:]
    return word


def display_form(word: str) -> str:
    """How a lowercase English lexicon word is written: the pronoun I and its contractions are
    capitalised, everything else as stored."""
    if word == "i" or word.startswith("i'") and len(word) <= 4:
        return "I" + word[1:]
    return word


def first_word_of_sentence(text: str) -> str:
    """Lowercased first Latin word of the sentence the caret is in (for question marks)."""
    start = 0
    for i in range(len(text) - 1, -1, -1):
        if text[i] in SENTENCE_END or text[i] == "\n":
            start = i + 1
            break
    match = re.search(r"[A-Za-z']+", text[start:])
    return match.group().lower() if match else ""
