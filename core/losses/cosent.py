"""CoSENT: a ranking loss on cosine similarities of scored pairs.

Reference: Su, "CoSENT" (2022); as in sentence-transformers' ``CoSENTLoss``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CoSENTLoss", "cosent_loss"]


def cosent_loss(a: Tensor, b: Tensor, scores: Tensor, scale: float = 20.0) -> Tensor:
    """``log(1 + sum_{s_i > s_j} exp(scale * (cos_j - cos_i)))`` over all pairs of pairs.

    Args:
        a: ``(B, D)`` first items.
        b: ``(B, D)`` second items.
        scores: ``(B,)`` gold similarity; only its order matters.
        scale: inverse temperature.
    """
    cos = F.cosine_similarity(a, b, dim=-1) * scale  # (B,)
    diff = cos[None, :] - cos[:, None]  # (B, B): cos_j - cos_i
    valid = scores[:, None] > scores[None, :]  # pair i should rank above pair j
    diff = diff.masked_fill(~valid, float("-inf"))
    diff = torch.cat([torch.zeros(1, device=diff.device, dtype=diff.dtype), diff.flatten()])
    return torch.logsumexp(diff, dim=0)


class CoSENTLoss(nn.Module):
    """CoSENT over ``(sentence1, sentence2)`` embeddings and a similarity score.

    Args:
        scale: inverse temperature applied to cosine similarities (20 in the paper).

    Inputs:
        embeddings: ``[a, b]``, each ``(B, D)``; target: ``(B,)`` scores.
    """

    def __init__(self, scale: float = 20.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, embeddings: Sequence[Tensor], target: Tensor | None) -> Tensor:
        if len(embeddings) != 2 or target is None:
            raise ValueError("CoSENTLoss needs two input columns and a score column")
        return cosent_loss(embeddings[0], embeddings[1], target.to(embeddings[0].dtype), self.scale)
