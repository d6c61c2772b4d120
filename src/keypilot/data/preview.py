"""Contact sheet of a data set: thumbnails with their ROI boxes and labels, for a quick look.

Works on a data folder (every ``*.jsonl`` in it) or one ``.jsonl`` file, from the generator
or any other source that follows data-format.md. Captions mix Latin, Chinese and emoji, so
they are drawn with the generator's script-aware text helper.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

from keypilot.data.generate.fonts import draw_text, fit_tail, line_height
from keypilot.labels import ROI_KEYS

ROI_COLORS: dict[str, tuple[int, int, int]] = {
    "input_field": (230, 25, 75),
    "chat_bubble": (60, 180, 75),
    "keyboard": (0, 130, 200),
    "title_bar": (245, 130, 48),
}
THUMB_W, THUMB_H = 200, 400
CAPTION_LINES = 4
FS = 12


def _read(path: Path) -> list[tuple[Path, dict]]:
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"no .jsonl files in {path}")
    out = []
    for file in files:
        for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    out.append((file.parent, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{file}:{n}: not JSON ({e.msg})") from e
    return out


def _thumb(folder: Path, rec: dict) -> Image.Image:
    """The screenshot letterboxed into a THUMB_W x THUMB_H tile with its ROI boxes."""
    tile = Image.new("RGB", (THUMB_W, THUMB_H), (40, 40, 40))
    try:
        img = Image.open(folder / rec["image"]).convert("RGB")
    except (OSError, KeyError) as e:
        draw_text(ImageDraw.Draw(tile), (6, 6), f"no image: {e}"[:40], FS, (255, 255, 255))
        return tile
    scale = min(THUMB_W / img.width, THUMB_H / img.height)
    w, h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
    ox, oy = (THUMB_W - w) // 2, (THUMB_H - h) // 2
    tile.paste(img.resize((w, h), Image.BILINEAR), (ox, oy))
    d = ImageDraw.Draw(tile)
    for key in ROI_KEYS:
        box = (rec.get("rois") or {}).get(key)
        if box:
            x0, y0, x1, y1 = (ox + box[0] * scale, oy + box[1] * scale, ox + box[2] * scale, oy + box[3] * scale)
            d.rectangle((x0, y0, x1, y1), outline=ROI_COLORS[key], width=2)
    return tile


def _caption(d: ImageDraw.ImageDraw, x: int, y: int, rec: dict) -> None:
    lines = [
        (f"{rec.get('id', '?')}", (110, 110, 110)),
        (f"ctx: {rec.get('context', '')!s}" if rec.get("context") else "ctx: (empty)", (20, 20, 20)),
        (f"{rec.get('task', '?')} → {rec.get('target', '')}", (20, 20, 160)),
        (f"layout {rec.get('layout', '?')} (prev {rec.get('prev_layout', 'EN')})  user {rec.get('user_id', '-')}", (20, 110, 20)),
    ]
    for i, (text, color) in enumerate(lines[:CAPTION_LINES]):
        draw_text(d, (x, y + i * line_height(FS)), fit_tail(text, FS, THUMB_W - 4) if i != 1 else _head(text), FS, color)


def _head(text: str) -> str:
    """Context is shown by its end (where the cursor is), marked with an ellipsis if cut."""
    tail = fit_tail(text[5:], FS, THUMB_W - 40)
    return "ctx: " + ("…" if tail != text[5:] else "") + tail


def make_contact_sheet(path: Path | str, out: Path | str, num: int = 24, seed: int = 0, columns: int = 6) -> Path:
    """Draw ``num`` records (a seeded random choice) of ``path`` into the image ``out``."""
    path, out = Path(path), Path(out)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    records = _read(path)
    if not records:
        raise ValueError(f"{path} has no records")
    chosen = random.Random(seed).sample(records, min(num, len(records)))
    cols = max(1, min(columns, len(chosen)))
    rows = (len(chosen) + cols - 1) // cols
    cell_h = THUMB_H + CAPTION_LINES * line_height(FS) + 10
    legend_h = line_height(FS) + 12
    sheet = Image.new("RGB", (cols * (THUMB_W + 8) + 8, legend_h + rows * cell_h + 8), (250, 250, 250))
    d = ImageDraw.Draw(sheet)
    x = 8
    for key, color in ROI_COLORS.items():
        d.rectangle((x, 8, x + 12, 8 + FS), outline=color, width=2)
        x += 18 + draw_text(d, (x + 16, 6), key, FS, (20, 20, 20)) + 10
    for i, (folder, rec) in enumerate(chosen):
        r, c = divmod(i, cols)
        x, y = 8 + c * (THUMB_W + 8), legend_h + r * cell_h
        sheet.paste(_thumb(folder, rec), (x, y))
        _caption(d, x, y + THUMB_H + 3, rec)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
