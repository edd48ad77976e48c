"""The one currency between encoders, poolers and losses.

Every modality's encoder returns :class:`Features`; every pooler and loss consumes it, so any
pooler or loss works on any modality.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

__all__ = ["Features"]


@dataclass
class Features:
    """Encoder output for a batch.

    Attributes:
        sequence: token/patch/step vectors ``(B, T, D)`` from the last layer.
        mask: ``(B, T)`` bool, True where ``sequence`` holds real (non-padding) positions.
        pooled: optional ``(B, D)`` vector the encoder itself produces (e.g. a CNN's global pool).
        hidden_states: optional per-layer ``(B, T, D)`` outputs; index 0 is the input embeddings
            (as in Hugging Face), index ``-1`` equals ``sequence``. Enables layer-elastic training
            and multi-layer pooling without modality-specific code.
    """

    sequence: Tensor
    mask: Tensor
    pooled: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None

    def __post_init__(self) -> None:
        if self.sequence.dim() != 3:
            raise ValueError(f"Features.sequence must be (B, T, D), got shape {tuple(self.sequence.shape)}")
        if self.mask.shape != self.sequence.shape[:2]:
            raise ValueError(
                f"Features.mask must be (B, T) = {tuple(self.sequence.shape[:2])}, got {tuple(self.mask.shape)}"
            )
        if self.mask.dtype != torch.bool:
            self.mask = self.mask.bool()

    @property
    def num_layers(self) -> int:
        """Number of transformer layers available (0 when no hidden states were kept)."""
        return 0 if self.hidden_states is None else len(self.hidden_states) - 1

    def at_layer(self, layer: int) -> Features:
        """Features as if the encoder stopped after ``layer`` (1-based; ``-1`` = last)."""
        if self.hidden_states is None:
            raise ValueError("these Features carry no hidden_states; build the encoder with hidden_states=True")
        states = self.hidden_states[: (layer + 1) if layer >= 0 else len(self.hidden_states) + layer + 1]
        return replace(self, sequence=states[-1], pooled=None, hidden_states=tuple(states))
