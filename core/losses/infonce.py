"""In-batch InfoNCE / multiple-negatives ranking loss, gathered across ranks.

References: van den Oord et al. 2018 (InfoNCE); Henderson et al. 2017 (MNRL);
sentence-transformers ``MultipleNegativesRankingLoss``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.distributed import all_gather_with_grad, gather_concat, rank_and_world

__all__ = ["InfoNCELoss", "MultipleNegativesRankingLoss", "info_nce_loss"]


def info_nce_loss(
    anchors: Tensor,
    candidates: Tensor,
    labels: Tensor,
    temperature: float = 0.05,
    exclude: Tensor | None = None,
) -> Tensor:
    """Cross-entropy of each anchor ``(B, D)`` against all ``candidates`` ``(N, D)``.

    ``labels`` ``(B,)`` holds the index of each anchor's positive among the candidates.
    Similarities are cosine, divided by ``temperature``. ``exclude`` ``(B, N)`` (bool) removes candidates from
    an anchor's softmax (e.g. other positives of its group, which are not negatives); its positive is never removed.
    """
    logits = F.normalize(anchors, dim=-1) @ F.normalize(candidates, dim=-1).T / temperature  # (B, N)
    if exclude is not None:
        exclude = exclude.clone()
        exclude[torch.arange(len(labels), device=labels.device), labels] = False
        logits = logits.masked_fill(exclude, float("-inf"))
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
        exclude_same_group: an integer target is a group id per row ``(B,)`` (e.g. the source text of two
            spans); in-batch candidates of the anchor's own group other than its positive are left out of its
            softmax instead of counting as negatives (hard-negative columns are never left out). Without an
            integer target (none, or a float score such as an STS validation batch's) the loss is the plain one.
    """

    def __init__(
        self, temperature: float = 0.05, symmetric: bool = False, gather: bool = True, exclude_same_group: bool = False
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.symmetric = symmetric
        self.gather = gather
        self.exclude_same_group = exclude_same_group

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
        exclude = None
        if self.exclude_same_group and target is not None and not target.is_floating_point():
            if target.shape != (B,):
                raise ValueError(
                    f"InfoNCELoss(exclude_same_group): expected one group id per row ({B},), got {tuple(target.shape)}"
                )
            groups = gather_concat(target) if world > 1 else target  # (W*B,)
            same = target[:, None] == groups[None, :]  # (B, W*B)
            pad = same.new_zeros((B, candidates.shape[0] - same.shape[1]))  # hard negatives stay negatives
            exclude = torch.cat([same, pad], dim=1)
        loss = info_nce_loss(anchors, candidates, labels, self.temperature, exclude)
        if self.symmetric:
            all_anchors = gather(anchors)
            back = None if exclude is None else exclude[:, : all_anchors.shape[0]]  # no hard negatives this way
            loss = (loss + info_nce_loss(positives, all_anchors, labels, self.temperature, back)) / 2
        return loss


#: sentence-transformers' name for the same loss.
MultipleNegativesRankingLoss = InfoNCELoss
