"""The multilayer_pooling recipe: tiny fit with the trainable multi-layer pooler, export, reload."""

from __future__ import annotations

import numpy as np
import yaml

import polymodal
from polymodal.cli import main
from polymodal.poolers import MultiLayerAttentionPooler
from polymodal.recipes import recipe_root


def test_tiny_fit_trains_the_pooler_and_reloads(tmp_path):
    cli = main(["fit", "--config", "recipes/multilayer_pooling/tiny.yaml", f"--trainer.default_root_dir={tmp_path}"])
    assert cli.trainer.state.finished
    pooler = cli.model.pooler
    assert isinstance(pooler, MultiLayerAttentionPooler)
    assert pooler.out.weight.abs().sum() > 0  # moved away from its zero initialisation
    model = polymodal.load(tmp_path / "model")
    assert isinstance(model.pooler, MultiLayerAttentionPooler) and model.pooler.output_gain == 10.0
    texts = ["a b", "a longer text here"]
    np.testing.assert_allclose(model.encode(texts), cli.model.embedding_model().encode(texts), atol=1e-6)


def test_real_config_matches_its_mean_baseline():
    root = recipe_root() / "multilayer_pooling"
    real = yaml.safe_load((root / "minilm.yaml").read_text())
    mean = yaml.safe_load((root / "minilm_mean.yaml").read_text())
    assert real["data"] == mean["data"]
    assert real["model"]["init_args"]["loss"] == mean["model"]["init_args"]["loss"]
    assert mean["model"]["init_args"]["pooler"]["class_path"] == "MeanPooler"
    assert real["model"]["init_args"]["pooler"]["init_args"]["num_layers"] == 7  # embeddings + 6 layers
