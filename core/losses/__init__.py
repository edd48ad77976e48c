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
from polymodal.losses.listwise import GenerationAugmentedLoss, ListwiseDistillationLoss, dpo_loss, listwise_kl_loss
from polymodal.losses.matryoshka import MatryoshkaLoss, matryoshka_loss
from polymodal.losses.matryoshka2d import Matryoshka2DLoss
from polymodal.losses.mining import MinedNegatives, mine_hard_negatives
from polymodal.losses.mixing import HardNegativeMixingLoss, hard_negative_mixing_loss, mix_hard_negatives
from polymodal.losses.weighted import (
    MarginFilteredInfoNCELoss,
    ProgressiveInfoNCELoss,
    margin_filtered_info_nce_loss,
    progressive_info_nce_loss,
)

__all__ = [
    "CachedInfoNCELoss",
    "CoSENTLoss",
    "CosineMSELoss",
    "EmbeddingDistillationLoss",
    "FocalInfoNCELoss",
    "GroundingLoss",
    "HardNegativeMixingLoss",
    "InfoNCELoss",
    "ListwiseDistillationLoss",
    "MarginFilteredInfoNCELoss",
    "Matryoshka2DLoss",
    "MatryoshkaLoss",
    "MinedNegatives",
    "MultipleNegativesRankingLoss",
    "ProgressiveInfoNCELoss",
    "ScoreDistillationLoss",
    "cosent_loss",
    "cosine_mse_loss",
    "embedding_distillation_loss",
    "focal_info_nce_loss",
    "grounding_loss",
    "hard_negative_mixing_loss",
    "info_nce_loss",
    "listwise_kl_loss",
    "dpo_loss",
    "GenerationAugmentedLoss",
    "margin_filtered_info_nce_loss",
    "matryoshka_loss",
    "mine_hard_negatives",
    "mix_hard_negatives",
    "progressive_info_nce_loss",
    "score_distillation_loss",
]
