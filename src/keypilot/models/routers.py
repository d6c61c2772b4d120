"""Task router (ERR / COMP / SUG) and layout router (EN / ZH / SYM / EMOJI / NUM, with hysteresis).

Deviation from method.md (layout router): the spec reads the layout at the <LAY> prefix of a
causal transformer, but under a causal mask the first position sees only itself, so its
output would not depend on h_t. The sequence is [<LAY>, e_prev_layout, h_t] and the logits
are read at the LAST position, which attends to the prefix, the previous layout and h_t.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from keypilot.labels import LAYOUTS, TASKS
from keypilot.models.layers import TransformerBlock


def task_mixture(task_probs: Tensor, threshold: float) -> Tensor:
    """Inference rule for the task embedding: ``B x 3`` probs -> ``B x 3`` codebook weights.

    If the top probability is below ``threshold`` the top two tasks are mixed with their
    probabilities renormalised to sum to 1; otherwise the top task alone (weight 1).
    """
    top = task_probs.topk(2, dim=-1)
    top1 = F.one_hot(top.indices[:, 0], task_probs.shape[-1]).to(task_probs.dtype)
    top2 = torch.zeros_like(task_probs).scatter(-1, top.indices, top.values)
    top2 = top2 / top2.sum(dim=-1, keepdim=True)
    return torch.where((top.values[:, :1] < threshold), top2, top1)


def apply_hysteresis(layout_logits: Tensor, prev_layout: Tensor, bias: float, threshold: float) -> tuple[Tensor, Tensor]:
    """Temporal stability of the layout: ``B x 5`` logits, previous layout ``B`` -> (layout ``B``, probs ``B x 5``).

    The previous layout's logit gets ``+bias`` (``probs`` is the softmax of those logits). Their
    argmax replaces the previous layout only if it wins the contest against the previous layout
    alone with a probability above ``threshold``: ``sigmoid(l_best - l_prev - bias) > threshold``,
    a logit lead over ``bias + log(threshold / (1 - threshold))`` (1.69 for 0.3 / 0.8).

    A two-way contest, not the argmax's share of all five layouts: a router that spreads some
    probability over the three other layouts would otherwise almost never switch, even when it
    clearly prefers the new layout to the old one (on whole typing sessions the five-way rule
    kept a quarter of the switches needed and lost 16 points of layout accuracy; this one keeps
    layout accuracy within a point of the raw router: docs/evaluation.md, "Layout stability").
    """
    biased = layout_logits + bias * F.one_hot(prev_layout, layout_logits.shape[-1]).to(layout_logits.dtype)
    probs = torch.softmax(biased, dim=-1)
    best = biased.argmax(dim=-1)
    lead = biased.gather(-1, best[:, None]) - biased.gather(-1, prev_layout[:, None])
    return torch.where(torch.sigmoid(lead[:, 0]) > threshold, best, prev_layout), probs


def with_features(x: Tensor, features: Tensor | None, width: int) -> Tensor:
    """``x`` ``B x d`` with the prior features ``B x width`` appended (zeros when not given)."""
    if not width:
        return x
    if features is None:
        features = x.new_zeros(x.shape[0], width)
    elif features.shape[-1] != width:
        raise ValueError(f"prior features have width {features.shape[-1]}, the model expects {width} (model.prior_features)")
    return torch.cat([x, features.to(x.dtype)], dim=-1)


class TaskRouter(nn.Module):
    """(h_t ``B x d``, prior features ``B x F``) -> (task_logits ``B x 3``, task_probs ``B x 3``, e_task ``B x d``).

    The MLP reads h_t and the priors' features (is the last word in the lexicon, its best
    edit cost, is a pinyin buffer open...: ``keypilot.priors``), which say most of what
    separates a typo from a word still being typed. Training uses the soft mixture
    probs @ codebook (so the text loss trains the routing); eval mode applies ``task_mixture``.
    """

    def __init__(self, d_model: int, hidden: int, mix_threshold: float, prior_features: int = 0) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(d_model + prior_features, hidden), nn.ReLU(), nn.Linear(hidden, len(TASKS)))
        self.codebook = nn.Parameter(torch.randn(len(TASKS), d_model) * 0.02)
        self.mix_threshold = mix_threshold
        self.prior_features = prior_features

    def forward(self, h_t: Tensor, prior_features: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        logits = self.mlp(with_features(h_t, prior_features, self.prior_features))
        probs = torch.softmax(logits, dim=-1)
        weights = probs if self.training else task_mixture(probs, self.mix_threshold)
        return logits, probs, weights @ self.codebook


class LayoutRouter(nn.Module):
    """(h_t ``B x d``, previous layout ``B``, prior features ``B x F``) -> layout logits ``B x 5``;
    plus the layout codebook.

    A learned <LAY> token, the previous layout's embedding and h_t (plus a projection of the
    priors' features: an open pinyin buffer, a trailing digit...) pass through a small causal
    transformer; the last position's output gives the logits (see the module docstring).
    """

    def __init__(self, d_model: int, layers: int, heads: int, ffn: int, hysteresis_bias: float, switch_threshold: float,
                 prior_features: int = 0) -> None:
        super().__init__()
        self.lay_token = nn.Parameter(torch.randn(d_model) * 0.02)
        self.prev_emb = nn.Embedding(len(LAYOUTS), d_model)
        self.prior_proj = nn.Linear(prior_features, d_model) if prior_features else None
        self.pos_emb = nn.Parameter(torch.randn(3, d_model) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(d_model, heads, ffn, causal=True) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, len(LAYOUTS))
        self.codebook = nn.Parameter(torch.randn(len(LAYOUTS), d_model) * 0.02)
        self.hysteresis_bias = hysteresis_bias
        self.switch_threshold = switch_threshold
        # Per-layout offsets of the decision, fitted on the validation split after training
        # (keypilot.inference.fit_fusion.fit_layout_offsets) and set by the predictor and the
        # export from RUN/fusion.json; zeros while training, and not part of the weights.
        self.register_buffer("logit_offset", torch.zeros(len(LAYOUTS)), persistent=False)
        nn.init.normal_(self.prev_emb.weight, std=0.02)

    def forward(self, h_t: Tensor, prev_layout: Tensor, prior_features: Tensor | None = None) -> Tensor:
        b = h_t.shape[0]
        if self.prior_proj is not None:
            h_t = h_t + self.prior_proj(with_features(h_t[:, :0], prior_features, self.prior_proj.in_features))
        x = torch.stack([self.lay_token.expand(b, -1), self.prev_emb(prev_layout), h_t], dim=1) + self.pos_emb
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x[:, -1])) + self.logit_offset

    def choose(self, layout_logits: Tensor, prev_layout: Tensor | None) -> Tensor:
        """Eval-mode layout: hysteresis against ``prev_layout`` when known, else the argmax. ``B``."""
        if prev_layout is None:
            return layout_logits.argmax(dim=-1)
        return apply_hysteresis(layout_logits, prev_layout, self.hysteresis_bias, self.switch_threshold)[0]
