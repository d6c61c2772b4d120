"""Text stream: the field's context C_t -> [CLS_text] (TinyBERT-shaped, 2 layers)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from keypilot.models.layers import TransformerBlock


class TextEncoder(nn.Module):
    """Token ids ``B x L`` (``[CLS]`` at position 0, right padding) -> ``text_feat`` ``B x d_model``.

    Token + learned position embeddings, ``layers`` pre-LN transformer layers with the padding
    masked out, final LayerNorm, and a linear projection of the ``[CLS]`` output.
    """

    def __init__(self, vocab_size: int, max_tokens: int, hidden: int, layers: int, heads: int, ffn: int, dropout: float, d_model: int) -> None:
        super().__init__()
        self.token_emb = nn.Embedding(vocab_size, hidden)
        self.pos_emb = nn.Parameter(torch.randn(max_tokens, hidden) * 0.02)
        self.emb_norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(TransformerBlock(hidden, heads, ffn, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden)
        self.proj = nn.Linear(hidden, d_model)
        nn.init.normal_(self.token_emb.weight, std=0.02)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.encode(self.token_emb(input_ids), attention_mask)

    def encode(self, token_emb: Tensor, attention_mask: Tensor) -> Tensor:
        """Token embeddings ``B x L x hidden`` (rows of ``token_emb`` for the ids) and mask ``B x L``
        -> ``B x d_model``. The exported graph starts here: the ONNX predictor reads the table's
        rows from disk itself, so the 32K-row table never becomes resident (docs/export.md)."""
        length = token_emb.shape[1]
        if length > self.pos_emb.shape[0]:
            raise ValueError(f"context of {length} tokens is longer than max_context_tokens={self.pos_emb.shape[0]}")
        x = self.dropout(self.emb_norm(token_emb + self.pos_emb[:length]))
        key_mask = attention_mask.bool()
        for block in self.blocks:
            x = block(x, key_mask=key_mask)
        return self.proj(self.norm(x[:, 0]))
