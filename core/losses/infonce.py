"""In-batch InfoNCE / multiple-negatives ranking loss, gathered across ranks.

References: van den Oord et al. 2018 (InfoNCE); Henderson et al. 2017 (MNRL);
sentence-transformers ``MultipleNegativesRankingLoss``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.distributed import all_gather_with_grad, rank_and_world

__all__ = ["InfoNCELoss", "MultipleNegativesRankingLoss", "info_nce_loss"]


def info_nce_loss(
    anchors: Tensor,
    candidates: Tensor,
    labels: Tensor,
    temperature: float = 0.05,
) -> Tensor:
    """Cross-entropy of each anchor ``(B, D)`` against all ``candidates`` ``(N, D)``.

    ``labels`` ``(B,)`` holds the index of each anchor's positive among the candidates.
    Similarities are cosine, divided by ``temperature``.
    """
    logits = F.normalize(anchors, dim=-1) @ F.normalize(candidates, dim=-1).T / temperature  # (B, N)
    return F.cross_entropy(logits, labels)


class InfoNCELoss(nn.Module):
    """Anchor/positive pairs (+ optional hard-negative columns) with in-batch negatives.

    Column 0 are anchors, column 1 their positives, any further columns hard negatives.
    Under DDP the candidates from every rank are gathered (with gradients), so the effective
    number of negatives is the global batch; the result equals the single-process loss on the
    concatenated batch.

    Args:
        temperature: softmax temperature on cosine similarities (0.05 == sentence-transformers' scale 20).
        symmetric: also classify each positive against all anchors and average both directions.
        gather: gather candidates across ranks when running distributed.
    """

    def __init__(self, temperature: float = 0.05, symmetric: bool = False, gather: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.symmetric = symmetric
        self.gather = gather

    def forward(self, embeddings: Sequence[Tensor], target: Tensor | None = None) -> Tensor:
        if len(embeddings) < 2:
            raise ValueError("InfoNCELoss needs at least an anchor and a positive column")
        anchors, positives, *negatives = embeddings
        B = anchors.shape[0]
        rank, world = rank_and_world() if self.gather else (0, 1)
        gather = all_gather_with_grad if world > 1 else (lambda t: t)
        all_pos = gather(positives)  # (W*B, D)
        candidates = torch.cat([all_pos, *[gather(n) for n in negatives]], dim=0)
        labels = torch.arange(B, device=anchors.device) + rank * B
        loss = info_nce_loss(anchors, candidates, labels, self.temperature)
        if self.symmetric:
            all_anchors = gather(anchors)
            loss = (loss + info_nce_loss(positives, all_anchors, labels, self.temperature)) / 2
        return loss


#: sentence-transformers' name for the same loss.
MultipleNegativesRankingLoss = InfoNCELoss
