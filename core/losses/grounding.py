"""Caption-image retrieval losses with in-batch negatives, aware of captions of the same image:
sum-of-violations hinge (Kiros et al. 2014; Merkx & Frank 2019), hardest-negative hinge (VSE++, Faghri
et al. 2018) and InfoNCE.

With five captions per image, a random batch often holds two captions of one image; their
images are then identical and must not be pushed apart as negatives. The losses take the image
ids as ``target`` and ignore every pair that shares an image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["GroundingLoss", "averaged_token_similarity", "grounding_loss"]


def averaged_token_similarity(a: Tensor, a_mask: Tensor, b: Tensor, b_mask: Tensor) -> Tensor:
    """Mean cosine over every token pair: ``S[i, j] = mean_{t, u} cos(a[i, t], b[j, u])`` over real tokens.

    The pairwise form of CG-VLM's alignment score ("the averaged similarity between pooled image-patch features
    and text-token embeddings", Liu et al. 2023). It equals the dot product of the means of the L2-normalised
    tokens (``MeanPooler(normalize_tokens=True)`` then ``similarity="dot"``), which is how training computes
    it; this function is the reference it is checked against.

    Args:
        a: ``(B, T, D)`` tokens of the first side (e.g. image patch cells).
        a_mask: ``(B, T)`` real positions of ``a``.
        b: ``(C, U, D)`` tokens of the second side (e.g. caption-token embeddings).
        b_mask: ``(C, U)`` real positions of ``b``.

    Returns:
        ``(B, C)`` similarities in ``[-1, 1]``.
    """
    an, bn = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    cos = torch.einsum("itd,jud->ijtu", an, bn)  # (B, C, T, U)
    w = a_mask.to(cos.dtype)[:, None, :, None] * b_mask.to(cos.dtype)[None, :, None, :]  # (B, C, T, U)
    return (cos * w).sum(dim=(2, 3)) / w.sum(dim=(2, 3)).clamp(min=1e-9)


def grounding_loss(
    captions: Tensor,
    images: Tensor,
    image_ids: Tensor | None = None,
    kind: Literal["hinge_sum", "hinge_max", "infonce"] = "hinge_sum",
    margin: float = 0.2,
    temperature: float = 0.05,
    similarity: Literal["cosine", "dot"] = "cosine",
) -> Tensor:
    """Symmetric caption<->image loss over a batch of matching pairs.

    Args:
        captions: ``(B, D)`` caption embeddings (L2-normalised for the hinge losses).
        images: ``(B, D)`` embeddings of each caption's image.
        image_ids: ``(B,)`` image identity of each pair; pairs with equal ids are not negatives.
        kind: ``hinge_sum`` (sum of violations over all negatives, Kiros et al. 2014; Merkx &
            Frank 2019), ``hinge_max`` (hardest negative only, VSE++, Faghri et al. 2018) or
            ``infonce`` (cross-entropy on cosine / temperature, both directions).
        margin: hinge margin.
        temperature: InfoNCE temperature.
        similarity: InfoNCE score: ``cosine`` of the two embeddings, or their ``dot`` product as given (with
            mean-of-unit-token embeddings: the averaged token-pair cosine of :func:`averaged_token_similarity`).

    Returns:
        Scalar loss, averaged over the batch and the two directions.
    """
    if captions.shape != images.shape or captions.dim() != 2:
        raise ValueError(
            f"captions and images must both be (B, D), got {tuple(captions.shape)} / {tuple(images.shape)}"
        )
    B = captions.shape[0]
    if image_ids is None:
        image_ids = torch.arange(B, device=captions.device)
    same = image_ids.reshape(-1, 1) == image_ids.reshape(1, -1)  # (B, B), diagonal included
    if kind == "infonce":
        if similarity not in ("cosine", "dot"):
            raise ValueError(f"unknown similarity {similarity!r}; choose cosine or dot")
        if similarity == "cosine":
            captions, images = F.normalize(captions, dim=-1), F.normalize(images, dim=-1)
        logits = captions @ images.T / temperature  # (B, B)
        eye = torch.eye(B, dtype=torch.bool, device=captions.device)
        logits = logits.masked_fill(same & ~eye, float("-inf"))  # other pairs of the same image: no negative
        labels = torch.arange(B, device=captions.device)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    if kind not in ("hinge_sum", "hinge_max"):
        raise ValueError(f"unknown loss kind {kind!r}; choose hinge_sum, hinge_max or infonce")
    scores = captions @ images.T  # (B, B): caption i vs image j
    positive = scores.diagonal()  # (B,)
    cost_c2i = (margin + scores - positive[:, None]).clamp(min=0).masked_fill(same, 0.0)  # caption i, image j
    cost_i2c = (margin + scores - positive[None, :]).clamp(min=0).masked_fill(same, 0.0)  # image j, caption i
    if kind == "hinge_max":
        return (cost_c2i.max(dim=1).values.mean() + cost_i2c.max(dim=0).values.mean()) / 2
    return (cost_c2i.sum(dim=1).mean() + cost_i2c.sum(dim=0).mean()) / 2


class GroundingLoss(nn.Module):
    """:func:`grounding_loss` as a polymodal loss: ``loss([captions, images], image_ids)``.

    Args:
        kind: ``hinge_sum``, ``hinge_max`` or ``infonce``.
        margin: hinge margin.
        temperature: InfoNCE temperature.
        similarity: InfoNCE score, ``cosine`` or ``dot`` (see :func:`grounding_loss`).

    Example:
        >>> loss = GroundingLoss("hinge_sum", margin=0.2)
        >>> value = loss([caption_emb, image_emb], image_ids)
    """

    def __init__(
        self,
        kind: Literal["hinge_sum", "hinge_max", "infonce"] = "hinge_sum",
        margin: float = 0.2,
        temperature: float = 0.05,
        similarity: Literal["cosine", "dot"] = "cosine",
    ) -> None:
        super().__init__()
        if kind not in ("hinge_sum", "hinge_max", "infonce"):
            raise ValueError(f"unknown loss kind {kind!r}; choose hinge_sum, hinge_max or infonce")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if similarity not in ("cosine", "dot"):
            raise ValueError(f"unknown similarity {similarity!r}; choose cosine or dot")
        self.kind, self.similarity = kind, similarity
        self.margin = margin
        self.temperature = temperature

    def forward(self, embeddings: Sequence[Tensor], target: Tensor | None = None) -> Tensor:
        if len(embeddings) != 2:
            raise ValueError(f"GroundingLoss needs exactly [captions, images], got {len(embeddings)} column(s)")
        ids = None if target is None else target.round().long()
        return grounding_loss(
            embeddings[0], embeddings[1], ids, self.kind, self.margin, self.temperature, self.similarity
        )
