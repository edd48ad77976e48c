"""Position-weighted mean pooling (SGPT's "weighted mean" for decoder LMs).

Reference: Muennighoff, "SGPT: GPT Sentence Embeddings for Semantic Search" (2022),
https://arxiv.org/abs/2202.08904 . Same weights as sentence-transformers' ``weightedmean`` mode.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from polymodal.features import Features
from polymodal.poolers.base import Pooler

__all__ = ["WeightedMeanPooler", "position_weights"]


def position_weights(mask: Tensor, scheme: Literal["linear", "uniform"] = "linear") -> Tensor:
    """Weights ``(B, T)`` over real positions, each row summing to 1.

    ``"linear"`` gives the k-th real position (counted from the first real one, so left and
    right padding give the same result) the weight ``k`` (1-based): later tokens of a causal
    model have seen more of the input and count more. ``"uniform"`` is plain mean pooling.
    """
    if scheme not in ("linear", "uniform"):
        raise ValueError(f"unknown weighting scheme {scheme!r}; choose 'linear' or 'uniform'")
    m = mask.to(torch.float32)
    raw = torch.cumsum(m, dim=1) * m if scheme == "linear" else m  # (B, T)
    return raw / raw.sum(dim=1, keepdim=True).clamp(min=1e-9)


class WeightedMeanPooler(Pooler):
    """Mean of the sequence vectors weighted by position (linear by default).

    Works for any modality's features (for patch or time-step sequences ``"linear"`` weights
    later positions more).

    Args:
        scheme: ``"linear"`` (SGPT position weights) or ``"uniform"``.

    Example:
        >>> emb = WeightedMeanPooler()(features)  # (B, D)
    """

    def __init__(self, scheme: Literal["linear", "uniform"] = "linear") -> None:
        super().__init__()
        if scheme not in ("linear", "uniform"):
            raise ValueError(f"unknown weighting scheme {scheme!r}; choose 'linear' or 'uniform'")
        self.scheme = scheme

    def forward(self, features: Features) -> Tensor:
        w = position_weights(features.mask, self.scheme).to(features.sequence.dtype)  # (B, T)
        return torch.einsum("bt,btd->bd", w, features.sequence)

    def get_config(self) -> dict:
        return {"scheme": self.scheme}
