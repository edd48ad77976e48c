"""Max pooling over real positions."""

from __future__ import annotations

import torch
from torch import Tensor

from polymodal.features import Features
from polymodal.poolers.base import Pooler

__all__ = ["MaxPooler"]


class MaxPooler(Pooler):
    """Element-wise maximum over the positions where the mask is set."""

    def forward(self, features: Features) -> Tensor:
        fill = torch.finfo(features.sequence.dtype).min
        masked = features.sequence.masked_fill(~features.mask.unsqueeze(-1), fill)  # (B, T, D)
        return masked.max(dim=1).values
