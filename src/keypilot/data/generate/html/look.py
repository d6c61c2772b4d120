"""The look of one HTML-rendered session: viewport and density, palette, fonts, bars and the
keyboard skin, turned into CSS variables and classes for ``assets/base.css``.

Sampled from the session's render seed only, so every step of a session shares it. The
choices are this renderer's own (it never reads ``chrome.Style``): system and web font stacks,
iOS-, Android- and Chinese-Android-like bars, five keyboard skins, chat wallpapers.
"""

from __future__ import annotations

import colorsys
import random
from dataclasses import dataclass

from keypilot.data.generate.scenes import User

# (CSS width, CSS height) of phones, tall phones, small tablets and a foldable, all portrait.
VIEWPORTS: tuple[tuple[tuple[int, int], float], ...] = (
    ((390, 844), 5), ((393, 852), 4), ((412, 915), 5), ((360, 800), 5), ((375, 812), 3), ((430, 932), 3),
    ((360, 740), 2), ((384, 832), 2), ((375, 667), 2), ((412, 869), 2), ((360, 640), 1),
    ((600, 960), 1), ((673, 841), 1), ((744, 1133), 1),
)
DENSITIES: tuple[tuple[float, float], ...] = ((1.0, 84), (1.5, 8), (2.0, 3), (0.75, 5))  # more via augment.py
SKINS: tuple[str, ...] = ("ios", "gboard", "sogou", "samsung", "swift")
# Latin stacks: system fonts (fontconfig) and web fonts served from installed packages.
LATIN_FONTS: tuple[str, ...] = ('"KP Inter"', '"KP Roboto"', '"DejaVu Sans"', '"Liberation Sans"', '"KP Lato"', '"KP Open Sans"', '"Noto Sans CJK SC"')
ZH_FONTS: tuple[str, ...] = ('"Noto Sans CJK SC"', '"KP Noto Sans SC"', '"Noto Sans CJK TC"', '"Noto Serif CJK SC"')
EMOJI_FONTS: tuple[str, ...] = ('"Noto Color Emoji"', '"KP OpenMoji"')
ACCENTS: tuple[str, ...] = ("#007aff", "#34c759", "#07c160", "#0a84ff", "#25d366", "#5865f2", "#ff2d55", "#ff9500", "#1a73e8",
                            "#6750a4", "#00a884", "#e91e63", "#0088cc", "#fe2c55", "#12b7f5", "#fa5151")
WALLPAPERS_LIGHT: tuple[str, ...] = ("#ffffff", "#ededed", "#efeae2", "#dfe9d8", "#f2f2f7", "#e6ebee", "#fdf6ec")
WALLPAPERS_DARK: tuple[str, ...] = ("#000000", "#0b141a", "#111111", "#17212b", "#1c1c1e", "#121212")


@dataclass
class Look:
    width: int
    height: int
    density: float
    skin: str
    status: str  # ios, android, cn
    nav: str  # none, pill, buttons
    classes: str  # on #phone: skin, field style, bubble tails, key case
    css: str  # :root variables
    send_text: bool  # a "Send"/"发送" button instead of an arrow
    avatar_square: bool
    clock: str
    battery: int
    autofill_chip: bool  # iOS shows a texted code in the keyboard's bar instead of a banner
    title_center: bool


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{max(0, min(255, round(c * 255))):02x}" for c in rgb)


def _jitter(color: str, rng: random.Random, amount: float) -> str:
    """The colour with its hue, lightness and saturation nudged by up to ``amount``."""
    r, g, b = (int(color[i : i + 2], 16) / 255 for i in (1, 3, 5))
    h, l, s = colorsys.rgb_to_hls(r, g, b)
    h = (h + rng.uniform(-amount, amount) * 0.3) % 1.0
    l = min(1.0, max(0.0, l + rng.uniform(-amount, amount) * 0.5))
    s = min(1.0, max(0.0, s + rng.uniform(-amount, amount)))
    return _hex(colorsys.hls_to_rgb(h, l, s))


def _ink_on(color: str) -> str:
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return "#111111" if 0.299 * r + 0.587 * g + 0.114 * b > 165 else "#ffffff"


def _weighted(rng: random.Random, options: tuple) -> object:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def sample_look(rng: random.Random, user: User, ui_lang: str) -> Look:
    width, height = _weighted(rng, VIEWPORTS)  # type: ignore[misc]
    density = float(_weighted(rng, DENSITIES))  # type: ignore[arg-type]
    dark = user.dark_theme != (rng.random() < 0.2)
    zh = ui_lang == "zh"
    skin = rng.choices(SKINS, weights=(3, 3, 3 if zh else 1, 2, 1))[0]
    status = rng.choices(("ios", "android", "cn"), weights=(4, 4, 3 if zh else 0.5))[0]
    accent = _jitter(rng.choice(ACCENTS), rng, 0.08)
    fs = rng.uniform(14, 18) * (1.15 if width >= 600 else 1.0)
    if dark:
        bg = rng.choice(("#000000", "#121212", "#1c1c1e", "#0f0f10", "#17212b"))
        fg, muted, surface, line = "#f2f2f2", rng.choice(("#8e8e93", "#9aa0a6", "#7d7d85")), rng.choice(("#2c2c2e", "#1f2c34", "#26262a", "#303134")), "#38383a"
        wall = rng.choice(WALLPAPERS_DARK)
    else:
        bg = rng.choice(("#ffffff", "#ffffff", "#f7f7f7", "#f2f2f7", "#fbfaf8"))
        fg, muted, surface, line = rng.choice(("#000000", "#111111", "#1c1c1e", "#202124")), rng.choice(("#8e8e93", "#70757a", "#999999")), rng.choice(("#f0f0f3", "#e9e9eb", "#f1f3f4", "#ffffff")), rng.choice(("#dcdce0", "#e0e0e0", "#d1d1d6"))
        wall = rng.choice(WALLPAPERS_LIGHT)
    bubble_out = accent if rng.random() < 0.6 else ("#005c4b" if dark else rng.choice(("#95ec69", "#dcf8c6", "#effdde", "#d9fdd3")))
    bubble_in = surface if wall != surface else ("#3a3a3c" if dark else "#e9e9eb")
    if not dark and wall != "#ffffff" and rng.random() < 0.6:
        bubble_in = "#ffffff"
    bar_style = rng.choices(("plain", "accent", "surface"), weights=(6, 2 if not dark else 0.5, 2))[0]
    bar_bg = {"plain": bg, "accent": accent, "surface": surface}[bar_style]
    status_bg = bar_bg if rng.random() < 0.8 else bg
    nav = rng.choices(("none", "pill", "buttons"), weights=(3, 4, 2))[0]
    latin = rng.choice(LATIN_FONTS[:6]) if rng.random() < 0.9 else LATIN_FONTS[6]
    zh_font = rng.choices(ZH_FONTS, weights=(5, 3, 1, 1))[0]
    emoji = rng.choices(EMOJI_FONTS, weights=(3, 1))[0]
    # DejaVu Sans closes every stack: it has the UI symbols (⌫ ⇧ ▦ ✉) that the others lack, so
    # Chromium never falls back to a font of its own choosing (which depends on the page's history).
    font = f'{latin}, {zh_font}, {emoji}, "DejaVu Sans", sans-serif'
    kb_font = f'{rng.choice(LATIN_FONTS[:6])}, {zh_font}, {emoji}, "DejaVu Sans", sans-serif'
    kb = _keyboard_colors(skin, dark, accent, rng)
    status_h = rng.uniform(22, 48) * (1.0 if status != "ios" else 1.1)
    kb_h = height * rng.uniform(0.27, 0.36)
    key_fs = min(kb_h * 0.085, width / 17)
    variables = {
        "--bg": bg, "--fg": fg, "--muted": muted, "--surface": surface, "--line": line, "--accent": accent,
        "--on-accent": _ink_on(accent), "--chat-bg": wall, "--sep-bg": "rgba(127,127,127,0.15)",
        "--bubble-in": bubble_in, "--ink-in": _ink_on(bubble_in) if bubble_in != surface else fg,
        "--bubble-out": bubble_out, "--ink-out": _ink_on(bubble_out), "--bubble-r": f"{rng.choice((8, 12, 16, 18, 20))}px",
        "--font": font, "--kb-font": kb_font, "--fs": f"{fs:.1f}px",
        "--status-h": f"{status_h:.0f}px", "--status-bg": status_bg, "--status-fg": _ink_on(status_bg),
        "--bar-h": f"{rng.uniform(44, 62):.0f}px", "--bar-bg": bar_bg, "--bar-fg": _ink_on(bar_bg),
        "--bar-accent": accent if bar_style != "accent" else _ink_on(bar_bg),
        "--nav-h": {"none": "0px", "pill": f"{rng.uniform(14, 30):.0f}px", "buttons": f"{rng.uniform(36, 48):.0f}px"}[nav],
        "--nav-bg": kb["--kb-panel"] if rng.random() < 0.5 else bg, "--nav-fg": fg,
        "--field-r": f"{rng.choice((4, 8, 10, 14))}px", "--card-r": f"{rng.choice((8, 12, 16))}px",
        "--field-bg": bg if rng.random() < 0.6 else surface, "--composer-bg": rng.choice((bg, surface)),
        "--banner-bg": "#2c2c2e" if dark else rng.choice(("#f9f9fb", "#ffffff", "#eeeeef")), "--banner-fg": "#f2f2f2" if dark else "#111111",
        "--kb-h": f"{kb_h:.0f}px", "--cand-h": f"{rng.uniform(34, 46):.0f}px", "--key-fs": f"{key_fs:.1f}px",
        "--emoji-fs": f"{key_fs * rng.uniform(1.1, 1.4):.1f}px", "--emoji-cols": str(rng.choice((7, 8, 8, 9))),
        "--kb-gap": f"{rng.uniform(4, 7):.1f}px", "--kb-pad-bottom": f"{rng.choice((0, 0, 4, 10, 18)):.0f}px",
        **kb,
    }
    css = ":root {" + "".join(f"{k}: {v};" for k, v in variables.items()) + "}" + f" .kbd .keys {{ height: {kb_h:.0f}px; flex: none; }}"
    classes = " ".join((
        f"skin-{skin}", "dark" if dark else "light", rng.choice(("box-outline", "box-filled", "box-line")),
        "tails" if rng.random() < 0.5 else "", "upper" if skin in ("ios", "samsung") and rng.random() < 0.7 else "lower",
    ))
    return Look(
        width=width, height=height, density=density, skin=skin, status=status, nav=nav, classes=classes.strip(),
        css=css, send_text=zh and rng.random() < 0.5 or rng.random() < 0.15, avatar_square=zh and rng.random() < 0.6,
        clock=f"{rng.randint(0, 23)}:{rng.randint(0, 59):02d}" if status != "ios" else f"{rng.randint(1, 12)}:{rng.randint(0, 59):02d}",
        battery=rng.randint(5, 100), autofill_chip=skin == "ios" and rng.random() < 0.5,
        title_center=rng.random() < (0.7 if status == "ios" else 0.3),
    )


def _keyboard_colors(skin: str, dark: bool, accent: str, rng: random.Random) -> dict[str, str]:
    """Panel, keys, function keys, ink and the key shape of a skin."""
    if skin == "ios":
        panel, key, fn = ("#2b2b2d", "#6b6b6e", "#464648") if dark else ("#d1d3d9", "#ffffff", "#abb0ba")
        shadow, radius, kb_accent = ("0 1px 0 #000" if dark else "0 1px 0 #898a8d"), "5px", "#0a84ff"
    elif skin == "gboard":
        panel, key, fn = ("#202124", "#3c4043", "#5f6368") if dark else ("#e8eaed", "#ffffff", "#cfd3da")
        shadow, radius, kb_accent = "none", f"{rng.choice((6, 8, 10))}px", "#8ab4f8" if dark else "#1a73e8"
    elif skin == "sogou":
        panel, key, fn = ("#1e1f22", "#34363b", "#2a2c30") if dark else ("#eef0f4", "#ffffff", "#dfe3ea")
        shadow, radius, kb_accent = "0 1px 1px rgba(0,0,0,0.15)", "6px", _jitter(rng.choice(("#fd6f2d", "#3f8cff", "#16b777")), rng, 0.05)
    elif skin == "samsung":
        panel, key, fn = ("#111111", "#2a2a2a", "#1d1d1d") if dark else ("#f4f4f4", "#ffffff", "#e3e3e3")
        shadow, radius, kb_accent = "none", f"{rng.choice((10, 12, 14))}px", "#3e91ff"
    else:  # swift: dark slate with round keys whatever the app theme
        panel, key, fn = ("#1b1f24", "#2f353d", "#252a31")
        shadow, radius, kb_accent = "none", "10px", accent
    if rng.random() < 0.3:
        panel = _jitter(panel, rng, 0.04)
    return {
        "--kb-panel": panel, "--key": key, "--key-fn": fn, "--key-ink": _ink_on(key), "--key-shadow": shadow, "--key-r": radius,
        "--kb-accent": kb_accent, "--on-kb-accent": _ink_on(kb_accent),
        "--cand-line": "1px solid rgba(127,127,127,0.25)" if rng.random() < 0.5 else "none",
    }
