"""Losses over pooled embeddings.

Contract (as in sentence-transformers): ``loss(embeddings, target)`` where ``embeddings`` is the
list of ``(B, D)`` tensors for the input columns in order, and ``target`` the label column
(``None`` when there is none). The math lives in a plain function beside each module.
"""

from __future__ import annotations

from polymodal.losses.cached import CachedInfoNCELoss
from polymodal.losses.cosent import CoSENTLoss, cosent_loss
from polymodal.losses.cosine_mse import CosineMSELoss, cosine_mse_loss
from polymodal.losses.distillation import (
    EmbeddingDistillationLoss,
    ScoreDistillationLoss,
    embedding_distillation_loss,
    score_distillation_loss,
)
from polymodal.losses.focal import FocalInfoNCELoss, focal_info_nce_loss
from polymodal.losses.grounding import GroundingLoss, grounding_loss
from polymodal.losses.infonce import InfoNCELoss, MultipleNegativesRankingLoss, info_nce_loss
from polymodal.losses.matryoshka import MatryoshkaLoss, matryoshka_loss
from polymodal.losses.matryoshka2d import Matryoshka2DLoss
from polymodal.losses.mining import MinedNegatives, mine_hard_negatives

__all__ = [
    "CachedInfoNCELoss",
    "CoSENTLoss",
    "CosineMSELoss",
    "EmbeddingDistillationLoss",
    "FocalInfoNCELoss",
    "GroundingLoss",
    "InfoNCELoss",
    "Matryoshka2DLoss",
    "MatryoshkaLoss",
    "MinedNegatives",
    "MultipleNegativesRankingLoss",
    "ScoreDistillationLoss",
    "cosent_loss",
    "cosine_mse_loss",
    "embedding_distillation_loss",
    "focal_info_nce_loss",
    "grounding_loss",
    "info_nce_loss",
    "matryoshka_loss",
    "mine_hard_negatives",
    "score_distillation_loss",
]
