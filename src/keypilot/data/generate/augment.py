"""Screen augmentation after rendering, for both renderers: density (rescale), partial
screenshots (top cut), colour and theme jitter, blur, and the JPEG quality of the file.

What a real screenshot goes through before a model sees it: another phone's density, a
crop that drops the status and title bars, a messenger's recompression. Parameters are drawn
once per session (one phone, one habit) from the session's render seed; only the crop
follows each step's input field, which must stay whole. ROI boxes move with the pixels and
become ``None`` when their element is cut away; so do the boxes of the screen's text lines,
and a line the crop cuts through (less than ``textlines.VISIBLE`` of its height left) is gone.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageEnhance, ImageFilter

from keypilot.data.generate.textlines import clip_line
from keypilot.screen_text import ScreenText

Rois = dict[str, list[int] | None]


@dataclass(frozen=True)
class Augment:
    scale: float  # 1.0 = as rendered
    top_cut: float  # share of the height above the input field that is cut away (partial screenshot)
    brightness: float
    contrast: float
    saturation: float
    blur: float  # Gaussian radius in pixels, 0 = none
    jpeg_quality: int

    @staticmethod
    def sample(rng: random.Random) -> Augment:
        r = rng.random()
        scale = rng.uniform(0.6, 0.95) if r < 0.15 else rng.uniform(1.1, 1.6) if r < 0.2 else 1.0
        jitter = rng.random() < 0.25
        return Augment(
            scale=scale,
            top_cut=rng.uniform(0.15, 0.7) if rng.random() < 0.1 else 0.0,
            brightness=rng.uniform(0.88, 1.12) if jitter else 1.0,
            contrast=rng.uniform(0.88, 1.12) if jitter else 1.0,
            saturation=rng.uniform(0.75, 1.25) if jitter else 1.0,
            blur=rng.uniform(0.4, 1.1) if rng.random() < 0.08 else 0.0,
            jpeg_quality=rng.randint(35, 70) if rng.random() < 0.2 else rng.randint(71, 95),
        )


def _move(box: list[int] | None, dy: int, sx: float, sy: float, width: int, height: int) -> list[int] | None:
    if box is None:
        return None
    x0, x1 = int(box[0] * sx), int(round(box[2] * sx))
    y0, y1 = int((box[1] - dy) * sy), int(round((box[3] - dy) * sy))
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    return [x0, y0, x1, y1] if x1 > x0 + 1 and y1 > y0 + 1 else None


def _move_text(lines: list[ScreenText], dy: int, sx: float, sy: float, width: int, height: int) -> list[ScreenText]:
    moved = []
    for line in lines:
        x0, y0, x1, y1 = line.box
        cut = clip_line(ScreenText(line.text, (x0 * sx, (y0 - dy) * sy, x1 * sx, (y1 - dy) * sy)), (0, 0, width, height))
        if cut is not None:
            moved.append(cut)
    return moved


def apply(img: Image.Image, rois: Rois, aug: Augment,
          text: Sequence[ScreenText] = ()) -> tuple[Image.Image, Rois, list[ScreenText]]:
    """The augmented screenshot, its ROI boxes and its text lines (a partial screenshot stays portrait)."""
    dy = 0
    field = rois.get("input_field")
    if aug.top_cut and field is not None:
        # Never cut into the field, and keep the image at least as tall as it is wide.
        dy = min(int(field[1] * aug.top_cut), img.height - img.width)
        if dy > 0:
            img = img.crop((0, dy, img.width, img.height))
        dy = max(dy, 0)
    cut_w, cut_h = img.size
    if aug.scale != 1.0:
        img = img.resize((max(1, round(img.width * aug.scale)), max(1, round(img.height * aug.scale))), Image.BILINEAR)
    if aug.brightness != 1.0:
        img = ImageEnhance.Brightness(img).enhance(aug.brightness)
        img = ImageEnhance.Contrast(img).enhance(aug.contrast)
        img = ImageEnhance.Color(img).enhance(aug.saturation)
    if aug.blur:
        img = img.filter(ImageFilter.GaussianBlur(aug.blur))
    sx, sy = img.width / cut_w, img.height / cut_h
    moved = {key: _move(box, dy, sx, sy, img.width, img.height) for key, box in rois.items()}
    return img, moved, _move_text(list(text), dy, sx, sy, img.width, img.height)
