"""Focal-style reweighting of the contrastive loss: concentrate on hard samples.

Reference: Zhao et al., "KaLM-Embedding-V2: Superior Training Techniques and Data Inspire A
Versatile Embedding Model" (2025), https://arxiv.org/abs/2506.20923 , which weights each
sample's InfoNCE term by ``(1 - p_i) ** gamma`` where ``p_i`` is the softmax probability of
its positive (Lin et al.'s focal loss, https://arxiv.org/abs/1708.02002 , applied to
in-batch contrastive learning). Easy pairs (``p_i`` near 1) contribute little.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.distributed import all_gather_with_grad, rank_and_world

__all__ = ["FocalInfoNCELoss", "focal_info_nce_loss"]


def focal_info_nce_loss(
    anchors: Tensor,
    candidates: Tensor,
    labels: Tensor,
    temperature: float = 0.05,
    gamma: float = 2.0,
    detach_weights: bool = True,
) -> Tensor:
    """``mean_i (1 - p_i)^gamma * -log p_i`` over anchors ``(B, D)`` vs candidates ``(N, D)``.

    ``gamma = 0`` is plain InfoNCE. ``detach_weights`` treats the weights as constants (the
    usual reading of "reweighting"); with ``False`` the weight is differentiated too (focal loss).
    """
    logits = F.normalize(anchors, dim=-1) @ F.normalize(candidates, dim=-1).T / temperature  # (B, N)
    log_p = F.log_softmax(logits, dim=-1).gather(1, labels.unsqueeze(1)).squeeze(1)  # (B,)
    weight = (1 - log_p.exp()).clamp(min=0) ** gamma
    if detach_weights:
        weight = weight.detach()
    return -(weight * log_p).mean()


class FocalInfoNCELoss(nn.Module):
    """InfoNCE (in-batch negatives, optional hard-negative columns, gathered across ranks) with
    focal reweighting of each anchor's term.

    Args:
        temperature: softmax temperature on cosine similarities.
        gamma: focusing strength (0 = InfoNCE; KaLM-V2 and Lin et al. use 2).
        symmetric: also classify positives against all anchors.
        gather: gather candidates across ranks under DDP.
        detach_weights: treat ``(1 - p)^gamma`` as a constant weight.
    """

    def __init__(
        self,
        temperature: float = 0.05,
        gamma: float = 2.0,
        symmetric: bool = False,
        gather: bool = True,
        detach_weights: bool = True,
    ) -> None:
        super().__init__()
        if temperature <= 0 or gamma < 0:
            raise ValueError(f"need temperature > 0 and gamma >= 0, got {temperature}, {gamma}")
        self.temperature, self.gamma = temperature, gamma
        self.symmetric, self.gather, self.detach_weights = symmetric, gather, detach_weights

    def forward(self, embeddings: Sequence[Tensor], target: Tensor | None = None) -> Tensor:
        if len(embeddings) < 2:
            raise ValueError("FocalInfoNCELoss needs at least an anchor and a positive column")
        anchors, positives, *negatives = embeddings
        rank, world = rank_and_world() if self.gather else (0, 1)
        gather = all_gather_with_grad if world > 1 else (lambda t: t)
        candidates = torch.cat([gather(positives), *[gather(n) for n in negatives]], dim=0)
        labels = torch.arange(anchors.shape[0], device=anchors.device) + rank * anchors.shape[0]
        args = (self.temperature, self.gamma, self.detach_weights)
        loss = focal_info_nce_loss(anchors, candidates, labels, *args)
        if self.symmetric:
            loss = (loss + focal_info_nce_loss(positives, gather(anchors), labels, *args)) / 2
        return loss
