"""Keystroke-savings simulation: a simulated user types each record's target with the strip.

For every record the user starts from the field text ``context`` and wants to reach the
goal text (the context with its last word corrected, its word being typed completed, or the
empty field filled with the suggestion). The plain-keyboard path to the goal is a list of
field states, one key apart:

- backspaces down to the longest common prefix of the context and the goal (a wrong last
  word is deleted character by character);
- one key per character typed; a run of Chinese characters is typed as its pinyin letters
  (shown as a composing buffer) plus one key to commit it (the plain IME is assumed to offer
  the right characters first — generous to the plain keyboard).

If the context already lies on that path (a half-typed word, a pinyin buffer) the user starts
there. With KeyPilot, at each state the user looks at the strip and taps the candidate that
moves the field furthest along the path (one key), else presses the next plain key. The
layout key counts separately: the plain keyboard needs one tap when ``prev_layout`` differs
from the layout needed, KeyPilot one tap when the layout it shows at the start differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from keypilot.evaluation.baselines import _pinyin_of, completion_base, correction_base
from keypilot.labels import is_cjk


class StripPrediction(Protocol):
    shown: list[str]
    shown_kind: str
    layout: str


class StripPredictor(Protocol):
    def predict(self, image: Any, text: str, prev_layout: str = "EN", user_id: int | None = None,
                full: bool = True) -> StripPrediction:
        """``full=False``: only the strip is needed (cheaper)."""


@dataclass
class SimulationResult:
    records: int
    plain_keys: int
    model_keys: int
    candidate_taps: int
    plain_layout_taps: int
    model_layout_taps: int

    def to_dict(self) -> dict[str, float | int]:
        saved = 1 - self.model_keys / self.plain_keys if self.plain_keys else 0.0
        return {
            "records": self.records,
            "plain_keystrokes": self.plain_keys,
            "model_keystrokes": self.model_keys,
            "keystroke_savings": saved,
            "candidate_taps": self.candidate_taps,
            "plain_layout_taps": self.plain_layout_taps,
            "model_layout_taps": self.model_layout_taps,
            "layout_taps_saved": self.plain_layout_taps - self.model_layout_taps,
        }


def goal_text(record: Any) -> str:
    """The field text once the record's target is in place."""
    if record.task == "error_correction":
        return correction_base(record.context, record.target) + record.target
    if record.task == "auto_completion":
        return completion_base(record.context, record.target) + record.target
    return record.context + record.target


def apply_candidate(text: str, candidate: str, kind: str) -> str:
    """Field text after tapping ``candidate`` of the strip's ``kind`` (correction/completion/suggestion)."""
    if kind == "correction":
        return correction_base(text, candidate) + candidate
    if kind == "suggestion":
        return candidate if not text.strip() else text
    return completion_base(text, candidate) + candidate


def typing_path(start: str, goal: str) -> list[str]:
    """Field states from ``start`` to ``goal`` on a plain keyboard, one key apart (see module doc)."""
    common = 0
    while common < min(len(start), len(goal)) and start[common] == goal[common]:
        common += 1
    path = [start[:n] for n in range(len(start), common - 1, -1)]
    text, rest = goal[:common], goal[common:]
    i = 0
    while i < len(rest):
        if is_cjk(rest[i]) and rest[i].isalpha():
            j = i
            while j < len(rest) and is_cjk(rest[j]) and rest[j].isalpha():
                j += 1
            letters = _pinyin_of(rest[i:j])
            path += [text + letters[:n] for n in range(1, len(letters) + 1)]
            text += rest[i:j]
            i = j
        else:
            text += rest[i]
            i += 1
        path.append(text)
    return _start_on_path(start, path)


def _start_on_path(start: str, path: list[str]) -> list[str]:
    """If the context is already a later state of the typing path, start from there."""
    for index in range(len(path) - 1, 0, -1):
        if path[index] == start:
            return path[index:]
    return path


def simulate(predictor: StripPredictor, records: Sequence[Any], max_records: int | None = None,
             max_path: int = 40) -> SimulationResult:
    """Run the simulated user over ``records`` (at most ``max_records``; paths over ``max_path``
    states are left out to bound the cost). One predictor call per state reached."""
    result = SimulationResult(0, 0, 0, 0, 0, 0)
    for record in records:
        if max_records is not None and result.records >= max_records:
            break
        path = typing_path(record.context, goal_text(record))
        if len(path) > max_path:
            continue
        result.records += 1
        result.plain_keys += len(path) - 1
        result.plain_layout_taps += int(record.prev_layout != record.layout)
        position, layout, first = 0, record.prev_layout, True
        where = {state: i for i, state in enumerate(path)}
        while position < len(path) - 1:
            prediction = predictor.predict(record.image, path[position], prev_layout=layout, user_id=record.user_id,
                                           full=False)
            if first:
                result.model_layout_taps += int(prediction.layout != record.layout)
                first = False
            layout = prediction.layout
            reach = max((where.get(apply_candidate(path[position], c, prediction.shown_kind), -1)
                         for c in prediction.shown), default=-1)
            result.model_keys += 1
            if reach > position:
                result.candidate_taps += 1
                position = reach
            else:
                position += 1
    return result
