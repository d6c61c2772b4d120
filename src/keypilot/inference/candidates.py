"""One candidate pipeline for both backends: the field's priors fused with the network.

A keyboard that people keep does not ask a network to learn spelling, pinyin and a 32K
vocabulary from minutes of training: it decodes over a lexicon with a noisy-channel model and
a language model (``keypilot.priors``), and a learned model re-ranks. Here the re-ranking is a
product of experts at the first token of a candidate:

    log p(v) = log_softmax over the layout's tokens of ( logits(v) + beta * log(1 + q(v) / floor) )

``logits`` are the decoder's first-token scores under the task's conditioning and the layout
shown, ``q(v)`` is the prior mass of the candidates that start with token ``v`` and ``beta``
is the prior weight (learned in training, refitted on the validation split). The network
learns the residual: what the screen, the context and the user add to the prior. A
candidate ``c`` with first token ``v`` then scores

    score(c) = log p(v) + log p_prior(c) - log q(v)

i.e. the fused first token and the prior's own split of that token's mass among the
candidates sharing it. Each further position of a multi-token candidate would cost one more
pass over the 32K-row head (``docs/export.md``), which a 5 ms keystroke cannot afford, so the
rest of a candidate is the prior's. The network's own best first tokens that no prior
candidate starts with join the list as one-token candidates (the union of the network's
and the prior's n-best). The suggestion for an empty field is the network's beam search, unless
a copy candidate from the screen (a code, an amount: ``keypilot.priors.screen``) scores higher
under the same fused first-token distribution.

Everything here is numpy: ``Predictor`` (torch) and ``OnnxPredictor`` only supply the
network's numbers (``KeystrokeNet`` and first-token logits per task), so both backends answer
a keystroke with the same code.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keypilot.inference.postprocess import (
    Candidate,
    Prediction,
    allowed_tokens,
    is_empty_field,
    lists_to_decode,
    strip_for,
    token_classes,
)
from keypilot.labels import EXPERTS, LAYOUTS, TASKS, lang_of
from keypilot.run_folder import FUSION_FILE, PRIORS_DIR
from keypilot.prior_fusion import PRIOR_FLOOR, PRIOR_LIST, FirstTokens, first_token_mass, prior_boost
from keypilot.priors.text import trailing_latin

# The network's own best first tokens considered besides the prior's candidates.
NETWORK_PROPOSALS = 8


@dataclass
class KeystrokeNet:
    """The network's answer to one keystroke (batch row), backend-neutral."""

    task_probs: np.ndarray  # [3], TASKS order
    layout_logits: np.ndarray  # [5], LAYOUTS order, before hysteresis
    layout_probs: np.ndarray  # [5], softmax of the raw logits
    layout: int  # the layout shown: hysteresis against the previous one, or pinned by the user
    expert_probs: np.ndarray  # [5], EXPERTS order

    @property
    def task(self) -> str:
        return TASKS[int(np.argmax(self.task_probs))]


class CandidateFusion:
    """Ranks a keystroke's candidates from the network's first-token logits and a prior list.

    Args:
        tokenizer: the run's ``KeyPilotTokenizer`` (candidates are tokenized as targets are).
        vocab_size: rows of the decoder's head.
        prior_weight: beta of the fusion.
        suggestion_weight: beta for the suggestion's copy candidates (default: ``prior_weight``).
        floor: ``PRIOR_FLOOR`` unless the run says otherwise.
    """

    def __init__(self, tokenizer: Any, vocab_size: int, prior_weight: float, floor: float = PRIOR_FLOOR,
                 suggestion_weight: float | None = None) -> None:
        self.tokenizer = tokenizer
        self.prior_weight = float(prior_weight)
        self.suggestion_weight = self.prior_weight if suggestion_weight is None else float(suggestion_weight)
        self.floor = float(floor)
        classes = token_classes(tokenizer, vocab_size)
        self.word_tokens = {layout: np.flatnonzero(allowed_tokens(classes, layout, phrase=False)) for layout in LAYOUTS}
        self.first_token = FirstTokens(tokenizer)
        self._text: dict[int, str | None] = {}

    def token_text(self, token: int, layout: str) -> str | None:
        """A one-token candidate: the token decoded as a target, if it is a whole word of ``layout``."""
        if token not in self._text:
            text = self.tokenizer.decode_target([token]).strip()
            self._text[token] = text if text and "\ufffd" not in text else None
        text = self._text[token]
        return text if text is not None and lang_of(text) == layout else None

    def _fused(self, logits: np.ndarray, prior: Sequence[Any], layout: str, weight: float | None = None) -> _Fused | None:
        """The product of experts at the first token, over ``layout``'s word tokens (``weight``:
        beta, by default ``prior_weight``)."""
        prior = [c for c in prior if c.text and lang_of(c.text) == layout]
        firsts = [self.first_token(c.text) for c in prior]
        mass = first_token_mass(firsts, [c.logp for c in prior])
        tokens = np.fromiter(mass, dtype=np.int64, count=len(mass))
        boost = prior_boost(np.fromiter(mass.values(), dtype=np.float64, count=len(mass)), self.floor)
        fused = np.asarray(logits, dtype=np.float64).copy()
        if len(tokens):
            fused[tokens] += (self.prior_weight if weight is None else weight) * boost
        allowed = self.word_tokens[layout]
        if not len(allowed):
            return None
        scores = fused[allowed]
        top = scores.max()
        return _Fused(prior, firsts, mass, fused, allowed, scores, top + math.log(np.exp(scores - top).sum()))

    def rank(self, logits: np.ndarray, prior: Sequence[Any], layout: str, count: int,
             network_proposals: int = NETWORK_PROPOSALS, weight: float | None = None,
             prefix: str = "") -> list[Candidate]:
        """Up to ``count`` candidates of ``layout``'s language, best first.

        Args:
            logits: ``[V]`` first-token logits of the network (task conditioning, layout shown).
            prior: the prior's list for this task and language (``PriorCandidate``: text, logp).
            prefix: a network proposal must extend it (the word being completed), lowercase.
        """
        f = self._fused(logits, prior, layout, weight)
        return self._ranked(f, layout, count, network_proposals, prefix) if f is not None else []

    def _ranked(self, f: _Fused, layout: str, count: int, network_proposals: int, prefix: str) -> list[Candidate]:
        """``rank`` on an already fused distribution."""
        ranked: dict[str, Candidate] = {}
        for candidate, token in zip(f.prior, f.firsts):
            if token < 0:
                continue
            score = f.fused[token] - f.log_z + candidate.logp - math.log(f.mass[token])
            if candidate.text not in ranked or ranked[candidate.text].score < score:
                ranked[candidate.text] = Candidate(candidate.text, math.exp(score), score, "prior")
        if network_proposals:
            best = f.allowed[np.argpartition(-f.scores, min(network_proposals, len(f.scores) - 1))[:network_proposals]]
            for token in best.tolist():
                if token in f.mass:
                    continue  # its mass is the prior candidates' that start with it
                text = self.token_text(token, layout)
                if prefix and (text is None or not text.lower().startswith(prefix) or text.lower() == prefix):
                    continue
                if text is not None and text not in ranked:
                    score = f.fused[token] - f.log_z
                    ranked[text] = Candidate(text, math.exp(score), score, "network")
        return sorted(ranked.values(), key=lambda c: -c.score)[:count]

    def suggest(self, logits: np.ndarray, prior: Sequence[Any], beam: Candidate | None, layout: str) -> Candidate | None:
        """The suggestion: the best of the prior's copy candidates (a code, an amount on the
        screen) and the network's beam, under the same fused first-token distribution. The beam
        keeps the share of its first token that no prior candidate claims. beta is
        ``suggestion_weight``."""
        f = self._fused(logits, prior, layout, self.suggestion_weight)
        ranked = self._ranked(f, layout, 1, 0, "") if f is not None else []
        if not ranked:
            return beam
        token = self.first_token(beam.text) if beam is not None else -1
        if token < 0:  # no beam, or one with no first token: the copy
            return ranked[0]
        score = f.fused[token] - f.log_z + math.log1p(-min(f.mass.get(token, 0.0), 0.999))
        return ranked[0] if ranked[0].score > score else beam


@dataclass
class _Fused:
    prior: list[Any]  # the prior's candidates in the layout's language
    firsts: list[int]  # their first tokens (-1: none)
    mass: dict[int, float]  # q per first token
    fused: np.ndarray  # [V] logits + beta * boost
    allowed: np.ndarray  # the layout's word tokens
    scores: np.ndarray  # fused[allowed]
    log_z: float  # log-sum-exp of scores


def answer(net: KeystrokeNet, text: str, priors: Any, first_logits: Callable[[str], np.ndarray],
           suggest: Callable[[], Candidate | None], fusion: CandidateFusion, count: int, full: bool = True,
           screen_cached: bool = False, timing_ms: dict[str, float] | None = None) -> Prediction:
    """A keystroke's ``Prediction`` from the network's outputs and the priors, for either backend.

    Args:
        net: task, layout and expert probabilities and the layout shown.
        text: the field's text C_t.
        priors: ``KeystrokePriors`` of ``text``, or None (no priors: the network alone).
        first_logits: task -> ``[V]`` first-token logits under that task's conditioning and the
            layout shown (called only for the lists this keystroke decodes).
        suggest: the network's suggestion for an empty field (called only when the field is
            empty); the prior's copy candidates for the layout shown compete with it.
        full: decode both candidate lists; else only the one the strip shows.
        timing_ms: the caller's stage times; ``suggestion`` and ``candidates`` (first-token logits
            and ranking) are added.
    """
    layout = LAYOUTS[net.layout]
    task = net.task
    began = time.perf_counter()
    suggestion = None
    if is_empty_field(text):
        suggestion = suggest()
        copies = priors.suggestions.get(layout, []) if priors is not None else []
        if copies:
            suggestion = fusion.suggest(first_logits("suggestion"), copies, suggestion, layout)
    suggested = time.perf_counter()
    wants_correction, wants_completion = lists_to_decode(task, text, full, suggestion is not None)

    def ranked(candidate_task: str) -> list[Candidate]:
        prior = getattr(priors, PRIOR_LIST[candidate_task]).get(layout, []) if priors is not None else []
        proposals, prefix = proposal_rule(candidate_task, text, priors, layout)
        return fusion.rank(first_logits(candidate_task), prior, layout, count, proposals, prefix=prefix)

    corrections = ranked("error_correction") if wants_correction else []
    completions = ranked("auto_completion") if wants_completion else []
    shown, kind = strip_for(task, text, corrections, completions, suggestion)
    timing = {**(timing_ms or {}), "suggestion": round(1000 * (suggested - began), 2),
              "candidates": round(1000 * (time.perf_counter() - suggested), 2)}
    return Prediction(
        task=task,
        task_probs=dict(zip(TASKS, np.asarray(net.task_probs, dtype=float).tolist())),
        corrections=corrections,
        completions=completions,
        suggestion=suggestion,
        layout=layout,
        layout_raw=LAYOUTS[int(np.argmax(net.layout_logits))],
        layout_probs=dict(zip(LAYOUTS, np.asarray(net.layout_probs, dtype=float).tolist())),
        expert_probs=dict(zip(EXPERTS, np.asarray(net.expert_probs, dtype=float).tolist())),
        shown=shown,
        screen_cached=screen_cached,
        timing_ms=timing,
        shown_kind=kind,
    )




def proposal_rule(task: str, text: str, priors: Any, layout: str) -> tuple[int, str]:
    """How many of the network's own one-token candidates may join a list, and the prefix they
    must extend. A completion completes what is being typed: while a pinyin buffer is open the
    IME's candidates are the list, and an English completion extends the word at the caret (a
    keyboard never offers "thank" for "smma")."""
    if task != "auto_completion" or priors is None:
        return NETWORK_PROPOSALS, ""
    if layout == "ZH" and priors.pinyin_buffer:
        return 0, ""
    if layout == "EN":
        return NETWORK_PROPOSALS, trailing_latin(text)[1].lower()
    return NETWORK_PROPOSALS, ""


def load_priors(run_dir: str | Path) -> Any:
    """The run's ``priors/`` (``keypilot.priors.Priors``), or None for a run built without them."""
    folder = Path(run_dir) / PRIORS_DIR
    if not folder.is_dir():
        return None
    from keypilot.priors import Priors

    return Priors.load(folder)


def _fitted(run_dir: str | Path) -> dict[str, Any] | None:
    """What was fitted on the run's validation split (``RUN/fusion.json``), None when nothing was."""
    path = Path(run_dir) / FUSION_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def load_prior_weight(run_dir: str | Path, learned: float, key: str = "prior_weight") -> float:
    """beta: the weight fitted on the validation split (``fusion.json``) when the run has one,
    else the one the model learned. ``key="suggestion_weight"``: the suggestion's beta."""
    fitted = _fitted(run_dir)
    return float(fitted.get(key, fitted["prior_weight"])) if fitted is not None else float(learned)


def load_layout_offsets(run_dir: str | Path) -> list[float] | None:
    """The layout router's per-layout logit offsets fitted on the validation split
    (``RUN/fusion.json`` -> ``layout_offsets``, LAYOUTS order), or None when the run has none."""
    offsets = (_fitted(run_dir) or {}).get("layout_offsets")
    return [float(offsets[layout]) for layout in LAYOUTS] if offsets else None


def stage_times(screen_ms: float, keystroke_start: float, priors_done: float, network_done: float) -> dict[str, float]:
    """A keystroke's stage times in ms so far: the screen encoder (0 when cached), the priors,
    the network's keystroke pass (text encoder, fusion, routers)."""
    return {"screen": round(screen_ms, 2), "priors": round(1000 * (priors_done - keystroke_start), 2),
            "network": round(1000 * (network_done - priors_done), 2)}
