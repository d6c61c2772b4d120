"""Language mixture of experts: five causal transformer layers (EXPERTS order) and their router.

Routing (method.md): g = softmax(router([h_t, e_task, e_layout]) + hint); the active experts
are the top-1 when max g > ``top1_threshold``, else the top-2, each weighted by its RAW g
(no renormalisation, as the spec writes z_t = sum_active g_i expert_i(x_t)). The same rule
runs in training and inference: an expert that no sample of a batch selects gets no
gradient from that batch (the load-balancing loss on g keeps the selection spread).

Layout hint (choice): instead of ``W_hint e_layout`` with ``W_hint: Linear(256, 5)``, the hint
is a learnable 5 x 5 matrix applied to the layout weights the decoder is conditioned on
(softmax probs in training, the chosen one-hot at inference), initialised to
``hint_bias`` x (layout -> expert permutation). A ZH layout therefore adds exactly
``hint_bias`` (0.4) to the ZH expert's logit at initialisation, whatever the codebook is.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from keypilot.labels import EXPERTS, LAYOUT_TO_EXPERT, LAYOUTS
from keypilot.models.layers import TransformerBlock


def expert_weights(expert_probs: Tensor, top1_threshold: float) -> Tensor:
    """Routing rule: g ``B x E`` -> mixing weights ``B x E`` (raw g on the active experts, 0 elsewhere).

    Top-1 when the largest g is above ``top1_threshold``, otherwise the top-2.
    """
    top = expert_probs.topk(2, dim=-1)
    k = torch.where(top.values[:, 0] > top1_threshold, 1, 2)  # B
    keep = torch.arange(2, device=expert_probs.device) < k[:, None]  # B x 2
    active = torch.zeros_like(expert_probs, dtype=torch.bool).scatter(-1, top.indices, keep)
    return expert_probs * active


class LanguageMoE(nn.Module):
    """Router and experts. ``route`` gives g ``B x E``; ``forward`` mixes the experts over ``B x S x d``."""

    def __init__(self, d_model: int, router_hidden: int, router_dropout: float, heads: int, ffn: int, hint_bias: float, top1_threshold: float) -> None:
        super().__init__()
        self.router = nn.Sequential(
            nn.Linear(3 * d_model, router_hidden), nn.ReLU(), nn.Dropout(router_dropout), nn.Linear(router_hidden, len(EXPERTS))
        )
        hint = torch.zeros(len(LAYOUTS), len(EXPERTS))
        hint[torch.arange(len(LAYOUTS)), torch.tensor(LAYOUT_TO_EXPERT)] = hint_bias
        self.hint = nn.Parameter(hint)
        self.experts = nn.ModuleList(TransformerBlock(d_model, heads, ffn, causal=True) for _ in EXPERTS)
        self.top1_threshold = top1_threshold

    def route(self, h_t: Tensor, e_task: Tensor, e_layout: Tensor, layout_weights: Tensor) -> tuple[Tensor, Tensor]:
        """h_t, e_task, e_layout ``B x d``; layout weights ``B x 5`` (LAYOUTS order) -> (logits, g) ``B x 5`` (EXPERTS order)."""
        logits = self.router(torch.cat([h_t, e_task, e_layout], dim=-1)) + layout_weights @ self.hint
        return logits, torch.softmax(logits, dim=-1)

    def forward(self, x: Tensor, expert_probs: Tensor) -> Tensor:
        """x ``B x S x d``, g ``B x E`` -> z ``B x S x d`` = sum over active experts of g_i expert_i(x).

        Experts that no sample selects are skipped (exactly what a dense, masked computation
        would give, without paying for them at batch size 1).
        """
        weights = expert_weights(expert_probs, self.top1_threshold)
        z = torch.zeros_like(x)
        for i, expert in enumerate(self.experts):
            if bool(weights[:, i].any()):
                z = z + weights[:, i, None, None] * expert(x)
        return z

