"""Transformer pieces shared by every sequence model in KeyPilot.

One pre-LayerNorm block serves the MobileViT blocks, the text encoder, the fusion layer
(with tanh gates), the layout router and the language experts (causal). Attention goes
through ``torch.nn.functional.scaled_dot_product_attention`` so GPUs get flash kernels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MLP(nn.Module):
    """Two linear layers with GELU between: ``B x ... x in_dim -> B x ... x out_dim``."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.dropout(F.gelu(self.fc1(x))))


class Attention(nn.Module):
    """Multi-head attention of queries ``B x Lq x dim`` over a context ``B x Lk x kv_dim``.

    ``key_mask`` (``B x Lk`` bool, True = real token) hides padding; ``causal`` lets
    position i see positions <= i only.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, kv_dim: int | None = None) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        kv_dim = dim if kv_dim is None else kv_dim
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(kv_dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: Tensor, context: Tensor | None = None, key_mask: Tensor | None = None, causal: bool = False) -> Tensor:
        context = x if context is None else context
        b, lq, dim = x.shape
        q = self.q(x).view(b, lq, self.heads, -1).transpose(1, 2)
        k, v = self.kv(context).view(b, context.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        mask = None
        if key_mask is not None:
            mask = key_mask[:, None, None, :].bool()
            if causal:
                mask = mask & torch.ones(lq, k.shape[2], dtype=torch.bool, device=x.device).tril()
                causal = False
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0, is_causal=causal
        )
        return self.out(y.transpose(1, 2).reshape(b, lq, dim))


GATE_INIT = 1.0  # tanh(1) = 0.76


class TransformerBlock(nn.Module):
    """Pre-LN transformer layer, ``B x L x dim -> B x L x dim``.

    With ``gated=True`` each residual branch is scaled by a learned ``tanh(alpha)``, which
    decides how much of the attended context to let in. Flamingo starts ``alpha`` at 0 to
    protect a pretrained model; KeyPilot trains from scratch, and closed gates starve every
    stream upstream of the fusion of gradient early on (on the tiny demo config the task loss
    stayed at its prior for 200 steps with closed gates, and halved with gates open), so
    ``alpha`` starts at ``GATE_INIT``.
    """

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float = 0.0, causal: bool = False, gated: bool = False) -> None:
        super().__init__()
        self.causal = causal
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, ffn, dim, dropout)
        self.dropout = nn.Dropout(dropout)
        self.gate_attn = nn.Parameter(torch.tensor(GATE_INIT)) if gated else None
        self.gate_mlp = nn.Parameter(torch.tensor(GATE_INIT)) if gated else None

    def forward(self, x: Tensor, key_mask: Tensor | None = None) -> Tensor:
        a = self.dropout(self.attn(self.norm1(x), key_mask=key_mask, causal=self.causal))
        x = x + (a if self.gate_attn is None else torch.tanh(self.gate_attn) * a)
        m = self.dropout(self.mlp(self.norm2(x)))
        return x + (m if self.gate_mlp is None else torch.tanh(self.gate_mlp) * m)
