"""Personality: a learned 64-d vector per user, projected to the [P] token."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Personality(nn.Module):
    """User ids ``B`` (-1 = unknown) -> [P] ``B x d_model``.

    Row 0 of the table is the unknown user; a real id ``u`` maps to row ``1 + u % num_users``
    (ids beyond the table share rows rather than failing).
    """

    def __init__(self, num_users: int, dim: int, d_model: int) -> None:
        super().__init__()
        self.num_users = num_users
        self.table = nn.Embedding(num_users + 1, dim)
        self.proj = nn.Linear(dim, d_model)
        nn.init.normal_(self.table.weight, std=0.02)

    def forward(self, user_id: Tensor) -> Tensor:
        rows = torch.where(user_id < 0, torch.zeros_like(user_id), 1 + user_id.remainder(self.num_users))
        return self.proj(self.table(rows))
