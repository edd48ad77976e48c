"""Matryoshka representation learning: the loss at several leading-dimension prefixes.

Reference: Kusupati et al., "Matryoshka Representation Learning" (NeurIPS 2022),
https://arxiv.org/abs/2205.13147 ; as sentence-transformers' ``MatryoshkaLoss``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

__all__ = ["MatryoshkaLoss", "matryoshka_loss", "truncate"]


def truncate(embeddings: Sequence[Tensor], dim: int) -> list[Tensor]:
    """The first ``dim`` coordinates of each ``(B, D)`` tensor (cosine losses re-normalise)."""
    return [e[..., :dim] for e in embeddings]


def matryoshka_loss(
    loss: Callable[[Sequence[Tensor], Tensor | None], Tensor],
    embeddings: Sequence[Tensor],
    target: Tensor | None,
    dims: Sequence[int],
    weights: Sequence[float] | None = None,
) -> Tensor:
    """``sum_k weights[k] * loss(truncate(embeddings, dims[k]), target)``.

    Args:
        loss: a polymodal loss (``loss(embeddings, target)``).
        embeddings: ``(B, D)`` tensors, one per input column.
        target: the target or ``None``.
        dims: prefix lengths, each ``<= D``.
        weights: one weight per dim (default 1 each).
    """
    weights = [1.0] * len(dims) if weights is None else list(weights)
    if len(weights) != len(dims):
        raise ValueError(f"{len(weights)} matryoshka weights for {len(dims)} dims")
    D = embeddings[0].shape[-1]
    if any(d < 1 or d > D for d in dims):
        raise ValueError(f"matryoshka dims {list(dims)} must lie in [1, {D}]")
    total = embeddings[0].new_zeros(())
    for d, w in zip(dims, weights):
        total = total + w * loss(truncate(embeddings, d), target)
    return total


class MatryoshkaLoss(nn.Module):
    """Apply ``loss`` to the first ``d`` dimensions for every ``d`` in ``dims`` and sum.

    Args:
        loss: the inner loss (InfoNCE, CoSENT, ...).
        dims: prefix lengths, e.g. ``[384, 192, 96, 48]``; the full width should be included.
        weights: per-dim weights (default 1).

    Example:
        >>> loss = MatryoshkaLoss(CoSENTLoss(), dims=[384, 192, 96, 48])
    """

    def __init__(self, loss: nn.Module, dims: Sequence[int], weights: Sequence[float] | None = None) -> None:
        super().__init__()
        if not dims:
            raise ValueError("MatryoshkaLoss needs at least one dim")
        self.loss = loss
        self.dims = [int(d) for d in dims]
        self.weights = None if weights is None else [float(w) for w in weights]
        if self.weights is not None and len(self.weights) != len(self.dims):
            raise ValueError(f"{len(self.weights)} weights for {len(self.dims)} dims")

    def forward(self, embeddings: Sequence[Tensor], target: Tensor | None = None) -> Tensor:
        return matryoshka_loss(self.loss, embeddings, target, self.dims, self.weights)
