"""Losses over pooled embeddings.

Contract (as in sentence-transformers): ``loss(embeddings, target)`` where ``embeddings`` is the
list of ``(B, D)`` tensors for the input columns in order, and ``target`` the label column
(``None`` when there is none). The math lives in a plain function beside each module.
"""

from __future__ import annotations

from polymodal.losses.cosent import CoSENTLoss, cosent_loss
from polymodal.losses.cosine_mse import CosineMSELoss, cosine_mse_loss
from polymodal.losses.infonce import InfoNCELoss, MultipleNegativesRankingLoss, info_nce_loss

__all__ = [
    "CoSENTLoss",
    "CosineMSELoss",
    "InfoNCELoss",
    "MultipleNegativesRankingLoss",
    "cosent_loss",
    "cosine_mse_loss",
    "info_nce_loss",
]
