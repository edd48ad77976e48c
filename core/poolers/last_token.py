"""Last-token (EOS) pooling for decoder language models."""

from __future__ import annotations

import torch
from torch import Tensor

from polymodal.features import Features
from polymodal.poolers.base import Pooler

__all__ = ["LastTokenPooler", "last_positions"]


def last_positions(mask: Tensor) -> Tensor:
    """Index ``(B,)`` of the last True position per row; works for left and right padding."""
    T = mask.shape[1]
    positions = torch.arange(T, device=mask.device).expand_as(mask)
    return torch.where(mask, positions, torch.full_like(positions, -1)).max(dim=1).values.clamp(min=0)


class LastTokenPooler(Pooler):
    """The vector at the last real position of each row (what a causal LM has seen all of)."""

    def forward(self, features: Features) -> Tensor:
        idx = last_positions(features.mask)  # (B,)
        return features.sequence[torch.arange(idx.shape[0], device=idx.device), idx]
