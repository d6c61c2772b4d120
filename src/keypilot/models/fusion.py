"""Cross-Former fusion: [CLS] [IMG] [ROI_1..4] [SEP] [CLS_text] [P] -> h_t."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from keypilot.models.layers import TransformerBlock

NUM_TOKENS = 9  # CLS, IMG, ROI x 4, SEP, CLS_text, P


class CrossFormerFusion(nn.Module):
    """Fuse the screen, text and user tokens; ``h_t`` is the output at ``[CLS]``, ``B x d_model``.

    Learned ``[CLS]`` and ``[SEP]`` tokens and one learned embedding per sequence position
    (it doubles as the token-type embedding: every position has a fixed type). The layers
    have tanh-gated residuals, initialised open (``layers.GATE_INIT`` says why).
    """

    def __init__(self, d_model: int, heads: int, ffn: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.cls = nn.Parameter(torch.randn(d_model) * 0.02)
        self.sep = nn.Parameter(torch.randn(d_model) * 0.02)
        self.pos_emb = nn.Parameter(torch.randn(NUM_TOKENS, d_model) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(d_model, heads, ffn, dropout, gated=True) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, img: Tensor, rois: Tensor, text: Tensor, person: Tensor) -> Tensor:
        """img, text, person: ``B x d``; rois: ``B x 4 x d`` -> h_t ``B x d``."""
        b = img.shape[0]
        x = torch.cat(
            [self.cls.expand(b, 1, -1), img[:, None], rois, self.sep.expand(b, 1, -1), text[:, None], person[:, None]], dim=1
        )
        x = x + self.pos_emb
        for block in self.blocks:
            x = block(x)
        return self.norm(x[:, 0])
