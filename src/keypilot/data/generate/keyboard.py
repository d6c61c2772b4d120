"""On-screen keyboards: QWERTY (EN), pinyin QWERTY with a candidate bar (ZH), symbols (SYM),
an emoji grid (EMOJI) and a phone number pad (NUM).

The key area depends only on (layout, size, theme, look), so it is drawn once per process
and pasted; the candidate bar, which shows the pinyin buffer, is drawn per screenshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw

from keypilot.data.generate.corpus import REACTIONS
from keypilot.data.generate.fonts import draw_text, text_width

Color = tuple[int, int, int]


@dataclass(frozen=True)
class KeyboardLook:
    dark: bool
    family: str
    rounded: int  # key corner radius
    flat: bool  # Gboard-like flat keys vs iOS-like keys with a shadow
    tint: int  # small shift of the panel grey so not every keyboard is the same colour

    def colors(self) -> tuple[Color, Color, Color, Color]:
        """(panel, letter key, function key, label)."""
        t = self.tint
        if self.dark:
            return (30 + t, 30 + t, 32 + t), (70 + t, 70 + t, 72 + t), (48 + t, 48 + t, 50 + t), (235, 235, 235)
        return (210 - t, 213 - t, 219 - t), (255, 255, 255), (172 - t, 177 - t, 187 - t), (20, 20, 20)


_ROWS = {
    "EN": ["qwertyuiop", "asdfghjkl", "zxcvbnm"],
    "ZH": ["qwertyuiop", "asdfghjkl", "zxcvbnm"],
    "SYM": ["1234567890", "-/:;()$&@\"", ".,?!'"],
}
_BOTTOM = {
    "EN": ["123", "🌐", "space", ".", "return"],
    "ZH": ["123", "中/英", "空格", "。", "换行"],
    "SYM": ["ABC", "🌐", "space", "#+=", "return"],
}
_NUMPAD = [("1", ""), ("2", "ABC"), ("3", "DEF"), ("4", "GHI"), ("5", "JKL"), ("6", "MNO"),
           ("7", "PQRS"), ("8", "TUV"), ("9", "WXYZ"), ("+*#", ""), ("0", "+"), ("⌫", "")]
_EMOJI_GRID = REACTIONS + tuple("😀 😃 😄 😆 😉 😋 😜 🤪 😇 🙂 🙃 😌 😏 😒 😞 😤 😡 😱 😳 🤯 🥲 😬 🤫 🤭 🐶 🐱 🌸 🍕 🍔 ☕ 🍺 ⚽ 🚗 ✈️ 🏠 💼 📱 💡 🎁 🎂".split())


def _key(d: ImageDraw.ImageDraw, box: tuple[float, float, float, float], fill: Color, look: KeyboardLook) -> None:
    x0, y0, x1, y1 = box
    if not look.flat:
        shadow = (10, 10, 10) if look.dark else (137, 139, 144)
        d.rounded_rectangle((x0, y0 + 1, x1, y1 + 1), look.rounded, fill=shadow)
    d.rounded_rectangle(box, look.rounded, fill=fill)


def _label(d: ImageDraw.ImageDraw, box: tuple[float, float, float, float], text: str, size: int, color: Color, family: str) -> None:
    x0, y0, x1, y1 = box
    w = text_width(text, size, family)
    draw_text(d, ((x0 + x1 - w) / 2, (y0 + y1) / 2 - size * 0.62), text, size, color, family)


@lru_cache(maxsize=256)
def key_area(layout: str, width: int, height: int, look: KeyboardLook) -> Image.Image:
    """The keys of ``layout`` filling ``width`` x ``height`` (no candidate bar)."""
    panel, letter, func, ink = look.colors()
    img = Image.new("RGB", (width, height), panel)
    d = ImageDraw.Draw(img)
    pad = max(3, width // 110)
    if layout == "NUM":
        _numpad(d, width, height, pad, look)
        return img
    if layout == "EMOJI":
        _emoji_grid(d, width, height, pad, look)
        return img
    rows = _ROWS[layout]
    row_h = height / 4
    key_w = (width - pad) / 10
    fs = int(min(row_h * 0.42, key_w * 0.62))
    for r, row in enumerate(rows):
        y0 = r * row_h + pad
        offset = (width - len(row) * key_w) / 2
        for c, ch in enumerate(row):
            box = (offset + c * key_w + pad / 2, y0, offset + (c + 1) * key_w - pad / 2, y0 + row_h - pad * 1.6)
            _key(d, box, letter, look)
            _label(d, box, ch if layout == "SYM" else ch.upper() if look.flat is False else ch, fs, ink, look.family)
        if r == 2:
            side = (offset - pad) if offset > key_w * 0.9 else key_w * 1.3
            for x0, lab in ((pad / 2, "⇧" if layout != "SYM" else "#+="), (width - side - pad / 2 + pad / 2, "⌫")):
                box = (x0, y0, x0 + side - pad, y0 + row_h - pad * 1.6)
                _key(d, box, func, look)
                _label(d, box, lab, int(fs * 0.8), ink, look.family)
    y0 = 3 * row_h + pad
    spans = (1.25, 1.0, 5.0, 1.0, 1.75)
    x = pad / 2
    for span, lab in zip(spans, _BOTTOM[layout]):
        w = span * (width - pad) / sum(spans)
        box = (x, y0, x + w - pad, y0 + row_h - pad * 1.6)
        _key(d, box, letter if lab in ("space", "空格", ".", "。") else func, look)
        _label(d, box, "" if lab == "space" and look.flat else lab, int(fs * 0.62), ink, look.family)
        x += w
    return img


def _numpad(d: ImageDraw.ImageDraw, width: int, height: int, pad: int, look: KeyboardLook) -> None:
    _, letter, func, ink = look.colors()
    row_h, key_w = height / 4, (width - pad) / 3
    for i, (digit, sub) in enumerate(_NUMPAD):
        r, c = divmod(i, 3)
        box = (c * key_w + pad, r * row_h + pad, (c + 1) * key_w, (r + 1) * row_h - pad)
        _key(d, box, func if digit in ("+*#", "⌫") else letter, look)
        fs = int(row_h * 0.38)
        if sub:
            _label(d, (box[0], box[1], box[2], box[3] - row_h * 0.22), digit, fs, ink, look.family)
            _label(d, (box[0], box[1] + row_h * 0.42, box[2], box[3]), sub, int(fs * 0.38), ink, look.family)
        else:
            _label(d, box, digit, fs, ink, look.family)


def _emoji_grid(d: ImageDraw.ImageDraw, width: int, height: int, pad: int, look: KeyboardLook) -> None:
    _, _, func, ink = look.colors()
    cols, rows = 8, 4
    cell_w, cell_h = width / cols, (height * 0.82) / (rows + 0.5)
    size = int(min(cell_w, cell_h) * 0.66)
    draw_text(d, (pad * 3, pad), "常用" if look.family == "noto" else "FREQUENTLY USED", int(size * 0.45), ink, look.family)
    for i, emo in enumerate(_EMOJI_GRID[: cols * rows]):
        r, c = divmod(i, cols)
        x = c * cell_w + (cell_w - size) / 2
        y = cell_h * 0.5 + r * cell_h + (cell_h - size) / 2
        draw_text(d, (x, y), emo, size, ink, look.family)
    tab_y = height * 0.84
    tabs = ["ABC", "🕘", "😀", "🐻", "🍔", "⚽", "🚗", "💡", "⌫"]
    tab_w = width / len(tabs)
    for i, tab in enumerate(tabs):
        box = (i * tab_w, tab_y, (i + 1) * tab_w, height - pad)
        if i == 2:
            d.rounded_rectangle((box[0] + 4, box[1] + 2, box[2] - 4, box[3] - 2), 8, fill=func)
        _label(d, box, tab, int(min(tab_w, height - tab_y) * 0.42), ink, look.family)


def candidate_bar(d: ImageDraw.ImageDraw, box: tuple[int, int, int, int], buffer: str, candidates: list[str],
                  look: KeyboardLook, accent: Color) -> None:
    """The strip above the keys: pinyin buffer and candidates while composing, else tool icons."""
    x0, y0, x1, y1 = box
    panel, _, _, ink = look.colors()
    d.rectangle(box, fill=panel)
    h = y1 - y0
    if buffer:
        draw_text(d, (x0 + 8, y0 + 1), buffer, int(h * 0.3), ink, look.family)
    fs = int(h * (0.36 if buffer else 0.4))
    y = y0 + (h * 0.48 if buffer else (h - fs * 1.2) / 2)
    x = x0 + 10
    if not candidates:
        for icon in ("😊", "🖼", "⚙", "🎤"):
            draw_text(d, (x, y0 + (h - fs * 1.2) / 2), icon, fs, ink, look.family)
            x += (x1 - x0) / 4.5
        return
    for i, cand in enumerate(candidates):
        w = text_width(cand, fs, "noto")
        if x + w > x1 - 30:
            break
        draw_text(d, (x, y), cand, fs, accent if i == 0 else ink, "noto")
        x += w + max(14, fs)
    draw_text(d, (x1 - 24, y), "⌄", fs, ink, look.family)
