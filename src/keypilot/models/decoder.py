"""Decoder D: [h_t, e_task, e_layout, y_1 .. y_{N-1}] -> language MoE -> tied output head.

The output at position 2 + k predicts token y_{k+1}: position 2 (e_layout) gives the first
token, which is all corrections and completions need in training; suggestions are
teacher-forced over ``max_target_tokens``. The output head shares its matrix with the
token embedding (``logits = LayerNorm(z) @ E^T + b``).

Generation is a beam search over whole words/phrases: corrections and completions keep the
top sequences by total log-probability (beam 5, each ending at ``eos_id`` or after
``max_tokens``), suggestions use beam 4. The tokenizer owns ``eos_id``: callers pass it.
``allowed_token_mask`` lets the predictor enforce Lang(candidate) = Lang(layout).

The field's priors (``keypilot.priors``) enter at the first token, as a product of experts:
``logits(v) + beta * log(1 + q(v) / floor)``, where ``q(v)`` is the prior mass of the
candidates starting with token ``v`` and ``beta`` (``prior_weight``) is learned. The network
thus learns the residual over the prior; ``keypilot.inference.candidates`` applies the same
fusion at inference.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from keypilot.beam import beam_search
from keypilot.models.moe import LanguageMoE
from keypilot.prior_fusion import PRIOR_FLOOR

PREFIX = 3  # h_t, e_task, e_layout


def fuse_prior(first_logits: Tensor, prior_ids: Tensor, prior_q: Tensor, weight: Tensor) -> Tensor:
    """First-token logits ``B x V`` + ``weight * log(1 + q / floor)`` at the prior's tokens.

    ``prior_ids``/``prior_q`` ``B x K``: distinct first tokens of a row's prior candidates and
    their prior mass; padding has q = 0 (adds nothing)."""
    boost = weight * torch.log1p(prior_q.to(first_logits.dtype) / PRIOR_FLOOR)
    return first_logits.scatter_add(-1, prior_ids, boost)


class Decoder(nn.Module):
    """Conditioning ``B x d`` (x3) and g ``B x 5`` -> next-token logits (``B x V`` or ``B x T x V``)."""

    def __init__(self, vocab_size: int, d_model: int, max_target_tokens: int, moe: LanguageMoE) -> None:
        super().__init__()
        self.token_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Parameter(torch.randn(PREFIX + max_target_tokens - 1, d_model) * 0.02)
        self.moe = moe
        self.norm = nn.LayerNorm(d_model)
        self.head_bias = nn.Parameter(torch.zeros(vocab_size))
        self.prior_weight = nn.Parameter(torch.tensor(1.0))  # beta of the fusion with the priors
        self.max_target_tokens = max_target_tokens
        nn.init.normal_(self.token_emb.weight, std=0.02)

    def _logits(self, h_t: Tensor, e_task: Tensor, e_layout: Tensor, expert_probs: Tensor, tokens: Tensor, last_only: bool = False) -> Tensor:
        """Previous tokens ``B x k`` (k >= 0) -> logits ``B x (k + 1) x V`` at positions 2 .. 2 + k
        (``B x 1 x V``, the last position only, with ``last_only``: the head is most of the cost)."""
        x = torch.cat([h_t[:, None], e_task[:, None], e_layout[:, None], self.token_emb(tokens)], dim=1)
        x = x + self.pos_emb[: x.shape[1]]
        z = self.moe(x, expert_probs)
        z = self.norm(z[:, -1:] if last_only else z[:, PREFIX - 1 :])
        return z @ self.token_emb.weight.T + self.head_bias

    def forward(self, h_t: Tensor, e_task: Tensor, e_layout: Tensor, expert_probs: Tensor, target_tokens: Tensor | None = None,
                prior_ids: Tensor | None = None, prior_q: Tensor | None = None) -> Tensor:
        """Without targets: first-token logits ``B x V``. With ``target_tokens`` ``B x T`` (-100 padding):
        teacher-forced logits ``B x T x V`` where row k predicts target k. With ``prior_ids``/``prior_q``
        ``B x K`` the first token's logits are fused with the prior (``fuse_prior``)."""
        if target_tokens is None:
            logits = self.first_token_logits(h_t, e_task, e_layout, expert_probs)
        else:
            if target_tokens.shape[1] > self.max_target_tokens:
                raise ValueError(f"{target_tokens.shape[1]} target tokens > max_target_tokens={self.max_target_tokens}")
            previous = target_tokens[:, :-1].clamp(min=0)  # -100 padding -> pad id 0; those rows are not scored
            logits = self._logits(h_t, e_task, e_layout, expert_probs, previous)
        if prior_ids is None or prior_q is None:
            return logits
        if logits.dim() == 2:
            return fuse_prior(logits, prior_ids, prior_q, self.prior_weight)
        return torch.cat([fuse_prior(logits[:, 0], prior_ids, prior_q, self.prior_weight)[:, None], logits[:, 1:]], dim=1)

    def first_token_logits(self, h_t: Tensor, e_task: Tensor, e_layout: Tensor, expert_probs: Tensor) -> Tensor:
        """The network's logits of a candidate's first token ``B x V`` (before any prior)."""
        return self.decode_step(h_t, e_task, e_layout, expert_probs, h_t.new_zeros(h_t.shape[0], 0, dtype=torch.long))

    def decode_step(self, h_t: Tensor, e_task: Tensor, e_layout: Tensor, expert_probs: Tensor, prev_tokens: Tensor) -> Tensor:
        """Previous tokens ``B x k`` -> logits of the next token ``B x V``."""
        return self._logits(h_t, e_task, e_layout, expert_probs, prev_tokens, last_only=True)[:, 0]

    @torch.no_grad()
    def beam_search(
        self,
        h_t: Tensor,
        e_task: Tensor,
        e_layout: Tensor,
        expert_probs: Tensor,
        eos_id: int,
        beam_width: int,
        max_tokens: int | None = None,
        num_return: int | None = None,
        allowed_token_mask: Tensor | None = None,
        first_token_mask: Tensor | None = None,
    ) -> list[list[tuple[list[int], float]]]:
        """Beam search for each batch row.

        Args:
            h_t, e_task, e_layout: ``B x d``; expert_probs: ``B x 5``.
            eos_id: the tokenizer's end-of-sequence id (not included in the returned tokens).
            beam_width: hypotheses kept per step.
            max_tokens: longest sequence (default ``max_target_tokens``).
            num_return: sequences returned per row (default and at most ``beam_width``).
            allowed_token_mask: ``V`` or ``B x V`` bool; other tokens are never generated
                (``eos_id`` always is).
            first_token_mask: ``V`` or ``B x V`` bool; the tokens a sequence may start with
                (``eos_id`` only if set here), applied on top of ``allowed_token_mask``.
        Returns:
            For each row, up to ``num_return`` (tokens, total log-prob) pairs, best first. A
            sequence ends at ``eos_id`` or after ``max_tokens`` tokens.
        """
        max_tokens = min(max_tokens or self.max_target_tokens, self.max_target_tokens)
        num_return = min(num_return or beam_width, beam_width)
        results = []
        for row in range(h_t.shape[0]):
            mask = first = None
            if allowed_token_mask is not None:
                mask = _row(allowed_token_mask, row).clone()
                mask[eos_id] = True
            if first_token_mask is not None:
                first = _row(first_token_mask, row) & (mask if mask is not None else True)
            cond = [t[row : row + 1] for t in (h_t, e_task, e_layout, expert_probs)]
            results.append(self._beam_row(cond, eos_id, beam_width, max_tokens, num_return, mask, first))
        return results

    def _beam_row(self, cond: list[Tensor], eos_id: int, beam_width: int, max_tokens: int, num_return: int,
                  mask: Tensor | None, first: Tensor | None) -> list[tuple[list[int], float]]:
        device = cond[0].device

        def step(prefixes: list[list[int]], scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            prev = torch.tensor(prefixes, dtype=torch.long, device=device).view(len(prefixes), len(prefixes[0]))
            logprobs = torch.log_softmax(self.decode_step(*(c.expand(len(prefixes), -1) for c in cond), prev).float(), dim=-1)
            step_mask = first if first is not None and prev.shape[1] == 0 else mask
            if step_mask is not None:
                logprobs = logprobs.masked_fill(~step_mask, float("-inf"))
            total = (logprobs + torch.as_tensor(scores, device=device)[:, None]).flatten()
            top = total.topk(min(beam_width, total.numel()))
            return top.values.cpu().numpy(), top.indices.cpu().numpy()

        return beam_search(step, self.token_emb.num_embeddings, eos_id, beam_width, max_tokens, num_return)


def _row(mask: Tensor, row: int) -> Tensor:
    """Row ``row`` of a ``B x V`` mask, or a shared ``V`` mask, as bool."""
    return (mask[row] if mask.dim() == 2 else mask).bool()
