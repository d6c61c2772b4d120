"""Torch-free result types and rules shared by both backends: the language masks, the filter
of decoded phrases, which lists a keystroke decodes, and the strip.

Every candidate is in the shown layout's language; the suggestion is decoded only for an
empty field; the strip follows method.md's priority. ``keypilot.inference.candidates`` ranks
corrections and completions with these rules for the torch and the ONNX predictor alike, so
both backends answer and serialize the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keypilot.labels import LAYOUTS, lang_of

STRIP_SIZE = 3  # candidates a phone keyboard shows above the keys


@dataclass
class Candidate:
    """One ranked candidate: its text, probability, log-score, and where it came from
    (``prior``: the priors' list re-scored by the network; ``network``: the decoder's own)."""

    text: str
    prob: float
    score: float = 0.0
    source: str = "network"


@dataclass
class Prediction:
    """One keystroke's answer; ``to_dict()`` is the contracts' "Predictor result"."""

    task: str | None  # None: nothing was predicted (a private field, keypilot.inference.privacy)
    task_probs: dict[str, float]
    corrections: list[Candidate]
    completions: list[Candidate]
    suggestion: Candidate | None
    layout: str
    layout_raw: str
    layout_probs: dict[str, float]
    expert_probs: dict[str, float]
    shown: list[str]
    screen_cached: bool
    timing_ms: dict[str, float]
    shown_kind: str = field(default="completion")  # not in the JSON: what tapping a candidate replaces

    def to_dict(self) -> dict[str, Any]:
        def cand(c: Candidate) -> dict[str, Any]:
            return {"text": c.text, "prob": c.prob, "source": c.source}

        return {
            "task": self.task,
            "task_probs": self.task_probs,
            "corrections": [cand(c) for c in self.corrections],
            "completions": [cand(c) for c in self.completions],
            "suggestion": cand(self.suggestion) if self.suggestion else None,
            "layout": self.layout,
            "layout_raw": self.layout_raw,
            "layout_probs": self.layout_probs,
            "expert_probs": self.expert_probs,
            "shown": self.shown,
            "screen_cached": self.screen_cached,
            "timing_ms": self.timing_ms,
        }


def is_empty_field(text: str) -> bool:
    return not text.strip()


def strip_for(task: str, text: str, corrections: list[Candidate], completions: list[Candidate],
              suggestion: Candidate | None) -> tuple[list[str], str]:
    """The strip in method.md's priority and the list it came from."""
    if is_empty_field(text) and suggestion is not None:
        return [suggestion.text], "suggestion"
    if task == "error_correction" and not is_empty_field(text):
        return [c.text for c in corrections[:STRIP_SIZE]], "correction"
    return [c.text for c in completions[:STRIP_SIZE]], "completion"


# Token classes besides the languages of ``lang_of``: part of a multi-byte character, white space.
PARTIAL, SPACE = "partial", "space"
# What a phrase (suggestion) may contain besides its layout's language and spaces, and the
# layouts whose characters span several byte-level tokens.
PHRASE_EXTRA: dict[str, frozenset[str]] = {"EN": frozenset({"SYM", "NUM", "EMOJI"}), "ZH": frozenset({"SYM", "NUM", "EMOJI"})}
MULTIBYTE_LAYOUTS: frozenset[str] = frozenset({"ZH", "SYM", "EMOJI"})


def token_classes(tokenizer: Any, vocab_size: int) -> list[str | None]:
    """The class of every vocabulary id: a language of ``lang_of``, ``partial``, ``space``, or
    ``None`` for special and unused ids (never generated)."""
    classes: list[str | None] = []
    for token_id in range(vocab_size):
        text = tokenizer.token(token_id) if token_id < tokenizer.vocab_size else None
        if text is None:
            classes.append(None)
        elif "\ufffd" in text:
            classes.append(PARTIAL)
        else:
            classes.append(lang_of(text) if text.strip() else SPACE)
    return classes


def allowed_tokens(classes: Sequence[str | None], layout: str, phrase: bool) -> np.ndarray:
    """Bool ``[V]``: the tokens a candidate may use under ``layout`` (a phrase when ``phrase``).

    A word (correction, completion) uses tokens of the layout's language only; a phrase
    (suggestion) may also hold spaces, and under EN/ZH symbols, digits and emoji, since
    ``lang_of`` still calls such text English or Chinese. Partial multi-byte tokens are
    allowed where such characters are expected; the decoded candidate is checked with
    ``lang_of`` afterwards in any case (``keep_candidates``).
    """
    ok = {layout} | (PHRASE_EXTRA.get(layout, frozenset()) | {SPACE} if phrase else set())
    if layout in MULTIBYTE_LAYOUTS:
        ok.add(PARTIAL)
    return np.fromiter((c in ok for c in classes), dtype=bool, count=len(classes))


def language_bias(tokenizer: Any, vocab_size: int, eos_id: int) -> dict[tuple[str, str], np.ndarray]:
    """Log-prob bias ``[V]`` float32 per (layout, kind): 0 for an allowed token, -inf otherwise.

    Kinds: ``"word"`` and ``"phrase"`` are ``allowed_tokens`` plus ``eos_id`` (it ends the
    candidate; the torch decoder allows it the same way); ``"first"`` is the first token of
    any candidate: the layout's own language only, never ``eos_id`` (as the torch
    predictor's ``first_token_mask``).
    """
    classes = token_classes(tokenizer, vocab_size)
    biases = {}
    for layout in LAYOUTS:
        for kind, phrase in (("word", False), ("phrase", True)):
            allowed = allowed_tokens(classes, layout, phrase)
            allowed[eos_id] = True
            biases[layout, kind] = np.where(allowed, 0.0, -np.inf).astype(np.float32)
        biases[layout, "first"] = np.where(allowed_tokens(classes, layout, False), 0.0, -np.inf).astype(np.float32)
    return biases


def lists_to_decode(task: str, text: str, full: bool, has_suggestion: bool) -> tuple[bool, bool]:
    """Whether to decode (corrections, completions): both when ``full``, else only the list
    ``strip_for`` will show, so a keystroke pays for one beam search, not two."""
    corrections = full or (task == "error_correction" and not is_empty_field(text))
    completions = full or (not corrections and not has_suggestion)
    return corrections, completions


def keep_candidates(hypotheses: Sequence[tuple[list[int], float]], decode: Callable[[list[int]], str], layout: str,
                    count: int) -> list[Candidate]:
    """Distinct, whole, non-empty decoded texts of ``layout``'s language, best first, at most ``count``."""
    kept: dict[str, Candidate] = {}
    for tokens, logprob in hypotheses:
        text = decode(tokens).strip()
        # U+FFFD: the beam stopped inside a multi-byte character; not a real candidate.
        if text and "\ufffd" not in text and text not in kept and lang_of(text) == layout:
            kept[text] = Candidate(text, float(np.exp(logprob)), float(logprob), "network")
    return list(kept.values())[:count]


def format_prediction(prediction: Prediction) -> str:
    """A person's view of one prediction (``keypilot predict`` without ``--json``)."""
    def cands(items: list[Candidate]) -> str:
        return ", ".join(f"{c.text} ({c.prob:.2g})" for c in items) or "(none)"

    p = prediction
    lines = [
        f"strip        {' | '.join(p.shown) or '(empty)'}   [{p.shown_kind}]",
        f"task         {p.task}   " + "  ".join(f"{k} {v:.2f}" for k, v in p.task_probs.items()),
        f"layout       {p.layout} (router alone: {p.layout_raw})   " + "  ".join(f"{k} {v:.2f}" for k, v in p.layout_probs.items()),
        f"corrections  {cands(p.corrections)}",
        f"completions  {cands(p.completions)}",
        f"suggestion   {cands([p.suggestion]) if p.suggestion else '(field not empty)'}",
        "experts      " + "  ".join(f"{k} {v:.2f}" for k, v in p.expert_probs.items()),
        f"time         {p.timing_ms['total']:.1f} ms ({'cached screen' if p.screen_cached else 'new screen'})",
    ]
    return "\n".join(lines)
