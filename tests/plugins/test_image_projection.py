"""ImageProjection: frozen backbone + trainable linear map; cached features in training, pixels after export."""

from __future__ import annotations

import numpy as np
import torch

import polymodal
from polymodal.model import EmbeddingModel
from polymodal.plugins.image import ImageProjection
from polymodal.poolers import ClsPooler
from polymodal.recipes import recipe_root

DATA = recipe_root() / "grounded_sentence" / "data"


def test_cached_training_path_equals_pixels_and_export_reads_pixels(tmp_path):
    torch.manual_seed(0)
    tower = ImageProjection("test_efficientnet", dim=8, pretrained=False, backbone_kwargs={"image_size": 32},
                            feature_cache=str(tmp_path / "cache"))  # fmt: skip
    paths = sorted(str(p) for p in DATA.glob("*.png"))[:4]
    cached = tower.processor(paths)
    assert set(cached) == {"features"} and cached["features"].shape == (4, tower.backbone.dim)
    pixels = tower.backbone.processor(paths)
    with torch.no_grad():
        torch.testing.assert_close(tower(cached).pooled, tower(pixels).pooled, atol=1e-5, rtol=1e-5)
    model = EmbeddingModel(tower, ClsPooler(use_pooled=True), normalize=True)
    model.save(tmp_path / "image_model")
    loaded = polymodal.load(tmp_path / "image_model")
    assert "pixel_values" in loaded.encoder.processor(paths[:1])  # the exported tower runs the backbone
    np.testing.assert_allclose(loaded.encode(paths), model.encode(paths), atol=1e-5)
    assert not any(p.requires_grad for p in tower.backbone.parameters())
    assert all(p.requires_grad for p in tower.proj.parameters())
