"""Online hard-negative mixing: synthesise extra negatives from the hardest in-batch ones.

References: Zhao et al., "KaLM-Embedding-V2: Superior Training Techniques and Data Inspire A Versatile
Embedding Model" (2025), https://arxiv.org/abs/2506.20923 ("an online hard-negative mixing strategy to
continuously enrich hard negatives without expensive offline mining"); the mixing itself follows
Kalantidis et al., "Hard Negative Mixing for Contrastive Learning" (MoCHi, NeurIPS 2020),
https://arxiv.org/abs/2010.01028 , since KaLM-V2's exact formula could not be read here: for each anchor,
the ``top_k`` candidates most similar to it (its positive excluded) are the hard negatives; each synthetic
negative is ``normalize(a * n_i + (1 - a) * n_j)`` for two of them drawn at random with ``a ~ U(0, 1)``.
Synthetic negatives are constants (no gradient flows into them, as in MoCHi) and are seen only by their
own anchor.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["HardNegativeMixingLoss", "hard_negative_mixing_loss", "mix_hard_negatives"]


def mix_hard_negatives(
    anchors: Tensor,
    candidates: Tensor,
    labels: Tensor,
    top_k: int = 8,
    num_mixed: int = 8,
    alpha: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Synthetic negatives ``(B, num_mixed, D)`` (unit norm, detached) for L2-normalised ``anchors`` ``(B, D)``.

    ``candidates`` ``(N, D)`` are normalised too; ``labels`` ``(B,)`` index each anchor's positive. Pairs of
    hard negatives are drawn with replacement from each anchor's ``top_k``; ``alpha`` fixes the mixing weight
    (default: ``U(0, 1)`` per synthetic negative).
    """
    with torch.no_grad():
        sims = anchors @ candidates.T  # (B, N)
        sims[torch.arange(len(labels), device=sims.device), labels] = float("-inf")  # never mix the positive
        k = min(int(top_k), candidates.shape[0] - 1)
        if k < 1:
            raise ValueError("hard-negative mixing needs at least one negative candidate")
        hard = sims.topk(k, dim=1).indices  # (B, k)
        B = anchors.shape[0]
        pick = torch.randint(0, k, (B, num_mixed, 2), generator=generator, device="cpu").to(hard.device)
        first = candidates[hard.gather(1, pick[..., 0])]  # (B, M, D)
        second = candidates[hard.gather(1, pick[..., 1])]  # (B, M, D)
        if alpha is None:
            a = torch.rand((B, num_mixed, 1), generator=generator, device="cpu").to(anchors)
        else:
            a = torch.full((B, num_mixed, 1), float(alpha), dtype=anchors.dtype, device=anchors.device)
        return F.normalize(a * first + (1 - a) * second, dim=-1)


def hard_negative_mixing_loss(
    anchors: Tensor,
    candidates: Tensor,
    labels: Tensor,
    mixed: Tensor,
    temperature: float = 0.05,
) -> Tensor:
    """Cross-entropy of each anchor against ``candidates`` ``(N, D)`` plus its own synthetic ``mixed`` ``(B, M, D)``.

    Similarities are cosine over ``temperature``; the positive of anchor ``i`` is ``candidates[labels[i]]``.
    """
    a = F.normalize(anchors, dim=-1)  # (B, D)
    shared = a @ F.normalize(candidates, dim=-1).T  # (B, N)
    own = torch.einsum("bd,bmd->bm", a, mixed.to(a.dtype))  # (B, M)
    logits = torch.cat([shared, own], dim=1) / temperature  # (B, N + M)
    return F.cross_entropy(logits, labels)


class HardNegativeMixingLoss(nn.Module):
    """InfoNCE over in-batch (and hard-negative column) candidates plus mixed synthetic hard negatives.

    Args:
        temperature: softmax temperature on cosine similarities.
        top_k: hardest candidates per anchor that are mixed.
        num_mixed: synthetic negatives per anchor.
        alpha: fixed mixing weight (default: drawn from ``U(0, 1)``).

    Inputs:
        embeddings ``[anchors, positives, *negatives]`` ``(B, D)`` each (as :class:`InfoNCELoss`).

    Example:
        >>> loss = HardNegativeMixingLoss(top_k=8, num_mixed=8)
        >>> value = loss([anchors, positives, negatives])
    """

    def __init__(
        self, temperature: float = 0.05, top_k: int = 8, num_mixed: int = 8, alpha: float | None = None
    ) -> None:
        super().__init__()
        if temperature <= 0 or top_k < 1 or num_mixed < 1:
            raise ValueError(
                f"need temperature > 0, top_k >= 1, num_mixed >= 1; got {temperature}, {top_k}, {num_mixed}"
            )
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.temperature, self.top_k, self.num_mixed, self.alpha = temperature, top_k, num_mixed, alpha

    def forward(self, embeddings: Sequence[Tensor], target: Tensor | None = None) -> Tensor:
        if len(embeddings) < 2:
            raise ValueError("HardNegativeMixingLoss needs at least an anchor and a positive column")
        anchors, positives, *negatives = embeddings
        candidates = torch.cat([positives, *negatives], dim=0)  # (N, D)
        labels = torch.arange(anchors.shape[0], device=anchors.device)
        if not self.training:  # validation: plain InfoNCE (no random synthetic negatives)
            empty = anchors.new_zeros((anchors.shape[0], 0, anchors.shape[1]))
            return hard_negative_mixing_loss(anchors, candidates, labels, empty, self.temperature)
        mixed = mix_hard_negatives(
            F.normalize(anchors.detach(), dim=-1),
            F.normalize(candidates.detach(), dim=-1),
            labels,
            self.top_k,
            self.num_mixed,
            self.alpha,
        )
        return hard_negative_mixing_loss(anchors, candidates, labels, mixed, self.temperature)
