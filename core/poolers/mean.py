"""Mean pooling over real positions (the sentence-transformers default)."""

from __future__ import annotations

from torch import Tensor

from polymodal.features import Features
from polymodal.poolers.base import Pooler

__all__ = ["MeanPooler"]


def masked_mean(sequence: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``sequence`` ``(B, T, D)`` over positions where ``mask`` ``(B, T)`` is True."""
    weights = mask.to(sequence.dtype).unsqueeze(-1)  # (B, T, 1)
    total = (sequence * weights).sum(dim=1)  # (B, D)
    return total / weights.sum(dim=1).clamp(min=1e-9)


class MeanPooler(Pooler):
    """Average of the sequence vectors where the mask is set.

    Example:
        >>> pooled = MeanPooler()(features)  # (B, D)
    """

    def forward(self, features: Features) -> Tensor:
        return masked_mean(features.sequence, features.mask)
