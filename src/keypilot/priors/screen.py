"""Copy candidates: what the text on the screen offers the focused field.

A keyboard that looks at the screen is worth having mainly for what is written there: the
one-time code in the SMS banner, the amount on the invoice, the phone or order number in the
last message, the name of the person you are answering. ``read_screen`` turns the lines of
``keypilot.screen_text`` (from the generator or the recogniser, ``keypilot.ocr``) into

- numbers with a weight from their shape (a code, an amount, a phone number...), their
  role on the screen and the words around them ("code", "验证码", "total"...);
- words (names and rare words) that a typed prefix may complete to;
- ``reply_to``: the last incoming message, which conditions the suggested reply;
- labelled fields: the text shown under a label such as "Email" or "手机号", so that the
  priors can tell what the field being typed in takes (``typed_field``).

Only geometry is used, no app knowledge, so the rules hold for screens never seen: the field
is near the lowest line read (the reader skips the keyboard), incoming chat lines hug the left
margin, the top strip holds notification banners and the title.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from keypilot.screen_text import ScreenText

TOP = 0.2  # the top strip (status bar, banner, title), as a share of the screen height
NEAR = 0.12  # "near the field": within this share of the screen height above it
INCOMING_LEFT = 0.12  # an incoming line starts within this share of the width from the left margin
INCOMING_RIGHT = 0.8  # ... and ends before this share of the width
CODE_WORDS = re.compile(r"code|otp|verif|pin\b|passcode|验证码|校验码|动态码|确认码|口令|码", re.I)
MONEY_WORDS = re.compile(r"[$€£¥￥]|total|amount|due|pay|balance|price|合计|金额|总计|实付|应付|付款|元", re.I)
PHONE_WORDS = re.compile(r"phone|tel|call|mobile|电话|手机|号码|联系", re.I)
# The label of an input field (the line right above it, or left of it on its row) says what it takes.
FIELD_LABELS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("email", re.compile(r"e-?mail|邮箱|电子邮件|邮件地址", re.I)),
    ("number", re.compile(r"phone|mobile|\btel\b|手机|电话|code|otp|验证码|amount|金额|card|卡号|zip|postal|邮编", re.I)),
)
FIELD_TEXT_MAX = 64  # a field shows a line of text: longer lines are messages, not fields
TOTAL_WORDS = re.compile(r"total|amount due|balance due|to pay|grand|合计|总计|实付|应付|总额|共计", re.I)
# A number: digits with inner punctuation, glued to letters or not (a recogniser often loses the
# space in "2858 is your code"); a phone number written in spaced groups is one number too.
_NUMBER = re.compile(r"\+?\d(?:[\d.,:\-/]*\d)?")
_SPACED = re.compile(r"(?<![\d])\+?\d{2,4}(?:[ \-]\d{3,4}){2,3}(?![\d])")
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]{3,}")
_CLOCK = re.compile(r"^\d{1,2}:\d{2}$")
_DATE = re.compile(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}$")


@dataclass
class ScreenReading:
    """What the priors take from one screen's text."""

    numbers: dict[str, float] = field(default_factory=dict)  # number as typed -> weight
    words: dict[str, float] = field(default_factory=dict)  # word -> weight
    reply_to: str = ""  # the last incoming message ("" when none is recognised)
    has_text: bool = False
    code_near: bool = False  # a code-like number sits beside a code word, or near the field
    fields: list[tuple[str, str]] = field(default_factory=list)  # (text shown in a labelled field, its kind)


def normalise_number(text: str) -> str:
    """A number as a keyboard would type it: spaces and dashes inside phone numbers and codes
    dropped ("138 1234 5678" -> "13812345678"); decimals, times and dates kept."""
    text = text.strip().rstrip(".,:/-")
    if _DATE.match(text) or _CLOCK.match(text):
        return text
    return re.sub(r"(?<=\d)[ \-](?=\d)", "", text)


def field_kind(label: str) -> str:
    """What a field labelled ``label`` takes (``FIELD_LABELS``), or "" for a label of another kind."""
    return next((kind for kind, words in FIELD_LABELS if words.search(label)), "")


def _labelled(lines: Sequence[ScreenText], i: int, width: float) -> str:
    """The kind of field that line ``i`` is the text of, from a label right above it (left-aligned
    with it, within about a line) or left of it on the same row; "" when none."""
    x0, y0, _, y1 = lines[i].box
    for j in range(i - 1, max(-1, i - 3), -1):
        label = lines[j]
        lx0, ly0, lx1, ly1 = label.box
        above = 0 <= y0 - ly1 <= 1.6 * (ly1 - ly0) and abs(lx0 - x0) <= 0.1 * width
        beside = lx1 <= x0 and min(y1, ly1) - max(y0, ly0) >= 0.5 * min(y1 - y0, ly1 - ly0)
        if above or beside:
            return field_kind(label.text)
    return ""


def typed_field(reading: ScreenReading, text: str) -> str:
    """The kind of the labelled field (``ScreenReading.fields``) that shows ``text``: its shown
    text is the end of ``text``, or the start of the word being typed (a screenshot taken a few
    keystrokes ago), allowing for recognition errors. "" when no labelled field shows it."""
    typed = text.strip()
    word = typed.split()[-1] if typed else ""
    for shown, kind in reading.fields:
        shown = shown.strip().lower()
        if len(shown) < 2 or len(typed) < 2:
            continue
        for part in (typed[-len(shown):], word[: len(shown)]):
            if len(part) == len(shown) and SequenceMatcher(None, shown, part.lower()).ratio() >= 0.75:
                return kind
    return ""


def _same_row(lines: Sequence[ScreenText], i: int) -> str:
    """The text of the lines on the same row as line ``i`` (a label left, its value right)."""
    y0, y1 = lines[i].box[1], lines[i].box[3]
    row = [line.text for line in lines
           if min(y1, line.box[3]) - max(y0, line.box[1]) >= 0.5 * min(y1 - y0, line.box[3] - line.box[1])]
    return " ".join(row)


# Prior weight of a number on the screen by its kind: how likely it is typed into a field.
KIND_WEIGHT = {"code": 2.5, "amount": 2.0, "phone": 2.0, "number": 1.0, "short": 0.3, "clock": 0.1, "masked": 0.05}


def number_kind(number: str, raw: str, before: str) -> str:
    """What a number on the screen is, from its typed form, its written form and the character
    before it: a code, an amount, a phone number, a clock time or date, a masked tail
    ("662****0923"), or another number."""
    if before.endswith(("*", "•", "●")):
        return "masked"
    if _CLOCK.match(number) or _DATE.match(number) or raw.endswith("%"):
        return "clock"
    if re.fullmatch(r"\d+[.,]\d{2}", number):
        return "amount"
    digits = sum(c.isdigit() for c in number)
    if digits >= 7 and (number.startswith("+") or before.endswith("(") or any(c in raw for c in " -")):
        return "phone"
    if re.fullmatch(r"\+?\d{10,13}", number):
        return "phone"
    if re.fullmatch(r"\d{4,8}", number):
        return "code"
    return "number" if digits >= 3 else "short"


def numbers_in(text: str) -> list[tuple[str, str]]:
    """The numbers of one line of screen text as a keyboard would type them, with their kind."""
    spaced = list(_SPACED.finditer(text))
    inside = lambda m: any(s.start() <= m.start() and m.end() <= s.end() for s in spaced)  # noqa: E731
    matches = spaced + [m for m in _NUMBER.finditer(text) if not inside(m)]
    found: dict[str, str] = {}
    for m in matches:
        number = normalise_number(m.group())
        if number and number[-1].isdigit() and number not in found:
            found[number] = number_kind(number, m.group(), text[max(0, m.start() - 2) : m.start()])
    return list(found.items())


def read_screen(lines: Sequence[ScreenText] | None, size: tuple[int, int] | None = None) -> ScreenReading:
    """The numbers, words and last incoming message of a screen's text lines (any order).

    ``size``: the screenshot's ``(width, height)``; without it the screen is assumed to span
    the text with equal margins left and right.
    """
    out = ScreenReading()
    lines = [line for line in lines or () if line.text.strip()]
    if not lines:
        return out
    out.has_text = True
    lines.sort(key=lambda line: (line.box[1] + line.box[3]) / 2)
    left = min(line.box[0] for line in lines)
    width = float(size[0]) if size else max(max(line.box[2] for line in lines) + left, 1.0)
    height = float(size[1]) if size else max(max(line.box[3] for line in lines), 1.0)
    left = min(left, 0.06 * width)  # the margin of a screen whose text all sits further in
    field_y = lines[-1].box[1]  # the field (its text or placeholder) is the lowest line read

    incoming: list[list[ScreenText]] = []
    for i, line in enumerate(lines):
        x0, y0, x1, y1 = line.box
        top = y1 <= TOP * height
        near = 0 <= field_y - y0 <= NEAR * height
        is_incoming = (not top and i < len(lines) - 1 and x0 - left <= INCOMING_LEFT * width
                       and x1 <= INCOMING_RIGHT * width)
        if is_incoming:
            # A wrapped bubble is several lines one below the other: group them.
            if incoming and incoming[-1][-1] is lines[i - 1] and y0 - incoming[-1][-1].box[3] < 0.6 * (y1 - y0):
                incoming[-1].append(line)
            else:
                incoming.append([line])
        around = " ".join(lines[j].text for j in range(max(0, i - 1), min(len(lines), i + 2)))
        role = 2.0 if near else 1.5 if (top or is_incoming) else 1.0
        for number, kind in numbers_in(line.text):
            weight = KIND_WEIGHT[kind] * role
            if kind == "code" and CODE_WORDS.search(around):
                weight *= 4.0
                out.code_near = True
            elif kind == "amount" and MONEY_WORDS.search(around):
                # The row is looked at only here: scanning every line's row costs n^2 per keystroke.
                weight *= 4.0 if TOTAL_WORDS.search(_same_row(lines, i)) else 2.0
            elif kind == "phone" and PHONE_WORDS.search(around):
                weight *= 2.0
            if near and kind == "code":
                out.code_near = True
            out.numbers[number] = out.numbers.get(number, 0.0) + weight
        for word in _WORD.findall(line.text):
            out.words[word] = out.words.get(word, 0.0) + role
        kind = _labelled(lines, i, width) if i and len(line.text) <= FIELD_TEXT_MAX else ""
        if kind:
            out.fields.append((line.text, kind))
    if incoming:
        out.reply_to = " ".join(line.text.strip() for line in incoming[-1])
    return out


def extends(typed: str, candidates: dict[str, float]) -> dict[str, float]:
    """The candidates that extend the typed text (case-insensitive for words), with weights."""
    low = typed.lower()
    return {text: w for text, w in candidates.items() if text.lower().startswith(low) and len(text) > len(typed)}
