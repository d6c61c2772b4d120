"""Screen text: the lines of text a screenshot shows, read once per new screen (torch-free).

``ScreenReader.read(image)`` returns ``keypilot.screen_text.ScreenText`` lines with boxes in
the image's pixels; ``fill_screen_text`` (``keypilot data ocr``) writes them into a data set's
records. Needs the ``ocr`` extra (``rapidocr``); docs/screen-text.md has the design and cost.
"""

from keypilot.ocr.reader import OcrUnavailable, ScreenReader, keyboard_top
from keypilot.ocr.words import WordSplitter

__all__ = ["OcrUnavailable", "ScreenReader", "WordSplitter", "keyboard_top"]
