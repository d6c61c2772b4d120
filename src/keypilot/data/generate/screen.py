"""Draw one screenshot: app content, the focused field holding the typed text, the keyboard
of the active layout, then the status/title bars and any notification on top. Returns the
image, the boxes of the four ROI elements (``keypilot.labels.ROI_KEYS``) and the readable
lines of text left visible (``textlines``), in the image's pixels.
"""

from __future__ import annotations

import random

from PIL import Image, ImageDraw

from keypilot.data.generate.chrome import Box, Style, avatar_circle, banner, input_box, nav_bar, on_accent, status_bar, title_bar
from keypilot.data.generate.fonts import draw_text, line_height, text_width, wrap_text
from keypilot.data.generate.keyboard import candidate_bar, key_area
from keypilot.data.generate.scenes import Screen
from keypilot.data.generate.textlines import TextLayer
from keypilot.screen_text import ScreenText

Rois = dict[str, list[int] | None]


def _clip(box: tuple[float, float, float, float] | None, top: int, bottom: int, width: int) -> list[int] | None:
    if box is None:
        return None
    x0, y0, x1, y1 = max(0, int(box[0])), max(top, int(box[1])), min(width, int(box[2])), min(bottom, int(box[3]))
    return [x0, y0, x1, y1] if x1 > x0 + 1 and y1 > y0 + 1 else None


def _chat(d: ImageDraw.ImageDraw, st: Style, sc: Screen, bottom: int, top: int, rng: random.Random) -> Box | None:
    """Bubbles stacked upwards from ``bottom``; returns the latest incoming bubble."""
    fs, lh = st.fs, line_height(st.fs)
    pad = int(fs * 0.7)
    av = int(fs * 1.1) if st.avatars else 0
    max_w = st.width * 0.7
    y = bottom - 8
    last_in: Box | None = None
    for b in reversed(sc.bubbles):
        lines = wrap_text(b.text, fs, max_w - 2 * pad, st.family)
        w = max(text_width(line, fs, st.family) for line in lines) + 2 * pad
        time_w = text_width(b.time, int(fs * 0.7), st.family) if b.time else 0
        w = max(w, time_w + 2 * pad)
        h = len(lines) * lh + 2 * pad + (int(fs * 0.9) if b.time else 0) + (lh if b.sender else 0)
        if b.reactions:
            y -= int(fs * 1.6)
        x0 = st.width - 10 - w if b.mine else 10 + (2 * av + 6 if av else 0)
        box = (int(x0), int(y - h), int(x0 + w), int(y))
        color = st.accent if b.mine else st.surface if st.surface != st.bg else ((60, 60, 62) if st.dark else (229, 229, 234))
        ink = on_accent(color) if b.mine else st.fg
        d.rounded_rectangle(box, st.radius, fill=color)
        ty = box[1] + pad
        if b.sender:
            draw_text(d, (box[0] + pad, ty), b.sender, int(fs * 0.8), st.accent, st.family)
            ty += lh
        for line in lines:
            draw_text(d, (box[0] + pad, ty), line, fs, ink, st.family)
            ty += lh
        if b.time:
            draw_text(d, (box[2] - pad - time_w, ty), b.time, int(fs * 0.7), st.muted if not b.mine else ink, st.family)
        if av and not b.mine:
            avatar_circle(d, (10 + av, box[3] - av), av, b.sender or sc.title)
        if b.reactions:
            rw = text_width(b.reactions, fs, st.family) + 12
            rx = box[2] - rw if b.mine else box[0] + 6
            d.rounded_rectangle((rx, box[3] - 4, rx + rw, box[3] + fs * 1.5), 10, fill=st.surface, outline=st.bg, width=2)
            draw_text(d, (rx + 6, box[3] - 1), b.reactions, fs, st.fg, st.family)
        if not b.mine and last_in is None:
            last_in = box
        y = box[1] - int(fs * rng.uniform(0.35, 0.9))
        if y < top:
            break
    if y > top + lh * 2 and rng.random() < 0.6:
        label = "今天" if sc.ui_lang == "zh" else rng.choice(("Today", "Yesterday", "Mon 9:12"))
        draw_text(d, ((st.width - text_width(label, int(fs * 0.75), st.family)) / 2, y - lh), label, int(fs * 0.75), st.muted, st.family)
    return last_in


def _page(st: Style, sc: Screen, context: str, buffer: str, rng: random.Random, visible_h: int,
          layer: TextLayer) -> tuple[Image.Image, Box, Box | None]:
    """Non-chat content drawn on a tall canvas (its text into ``layer``); returns it with the
    focused box and the key info box."""
    canvas = Image.new("RGB", (st.width, max(visible_h, 10) * 2 + 400), st.bg)
    d = layer.attach(ImageDraw.Draw(canvas))
    fs, lh, m = st.fs, line_height(st.fs), int(st.width * 0.05)
    y = int(fs * 0.8)
    focus_box: Box = (m, y, st.width - m, y + 2 * lh)
    info: Box | None = None
    zh = sc.ui_lang == "zh"
    if sc.app == "notes":
        draw_text(d, (m, y), sc.title, int(fs * 1.6), st.fg, st.family, bold=True)
        y += line_height(int(fs * 1.6)) + 4
        draw_text(d, (m, y), rng.choice(("2024年5月3日", "昨天 18:20")) if zh else rng.choice(("May 3, 2024 at 9:41 AM", "Yesterday")), int(fs * 0.8), st.muted, st.family)
        y += lh + 8
        for line in sc.blocks:
            draw_text(d, (m, y), line, fs, st.fg, st.family)
            y += lh + 4
    elif sc.app == "social":
        avatar_circle(d, (m + fs, y + fs), fs, sc.blocks[0] if sc.blocks else "U")
        draw_text(d, (m + 2 * fs + 10, y + fs * 0.3), sc.blocks[0] if sc.blocks else "", fs, st.fg, st.family, bold=True)
        y += 3 * fs
    elif sc.app == "email":
        for f in sc.fields:
            draw_text(d, (m, y), f"{f.label}:", fs, st.muted, st.family)
            draw_text(d, (m + text_width(f.label + ":  ", fs, st.family), y), f.value, fs, st.fg, st.family)
            y += lh + 10
            d.line((m, y - 5, st.width, y - 5), fill=st.line)
    if sc.blocks and sc.app == "form":
        for line in wrap_text(sc.blocks[0], int(fs * 0.9), st.width - 2 * m, st.family):
            draw_text(d, (m, y), line, int(fs * 0.9), st.muted, st.family)
            y += lh
        y += 8
    if sc.card:
        ch = len(sc.card) * (lh + 8) + 16
        info = (m, y, st.width - m, y + ch)
        d.rounded_rectangle(info, st.radius, fill=st.surface if st.surface != st.bg else st.line)
        cy = y + 8
        for i, (label, value) in enumerate(sc.card):
            bold = i == len(sc.card) - 1
            draw_text(d, (m + 12, cy), label, fs, st.fg, st.family, bold=bold)
            draw_text(d, (st.width - m - 12 - text_width(value, fs, st.family, bold), cy), value, fs, st.fg, st.family, bold=bold)
            cy += lh + 8
        y += ch + 14
    if sc.app in ("form", "search"):
        for i, f in enumerate(sc.fields):
            focused = i == sc.focus
            pill = sc.app == "search"
            if not pill:
                draw_text(d, (m, y), f.label, int(fs * 0.85), st.accent if focused else st.muted, st.family)
                y += line_height(int(fs * 0.85)) + 2
            box = (m, y, st.width - m, y + int(lh * 2.1))
            value = context if focused else f.value
            input_box(d, st, box, value, ("🔍 " if pill else "") + f.placeholder, focused, masked=f.kind == "password", buffer=buffer, pill=pill)
            if focused:
                focus_box = box
            y = box[3] + int(fs * 1.1)
        if sc.button:
            bw = st.width - 2 * m
            d.rounded_rectangle((m, y, m + bw, y + int(lh * 2.2)), st.radius, fill=st.accent)
            draw_text(d, (m + (bw - text_width(sc.button, fs, st.family, True)) / 2, y + lh * 0.6), sc.button, fs, on_accent(st.accent), st.family, bold=True)
            y += int(lh * 2.2) + 10
        if sc.app == "search":
            draw_text(d, (m, y), "最近搜索" if zh else "Recent searches", int(fs * 0.85), st.muted, st.family, bold=True)
            y += lh + 6
            for item in sc.blocks:
                draw_text(d, (m, y), "🕘  " + item, fs, st.fg, st.family)
                y += lh + 12
    else:
        n_lines = max(1, len(wrap_text(context, fs, st.width - 2 * m - 24, st.family)))
        focus_box = (m, y, st.width - m, y + (n_lines + (1 if sc.app != "notes" else 0)) * lh + 12)
        input_box(d, st, focus_box, context, sc.placeholder, True, multiline=True, buffer=buffer)
        y = focus_box[3] + 10
        if sc.app == "email" and sc.blocks:
            info = (m, y, st.width - m, y)
            for i, block in enumerate(sc.blocks):
                for line in wrap_text(block, int(fs * 0.9), st.width - 2 * m - 10, st.family)[:4]:
                    draw_text(d, (m + 10, y), line, int(fs * 0.9), st.muted, st.family)
                    y += lh
            d.line((m, info[1], m, y), fill=st.accent, width=3)
            info = (m, info[1], st.width - m, y)
        if sc.app == "social":
            draw_text(d, (m, y + 8), "🖼  📍  😊  #", fs, st.fg, st.family)
    return canvas, focus_box, info


def render(sc: Screen, st: Style, context: str, keyboard: str | None, candidates: list[str], buffer: str,
           rng: random.Random) -> tuple[Image.Image, Rois, list[ScreenText]]:
    img = Image.new("RGB", (st.width, st.height), st.bg)
    layer = TextLayer()
    d = layer.attach(ImageDraw.Draw(img))
    top = st.status_h + st.title_h
    kb_top = st.height - st.nav_h - ((st.kb_h + st.cand_h) if keyboard else 0)
    info: Box | None
    if sc.app == "chat":
        comp_h = int(line_height(st.fs) * 2.2)
        comp_top = kb_top - comp_h - 6
        info = _chat(d, st, sc, comp_top - 4, top, rng)
        d.rectangle((0, comp_top - 4, st.width, kb_top), fill=st.bg if rng.random() < 0.5 else st.surface)
        layer.cover((0, comp_top - 4, st.width, kb_top))
        send = int(comp_h * 0.85)
        focus = (8 + send, comp_top, st.width - 12 - send, comp_top + comp_h)
        draw_text(d, (10, comp_top + comp_h / 2 - st.fs * 0.8), "+", int(st.fs * 1.4), st.accent, "dejavu")
        input_box(d, st, focus, context, sc.placeholder, True, buffer=buffer, pill=True)
        sx = st.width - 8 - send
        d.ellipse((sx, comp_top + (comp_h - send) / 2, sx + send, comp_top + (comp_h + send) / 2), fill=st.accent)
        draw_text(d, (sx + send * 0.3, comp_top + comp_h / 2 - send * 0.38), "↑" if context else "…", int(send * 0.45), on_accent(st.accent), "dejavu")
    else:
        page_layer = TextLayer()
        canvas, focus, info = _page(st, sc, context, buffer, rng, kb_top - top, page_layer)
        visible = kb_top - top
        scroll = max(0, min(focus[3] + 16 - visible, canvas.height - visible))
        img.paste(canvas.crop((0, scroll, st.width, scroll + visible)), (0, top))
        layer.paste(page_layer, 0, top - scroll, (0, top, st.width, kb_top))
        focus = (focus[0], focus[1] - scroll + top, focus[2], focus[3] - scroll + top)
        if info:
            info = (info[0], info[1] - scroll + top, info[2], info[3] - scroll + top)
    kb_box = None
    if keyboard:
        kb_box = (0, kb_top, st.width, st.height - st.nav_h)
        candidate_bar(d, (0, kb_top, st.width, kb_top + st.cand_h), buffer, candidates if buffer else [], st.look, st.accent)
        img.paste(key_area(keyboard, st.width, st.kb_h, st.look), (0, kb_top + st.cand_h))
        layer.cover(kb_box)  # the keyboard area is not read (see textlines)
    nav_bar(d, st, st.look.colors()[0] if keyboard else st.bg)
    layer.cover((0, st.height - st.nav_h, st.width, st.height))
    bar_bg = st.bg if rng.random() < 0.6 else (st.accent if not st.dark else st.surface)
    layer.cover((0, 0, st.width, top))  # the bars below are opaque
    status_bar(d, st, rng, bar_bg)
    right = {"email": "发送" if sc.ui_lang == "zh" else "Send", "social": "发表" if sc.ui_lang == "zh" else "Post", "notes": "完成" if sc.ui_lang == "zh" else "Done"}.get(sc.app, "")
    tb = title_bar(d, st, sc.title, sc.subtitle, bar_bg, "‹", right if sc.app != "chat" else "⋮", sc.app == "chat" and st.avatars)
    if sc.banner:
        under = len(layer.lines)
        info = banner(d, st, sc.banner, sc.ui_lang == "zh")
        layer.cover(info, upto=under)
    body_bottom = kb_top
    rois: Rois = {
        "input_field": _clip(focus, top, body_bottom, st.width),
        "chat_bubble": _clip(info, 0 if sc.banner else top, body_bottom, st.width),
        "keyboard": list(kb_box) if kb_box else None,
        "title_bar": list(tb),
    }
    if sc.banner and rois["input_field"] and info and rois["input_field"][1] < info[3]:
        rois["input_field"] = _clip(focus, info[3], body_bottom, st.width)
    return img, rois, layer.lines
