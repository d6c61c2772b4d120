"""The built-in data generator: realistic phone screens and typing, with labels that need
the screen. See docs/data.md.

Public entry points: :func:`generate_dataset` (the ``keypilot data generate`` command),
:func:`iter_steps` (labels without rendering), :func:`render_step`, and the script-aware
text helpers :func:`draw_text` / :func:`text_width` / :func:`wrap_text`.
"""

from keypilot.data.generate.fonts import draw_text, text_width, wrap_text
from keypilot.data.generate.sessions import iter_steps
from keypilot.data.generate.writer import generate_dataset, render_step

__all__ = ["draw_text", "generate_dataset", "iter_steps", "render_step", "text_width", "wrap_text"]
