"""InfoNCE variants that change which terms count: progressive sample weighting and false-negative filtering.

References:
    Wu et al., "PEG: Towards Robust Text Retrieval with Progressive Learning" (2023),
    https://arxiv.org/abs/2311.11691 : a very large in-batch-negative pool, with sample weights that shift toward
    harder examples as training progresses. Here the weight of anchor ``i`` is ``(1 - p_i) ** gamma_t``
    (normalised to mean 1, constant in the gradient), ``p_i`` its positive's softmax probability and
    ``gamma_t = gamma * min(1, t / total_steps)`` growing linearly from 0 (plain InfoNCE) to ``gamma``.
    Bae et al., "LG-ANNA-Embedding" (2024) and Moreira et al., NV-Retriever (2024),
    https://arxiv.org/abs/2407.15831 : candidates scoring too close to the positive are likely false negatives;
    the same relative / absolute margins as :func:`polymodal.losses.mine_hard_negatives`, applied online to the
    in-batch candidates (a candidate ``c`` of anchor ``q`` with positive ``p`` is dropped from the softmax when
    ``sim(q, c) > relative_margin * sim(q, p)`` or ``sim(q, c) > sim(q, p) - margin``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "MarginFilteredInfoNCELoss",
    "ProgressiveInfoNCELoss",
    "margin_filtered_info_nce_loss",
    "progressive_info_nce_loss",
]


def _cosine_logits(anchors: Tensor, candidates: Tensor) -> Tensor:
    return F.normalize(anchors, dim=-1) @ F.normalize(candidates, dim=-1).T  # (B, N)


def progressive_info_nce_loss(
    anchors: Tensor, candidates: Tensor, labels: Tensor, temperature: float, gamma: float
) -> Tensor:
    """``mean_i w_i * -log p_i`` with ``w_i = (1 - p_i)^gamma / mean_j (1 - p_j)^gamma`` (weights detached)."""
    log_p = F.log_softmax(_cosine_logits(anchors, candidates) / temperature, dim=-1)
    log_p = log_p.gather(1, labels.unsqueeze(1)).squeeze(1)  # (B,)
    weight = ((1 - log_p.detach().exp()).clamp(min=0) ** gamma).clamp(min=1e-12)
    weight = weight / weight.mean()
    return -(weight * log_p).mean()


class ProgressiveInfoNCELoss(nn.Module):
    """PEG-style progressive learning: InfoNCE whose sample weights move toward hard anchors over training.

    Args:
        total_steps: training steps over which the focusing exponent grows from 0 to ``gamma`` (e.g. the
            trainer's ``max_steps``); later steps keep ``gamma``.
        gamma: final focusing exponent.
        temperature: softmax temperature on cosine similarities.

    The step counter is a buffer (saved in checkpoints, so a resumed run continues the schedule) that counts
    calls in training mode; in evaluation the loss uses the current exponent without counting. Use it inside
    :class:`~polymodal.losses.CachedInfoNCELoss` (``loss:``) for PEG's very large batches.
    """

    steps: Tensor

    def __init__(self, total_steps: int, gamma: float = 2.0, temperature: float = 0.05) -> None:
        super().__init__()
        if total_steps < 1 or gamma < 0 or temperature <= 0:
            raise ValueError(
                f"need total_steps >= 1, gamma >= 0, temperature > 0; got {total_steps}, {gamma}, {temperature}"
            )
        self.total_steps, self.gamma, self.temperature = int(total_steps), float(gamma), float(temperature)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def current_gamma(self) -> float:
        return self.gamma * min(1.0, int(self.steps) / self.total_steps)

    def forward(self, embeddings: Sequence[Tensor], target: Tensor | None = None) -> Tensor:
        if len(embeddings) < 2:
            raise ValueError("ProgressiveInfoNCELoss needs at least an anchor and a positive column")
        anchors, positives, *negatives = embeddings
        candidates = torch.cat([positives, *negatives], dim=0)
        labels = torch.arange(anchors.shape[0], device=anchors.device)
        loss = progressive_info_nce_loss(anchors, candidates, labels, self.temperature, self.current_gamma())
        if self.training:
            self.steps.add_(1)
        return loss


def margin_filtered_info_nce_loss(
    anchors: Tensor,
    candidates: Tensor,
    labels: Tensor,
    temperature: float = 0.05,
    relative_margin: float | None = 0.95,
    margin: float | None = None,
) -> Tensor:
    """InfoNCE where candidates that score too close to each anchor's positive are left out of its softmax."""
    sims = _cosine_logits(anchors, candidates)  # (B, N)
    rows = torch.arange(len(labels), device=sims.device)
    with torch.no_grad():
        pos = sims[rows, labels].unsqueeze(1)  # (B, 1)
        drop = torch.zeros_like(sims, dtype=torch.bool)
        if relative_margin is not None:
            drop |= sims > relative_margin * pos
        if margin is not None:
            drop |= sims > pos - margin
        drop[rows, labels] = False
    logits = (sims / temperature).masked_fill(drop, float("-inf"))
    return F.cross_entropy(logits, labels)


class MarginFilteredInfoNCELoss(nn.Module):
    """InfoNCE with the false-negative margin filter of :func:`~polymodal.losses.mine_hard_negatives`, online.

    Args:
        temperature: softmax temperature on cosine similarities.
        relative_margin: drop ``c`` when ``sim(q, c) > relative_margin * sim(q, p)`` (None: off; NV-Retriever's
            "TopK-PercPos" uses 0.95).
        margin: drop ``c`` when ``sim(q, c) > sim(q, p) - margin`` (None: off).
    """

    def __init__(
        self, temperature: float = 0.05, relative_margin: float | None = 0.95, margin: float | None = None
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if relative_margin is None and margin is None:
            raise ValueError("give relative_margin or margin (or use InfoNCELoss)")
        self.temperature, self.relative_margin, self.margin = temperature, relative_margin, margin

    def forward(self, embeddings: Sequence[Tensor], target: Tensor | None = None) -> Tensor:
        if len(embeddings) < 2:
            raise ValueError("MarginFilteredInfoNCELoss needs at least an anchor and a positive column")
        anchors, positives, *negatives = embeddings
        candidates = torch.cat([positives, *negatives], dim=0)
        labels = torch.arange(anchors.shape[0], device=anchors.device)
        return margin_filtered_info_nce_loss(
            anchors, candidates, labels, self.temperature, self.relative_margin, self.margin
        )
