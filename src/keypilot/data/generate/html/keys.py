"""The on-screen keyboard as HTML: a candidate/tool bar and the five panes (EN, ZH, SYM,
EMOJI, NUM), all in the page, one shown at a time (``.kbd[data-layout]``).

Skins differ in labels and furniture, not only colours: iOS has ``123``/globe/``return``,
Gboard ``?123``/``,``/number hints over the top row, a Sogou-like Chinese IME has ``中/英``
and an orange action key, Samsung ``!#1`` and a settings row, Swift a dark slate.
"""

from __future__ import annotations

import random
from html import escape

from keypilot.data.generate.corpus import REACTIONS

LETTERS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
# symbol pages of the skins (three rows each)
SYMBOLS = {
    "ios": ("1234567890", "-/:;()$&@\"", ".,?!'"),
    "gboard": ("1234567890", "@#$_&-+()/", "*\"':;!?"),
    "sogou": ("1234567890", "-/:;()@“”", "。，、？！."),
    "samsung": ("1234567890", "+×÷=/_<>[]", "!@#$%^&*"),
    "swift": ("1234567890", "@#£_&-+()/", "*\"':;!?"),
}
EMOJI_PAGE = REACTIONS + tuple("😀 😃 😄 😆 😉 😋 😜 🤪 😇 🙂 🙃 😌 😏 😒 😞 😤 😡 😱 😳 🤯 🥲 😬 🤫 🤭 🐶 🐱 🌸 🍕 🍔 ☕ 🍺 ⚽ 🚗 ✈️ 🏠 💼 📱 💡 🎁 🎂 🌙 ☀️ 🌈 🍀".split())
EMOJI_TABS = ("🕘", "😀", "🐻", "🍔", "⚽", "🚗", "💡", "🔣", "🏳️")


def _k(label: str, cls: str = "", sup: str = "") -> str:
    return f'<div class="k {cls}">{escape(label)}{f"<sup>{escape(sup)}</sup>" if sup else ""}</div>'


def _letter_rows(skin: str, hints: bool) -> list[str]:
    rows = []
    for r, row in enumerate(LETTERS):
        keys = "".join(_k(ch, "letter", str((i + 1) % 10) if hints and r == 0 else "") for i, ch in enumerate(row))
        if r == 1:
            rows.append(f'<div class="krow inset">{keys}</div>')
        elif r == 2:
            rows.append(f'<div class="krow">{_k("⇧", "fn w15")}{keys}{_k("⌫", "fn w15")}</div>')
        else:
            rows.append(f'<div class="krow">{keys}</div>')
    return rows


def _bottom(skin: str, zh: bool, action: str) -> str:
    if skin == "ios":
        keys = [_k("123", "fn w15"), _k("🌐", "fn"), _k("拼音" if zh else "space", "w5"), _k(action, "fn w2")]
    elif skin == "gboard":
        keys = [_k("?123", "fn w15"), _k(",", "fn"), _k("☺", "fn"), _k("中文" if zh else "English", "w5"), _k("。" if zh else ".", "fn"), _k(action, "act w15")]
    elif skin == "sogou":
        keys = [_k("符", "fn"), _k("123", "fn"), _k("，", "fn"), _k("空格" if zh else "space", "w5"), _k("中/英", "fn w15"), _k(action, "act w15")]
    elif skin == "samsung":
        keys = [_k("!#1", "fn w15"), _k("⚙", "fn"), _k(",", "fn"), _k("中文(简体)" if zh else "English (US)", "w5"), _k(".", "fn"), _k(action, "fn w15")]
    else:
        keys = [_k("123", "fn w15"), _k("☺", "fn"), _k("拼音" if zh else "", "w5"), _k(".", "fn"), _k("⏎", "act w15")]
    return f'<div class="krow">{"".join(keys)}</div>'


def _symbol_pane(skin: str, action: str) -> str:
    top, mid, low = SYMBOLS[skin]
    rows = [f'<div class="krow">{"".join(_k(c) for c in top)}</div>', f'<div class="krow">{"".join(_k(c) for c in mid)}</div>',
            f'<div class="krow">{_k("#+=" if skin != "samsung" else "1/2", "fn w15")}{"".join(_k(c) for c in low)}{_k("⌫", "fn w15")}</div>',
            f'<div class="krow">{_k("ABC", "fn w15")}{_k("☺", "fn")}{_k("space" if skin != "sogou" else "空格", "w5")}{_k(action, "fn w2")}</div>']
    return "".join(rows)


def _emoji_pane(skin: str, rng: random.Random) -> str:
    start = rng.randrange(0, 12)
    cells = "".join(f"<span>{e}</span>" for e in EMOJI_PAGE[start : start + 40])
    title = rng.choice(("FREQUENTLY USED", "Recents", "常用", "Smileys & People", "最近使用"))
    tabs = "".join(f'<span class="{"on" if i == 1 else ""}">{t}</span>' for i, t in enumerate(EMOJI_TABS))
    search = '<div class="esearch">🔍 Search Emoji</div>' if skin in ("ios", "gboard") and rng.random() < 0.5 else ""
    return (f'{search}<div class="ecat">{title}</div><div class="egrid">{cells}</div>'
            f'<div class="etabs"><span>ABC</span>{tabs}<span>⌫</span></div>')


def _num_pane(skin: str, rng: random.Random) -> str:
    if rng.random() < 0.7:  # phone pad
        subs = ("", "ABC", "DEF", "GHI", "JKL", "MNO", "PQRS", "TUV", "WXYZ")
        rows = []
        for r in range(3):
            rows.append('<div class="krow">' + "".join(
                f'<div class="k num">{d}<span class="sub">{subs[d - 1]}</span></div>' for d in range(r * 3 + 1, r * 3 + 4)) + "</div>")
        rows.append(f'<div class="krow">{_k("+*#", "fn")}<div class="k num">0<span class="sub">+</span></div>{_k("⌫", "fn")}</div>')
        return "".join(rows)
    # a numeric pad with a side column, as amount and code fields get on Android
    side = (("-", "fn"), ("␣", "fn"), ("⌫", "fn"), ("✓", "act"))
    grid = ("123", "456", "789", ",0.")
    return "".join(
        f'<div class="krow">{"".join(_k(c) for c in grid[r])}{_k(side[r][0], side[r][1])}</div>' for r in range(4))


def keyboard_html(skin: str, zh_ui: bool, app: str, rng: random.Random, chip: tuple[str, str] | None) -> str:
    """The whole keyboard panel; ``chip`` = (caption, code) puts a texted code in the bar."""
    action = {"chat": "发送" if zh_ui else rng.choice(("return", "send", "↵")), "search": "搜索" if zh_ui else "go"}.get(app, "下一步" if zh_ui else rng.choice(("return", "next", "done")))
    if skin == "gboard":
        action = "→" if app == "search" else "↵"
    hints = skin in ("gboard", "samsung") and rng.random() < 0.6
    tools = {"gboard": ("▦", "☺", "GIF", "⚙", "🎤"), "sogou": ("⌨", "☺", "语", "⚙", "∨"),
             "samsung": ("☺", "✎", "🎤", "⚙", "⋯"), "swift": ("☺", "GIF", "🎤", "⋯")}
    if chip:
        bar = f'<div class="chip" data-info><small>{escape(chip[0])}</small>{escape(chip[1])}</div>'
    elif skin == "ios":
        bar = '<div class="typed"></div>' if rng.random() < 0.7 else ""
    else:
        bar = '<div class="tools">' + "".join(f"<span>{t}</span>" for t in tools[skin]) + "</div>"
    candbar = f'<div class="candbar"><span class="pinyin"></span><div class="cands"></div>{bar}</div>'
    panes = {
        "EN": "".join(_letter_rows(skin, hints)) + _bottom(skin, False, action),
        "ZH": "".join(_letter_rows(skin, hints)) + _bottom(skin, True, action if zh_ui or skin != "sogou" else "确定"),
        "SYM": _symbol_pane(skin, action),
        "EMOJI": _emoji_pane(skin, rng),
        "NUM": _num_pane(skin, rng),
    }
    keys = "".join(f'<div class="pane" data-pane="{name}">{body}</div>' for name, body in panes.items())
    return f'<div class="kbd" data-layout="EN">{candbar}<div class="keys">{keys}</div></div>'
