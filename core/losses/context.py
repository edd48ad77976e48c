"""What a loss that drives the forward pass itself receives (GradCache, 2D Matryoshka, distillation).

The usual loss contract is ``loss(embeddings, target)``: the system embeds every column and
the loss only sees ``(B, D)`` tensors. Some objectives need more: the cached (GradCache)
loss must run the encoder itself in mini-batches, 2D Matryoshka needs per-layer features,
embedding distillation needs the processed inputs for its teacher. Such losses set
``uses_context = True`` and implement ``loss_from_context(context)``;
:class:`~polymodal.systems.contrastive.ContrastiveSystem` calls it during training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from polymodal.features import Features

__all__ = ["BatchContext", "batch_size_of", "slice_inputs"]


def batch_size_of(inputs: dict[str, Tensor]) -> int:
    """Rows in a processed batch (leading dimension of its first tensor)."""
    for v in inputs.values():
        if isinstance(v, Tensor):
            return int(v.shape[0])
    raise ValueError("processed batch holds no tensors")


def slice_inputs(inputs: dict[str, Tensor], start: int, stop: int) -> dict[str, Tensor]:
    """Rows ``start:stop`` of a processed batch; padding columns no row uses are trimmed."""
    out = {k: (v[start:stop] if isinstance(v, Tensor) and v.dim() >= 1 else v) for k, v in inputs.items()}
    mask = out.get("attention_mask")
    if isinstance(mask, Tensor) and mask.dim() == 2 and mask.shape[1] > 0:
        used = mask.bool().any(dim=0).nonzero()
        keep = int(used.max().item()) + 1 if len(used) else 1
        if keep < mask.shape[1]:
            T = mask.shape[1]
            out = {
                k: (v[:, :keep] if isinstance(v, Tensor) and v.dim() >= 2 and v.shape[1] == T else v)
                for k, v in out.items()
            }
    return out


@dataclass
class BatchContext:
    """One training batch plus the functions to embed it.

    Attributes:
        inputs: processed inputs, one dict per input column.
        target: the target column ``(B,)`` or ``None``.
        encode: ``encode(inputs, column_index) -> Features`` with the column's encoder.
        pool: ``pool(features) -> (B, D)``: the system's pooler and normalisation.
    """

    inputs: list[dict[str, Tensor]]
    target: Tensor | None
    encode: Callable[[dict[str, Tensor], int], Features]
    pool: Callable[[Features], Tensor]

    @property
    def num_columns(self) -> int:
        return len(self.inputs)

    def features(self, column: int, inputs: dict[str, Tensor] | None = None) -> Features:
        return self.encode(self.inputs[column] if inputs is None else inputs, column)

    def embed(self, column: int, inputs: dict[str, Tensor] | None = None) -> Tensor:
        """``(B, D)`` embeddings of one column (or of ``inputs`` with that column's encoder)."""
        return self.pool(self.features(column, inputs))
