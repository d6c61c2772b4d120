"""The privacy rule: what KeyPilot does not do for a field the app declares private.

An app may say what the focused field is (``input_type``, one of ``labels.INPUT_TYPES``, like
Android's ``EditorInfo``). For a ``password`` field nothing is predicted: the screenshot is not
read or encoded, the text is not looked at or logged, and no state is kept (no screen cache
entry, no stored upload, no per-user data). The keyboard keeps the layout it shows and its
strip stays empty. Independently of the input type, ``keypilot predict`` and ``keypilot serve``
never write screenshots, typed text or the text recognised on a screen (``keypilot.ocr``) to
disk or to a log.
"""

from __future__ import annotations

from keypilot.inference.postprocess import Prediction
from keypilot.labels import INPUT_TYPES, LAYOUTS

PRIVATE_INPUT_TYPES: tuple[str, ...] = ("password",)


def is_private(input_type: str | None) -> bool:
    """Whether nothing may be predicted, read or kept for a field of ``input_type`` (None: unknown)."""
    if input_type is not None and input_type not in INPUT_TYPES:
        raise ValueError(f"unknown input_type {input_type!r}; expected one of {', '.join(INPUT_TYPES)}")
    return input_type in PRIVATE_INPUT_TYPES


def withheld_prediction(layout: str) -> Prediction:
    """The answer for a private field: no task, no candidates, the keyboard stays on ``layout``."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    return Prediction(
        task=None, task_probs={}, corrections=[], completions=[], suggestion=None,
        layout=layout, layout_raw=layout, layout_probs={}, expert_probs={},
        shown=[], screen_cached=False, timing_ms={"screen": 0.0, "keystroke": 0.0, "total": 0.0},
    )  # fmt: skip
