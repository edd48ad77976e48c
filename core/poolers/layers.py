"""Mean pooling of an average of chosen layers: the "first-last avg" of Li et al. (2020).

References:
    B. Li, H. Zhou, J. He, M. Wang, Y. Yang, L. Li. "On the Sentence Embeddings from Pre-trained
    Language Models." EMNLP 2020 (first-last average: mean over tokens of the average of the first and
    last Transformer layers' outputs).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from polymodal.features import Features
from polymodal.poolers.base import Pooler
from polymodal.poolers.mean import masked_mean

__all__ = ["LayerMeanPooler"]


class LayerMeanPooler(Pooler):
    """Average the hidden states of ``layers`` (index 0 = input embeddings, as in Hugging Face), then
    mean-pool over real positions. Needs an encoder that returns ``hidden_states`` (``TextEncoder(...,
    hidden_states=True)``).

    Args:
        layers: layer indices to average; default ``[1, -1]``: the first and the last Transformer layer.

    Example:
        >>> pooled = LayerMeanPooler()(features)  # (B, D)
    """

    def __init__(self, layers: Sequence[int] = (1, -1)) -> None:
        super().__init__()
        if not layers:
            raise ValueError("LayerMeanPooler needs at least one layer index")
        self.layers = [int(i) for i in layers]

    def forward(self, features: Features) -> Tensor:
        states = features.hidden_states
        if states is None:
            raise ValueError("LayerMeanPooler needs hidden_states: build the encoder with hidden_states=True")
        for i in self.layers:
            if not -len(states) <= i < len(states):
                raise ValueError(f"layer {i} out of range: the encoder returns {len(states)} hidden states")
        mixed = torch.stack([states[i] for i in self.layers]).mean(dim=0)  # (B, T, D)
        return masked_mean(mixed, features.mask)

    def get_config(self) -> dict:
        return {"layers": self.layers}
