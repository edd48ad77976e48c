"""A third-party polymodal modality: fixed-length numeric feature vectors.

Raw values are lists of floats or strings like ``"0.1 0.5 -2"``. The encoder is an MLP that
splits each vector into ``chunks`` pieces and embeds each piece, so the output is a short
sequence ``(B, chunks, D)`` that any polymodal pooler and loss understands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from polymodal.features import Features
from polymodal.hookspecs import hookimpl
from polymodal.modality import Encoder, Modality, Processor

__all__ = ["VectorEncoder", "VectorProcessor"]

#: The plugin API this plugin was written for (polymodal checks it).
polymodal_api_version = 1


class VectorProcessor(Processor):
    """Parse and stack vectors of length ``size`` into ``{"values": (B, size)}``."""

    def __init__(self, size: int) -> None:
        self.size = size

    def parse(self, value: Any) -> list[float]:
        if isinstance(value, str):
            parts = value.replace(",", " ").split()
            try:
                value = [float(p) for p in parts]
            except ValueError:
                raise ValueError(f"not a list of numbers: {value!r:.60}") from None
        vector = [float(v) for v in value]
        if len(vector) != self.size:
            raise ValueError(f"expected {self.size} numbers, got {len(vector)}")
        return vector

    def validate(self, value: Any) -> None:
        self.parse(value)

    def __call__(self, values: Sequence[Any]) -> dict[str, Tensor]:
        return {"values": torch.tensor([self.parse(v) for v in values], dtype=torch.float32)}


class VectorEncoder(Encoder):
    """MLP over ``chunks`` equal slices of a feature vector.

    Args:
        size: length of the input vectors.
        dim: output width.
        chunks: number of output positions (``size`` must divide evenly).
    """

    modality = "vectors"

    def __init__(self, size: int, dim: int = 32, chunks: int = 1) -> None:
        super().__init__()
        if size % chunks:
            raise ValueError(f"size {size} is not divisible by chunks {chunks}")
        self.size, self.dim, self.chunks = size, dim, chunks
        self.mlp = nn.Sequential(nn.Linear(size // chunks, dim), nn.GELU(), nn.Linear(dim, dim))
        self._processor = VectorProcessor(size)

    @property
    def processor(self) -> VectorProcessor:
        return self._processor

    @property
    def output_dim(self) -> int:
        return self.dim

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        x = inputs["values"]  # (B, size)
        B = x.shape[0]
        seq = self.mlp(x.view(B, self.chunks, -1))  # (B, chunks, dim)
        return Features(sequence=seq, mask=torch.ones(B, self.chunks, dtype=torch.bool, device=x.device))

    def get_config(self) -> dict[str, Any]:
        return {"size": self.size, "dim": self.dim, "chunks": self.chunks}

    @classmethod
    def from_config(cls, config: dict[str, Any], directory: Path) -> VectorEncoder:
        return cls(**config)


@hookimpl
def register_modalities(register):
    register(Modality(name="vectors", description="precomputed numeric feature vectors", encoders=(VectorEncoder,)))
