"""Regress the cosine similarity of a pair onto a gold score (sentence-transformers' CosineSimilarityLoss)."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CosineMSELoss", "cosine_mse_loss"]


def cosine_mse_loss(a: Tensor, b: Tensor, scores: Tensor) -> Tensor:
    """Mean squared error between ``cos(a, b)`` ``(B,)`` and ``scores`` ``(B,)`` in [-1, 1]."""
    return F.mse_loss(F.cosine_similarity(a, b, dim=-1), scores)


class CosineMSELoss(nn.Module):
    """MSE between pair cosine and score; ``score_scale`` maps raw scores (e.g. 0-5) into [0, 1].

    Args:
        score_scale: the target is divided by it before the loss (5.0 for STS-B's 0-5 scores).
    """

    def __init__(self, score_scale: float = 1.0) -> None:
        super().__init__()
        self.score_scale = score_scale

    def forward(self, embeddings: Sequence[Tensor], target: Tensor | None) -> Tensor:
        if len(embeddings) != 2 or target is None:
            raise ValueError("CosineMSELoss needs two input columns and a score column")
        return cosine_mse_loss(embeddings[0], embeddings[1], target.to(embeddings[0].dtype) / self.score_scale)
