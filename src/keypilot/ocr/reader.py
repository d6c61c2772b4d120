"""``ScreenReader``: the lines of text on a phone screenshot, cheaply enough for every new screen.

Built on RapidOCR (``rapidocr``, PP-OCRv6 small detection and recognition ONNX models shipped
in its wheel; nothing is downloaded) run through onnxruntime at a fixed number of threads.
What makes it cheap (see docs/screen-text.md for the measurements):

- **Only the screen above the keyboard.** The keyboard's keys are most of a screenshot's text
  boxes and none of its content. With the keyboard's box known (a record's ``rois.keyboard``)
  the image is cut there; otherwise detection runs on the whole screen and the key rows are
  found among the boxes (``keyboard_top``) and dropped before recognition.
- **Detection at a reduced size**: the long side of what is detected is ``det_side`` pixels
  (0.27-0.4 of a 1080 x 2340 screenshot), where phone text is still 11-18 pixels tall.
- **Recognition of the detected lines only, at their own width**: each line is cut from the
  full-resolution image and read at 48 pixels high without the library's padding to 320
  pixels, which halves the cost of a screen of short lines.
- **A recognition budget**: lines are read nearest to the focused field first (or the
  keyboard's top), after the top band of the screen (notification banner, title), until
  ``budget_px`` of 48-high line width is spent; far-away lines of a dense screen are dropped.

English word spaces the recogniser loses are put back by ``WordSplitter``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
from PIL import Image

from keypilot.ocr.words import WordSplitter
from keypilot.screen_text import MAX_LINES, MAX_TEXT, ScreenText

Box = tuple[float, float, float, float]

# Long side of the image detection sees, in pixels.
DET_SIDE = 640
# Screens larger than this (long side) are downscaled before anything else: no phone text
# needs more, and an 8000 x 8000 upload would otherwise be cut into huge crops.
MAX_SIDE = 2400
# Line height recognition reads at (the model's input height) and the total width, at that
# height, of the lines read per screen: about 3,200 px is ~130 Latin characters.
REC_HEIGHT = 48
BUDGET_PX = 2800
# Lines whose box is shorter than this fraction of the screen's long side are specks.
MIN_LINE_HEIGHT = 0.004
# A recognised line below this confidence is dropped (the library's own default).
MIN_SCORE = 0.5
# Top band of the screen read first whatever the field: notification banner, title.
TOP_BAND = 0.14
# The status bar (clock, battery) ends above this fraction of the height: never read.
STATUS_BAR = 0.035


class OcrUnavailable(RuntimeError):
    """The recognition library is not installed (the ``ocr`` extra)."""


class ScreenReader:
    """``read(image) -> list[ScreenText]``: one entry per text line, boxes in the image's pixels.

    Calls are serialised by a lock (the library keeps per-call state); the server runs one
    background worker anyway.
    """

    def __init__(self, threads: int = 1, det_side: int = DET_SIDE, budget_px: int = BUDGET_PX,
                 words: WordSplitter | None = None) -> None:
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:
            raise OcrUnavailable("screen text needs the ocr extra: pip install 'keypilot[ocr]' "
                                 f"(rapidocr and opencv-python-headless); {exc}") from exc
        self.det_side, self.budget_px = det_side, budget_px
        self.words = words if words is not None else WordSplitter.from_wordfreq()
        self._engine = RapidOCR(params={
            "Global.log_level": "critical",  # the library logs through its own logger; keep it quiet
            "Global.use_cls": False,  # screenshots are upright: no 180-degree line classifier
            "Global.max_side_len": MAX_SIDE,
            "Det.limit_side_len": det_side,
            "Det.limit_type": "max",
            # The minimum width a line is padded to before recognition: 48 (one square) instead of 320.
            "Rec.rec_img_shape": [3, REC_HEIGHT, REC_HEIGHT],
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        })
        self._lock = threading.Lock()

    def read(self, image: Image.Image, keyboard: Box | None = None, field: Box | None = None) -> list[ScreenText]:
        """The text lines of ``image`` above the keyboard, in reading order.

        ``keyboard`` / ``field``: the keyboard's and the focused field's boxes in image pixels
        when known (a record's ``rois``); the keyboard is then cut off before detection, and
        lines nearest the field are read first.
        """
        if not isinstance(image, Image.Image):
            raise TypeError(f"ScreenReader.read takes a PIL image, got {type(image).__name__}")
        with self._lock:
            return self._read(image, keyboard, field)

    def _read(self, image: Image.Image, keyboard: Box | None, field: Box | None) -> list[ScreenText]:
        image = image.convert("RGB") if image.mode != "RGB" else image
        scale = min(1.0, MAX_SIDE / max(image.size))
        if scale < 1.0:
            image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                                 Image.Resampling.BILINEAR)
        bottom = image.height
        if keyboard is not None and keyboard[1] * scale > 0.2 * image.height:
            bottom = min(bottom, round(keyboard[1] * scale))
        pixels = np.ascontiguousarray(np.asarray(image)[:bottom, :, ::-1])  # BGR, as the models were trained
        boxes = self._detect(pixels)
        if keyboard is None:
            cut = keyboard_top(boxes, bottom)
            boxes = [b for b in boxes if b[3] <= cut]
            bottom = cut
        anchor = (field[1] + field[3]) / 2 * scale if field is not None else bottom
        lines = self._recognise(pixels, boxes, anchor, image.height)
        lines.sort(key=lambda line: (round(line.box[1] / 8), line.box[0]))
        return [ScreenText(line.text, tuple(float(v) / scale for v in line.box)) for line in lines[:MAX_LINES]]

    def _detect(self, pixels: np.ndarray) -> list[Box]:
        """Line boxes (axis-aligned, in ``pixels``' coordinates) above a speck's height."""
        if min(pixels.shape[:2]) < 8:
            return []
        result = self._engine(pixels, use_det=True, use_cls=False, use_rec=False)
        if result.boxes is None:
            return []
        min_h = MIN_LINE_HEIGHT * max(pixels.shape[:2])
        boxes = []
        for quad in np.asarray(result.boxes, dtype=np.float64):
            x0, y0 = (float(v) for v in quad.min(axis=0))
            x1, y1 = (float(v) for v in quad.max(axis=0))
            if y1 - y0 >= min_h and x1 > x0:
                boxes.append((max(0.0, x0), max(0.0, y0), min(float(pixels.shape[1]), x1), min(float(pixels.shape[0]), y1)))
        return boxes

    def _recognise(self, pixels: np.ndarray, boxes: Sequence[Box], anchor: float, height: int) -> list[ScreenText]:

        def priority(box: Box) -> tuple[int, float]:
            middle = (box[1] + box[3]) / 2
            return (0, middle) if middle < TOP_BAND * height else (1, abs(middle - anchor))

        lines, spent = [], 0.0
        for box in sorted(boxes, key=priority):
            if box[3] < STATUS_BAR * height:
                continue
            x0, y0, x1, y1 = (int(box[0]), int(box[1]), int(np.ceil(box[2])), int(np.ceil(box[3])))
            crop = pixels[y0:y1, x0:x1]
            if crop.size == 0:
                continue
            cost = crop.shape[1] * REC_HEIGHT / crop.shape[0]
            if spent + cost > self.budget_px:
                continue
            spent += cost
            result = self._engine(np.ascontiguousarray(crop), use_det=False, use_cls=False, use_rec=True)
            if not result.txts or result.scores[0] < MIN_SCORE:
                continue
            text = self.words.split(result.txts[0].strip())[:MAX_TEXT]
            if text:
                lines.append(ScreenText(text, box))
        return lines


def keyboard_top(boxes: Sequence[Box], height: float) -> float:
    """Where an on-screen keyboard starts, from its key labels among the detected ``boxes``.

    A key row is a row of at least three narrow boxes (single glyphs: letters, digits, the
    "ABC" under a dial-pad digit) in the lower 60% of the screen; the keyboard is the stack of
    at least two key rows reaching down to the bottom (a row may be missing: the space bar's),
    and it starts just above its top row (often the toolbar's icons). ``height`` when no
    keyboard is found.
    """
    narrow = [b for b in boxes if (b[2] - b[0]) <= 2.2 * (b[3] - b[1]) and (b[1] + b[3]) / 2 > 0.4 * height]
    if len(narrow) < 6:
        return height
    narrow.sort(key=lambda b: (b[1] + b[3]) / 2)
    rows: list[list[Box]] = []
    for box in narrow:
        middle, tall = (box[1] + box[3]) / 2, box[3] - box[1]
        if rows and abs(middle - _middle(rows[-1])) < 0.5 * tall:
            rows[-1].append(box)
        else:
            rows.append([box])
    middles = [_middle(row) for row in rows if len(row) >= 3]
    if len(middles) < 2:
        return height
    pitch = float(np.median(np.diff(middles)))
    if height - middles[-1] > 3 * pitch:
        return height  # the rows do not reach the bottom: not a keyboard
    top = len(middles) - 1  # climb the stack from the bottom while the rows stay a pitch apart
    while top > 0 and middles[top] - middles[top - 1] <= 2.5 * pitch:  # a row may be missed
        top -= 1
    if top == len(middles) - 1:
        return height
    top_row = [row for row in rows if len(row) >= 3][top]
    row_height = float(np.median([b[3] - b[1] for b in top_row]))
    return max(0.0, min(b[1] for b in top_row) - 0.3 * row_height)


def _middle(row: Sequence[Box]) -> float:
    return float(np.mean([(b[1] + b[3]) / 2 for b in row]))
