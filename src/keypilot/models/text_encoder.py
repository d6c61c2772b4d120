"""Text stream: the field's context C_t -> [CLS_text] (TinyBERT-shaped, 2 layers)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from keypilot.models.layers import TransformerBlock


class TextEncoder(nn.Module):
    """Token ids ``B x L`` (``[CLS]`` at position 0, right padding) -> ``text_feat`` ``B x d_model``.

    Token + learned position embeddings, ``layers`` pre-LN transformer layers with the padding
    masked out, final LayerNorm, and a linear projection of the ``[CLS]`` output.

    ``shared_table``: the decoder's ``V x d_model`` token embedding, read through a
    ``d_model -> hidden`` projection (``token_proj``) instead of a ``V x hidden`` table of the
    encoder's own: one vocabulary table for the whole model, as T5 ties its encoder's and
    decoder's. Without it the encoder owns its table and ``token_proj`` is the identity.
    """

    def __init__(self, vocab_size: int, max_tokens: int, hidden: int, layers: int, heads: int, ffn: int, dropout: float, d_model: int,
                 shared_table: nn.Embedding | None = None) -> None:
        super().__init__()
        self.token_emb = nn.Embedding(vocab_size, hidden) if shared_table is None else shared_table
        self.token_proj: nn.Module = nn.Identity() if shared_table is None else nn.Linear(shared_table.embedding_dim, hidden, bias=False)
        self.pos_emb = nn.Parameter(torch.randn(max_tokens, hidden) * 0.02)
        self.emb_norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(TransformerBlock(hidden, heads, ffn, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden)
        self.proj = nn.Linear(hidden, d_model)
        if shared_table is None:  # a shared table is initialised by its owner
            nn.init.normal_(self.token_emb.weight, std=0.02)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.encode(self.token_emb(input_ids), attention_mask)

    def encode(self, token_emb: Tensor, attention_mask: Tensor) -> Tensor:
        """Token embeddings ``B x L x table width`` (rows of ``token_emb`` for the ids) and mask
        ``B x L`` -> ``B x d_model``. The exported graph starts here: the ONNX predictor looks the
        rows up itself, outside the keystroke graph (docs/export.md, "Memory")."""
        length = token_emb.shape[1]
        if length > self.pos_emb.shape[0]:
            raise ValueError(f"context of {length} tokens is longer than max_context_tokens={self.pos_emb.shape[0]}")
        x = self.dropout(self.emb_norm(self.token_proj(token_emb) + self.pos_emb[:length]))
        key_mask = attention_mask.bool()
        for block in self.blocks:
            x = block(x, key_mask=key_mask)
        return self.proj(self.norm(x[:, 0]))
