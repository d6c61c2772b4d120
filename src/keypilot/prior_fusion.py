"""The arithmetic of fusing the field's priors with the network, shared by training and inference.

Torch-free (the ONNX predictor imports it): the model adds ``weight * prior_boost(q)`` to its
first-token logits in training (``keypilot.models.decoder.fuse_prior``), and
``keypilot.inference.candidates`` does the same per keystroke.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

# A prior mass q below this is no evidence: log(1 + q / floor) is the boost a prior token gets.
PRIOR_FLOOR = 1e-3


def prior_boost(q: np.ndarray, floor: float = PRIOR_FLOOR) -> np.ndarray:
    """``log(1 + q / floor)``: the fusion's additive term per token, 0 where the prior is silent."""
    return np.log1p(np.asarray(q, dtype=np.float64) / floor)


def first_token_mass(first_tokens: Sequence[int], logps: Sequence[float]) -> dict[int, float]:
    """q: the prior probability mass of the candidates that start with each token."""
    mass: dict[int, float] = {}
    for token, logp in zip(first_tokens, logps):
        if token >= 0:
            mass[token] = mass.get(token, 0.0) + math.exp(logp)
    return mass


# Distinct first tokens of the prior's candidates a training row carries (the largest masses).
PRIOR_SLOTS = 32
# Which list of ``KeystrokePriors`` answers each task (a suggestion's: copies from the screen).
PRIOR_LIST = {"error_correction": "corrections", "auto_completion": "completions", "suggestion": "suggestions"}
# The tasks whose answer is a ranked list of five (a suggestion is one phrase).
CANDIDATE_TASKS = ("error_correction", "auto_completion")


class FirstTokens:
    """Text -> the first token of its target encoding (``tokenizer.encode_target``), cached:
    the same words come back keystroke after keystroke and record after record."""

    def __init__(self, tokenizer: Any, max_entries: int = 200_000) -> None:
        self.tokenizer = tokenizer
        self.max_entries = max_entries
        self._cache: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        token = self._cache.get(text)
        if token is None:
            ids = self.tokenizer.encode_target(text)
            token = int(ids[0]) if ids else -1
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
            self._cache[text] = token
        return token


def prior_inputs(priors: Any, task: str, first_token: FirstTokens,
                 slots: int = PRIOR_SLOTS) -> tuple[np.ndarray, np.ndarray]:
    """A training row's prior: ``(ids [slots] int64, q [slots] float32)``.

    The first tokens of every candidate in ``task``'s lists (all languages: their tokens do not
    overlap, and at inference the layout's token mask keeps one language's) with their prior
    mass, largest first; padding is id 0 with q = 0. No priors, or an empty list, gives zeros.
    """
    ids = np.zeros(slots, dtype=np.int64)
    q = np.zeros(slots, dtype=np.float32)
    if priors is None or task not in PRIOR_LIST:
        return ids, q
    candidates = [c for lst in getattr(priors, PRIOR_LIST[task]).values() for c in lst]
    mass = first_token_mass([first_token(c.text) for c in candidates], [c.logp for c in candidates])
    best = sorted(mass.items(), key=lambda item: -item[1])[:slots]
    for i, (token, m) in enumerate(best):
        ids[i], q[i] = token, min(m, 1.0)
    return ids, q


def propose(priors: Any, text: str, screen: Any = None) -> Any:
    """The priors' answer for ``text`` on a screen whose text is ``screen`` (lines or their
    ``read_screen``; None: not read), or None without priors."""
    return priors.propose(text, screen=screen) if priors is not None else None


def pinned_layout(layout: str | None, keystroke_priors: Any) -> str | None:
    """The layout shown whatever the router says: the one the user chose with the layout key, else
    ZH while the priors are sure that a pinyin buffer is being composed (``pinyin_certain``: the
    pinyin table knows it, the router need not learn it); None leaves it to the router."""
    if layout is not None:
        return layout
    return "ZH" if keystroke_priors is not None and keystroke_priors.pinyin_certain else None


def feature_row(keystroke_priors: Any, width: int) -> np.ndarray:
    """The routers' prior features ``[width]`` float32 (zeros without priors)."""
    if keystroke_priors is None or not width:
        return np.zeros(width, dtype=np.float32)
    return np.asarray(keystroke_priors.features, dtype=np.float32)[:width]
