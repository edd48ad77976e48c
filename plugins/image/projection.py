"""A frozen image backbone and a trainable linear projection into a joint image-text space.

The image tower of visually grounded sentence encoders (Merkx & Frank 2019) and of other two-tower
image-text models: the backbone's pooled features are computed once per image file and cached
(:class:`~polymodal.data.frozen.CachedFeatureProcessor`, the one ``FeatureCache``), so training on a
CPU costs one backbone pass per image; the exported tower runs the backbone on raw images.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from polymodal.data.frozen import CachedFeatureProcessor, FrozenFeatures
from polymodal.features import Features
from polymodal.modality import Encoder, Processor
from polymodal.plugins.image.encoder import ImageEncoder

__all__ = ["ImageProjection"]


class ImageProjection(Encoder):
    """Frozen ``ImageEncoder`` -> pooled ``(B, C)`` -> trainable ``Linear(C, dim)``.

    ``Features.pooled`` (and the one-step ``sequence``) is the projected vector ``(B, dim)``.

    Args:
        backbone: ``ImageEncoder`` model name (``"efficientnet-lite0"``: bundled ImageNet weights; any timm
            name builds a random backbone, e.g. ``"test_efficientnet"`` for tests).
        dim: output width (the caption tower's width).
        pretrained: load the bundled backbone weights (ignored for other names).
        feature_cache: folder of the backbone feature cache (``None``: features are cached in memory for
            the run; the exported tower always reads pixels).
        backbone_kwargs: extra ``ImageEncoder`` arguments (``image_size``, ``model_kwargs``, ...).
        batch_size: images per backbone pass when filling the cache.
        backbone_config: an ``ImageEncoder.get_config()`` to rebuild the backbone from (when a saved model
            is loaded; its weights come from the model file).
    """

    modality = "image"

    def __init__(
        self,
        backbone: str = "efficientnet-lite0",
        dim: int = 512,
        pretrained: bool = True,
        feature_cache: str | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        batch_size: int = 32,
        backbone_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if backbone_config is not None:
            encoder = ImageEncoder.from_config(backbone_config, Path("."))
        else:
            encoder = ImageEncoder(backbone, pretrained=pretrained, **dict(backbone_kwargs or {}))
        self.backbone = FrozenFeatures(encoder, "pooled")
        self.proj = nn.Linear(self.backbone.dim, dim)
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self._dim = int(dim)
        self.feature_cache = feature_cache
        self._cached = CachedFeatureProcessor(self.backbone, feature_cache, batch_size)
        self.use_cache = backbone_config is None  # a loaded (exported) tower reads pixels

    @property
    def processor(self) -> Processor:
        return self._cached if self.use_cache else self.backbone.processor

    @property
    def output_dim(self) -> int:
        return self._dim

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        x = inputs["features"] if "features" in inputs else self.backbone(inputs)  # (B, C)
        pooled = self.proj(x.to(self.proj.weight.dtype))  # (B, D)
        mask = torch.ones(pooled.shape[0], 1, dtype=torch.bool, device=pooled.device)
        return Features(sequence=pooled[:, None, :], mask=mask, pooled=pooled)

    def get_config(self) -> dict[str, Any]:
        return {"dim": self._dim, "backbone_config": self.backbone.encoder.get_config()}

    @classmethod
    def from_config(cls, config: dict[str, Any], directory: Path) -> ImageProjection:
        return cls(dim=config["dim"], backbone_config=config["backbone_config"], pretrained=False)
