"""Beam search over a step function, shared by the torch decoder and the ONNX predictor.

Torch-free (the ONNX predictor's import path must not load torch): a backend supplies the
step that scores the next token of every live hypothesis, and this loop keeps the best.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# A beam step: (previous tokens of each live beam [L][k], their scores [L]) ->
# (the best flattened scores [K] in descending order, their indices beam * V + token [K]).
StepFn = Callable[[list[list[int]], np.ndarray], tuple[np.ndarray, np.ndarray]]


def beam_search(step: StepFn, vocab_size: int, eos_id: int, beam_width: int, max_tokens: int,
                num_return: int) -> list[tuple[list[int], float]]:
    """Beam search of one row. Returns up to ``num_return`` (tokens without eos, total
    log-prob), best first; a sequence ends at ``eos_id`` or after ``max_tokens`` tokens.

    The search stops once no live hypothesis can beat the worst finished one it would return.
    """
    live: list[tuple[list[int], float]] = [([], 0.0)]
    done: list[tuple[list[int], float]] = []
    for position in range(max_tokens):
        top_scores, top_index = step([tokens for tokens, _ in live], np.asarray([s for _, s in live], dtype=np.float32))
        candidates = []
        for value, index in zip(top_scores[:beam_width].tolist(), top_index[:beam_width].tolist()):
            if value == float("-inf"):
                break
            beam, token = divmod(int(index), vocab_size)
            candidates.append((live[beam][0] + [token], value))
        live = []
        for tokens, score in candidates:
            if tokens[-1] == eos_id:
                done.append((tokens[:-1], score))
            elif position + 1 == max_tokens:
                done.append((tokens, score))
            else:
                live.append((tokens, score))
        done.sort(key=lambda item: -item[1])
        if not live or (len(done) >= num_return and live[0][1] <= done[num_return - 1][1]):
            break
    return done[:num_return]
