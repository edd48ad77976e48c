"""Precomputed feature vectors as a modality: :class:`VectorProcessor` stacks fixed-size vectors
(sentence embeddings, lexicon scores, hand-made features) and :class:`FeatureMLP` is a feed-forward
:class:`~polymodal.modality.Encoder` over them.

Any system that takes an encoder (``PredictionSystem``, ``ContrastiveSystem``) can then train on
cached features: embed a corpus once with a frozen model, train many small heads on the vectors.
Used by the WASSA empathy and topic-segmentation recipes; YAML can name ``FeatureMLP`` by its short name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from polymodal.features import Features
from polymodal.modality import Encoder, Processor

__all__ = ["FeatureMLP", "VectorProcessor"]


class VectorProcessor(Processor):
    """Stack equally long feature vectors into ``{"x": (B, D)}``."""

    def __init__(self, dim: int) -> None:
        self.dim = int(dim)

    def validate(self, value: Any) -> None:
        v = np.asarray(value)
        if v.shape != (self.dim,):
            raise ValueError(f"expected a feature vector of {self.dim} numbers, got shape {v.shape}")
        if not np.isfinite(v).all():
            raise ValueError("feature vector has non-finite values")

    def __call__(self, values: Sequence[Any]) -> dict[str, Tensor]:
        x = torch.as_tensor(np.stack([np.asarray(v, dtype=np.float32) for v in values]))  # (B, D)
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected feature vectors of {self.dim} numbers, got a batch of shape {tuple(x.shape)}")
        return {"x": x}


class FeatureMLP(Encoder):
    """Feed-forward network over a feature vector: ``layers`` x (Linear -> [LayerNorm] -> GELU -> Dropout).

    Args:
        input_dim: feature vector size (the data module checks it).
        hidden_dim: width of every hidden layer (also the output size).
        layers: number of hidden layers (>= 1).
        dropout: dropout after every hidden layer.
        input_dropout: dropout on the input features.
        layer_norm: LayerNorm after each linear layer.
        standardize: subtract the training split's per-feature mean and divide by its standard deviation
            (fitted by the data module before training, saved with the weights; constant features keep a
            scale of 1).
    """

    modality = "vector"

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int = 256,
        layers: int = 1,
        dropout: float = 0.1,
        input_dropout: float = 0.0,
        layer_norm: bool = False,
        standardize: bool = False,
    ) -> None:
        super().__init__()
        if input_dim < 1 or hidden_dim < 1 or layers < 1:
            raise ValueError(f"input_dim, hidden_dim and layers must be >= 1, got {input_dim}, {hidden_dim}, {layers}")
        self.input_dim, self.hidden_dim, self.layers = int(input_dim), int(hidden_dim), int(layers)
        self.dropout_p, self.input_dropout_p, self.layer_norm = float(dropout), float(input_dropout), bool(layer_norm)
        blocks: list[nn.Module] = [nn.Dropout(input_dropout)]
        dim = self.input_dim
        for _ in range(self.layers):
            blocks.append(nn.Linear(dim, self.hidden_dim))
            if layer_norm:
                blocks.append(nn.LayerNorm(self.hidden_dim))
            blocks += [nn.GELU(), nn.Dropout(dropout)]
            dim = self.hidden_dim
        self.net = nn.Sequential(*blocks)
        self.standardize = bool(standardize)
        if self.standardize:
            self.register_buffer("mean", torch.zeros(self.input_dim))
            self.register_buffer("scale", torch.ones(self.input_dim))
        self._processor = VectorProcessor(self.input_dim)

    @property
    def processor(self) -> VectorProcessor:
        return self._processor

    @property
    def output_dim(self) -> int:
        return self.hidden_dim

    def fit_statistics(self, values: Sequence[Any]) -> bool:
        """With ``standardize``, fit the per-feature mean and standard deviation on the training vectors."""
        if not self.standardize:
            return False
        x = np.stack([np.asarray(v, dtype=np.float64) for v in values])  # (N, D)
        std = x.std(axis=0)
        std[std < 1e-8] = 1.0
        self.mean.copy_(torch.as_tensor(x.mean(axis=0)))
        self.scale.copy_(torch.as_tensor(std))
        return True

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        x = inputs["x"].float()  # (B, D)
        if self.standardize:
            x = (x - self.mean) / self.scale
        h = self.net(x)  # (B, H)
        mask = torch.ones(h.shape[0], 1, dtype=torch.bool, device=h.device)
        return Features(sequence=h.unsqueeze(1), mask=mask, pooled=h)  # (B, 1, H)

    def get_config(self) -> dict[str, Any]:
        return {
            "input_dim": self.input_dim,
            "hidden_dim": self.hidden_dim,
            "layers": self.layers,
            "dropout": self.dropout_p,
            "input_dropout": self.input_dropout_p,
            "layer_norm": self.layer_norm,
            "standardize": self.standardize,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], directory: Path) -> FeatureMLP:
        return cls(**config)
