"""Mean pooling over real positions (the sentence-transformers default)."""

from __future__ import annotations

import torch.nn.functional as F
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

    Args:
        normalize_tokens: L2-normalise each vector before averaging. The dot product of two such pooled
            vectors is then the average cosine over all token pairs of the two sequences
            (:func:`polymodal.losses.grounding.averaged_token_similarity`), which is what CG-VLM's
            patch-token alignment maximises; their cosine is not.

    Example:
        >>> pooled = MeanPooler()(features)  # (B, D)
    """

    def __init__(self, normalize_tokens: bool = False) -> None:
        super().__init__()
        self.normalize_tokens = bool(normalize_tokens)

    def forward(self, features: Features) -> Tensor:
        seq = F.normalize(features.sequence, dim=-1) if self.normalize_tokens else features.sequence  # (B, T, D)
        return masked_mean(seq, features.mask)

    def get_config(self) -> dict:
        return {"normalize_tokens": True} if self.normalize_tokens else {}
