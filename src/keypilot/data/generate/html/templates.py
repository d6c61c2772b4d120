"""App templates of the HTML renderer: a :class:`Screen` as the markup of ``#phone``.

The focused field is the element ``.field.focused`` (its ``.val`` is filled per step by
``page.js``); ``[data-info]`` marks what the labels depend on (the ``chat_bubble`` ROI):
the latest incoming bubble, the notification banner or the keyboard's autofill chip, the
invoice card, the quoted e-mail. Every text from the scene is escaped.
"""

from __future__ import annotations

import random
from html import escape

from keypilot.data.generate.html.keys import keyboard_html
from keypilot.data.generate.html.look import Look
from keypilot.data.generate.scenes import Bubble, Field, Screen

AVATAR_COLORS = ("#f4511e", "#0b8043", "#3f51b5", "#8e24aa", "#e67c73", "#039be5", "#7cb342", "#c0ca33", "#fb8c00", "#5c6bc0")


def _avatar(name: str, square: bool, cls: str = "") -> str:
    initial = escape(name.strip()[:1].upper() or "?")
    color = AVATAR_COLORS[sum(map(ord, name)) % len(AVATAR_COLORS)]
    return f'<div class="avatar{" sq" if square else ""} {cls}" style="background:{color}">{initial}</div>'


def _status(look: Look, rng: random.Random, zh: bool) -> str:
    strength = rng.choice((2, 3, 4, 4))
    bars = "".join(f'<i style="height:{h}%{"" if i < strength else ";opacity:.35"}"></i>' for i, h in enumerate((35, 55, 75, 100)))
    batt = f'<span class="batt{" low" if look.battery < 20 else ""}"><b style="width:{look.battery}%"></b></span>'
    pct = f"<span>{look.battery}%</span>" if rng.random() < 0.5 else ""
    wifi = "<span>" + rng.choice(("📶", "5G", "4G", "LTE", "Wi‑Fi", "")) + "</span>" if look.status != "ios" else "<span>" + rng.choice(("5G", "LTE", "")) + "</span>"
    if look.status == "ios":
        island = '<span class="island"></span>' if rng.random() < 0.6 else ""
        return f'<div class="status"><span class="time">{look.clock}</span>{island}<span class="spacer"></span><span class="icons"><span class="sig">{bars}</span>{wifi}{batt}</span></div>'
    if look.status == "cn":
        carrier = rng.choice(("中国移动", "中国联通", "中国电信", "CMCC"))
        center = f'<span class="center-time">{look.clock}</span>' if rng.random() < 0.5 else ""
        left = f'<span class="carrier">{carrier}</span>' if center else f'<span class="time">{look.clock}</span><span class="carrier">{carrier}</span>'
        return f'<div class="status">{left}{center}<span class="spacer"></span><span class="icons">{rng.choice(("", "🔕", "⏰"))}<span class="sig">{bars}</span>{pct}{batt}</span></div>'
    punch = '<span class="punch"></span>' if rng.random() < 0.5 else ""
    notes = "".join(rng.sample(("✉", "☁", "⬇", "●", "▲"), rng.randint(0, 3)))
    return f'<div class="status"><span class="time">{look.clock}</span><span style="opacity:.75">{notes}</span>{punch}<span class="spacer"></span><span class="icons">{wifi}<span class="sig">{bars}</span>{pct}{batt}</span></div>'


def _appbar(look: Look, sc: Screen, rng: random.Random, action: str, avatar: bool) -> str:
    back = "‹" if look.status == "ios" else rng.choice(("←", "‹", "✕" if sc.app in ("email", "social") else "←"))
    sub = f'<span class="sub">{escape(sc.subtitle)}</span>' if sc.subtitle else ""
    av = _avatar(sc.title, look.avatar_square) if avatar else ""
    cls = "appbar center" if look.title_center and not avatar else "appbar"
    act = f'<span class="action{" pill" if sc.app == "social" and rng.random() < 0.6 else ""}">{escape(action)}</span>' if action else ""
    return f'<header class="{cls}"><span class="back">{back}</span>{av}<div class="titles"><span class="title">{escape(sc.title)}</span>{sub}</div>{act}</header>'


def _focused(label: str, placeholder: str, single: bool, extra: str = "") -> str:
    lab = f'<span class="lab">{escape(label)}</span>' if label else ""
    return f'<div class="field focused{" single" if single else ""} {extra}" data-placeholder="{escape(placeholder)}">{lab}<div class="val"></div></div>'


def _field(f: Field, label: bool) -> str:
    value = escape(f.value) if f.value else f'<span class="ph">{escape(f.placeholder)}</span>'
    if f.kind == "password" and f.value:
        value = "•" * len(f.value)
    lab = f'<span class="lab">{escape(f.label)}</span>' if label else ""
    return f'<div class="field">{lab}<div class="val">{value}</div></div>'


def _bubble_rows(bubbles: list[Bubble], look: Look, sc: Screen, rng: random.Random, zh: bool) -> str:
    avatars = rng.random() < 0.55
    last_in = max((i for i, b in enumerate(bubbles) if not b.mine), default=-1)
    rows = []
    if rng.random() < 0.6:
        rows.append(f'<div class="daysep">{escape(rng.choice(("今天", "昨天 21:04", "星期二")) if zh else rng.choice(("Today", "Yesterday", "Tue 9:41 AM")))}</div>')
    for i, b in enumerate(bubbles):
        who = f'<span class="who">{escape(b.sender)}</span>' if b.sender else ""
        ts = f'<span class="ts">{escape(b.time)}</span>' if b.time else ""
        rx = f'<span class="rx">{escape(b.reactions)}</span>' if b.reactions else ""
        info = " data-info" if i == last_in else ""
        av = _avatar(b.sender or sc.title, look.avatar_square) if avatars and not b.mine else ""
        cls = "row " + ("me" if b.mine else "them") + (" has-rx" if b.reactions else "")
        rows.append(f'<div class="{cls}">{av}<div class="bubble"{info}>{who}{escape(b.text)}{ts}{rx}</div></div>')
    return '<div class="spacer"></div>' + "".join(rows)


def _banner(sc: Screen, zh: bool, hidden: bool) -> str:
    b = sc.banner
    assert b is not None
    return (f'<div class="banner{" hidden" if hidden else ""}" data-info><div class="app-ic">✉</div><div class="b-main">'
            f'<div class="b-top"><span>{escape(b.app)}</span><span>{"现在" if zh else "now"}</span></div>'
            f'<div class="b-title">{escape(b.title)}</div><div class="b-body">{escape(b.body)}</div></div></div>')


def _page(sc: Screen, rng: random.Random, zh: bool) -> str:
    parts: list[str] = []
    if sc.app == "notes":
        date = rng.choice(("2024年5月3日 上午9:41", "昨天 18:20")) if zh else rng.choice(("May 3, 2024 at 9:41 AM", "Yesterday 6:20 PM"))
        parts.append(f'<div class="big">{escape(sc.title)}</div><div class="note-date">{escape(date)}</div>')
        parts += [f'<div class="note-line">{escape(line)}</div>' for line in sc.blocks]
        parts.append(_focused("", sc.placeholder, False, "note"))
    elif sc.app == "social":
        name = sc.blocks[0] if sc.blocks else "me"
        parts.append(f'<div class="post-head">{_avatar(name, False)}<span>{escape(name)}</span></div>')
        parts.append(_focused("", sc.placeholder, False))
        parts.append('<div class="post-tools"><span>🖼</span><span>📍</span><span>☺</span><span>#</span><span>@</span></div>')
    elif sc.app == "email":
        rows = "".join(f'<div class="mrow"><span class="k">{escape(f.label)}:</span><span>{escape(f.value)}</span></div>' for f in sc.fields)
        parts.append(f'<div class="mailhead">{rows}</div>')
        parts.append(_focused("", sc.placeholder, False))
        if sc.blocks:
            parts.append(f'<div class="quote" data-info>{escape(chr(10).join(sc.blocks))}</div>')
    elif sc.app == "search":
        f = sc.fields[sc.focus] if sc.fields else Field("search", "Search", placeholder="Search")
        parts.append(_focused("", ("🔍 " if rng.random() < 0.6 else "") + f.placeholder, True, "search"))
        parts.append(f'<div class="section">{"最近搜索" if zh else rng.choice(("Recent", "Recent searches", "History"))}</div>')
        parts.append('<ul class="recent">' + "".join(f'<li><span class="ic">🕘</span><span>{escape(item)}</span></li>' for item in sc.blocks) + "</ul>")
    else:  # form: otp, payment, sign-up
        if rng.random() < 0.5:
            parts.append(f'<div class="big">{escape(sc.title)}</div>')
        parts += [f'<div class="hint">{escape(block)}</div>' for block in sc.blocks[:1]]
        if sc.card:
            lines = "".join(f'<div class="line{" total" if i == len(sc.card) - 1 else ""}"><span>{escape(k)}</span><span>{escape(v)}</span></div>'
                            for i, (k, v) in enumerate(sc.card))
            parts.append(f'<div class="card" data-info>{lines}</div>')
        labels = rng.random() < 0.8
        for i, f in enumerate(sc.fields):
            if i == sc.focus:
                extra = "code" if f.kind == "code" and rng.random() < 0.4 else ""
                parts.append(_focused(f.label if labels else "", f.placeholder, True, extra))
            else:
                parts.append(_field(f, labels))
        if sc.button:
            parts.append(f'<div class="btn{" ghost" if rng.random() < 0.2 else ""}">{escape(sc.button)}</div>')
        if rng.random() < 0.4:
            parts.append(f'<div class="hint">{"遇到问题？联系客服" if zh else rng.choice(("Need help?", "Terms & Privacy", "Resend code in 0:42"))}</div>')
    return "".join(parts)


def screen_html(sc: Screen, look: Look, rng: random.Random, keyboard: bool) -> str:
    """The markup of ``#phone`` for a whole session (the keyboard pane is chosen per step)."""
    zh = sc.ui_lang == "zh"
    chip = None
    if sc.banner and keyboard and look.autofill_chip and any(f.kind == "code" for f in sc.fields):
        code = "".join(ch for ch in sc.banner.body if ch.isdigit())
        chip = ("来自信息" if zh else "From Messages", code) if 4 <= len(code) <= 8 else None
    action = {"email": "发送" if zh else "Send", "social": "发表" if zh else rng.choice(("Post", "Share", "Tweet")),
              "notes": "完成" if zh else "Done", "chat": rng.choice(("⋮", "📞", "ⓘ", ""))}.get(sc.app, "")
    parts = [_status(look, rng, zh), _appbar(look, sc, rng, action, sc.app == "chat" and rng.random() < 0.6)]
    if sc.app == "chat":
        parts.append(f'<main class="content chat">{_bubble_rows(sc.bubbles, look, sc, rng, zh)}</main>')
        tools = "".join(f'<span class="tool">{t}</span>' for t in rng.sample(("+", "☺", "🎤", "📷"), rng.randint(1, 2)))
        send = f'<span class="send text">{"发送" if zh else "Send"}</span>' if look.send_text else '<span class="send">↑</span>'
        cls = "composer" + (" square" if zh and rng.random() < 0.5 else "")
        parts.append(f'<div class="{cls}">{tools}{_focused("", sc.placeholder, False)}{send}</div>')
    else:
        parts.append(f'<main class="content page">{_page(sc, rng, zh)}</main>')
    parts.append(keyboard_html(look.skin, zh, sc.app, rng, chip))
    if look.nav != "none":
        inner = '<span class="pill"></span>' if look.nav == "pill" else '<span class="btn3">◀</span><span class="btn3">●</span><span class="btn3">■</span>'
        parts.append(f'<div class="nav">{inner}</div>')
    if sc.banner:
        parts.append(_banner(sc, zh, hidden=chip is not None))
    return "".join(parts)
