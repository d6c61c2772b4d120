"""A step of a session through the HTML renderer: its look, its screen loaded once, then the
field, keyboard and candidate bar of each step, the screenshot, the ROI boxes in pixels and the
lines of text it shows (``textlines``), read from the DOM in the same call as the boxes."""

from __future__ import annotations

import random

from PIL import Image

from keypilot.data.generate.html.browser import BrowserPage
from keypilot.data.generate.html.look import Look, sample_look
from keypilot.data.generate.html.templates import screen_html
from keypilot.data.generate.scenes import Screen, User
from keypilot.data.generate.textlines import join_pieces
from keypilot.screen_text import ScreenText

Rois = dict[str, list[int] | None]
ROI_NAMES = ("input_field", "chat_bubble", "keyboard", "title_bar")


class HtmlRenderer:
    """Owns the worker's Chromium page; ``render`` reloads the screen only when the session changes."""

    def __init__(self) -> None:
        self.browser = BrowserPage()
        self._session: str | None = None
        self._look: Look | None = None

    def render(self, session: str, render_seed: int, screen: Screen, user: User, keyboard_any: bool, context: str,
               keyboard: str | None, candidates: list[str], buffer: str,
               masked: bool) -> tuple[Image.Image, Rois, list[ScreenText]]:
        if session != self._session or self._look is None:
            rng = random.Random(f"html-{render_seed}")
            look = sample_look(rng, user, screen.ui_lang)
            html = screen_html(screen, look, rng, keyboard_any)
            self.browser.load(html, look.css, look.classes, screen.app, look.width, look.height, look.density)
            self._session, self._look = session, look
        boxes = self.browser.step({"context": context, "layout": keyboard, "candidates": candidates if buffer else [],
                                   "buffer": buffer, "masked": masked})
        img = self.browser.screenshot()
        sx, sy = img.width / self._look.width, img.height / self._look.height
        rois: Rois = {}
        for name in ROI_NAMES:
            b = boxes.get(name)
            if b is None:
                rois[name] = None
                continue
            x0, y0 = max(0, int(b[0] * sx)), max(0, int(b[1] * sy))
            x1, y1 = min(img.width, int(round(b[2] * sx))), min(img.height, int(round(b[3] * sy)))
            rois[name] = [x0, y0, x1, y1] if x1 > x0 + 1 and y1 > y0 + 1 else None
        # CSS pixels to the screenshot's (the device scale factor), kept inside the image
        pieces = [(text, (max(0.0, x0 * sx), max(0.0, y0 * sy), min(img.width, x1 * sx), min(img.height, y1 * sy)))
                  for text, x0, y0, x1, y1 in boxes.get("texts", [])]
        return img, rois, join_pieces(pieces)

    def close(self) -> None:
        self.browser.close()
