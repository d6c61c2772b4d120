"""Recognition noise: what an on-device text recogniser makes of the lines a renderer drew.

The generator knows every string it put on the screen; a phone's recogniser does not read
them that well, and the model must learn from what recognition gives. The noise imitates
the errors measured with the PP-OCR mobile models on generated screens (issue 11) and the
usual failures of line-based recognisers:

- a line is missed (small, low-contrast or blurred text) or split in two at a gap;
- Latin word spaces are lost, often for a whole stretch ("Ithinkyouleft it");
- look-alike characters are swapped: O/0, l/1/I, S/5, B/8, Z/2, rn/m, cl/d, and a few
  near-shape Chinese pairs (己/已, 未/末, 人/入...);
- a character is dropped now and then;
- digits are read well: a whole digit group is misread with a low probability
  (``digit_group``, ~2.5%), one digit of it, so codes and amounts mostly survive;
- boxes are off by a few pixels.

Everything is drawn from the caller's seeded ``random.Random``, so a data set is reproducible.
``difficulty`` (1 for a clean screenshot) scales the non-digit rates for blurred, recompressed
or downscaled screenshots.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from keypilot.labels import is_cjk
from keypilot.screen_text import ScreenText

# Look-alikes a recogniser swaps, letters (and letter pairs) first.
LETTER_CONFUSIONS: dict[str, tuple[str, ...]] = {
    "O": ("0", "D"), "o": ("0", "a"), "l": ("1", "I", "|"), "I": ("l", "1"), "i": ("l", "j"), "S": ("5",),
    "s": ("5",), "B": ("8",), "Z": ("2",), "z": ("2",), "g": ("9", "q"), "e": ("c",), "c": ("e",), "u": ("v",),
    "rn": ("m",), "m": ("rn",), "cl": ("d",), "vv": ("w",), "h": ("b",), "t": ("f",),
}
DIGIT_CONFUSIONS: dict[str, tuple[str, ...]] = {
    "0": ("O", "D", "8"), "1": ("l", "7", "I"), "2": ("Z",), "3": ("8",), "4": ("A",), "5": ("S", "6"),
    "6": ("8", "b"), "7": ("1",), "8": ("B", "3"), "9": ("g",),
}
_CJK_GROUPS = ("己已巳", "未末", "人入", "土士", "日曰", "天夭", "大太犬", "王玉主", "白自", "干千于", "午牛",
               "贝见", "问间", "折拆", "候侯", "买卖", "今令", "免兔", "壁璧", "拨拔")
CJK_CONFUSIONS: dict[str, str] = {ch: "".join(c for c in group if c != ch) for group in _CJK_GROUPS for ch in group}
_DIGIT_GROUP = re.compile(r"\d+")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


@dataclass(frozen=True)
class NoiseConfig:
    """Rates of each error; see the module docstring."""

    drop_line: float = 0.07  # per line
    split_line: float = 0.05  # per line with a space (Latin) or 6+ characters (CJK)
    glue_line: float = 0.3  # per line of 3+ Latin words: its word spaces may be lost...
    glue_space: float = 0.6  # ...each with this probability
    confuse_char: float = 0.008  # per letter (or letter pair) with a look-alike
    confuse_cjk: float = 0.01  # per Chinese character with a near-shape twin
    drop_char: float = 0.003  # per non-digit character
    digit_group: float = 0.025  # per digit group: one of its digits misread
    jitter: float = 3.0  # pixels, at most, on each box edge


DEFAULT = NoiseConfig()


def _confuse(text: str, rng: random.Random, cfg: NoiseConfig, difficulty: float) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        pair = text[i : i + 2]
        ch = text[i]
        if pair in LETTER_CONFUSIONS and rng.random() < cfg.confuse_char * difficulty:
            out.append(rng.choice(LETTER_CONFUSIONS[pair]))
            i += 2
            continue
        if ch in LETTER_CONFUSIONS and not ch.isdigit() and rng.random() < cfg.confuse_char * difficulty:
            out.append(rng.choice(LETTER_CONFUSIONS[ch]))
        elif ch in CJK_CONFUSIONS and rng.random() < cfg.confuse_cjk * difficulty:
            out.append(rng.choice(CJK_CONFUSIONS[ch]))
        elif not ch.isdigit() and not ch.isspace() and rng.random() < cfg.drop_char * difficulty:
            pass
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _misread_digits(text: str, rng: random.Random, cfg: NoiseConfig) -> str:
    def one(m: re.Match) -> str:
        group = m.group()
        if rng.random() >= cfg.digit_group:
            return group
        k = rng.randrange(len(group))
        return group[:k] + rng.choice(DIGIT_CONFUSIONS[group[k]]) + group[k + 1 :]

    return _DIGIT_GROUP.sub(one, text)


def _glue(text: str, rng: random.Random, cfg: NoiseConfig) -> str:
    if len(_LATIN_WORD.findall(text)) < 3 or rng.random() >= cfg.glue_line:
        return text
    parts = text.split(" ")
    out = parts[0]
    for part in parts[1:]:
        out += part if rng.random() < cfg.glue_space else " " + part
    return out


def _split(line: ScreenText, rng: random.Random) -> list[ScreenText]:
    """Two lines cut at a space (Latin) or next to a Chinese character, boxes shared by
    character count; never inside a number or a word, which a detector keeps whole."""
    text, (x0, y0, x1, y1) = line.text, line.box
    cuts = [i for i, ch in enumerate(text) if ch == " "] or [
        i for i in range(2, len(text) - 1) if is_cjk(text[i - 1]) or is_cjk(text[i])]
    if not cuts:
        return [line]
    k = rng.choice(cuts)
    left, right = text[:k].rstrip(), text[k:].lstrip()
    if not left or not right:
        return [line]
    xm = x0 + (x1 - x0) * k / len(text)
    return [ScreenText(left, (x0, y0, xm, y1)), ScreenText(right, (xm, y0, x1, y1))]


def _jitter(box: tuple[float, float, float, float], rng: random.Random, cfg: NoiseConfig,
            size: tuple[int, int]) -> tuple[float, float, float, float]:
    j = min(cfg.jitter, 0.15 * (box[3] - box[1]))
    x0, y0, x1, y1 = (v + rng.uniform(-j, j) for v in box)
    w, h = size
    x0, y0 = min(max(0.0, x0), w - 1.0), min(max(0.0, y0), h - 1.0)
    return x0, y0, min(max(x1, x0 + 1.0), float(w)), min(max(y1, y0 + 1.0), float(h))


def read(lines: list[ScreenText], rng: random.Random, size: tuple[int, int], cfg: NoiseConfig = DEFAULT,
         difficulty: float = 1.0) -> list[ScreenText]:
    """What a recogniser returns for the drawn ``lines`` of an image of ``size`` (width, height)."""
    out: list[ScreenText] = []
    for line in lines:
        if rng.random() < cfg.drop_line * difficulty:
            continue
        text = _glue(_misread_digits(_confuse(line.text, rng, cfg, difficulty), rng, cfg), rng, cfg)
        if not text.strip():
            continue
        pieces = [ScreenText(text, line.box)]
        if rng.random() < cfg.split_line * difficulty:
            pieces = _split(pieces[0], rng)
        out += [ScreenText(p.text, _jitter(p.box, rng, cfg, size)) for p in pieces]
    return out
