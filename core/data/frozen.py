"""Features of a frozen encoder as model inputs, computed once per input file through the one
:class:`~polymodal.data.cache.FeatureCache`.

* :class:`FrozenFeatures` wraps a frozen :class:`~polymodal.modality.Encoder` (an image backbone, say)
  and gives either its pooled vector ``(B, C)`` or its token sequence ``(B, T, C)``, optionally
  average-pooled from a square feature map to a ``grid x grid`` cell grid ``(B, grid*grid, C)``.
* :class:`CachedFeatureProcessor` is the data-side processor of a tower that reads such features:
  raw values (image paths) -> ``{"features": ...}`` looked up in a ``FeatureCache`` keyed on the file's
  bytes x the frozen encoder's fingerprint x the output options (``key="file"``), so a changed file,
  a changed backbone or another grid never reuses stale features, and a training run after the first
  skips the backbone entirely. Towers accept either ``{"features": ...}`` or the encoder's own inputs
  (pixels), so the exported model still runs on raw images.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.modality import Encoder, Processor

__all__ = ["CachedFeatureProcessor", "FrozenFeatures", "grid_pool"]

log = logging.getLogger(__name__)


def grid_pool(sequence: Tensor, grid: int) -> Tensor:
    """Average-pool the cells of a square feature map ``(B, h*w, C)`` to ``(B, grid*grid, C)``."""
    B, T, C = sequence.shape
    side = int(round(T**0.5))
    if side * side != T:
        raise ValueError(f"grid pooling needs a square feature map, got {T} cells")
    fmap = sequence.transpose(1, 2).reshape(B, C, side, side)  # (B, C, h, w)
    return F.adaptive_avg_pool2d(fmap, grid).flatten(2).transpose(1, 2).contiguous()  # (B, g*g, C)


class FrozenFeatures(nn.Module):
    """A frozen encoder's output as a tensor: pooled ``(B, C)`` or tokens ``(B, T, C)``.

    The encoder's parameters are frozen and it always runs in eval mode (batch-norm statistics never move).

    Args:
        encoder: any polymodal encoder.
        output: ``"pooled"`` (the encoder's pooled vector, else the mean of its sequence over its mask) or
            ``"sequence"``.
        grid: with ``output="sequence"``, average-pool a square ``h x w`` map to ``grid x grid`` cells
            (fewer tokens); ``None`` keeps every cell.
    """

    def __init__(self, encoder: Encoder, output: str = "pooled", grid: int | None = None) -> None:
        super().__init__()
        if output not in ("pooled", "sequence"):
            raise ValueError(f"output must be 'pooled' or 'sequence', got {output!r}")
        if grid is not None and (output != "sequence" or grid < 1):
            raise ValueError(f"grid needs output='sequence' and grid >= 1, got output={output!r}, grid={grid}")
        self.encoder = encoder
        self.encoder.requires_grad_(False)
        self.encoder.eval()
        self.output, self.grid = output, grid

    @property
    def dim(self) -> int:
        return int(self.encoder.output_dim)

    @property
    def processor(self) -> Processor:
        return self.encoder.processor

    @property
    def options(self) -> str:
        """What changes the features without changing the weights (part of every cache key)."""
        return f"{self.output}:{self.grid}"

    def train(self, mode: bool = True) -> FrozenFeatures:
        super().train(mode)
        self.encoder.eval()
        return self

    @torch.no_grad()
    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        self.encoder.eval()
        feats = self.encoder(inputs)
        if self.output == "pooled":
            if feats.pooled is not None:
                return feats.pooled
            if feats.mask is None:
                return feats.sequence.mean(dim=1)  # (B, C)
            m = feats.mask.to(feats.sequence.dtype).unsqueeze(-1)  # (B, T, 1): padding is not averaged
            return (feats.sequence * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)  # (B, C)
        return feats.sequence if self.grid is None else grid_pool(feats.sequence, self.grid)  # (B, N, C)

    def encode(
        self, values: Sequence[Any], batch_size: int = 32, normalize: bool | None = None, **_: Any
    ) -> np.ndarray:
        """Features of raw values (image paths) as a float32 array (what :class:`FeatureCache` stores)."""
        del normalize
        device = next(iter(self.encoder.parameters()), torch.zeros(())).device
        out = []
        for start in range(0, len(values), batch_size):
            batch = self.processor(list(values[start : start + batch_size]))
            out.append(self({k: v.to(device) for k, v in batch.items()}).float().cpu().numpy())
        return np.concatenate(out) if out else np.empty((0, self.dim), dtype=np.float32)

    def get_config(self) -> dict[str, Any]:
        return {"encoder": self.encoder.get_config(), "output": self.output, "grid": self.grid}


class CachedFeatureProcessor(Processor):
    """Raw values -> ``{"features": (B, ...)}`` of a :class:`FrozenFeatures`, through a ``FeatureCache``.

    The cache is opened on first use (after the frozen weights are loaded), in memory and, with
    ``directory``, on disk (one ``.npz`` per backbone fingerprint and options, written atomically).
    Values are validated by the encoder's own processor (a missing or empty image is a one-line error).

    Args:
        features: the frozen feature extractor.
        directory: cache folder (``None``: memory only, for this process).
        batch_size: images per backbone forward pass on a cache miss.
    """

    def __init__(self, features: FrozenFeatures, directory: str | None = None, batch_size: int = 32) -> None:
        self.features = features
        self.directory = directory
        self.batch_size = int(batch_size)
        self._cache: Any = None

    @property
    def cache(self) -> Any:
        if self._cache is None:
            from polymodal.data.cache import FeatureCache

            self._cache = FeatureCache(self.features, self.directory, key="file", options=self.features.options)
            log.info("feature cache %s: %d entries", self._cache.path or "(memory)", len(self._cache))
        return self._cache

    def validate(self, value: Any) -> None:
        self.features.processor.validate(value)

    def lengths(self, values: Sequence[Any]) -> list[int]:
        return [0] * len(values)

    def __call__(self, values: Sequence[Any]) -> dict[str, Tensor]:
        for v in values:
            self.validate(v)
        return {"features": torch.from_numpy(self.cache.encode(list(values), batch_size=self.batch_size))}

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers reopen the cache themselves
        state = dict(self.__dict__)
        state["_cache"] = None
        return state
