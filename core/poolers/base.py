"""Pooler contract: :class:`~polymodal.features.Features` -> ``(B, D)``."""

from __future__ import annotations

import abc

from torch import Tensor, nn

from polymodal.features import Features

__all__ = ["Pooler"]


class Pooler(nn.Module, abc.ABC):
    """Reduces an encoder's features to one vector per item. Works on any modality."""

    @abc.abstractmethod
    def forward(self, features: Features) -> Tensor:
        """Return ``(B, D)`` embeddings."""

    def get_config(self) -> dict:
        """Constructor arguments, JSON-serialisable (saved with the model)."""
        return {}
