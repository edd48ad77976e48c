"""Pixel modality: text rendered to PIXEL-style patch strips and encoded by a ViT.

Install with ``pip install 'polymodal[pixel]'``; rendering uses Unifont (``fonts-unifont``)
with DejaVu as per-character fallback.
"""

from __future__ import annotations

from polymodal.plugins_manager import require_extra

#: What this plugin imports beyond the core (its ``pixel`` extra), checked before anything else.
polymodal_extra = "pixel"
polymodal_requires = ("PIL", "timm")
require_extra("pixel", polymodal_requires, polymodal_extra)

from polymodal.hookspecs import hookimpl
from polymodal.modality import Modality
from polymodal.plugins.pixel.encoder import PixelEncoder
from polymodal.plugins.pixel.perturb import Perturber
from polymodal.plugins.pixel.processor import PixelProcessor
from polymodal.plugins.pixel.renderer import RenderedBatch, RendererConfig, TextRenderer

__all__ = ["Perturber", "PixelEncoder", "PixelProcessor", "RenderedBatch", "RendererConfig", "TextRenderer"]

polymodal_api_version = 1


@hookimpl
def register_modalities(register):
    register(
        Modality(
            name="pixel",
            description="text rendered to 16x16-px patch strips (Unifont + DejaVu glyph atlas), ViT encoder",
            encoders=(PixelEncoder,),
        )
    )
