"""The server's store of recent screens, by ``screen_id``.

A client types many keystrokes on one screenshot. It uploads the image once, gets back a
``screen_id`` (a hash of the uploaded bytes) and sends that id with every later keystroke.
The store hands the predictor the very same decoded image each time, and the server passes
the id on as the predictor's cache key, so the screen is encoded once. Beside each screenshot
the store keeps the text lines read from it (``serve.screen_text``; None until read), in
memory only, evicted with the screenshot. Decoding itself is ``keypilot.images``' (the loader
the CLI uses too).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from PIL import Image

from keypilot.screen_text import ScreenText


def screen_id_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


class ScreenStore:
    """Thread-safe LRU of decoded screenshots (and their text lines) by ``screen_id``, bounded by decoded bytes."""

    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._images: OrderedDict[str, Image.Image] = OrderedDict()
        self._texts: dict[str, list[ScreenText]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, screen_id: str) -> Image.Image | None:
        with self._lock:
            image = self._images.get(screen_id)
            if image is not None:
                self._images.move_to_end(screen_id)
            return image

    def put(self, screen_id: str, image: Image.Image) -> Image.Image:
        """Store ``image``; if the id is already there, keep and return the stored object."""
        with self._lock:
            stored = self._images.get(screen_id)
            if stored is not None:
                self._images.move_to_end(screen_id)
                return stored
            self._images[screen_id] = image
            self._bytes += _decoded_size(image)
            while self._bytes > self.max_bytes and len(self._images) > 1:
                evicted_id, evicted = self._images.popitem(last=False)
                self._texts.pop(evicted_id, None)
                self._bytes -= _decoded_size(evicted)
            return image

    def text(self, screen_id: str) -> list[ScreenText] | None:
        """The lines read from the screen, or None when not read (yet) or not stored."""
        with self._lock:
            return self._texts.get(screen_id)

    def set_text(self, screen_id: str, lines: list[ScreenText]) -> None:
        """Keep ``lines`` with the stored screen; dropped if the screen was evicted meanwhile."""
        with self._lock:
            if screen_id in self._images:
                self._texts[screen_id] = list(lines)

    def __len__(self) -> int:
        return len(self._images)


def _decoded_size(image: Image.Image) -> int:
    return image.width * image.height * len(image.getbands())
