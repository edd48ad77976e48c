"""First-position ([CLS]) pooling."""

from __future__ import annotations

from torch import Tensor

from polymodal.features import Features
from polymodal.poolers.base import Pooler

__all__ = ["ClsPooler"]


class ClsPooler(Pooler):
    """The vector at position 0 (BERT's [CLS]); uses ``Features.pooled`` if ``use_pooled``."""

    def __init__(self, use_pooled: bool = False) -> None:
        super().__init__()
        self.use_pooled = use_pooled

    def forward(self, features: Features) -> Tensor:
        if self.use_pooled:
            if features.pooled is None:
                raise ValueError("ClsPooler(use_pooled=True) but the encoder returned no pooled output")
            return features.pooled
        return features.sequence[:, 0]

    def get_config(self) -> dict:
        return {"use_pooled": self.use_pooled}
