"""The screen-text channel's unit: one line of text read from (or drawn on) a screenshot.

Torch-free and dependency-free: the record format validates it, the generator writes it, the
recogniser (``keypilot.ocr``) returns it, and the priors turn it into copy candidates.
A record's optional ``screen_text`` field is a JSON list of ``{"text": str, "box": [x0, y0,
x1, y1]}`` with the box in pixels of the original image.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Longest line kept: a screen line is short; anything longer is a paragraph read as one line.
MAX_TEXT = 512
# Most lines kept per screen (a dense e-mail or feed); the rest are the least useful, farthest up.
MAX_LINES = 256


@dataclass(frozen=True)
class ScreenText:
    """One line of screen text and its box ``(x0, y0, x1, y1)`` in image pixels."""

    text: str
    box: tuple[float, float, float, float]

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "box": [round(v, 1) for v in self.box]}


def parse_screen_text(value: Any) -> tuple[list[ScreenText], list[str]]:
    """``(lines, problems)`` for a record's ``screen_text`` value; each problem names the entry.

    Boxes are checked for shape and order here; bounds against the image belong to the caller,
    which knows the image size.
    """
    if not isinstance(value, list):
        return [], [f"screen_text must be a list of {{text, box}} objects, got {type(value).__name__}"]
    lines: list[ScreenText] = []
    problems: list[str] = []
    for i, entry in enumerate(value):
        where = f"screen_text[{i}]"
        if not isinstance(entry, dict) or set(entry) - {"text", "box", "score"}:
            problems.append(f"{where} must be an object with keys text and box")
            continue
        text, box = entry.get("text"), entry.get("box")
        if not isinstance(text, str):
            problems.append(f"{where}.text must be a string")
            continue
        if (not isinstance(box, list) or len(box) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)):
            problems.append(f"{where}.box must be [x0, y0, x1, y1] numbers")
            continue
        if not (box[0] <= box[2] and box[1] <= box[3]):
            problems.append(f"{where}.box must have x0 <= x1 and y0 <= y1, got {box}")
            continue
        if text.strip():
            lines.append(ScreenText(text[:MAX_TEXT], tuple(float(v) for v in box)))
    return lines[:MAX_LINES], problems


def to_json(lines: Iterable[ScreenText]) -> list[dict[str, Any]]:
    """The record field's JSON value for ``lines``."""
    return [line.to_json() for line in lines]
