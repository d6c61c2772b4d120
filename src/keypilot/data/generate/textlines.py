"""The lines of text a renderer put on the screen, with their boxes: the ground truth of a
record's ``screen_text`` before recognition noise (``ocr_noise``) is added.

The Pillow renderer collects them as it draws (``draw_text`` reports to the :class:`TextLayer`
attached to its ``ImageDraw``); whatever is painted over later (status and title bars,
the notification banner, the keyboard) takes the lines under it away again. The HTML renderer
reads them from the DOM and joins the pieces of one visual line with :func:`join_pieces`.

What a line keeps is what a recogniser could return: emoji and variation selectors are
stripped, and a line with no letter, digit, CJK character or password dot (an icon, an arrow,
a lone ``+``) is not a line. The keyboard area is never read (it is the keyboard's own
drawing, not the app's), so both renderers leave key labels and the candidate bar out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from keypilot.labels import is_emoji
from keypilot.screen_text import ScreenText

Box = tuple[float, float, float, float]
MASK_DOT = "•"
# A line under an opaque element loses itself when more than this share of its box is covered.
COVERED = 0.4
# A line cut by the edge of its viewport (scrolled content, a cropped screenshot) is kept,
# clipped, when at least this share of its height stays visible.
VISIBLE = 0.6
_SPACES = re.compile(r"\s+")


def readable(text: str) -> str:
    """What a recogniser can read in ``text``: emoji gone, spaces collapsed; ``""`` for none."""
    text = _SPACES.sub(" ", "".join(ch for ch in text if not is_emoji(ch))).strip()
    return text if any(ch.isalnum() or ch == MASK_DOT for ch in text) else ""


def _overlap(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(0.0, w) * max(0.0, h)


def clip_line(line: ScreenText, clip: Box) -> ScreenText | None:
    """``line`` cut to ``clip``, or ``None`` when too little of its height (or none of its width) is left."""
    x0, y0, x1, y1 = line.box
    cx0, cy0, cx1, cy1 = max(x0, clip[0]), max(y0, clip[1]), min(x1, clip[2]), min(y1, clip[3])
    if cx1 - cx0 < 1 or cy1 - cy0 < VISIBLE * (y1 - y0):
        return None
    return ScreenText(line.text, (cx0, cy0, cx1, cy1))


class TextLayer:
    """The readable lines drawn so far on one canvas, in drawing order."""

    def __init__(self) -> None:
        self.lines: list[ScreenText] = []

    def attach(self, draw: object) -> object:
        """Make ``draw_text`` on ``draw`` (an ``ImageDraw``) report its lines here; returns ``draw``."""
        draw.kp_text_layer = self  # type: ignore[attr-defined]
        return draw

    def add(self, text: str, box: Box) -> None:
        text = readable(text)
        if text and box[2] > box[0] and box[3] > box[1]:
            self.lines.append(ScreenText(text, box))

    def cover(self, rect: Box, upto: int | None = None) -> None:
        """An opaque ``rect`` was painted: lines drawn before index ``upto`` (all: None) under it go."""
        upto = len(self.lines) if upto is None else upto
        kept = [line for line in self.lines[:upto]
                if _overlap(line.box, rect) <= COVERED * (line.box[2] - line.box[0]) * (line.box[3] - line.box[1])]
        self.lines = kept + self.lines[upto:]

    def paste(self, other: TextLayer, dx: float, dy: float, clip: Box) -> None:
        """``other``'s canvas was pasted shifted by ``(dx, dy)`` and cut to ``clip``."""
        for line in other.lines:
            b = line.box
            moved = clip_line(ScreenText(line.text, (b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy)), clip)
            if moved is not None:
                self.lines.append(moved)


def join_pieces(pieces: Iterable[tuple[str, Box]]) -> list[ScreenText]:
    """Pieces of text (DOM text nodes cut per line box) joined into visual lines.

    Two pieces are one line when they share most of their height and the gap between them is
    under a character's width or so: a recogniser's detector merges them the same way.
    """
    lines: list[list] = []  # [text, x0, y0, x1, y1]
    for text, (x0, y0, x1, y1) in sorted(pieces, key=lambda p: (round((p[1][1] + p[1][3]) / 2), p[1][0])):
        h = y1 - y0
        for cur in lines:
            shared = min(cur[4], y1) - max(cur[2], y0)
            gap = x0 - cur[3]
            if shared > 0.5 * min(h, cur[4] - cur[2]) and -0.3 * h <= gap <= 0.6 * h:
                cur[0] += text if gap < 0.15 * h or cur[0].endswith(" ") or text.startswith(" ") else " " + text
                cur[1], cur[2], cur[3], cur[4] = min(cur[1], x0), min(cur[2], y0), max(cur[3], x1), max(cur[4], y1)
                break
        else:
            lines.append([text, x0, y0, x1, y1])
    out = []
    for text, x0, y0, x1, y1 in lines:
        text = readable(text)
        if text:
            out.append(ScreenText(text, (x0, y0, x1, y1)))
    return out


def reading_order(lines: Iterable[ScreenText]) -> list[ScreenText]:
    """Top to bottom, then left to right, as recognisers list what they read."""
    return sorted(lines, key=lambda t: (round((t.box[1] + t.box[3]) / 2 / 4), t.box[0]))
