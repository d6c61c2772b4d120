"""The HTML/CSS renderer: phone screens laid out and drawn by headless Chromium.

Independent of the Pillow renderer (``screen.py``, ``chrome.py``, ``keyboard.py``): it shares
only the scene (:class:`~keypilot.data.generate.scenes.Screen` and the step's typed text and
keyboard), so that neither renderer's habits become what a model learns. See docs/data.md.
"""

from keypilot.data.generate.html.browser import unavailable_reason
from keypilot.data.generate.html.render import HtmlRenderer

__all__ = ["HtmlRenderer", "unavailable_reason"]
