"""Screen text in the server: each new screen is read once, in the background.

A keystroke never waits for recognition (a few hundred milliseconds per screen). The first
keystroke on a new screen hands its screenshot to ``ScreenTextWorker.submit``, which queues it
and returns at once; one worker thread reads queued screens one at a time and stores the lines
in the ``ScreenStore`` beside the screenshot (evicted with it). Keystrokes on that screen
answer without screen text until the lines are there, and with them afterwards.

Bounds: one read at a time, at most ``max_queue`` screens waiting (a screen submitted to a full
queue is skipped for now and offered again by its next keystroke), and a screen is never queued
twice. The recognised text is kept in memory only: it is never logged (a failed read logs the
exception's type, never its message or the text) nor written anywhere.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from PIL import Image

from keypilot.screen_text import ScreenText
from keypilot.serve.images import ScreenStore

log = logging.getLogger(__name__)

Reader = Callable[[Image.Image], list[ScreenText]]


class ScreenTextWorker:
    """Reads submitted screens with ``make_reader()``'s reader on one background thread.

    ``make_reader`` runs on the worker thread (loading the models there keeps server start-up
    fast); if it fails (``OcrUnavailable``: the ``ocr`` extra is not installed) the worker logs
    why once and every later ``submit`` is a no-op: the server answers without screen text.
    """

    def __init__(self, store: ScreenStore, make_reader: Callable[[], Reader], max_queue: int = 8) -> None:
        self.store = store
        self._make_reader = make_reader
        self._queue: queue.Queue[tuple[str, Image.Image] | None] = queue.Queue(maxsize=max_queue)
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self.available = True
        self.screens_read = 0
        self._thread = threading.Thread(target=self._run, name="screen-text", daemon=True)
        self._thread.start()

    def submit(self, screen_id: str, image: Image.Image) -> None:
        """Queue ``image`` for reading unless it is read, queued or being read; never blocks."""
        if not self.available or self.store.text(screen_id) is not None:
            return
        with self._lock:
            if screen_id in self._pending:
                return
            try:
                self._queue.put_nowait((screen_id, image))
            except queue.Full:
                return  # the next keystroke on this screen offers it again
            self._pending.add(screen_id)

    def close(self, timeout: float = 10.0) -> None:
        """Stop after the read in progress (queued screens are dropped)."""
        self.available = False
        with self._lock:
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            self._pending.clear()
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            reader = self._make_reader()
        except Exception as exc:  # noqa: BLE001 - any failure to load means: serve without screen text
            self.available = False
            log.warning("screen text is off: %s", exc)
            return
        while True:
            item = self._queue.get()
            if item is None:
                return
            screen_id, image = item
            try:
                lines = reader(image)
            except Exception as exc:  # noqa: BLE001 - a screen that cannot be read has no text
                log.warning("screen %s could not be read (%s); answering without its text", screen_id, type(exc).__name__)
                lines = []
            self.store.set_text(screen_id, lines)
            with self._lock:
                self._pending.discard(screen_id)
                self.screens_read += 1
