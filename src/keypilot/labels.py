"""Label spaces of KeyPilot, in their fixed orders, and the language of a text.

Every tensor index for a task, a layout, a language class or an expert comes from here.
Layouts and language classes share one order (``LAYOUTS``); the MoE experts use the
seed's order (``EXPERTS``), which differs, so map between them with ``LAYOUT_TO_EXPERT``.
"""

from __future__ import annotations

import unicodedata

TASKS: tuple[str, ...] = ("error_correction", "auto_completion", "suggestion")
LAYOUTS: tuple[str, ...] = ("EN", "ZH", "SYM", "EMOJI", "NUM")
EXPERTS: tuple[str, ...] = ("EN", "ZH", "SYM", "NUM", "EMOJI")
ROI_KEYS: tuple[str, ...] = ("input_field", "chat_bubble", "keyboard", "title_bar")
# What an app declares about the focused field (like Android's EditorInfo input type).
INPUT_TYPES: tuple[str, ...] = ("text", "number", "phone", "email", "password", "url")

# The user action each task pseudo-label comes from (method.md, "Training").
ACTION_TO_TASK: dict[str, str] = {
    "backspace": "error_correction",
    "type": "auto_completion",
    "accept_suggestion": "suggestion",
}

TASK_INDEX = {name: i for i, name in enumerate(TASKS)}
LAYOUT_INDEX = {name: i for i, name in enumerate(LAYOUTS)}
EXPERT_INDEX = {name: i for i, name in enumerate(EXPERTS)}
# LAYOUT_TO_EXPERT[layout_id] = expert_id of the same language.
LAYOUT_TO_EXPERT: tuple[int, ...] = tuple(EXPERT_INDEX[name] for name in LAYOUTS)
EXPERT_TO_LAYOUT: tuple[int, ...] = tuple(LAYOUT_INDEX[name] for name in EXPERTS)


def is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF  # unified ideographs
        or 0x3400 <= cp <= 0x4DBF  # extension A
        or 0x20000 <= cp <= 0x2FA1F  # extensions B.. and compatibility supplement
        or 0xF900 <= cp <= 0xFAFF  # compatibility ideographs
        or 0x3000 <= cp <= 0x303F  # CJK punctuation (，。、)
        or 0xFF00 <= cp <= 0xFFEF  # full-width forms
    )


def is_emoji(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x1F000 <= cp <= 0x1FAFF  # pictographs, emoticons, transport, flags, symbols & pictographs ext.
        or 0x2600 <= cp <= 0x27BF  # misc symbols and dingbats (☀ ✨ ❤)
        or 0x2B00 <= cp <= 0x2BFF  # arrows/stars used as emoji (⭐ ⬆)
        or cp in (0x200D, 0xFE0F, 0x20E3, 0x00A9, 0x00AE, 0x203C, 0x2049, 0x2122, 0x2139, 0x3030, 0x303D)
        or 0xE0020 <= cp <= 0xE007F  # tag sequences (subdivision flags)
    )


def lang_of(text: str) -> str:
    """Language class of ``text`` in the layout label space: EN, ZH, SYM, EMOJI or NUM.

    Chinese characters win, then Latin letters, then emoji, then digits; text made only
    of punctuation and symbols is SYM. Empty text is EN (the default keyboard).
    """
    has_latin = has_emoji = has_digit = has_symbol = False
    for ch in text:
        if ch.isspace():
            continue
        if is_cjk(ch) and not (0xFF10 <= ord(ch) <= 0xFF19):  # full-width digits count as digits
            if ch.isalpha() or unicodedata.category(ch).startswith("L"):
                return "ZH"
            has_symbol = True  # CJK punctuation alone is a symbol
        elif is_emoji(ch):
            has_emoji = True
        elif ch.isdigit():
            has_digit = True
        elif ch.isalpha():
            has_latin = True
        else:
            has_symbol = True
    if has_latin:
        return "EN"
    if has_emoji:
        return "EMOJI"
    if has_digit:
        return "NUM"
    if has_symbol:
        return "SYM"
    return "EN"
