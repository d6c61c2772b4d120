"""A screen's look and the parts every app shares: status bar, title bar, notification
banner, navigation bar, input boxes and avatars.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import ImageDraw

from keypilot.data.generate.fonts import draw_text, fit_tail, line_height, text_width, wrap_text
from keypilot.data.generate.keyboard import KeyboardLook
from keypilot.data.generate.scenes import Banner, User

Color = tuple[int, int, int]
Box = tuple[int, int, int, int]

# Logical resolutions of common phones (portrait), from small Android to large iPhone.
RESOLUTIONS = ((360, 780), (390, 844), (412, 915), (360, 640), (480, 1040), (393, 852), (375, 667), (414, 896), (384, 854), (428, 926))
ACCENTS: tuple[Color, ...] = ((37, 211, 102), (11, 132, 255), (149, 236, 105), (42, 171, 238), (124, 77, 255),
                             (255, 106, 0), (233, 30, 99), (0, 150, 136), (26, 115, 232), (255, 193, 7), (88, 101, 242))


@dataclass
class Style:
    width: int
    height: int
    dark: bool
    accent: Color
    family: str  # Latin font family: dejavu or noto
    fs: int  # body text size
    status_h: int
    title_h: int
    nav_h: int
    kb_h: int  # key area height
    cand_h: int  # candidate bar height
    radius: int  # bubble and card corner radius
    avatars: bool
    field_style: str  # box, underline or filled
    title_center: bool
    bg: Color
    fg: Color
    muted: Color
    surface: Color
    line: Color
    look: KeyboardLook

    @staticmethod
    def random(rng: random.Random, user: User) -> Style:
        w, h = rng.choice(RESOLUTIONS)
        dark = user.dark_theme != (rng.random() < 0.2)
        scale = w / 390
        bg = (rng.randint(0, 22),) * 3 if dark else rng.choice(((255, 255, 255), (242, 242, 247), (237, 237, 237), (250, 248, 245)))
        kb_h = int(h * rng.uniform(0.25, 0.3))
        return Style(
            width=w, height=h, dark=dark, accent=rng.choice(ACCENTS), family=rng.choice(("dejavu", "noto")),
            fs=int(rng.uniform(13, 17) * scale), status_h=int(rng.uniform(24, 46) * scale), title_h=int(rng.uniform(44, 60) * scale),
            nav_h=rng.choice((0, 0, int(16 * scale), int(40 * scale))), kb_h=kb_h, cand_h=int(rng.uniform(36, 46) * scale),
            radius=rng.choice((6, 12, 16, 18)), avatars=rng.random() < 0.6, field_style=rng.choice(("box", "underline", "filled")),
            title_center=rng.random() < 0.5, bg=bg, fg=(236, 236, 236) if dark else (17, 17, 17),
            muted=(140, 140, 146) if dark else (128, 128, 134), surface=(44, 44, 46) if dark else rng.choice(((233, 233, 235), (255, 255, 255), (240, 242, 245))),
            line=(58, 58, 60) if dark else (220, 220, 224),
            look=KeyboardLook(dark=dark, family=rng.choice(("dejavu", "noto")), rounded=rng.choice((4, 6, 8)), flat=rng.random() < 0.5, tint=rng.randint(0, 12)),
        )


def on_accent(c: Color) -> Color:
    """Black or white text, whichever reads on ``c``."""
    return (17, 17, 17) if 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] > 160 else (255, 255, 255)


def status_bar(d: ImageDraw.ImageDraw, st: Style, rng: random.Random, bg: Color) -> None:
    d.rectangle((0, 0, st.width, st.status_h), fill=bg)
    fs = max(10, int(st.status_h * 0.42))
    y = (st.status_h - fs * 1.2) / 2
    ink = on_accent(bg)
    draw_text(d, (st.width * 0.06, y), f"{rng.randint(6, 23)}:{rng.randint(0, 59):02d}", fs, ink, st.family, bold=True)
    x = st.width * 0.94
    level = rng.randint(8, 100)
    bw, bh = fs * 1.8, fs * 0.9
    by = st.status_h / 2 - bh / 2
    d.rounded_rectangle((x - bw, by, x, by + bh), 3, outline=ink, width=1)
    d.rectangle((x - bw + 2, by + 2, x - bw + 2 + (bw - 4) * level / 100, by + bh - 2), fill=(52, 199, 89) if level > 20 else (255, 59, 48))
    if rng.random() < 0.5:
        pct = f"{level}%"
        x -= bw + 4 + text_width(pct, int(fs * 0.85), st.family)
        draw_text(d, (x, y + fs * 0.1), pct, int(fs * 0.85), ink, st.family)
    x -= fs * 1.6
    for i in range(4):  # signal bars
        d.rectangle((x + i * fs * 0.3, by + bh - bh * (i + 1) / 4, x + i * fs * 0.3 + fs * 0.2, by + bh), fill=ink)
    x -= fs * 1.4
    for r in (0.9, 0.6, 0.3):  # wifi arcs
        d.arc((x - fs * r, by + bh - fs * r, x + fs * r, by + bh + fs * r), 225, 315, fill=ink, width=2)
    if rng.random() < 0.4:  # camera cut-out
        cw = st.width * 0.28
        d.rounded_rectangle((st.width / 2 - cw / 2, 3, st.width / 2 + cw / 2, st.status_h - 3), st.status_h, fill=(0, 0, 0))


def title_bar(d: ImageDraw.ImageDraw, st: Style, title: str, subtitle: str, bg: Color, left: str, right: str,
              avatar: bool) -> Box:
    top, bottom = st.status_h, st.status_h + st.title_h
    d.rectangle((0, top, st.width, bottom), fill=bg)
    d.line((0, bottom - 1, st.width, bottom - 1), fill=st.line)
    ink = on_accent(bg)
    fs = int(st.fs * 1.15)
    x = 10
    if left:
        x += draw_text(d, (x, top + (st.title_h - fs * 1.2) / 2), left, fs, st.accent if ink != (255, 255, 255) or st.dark else ink, st.family) + 8
    if avatar:
        r = st.title_h * 0.32
        cy = (top + bottom) / 2
        avatar_circle(d, (x + r, cy), r, title)
        x += 2 * r + 8
    lines = [(title, fs, ink, True)] + ([(subtitle, int(st.fs * 0.8), st.muted if ink != (255, 255, 255) else ink, False)] if subtitle else [])
    total = sum(line_height(s) for _, s, _, _ in lines)
    y = (top + bottom - total) / 2
    for text, size, color, bold in lines:
        text = fit_tail(text, size, st.width * 0.55, st.family) if text_width(text, size, st.family) > st.width * 0.55 else text
        tx = (st.width - text_width(text, size, st.family, bold)) / 2 if st.title_center and not avatar else x
        draw_text(d, (tx, y), text, size, color, st.family, bold=bold)
        y += line_height(size)
    if right:
        draw_text(d, (st.width - 12 - text_width(right, st.fs, st.family), top + (st.title_h - st.fs * 1.2) / 2), right, st.fs, st.accent if ink != (255, 255, 255) else ink, st.family)
    return (0, top, st.width, bottom)


def avatar_circle(d: ImageDraw.ImageDraw, center: tuple[float, float], r: float, name: str) -> None:
    seed = sum(map(ord, name))
    color = ACCENTS[seed % len(ACCENTS)]
    cx, cy = center
    d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=color)
    initial = name.strip()[:1].upper() or "?"
    size = int(r * 1.0)
    draw_text(d, (cx - text_width(initial, size, "noto") / 2, cy - size * 0.68), initial, size, on_accent(color), "noto", as_read="")


def banner(d: ImageDraw.ImageDraw, st: Style, b: Banner, zh: bool) -> Box:
    """A heads-up notification over the top of the screen."""
    m = int(st.width * 0.03)
    fs = st.fs
    lines = wrap_text(b.body, fs, st.width - 2 * m - fs * 4, st.family)[:3]
    h = int(fs * 3.2 + len(lines) * line_height(fs))
    box = (m, st.status_h // 2 + 4, st.width - m, st.status_h // 2 + 4 + h)
    surface = (58, 58, 60) if st.dark else (248, 248, 250)
    d.rounded_rectangle((box[0], box[1] + 2, box[2], box[3] + 2), st.radius + 6, fill=(0, 0, 0) if st.dark else (205, 205, 210))
    d.rounded_rectangle(box, st.radius + 6, fill=surface)
    icon = fs * 2.2
    d.rounded_rectangle((box[0] + 10, box[1] + 12, box[0] + 10 + icon, box[1] + 12 + icon), 8, fill=(52, 199, 89))
    draw_text(d, (box[0] + 10 + icon * 0.22, box[1] + 12 + icon * 0.18), "✉", int(icon * 0.6), (255, 255, 255), "dejavu")
    x = box[0] + 20 + icon
    ink = (236, 236, 236) if st.dark else (17, 17, 17)
    draw_text(d, (x, box[1] + 8), b.app, int(fs * 0.85), st.muted, st.family)
    now = "现在" if zh else "now"
    draw_text(d, (box[2] - 12 - text_width(now, int(fs * 0.85), st.family), box[1] + 8), now, int(fs * 0.85), st.muted, st.family)
    draw_text(d, (x, box[1] + 8 + line_height(fs)), b.title, fs, ink, st.family, bold=True)
    y = box[1] + 8 + 2 * line_height(fs)
    for line in lines:
        draw_text(d, (x, y), line, fs, ink, st.family)
        y += line_height(fs)
    return box


def nav_bar(d: ImageDraw.ImageDraw, st: Style, bg: Color) -> None:
    if not st.nav_h:
        return
    top = st.height - st.nav_h
    d.rectangle((0, top, st.width, st.height), fill=bg)
    ink = on_accent(bg)
    if st.nav_h < 30:  # gesture pill
        d.rounded_rectangle((st.width * 0.35, top + st.nav_h * 0.4, st.width * 0.65, top + st.nav_h * 0.4 + 4), 2, fill=ink)
        return
    cy = top + st.nav_h / 2
    for i, glyph in enumerate(("◁", "○", "□")):
        draw_text(d, (st.width * (0.25 + 0.25 * i) - st.fs / 2, cy - st.fs * 0.65), glyph, st.fs, ink, "dejavu")


def input_box(d: ImageDraw.ImageDraw, st: Style, box: Box, text: str, placeholder: str, focused: bool,
              multiline: bool = False, masked: bool = False, buffer: str = "", pill: bool = False) -> None:
    """A text field with its value (or placeholder) and, when focused, a cursor at the end."""
    x0, y0, x1, y1 = box
    fill = st.surface if st.field_style == "filled" or pill else None
    outline = st.accent if focused else st.line
    if pill:
        d.rounded_rectangle(box, (y1 - y0) // 2, fill=fill, outline=outline if focused and st.field_style == "box" else None)
    elif st.field_style == "underline":
        d.line((x0, y1, x1, y1), fill=outline, width=2 if focused else 1)
    else:
        d.rounded_rectangle(box, 8, fill=fill, outline=outline, width=2 if focused else 1)
    pad = 12 if pill or st.field_style != "underline" else 2
    shown = ("•" * (len(text) - 1) + text[-1:]) if masked and text else text
    lh = line_height(st.fs)
    if multiline:
        lines = wrap_text(shown, st.fs, x1 - x0 - 2 * pad, st.family) if shown else [""]
        lines = lines[-max(1, int((y1 - y0 - 8) // lh)):]
        y = y0 + 6
    else:
        lines = [fit_tail(shown, st.fs, x1 - x0 - 2 * pad - 4, st.family)]
        y = (y0 + y1) / 2 - lh / 2
    if not text and placeholder:
        draw_text(d, (x0 + pad + (2 if focused else 0), y), placeholder, st.fs, st.muted, st.family)
        lines = [""]
    else:
        for i, line in enumerate(lines):
            # the screen text of a password is its dots, never the character that still shows
            draw_text(d, (x0 + pad, y + i * lh), line, st.fs, st.fg, st.family, as_read="•" * len(line) if masked else None)
    if focused:
        last = lines[-1]
        cx = x0 + pad + text_width(last, st.fs, st.family) + 1
        cy = y + (len(lines) - 1) * lh
        if buffer and last.endswith(buffer):  # the pinyin being composed is underlined in place
            bx = cx - text_width(buffer, st.fs, st.family)
            d.line((bx, cy + lh - 2, cx, cy + lh - 2), fill=st.fg, width=1)
        d.line((cx, cy + 2, cx, cy + lh - 2), fill=st.accent, width=2)
