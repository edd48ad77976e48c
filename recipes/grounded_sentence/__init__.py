"""Visually grounded sentence encoder (Merkx & Frank 2019): a character-level caption encoder
trained only on image-caption retrieval, evaluated on retrieval and on STS-B.

Configs: ``tiny.yaml`` (random tiny towers, 12 generated images; seconds) and ``flickr8k.yaml``
(the 1,000-image Flickr8k subset in ``../shared/data/captions``, frozen EfficientNet-lite0 features).
Evaluate a run with ``python -m polymodal.recipes.grounded_sentence.evaluate --run <default_root_dir>``.
"""

from __future__ import annotations

from polymodal.recipes.grounded_sentence.callbacks import ExportTower
from polymodal.recipes.grounded_sentence.data import CaptionsDataModule, split_images
from polymodal.recipes.grounded_sentence.encoders import (
    CharGRUEncoder,
    CharProcessor,
    ImageFeatureProcessor,
    ImageProjection,
    VectorialAttentionPooling,
)
from polymodal.recipes.grounded_sentence.losses import GroundingLoss, grounding_loss
from polymodal.recipes.grounded_sentence.system import GroundedSystem, recall_at_k

__all__ = [
    "CaptionsDataModule",
    "CharGRUEncoder",
    "CharProcessor",
    "ExportTower",
    "GroundedSystem",
    "GroundingLoss",
    "ImageFeatureProcessor",
    "ImageProjection",
    "VectorialAttentionPooling",
    "grounding_loss",
    "recall_at_k",
    "split_images",
]
