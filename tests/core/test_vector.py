"""The core vector modality: fixed-size feature vectors and the feed-forward encoder over them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polymodal.model import EmbeddingModel
from polymodal.poolers import MeanPooler
from polymodal.vector import FeatureMLP, VectorProcessor


def test_processor_stacks_vectors_and_names_what_is_wrong():
    proc = VectorProcessor(3)
    batch = proc([[1, 2, 3], np.array([4.0, 5.0, 6.0])])
    assert batch["x"].dtype == torch.float32 and batch["x"].tolist() == [[1, 2, 3], [4, 5, 6]]
    with pytest.raises(ValueError, match="3 numbers, got shape \\(2,\\)"):
        proc.validate([1.0, 2.0])
    with pytest.raises(ValueError, match="non-finite"):
        proc.validate([1.0, float("nan"), 2.0])
    with pytest.raises(ValueError, match="3 numbers"):
        proc([[1.0, 2.0, 3.0, 4.0]])


def test_feature_mlp_shapes_layers_and_bad_sizes():
    torch.manual_seed(0)
    enc = FeatureMLP(5, hidden_dim=8, layers=2, dropout=0.0, layer_norm=True).eval()
    feats = enc(enc.processor([np.ones(5), np.zeros(5)]))
    assert feats.pooled.shape == (2, 8) and feats.sequence.shape == (2, 1, 8) and feats.mask.all()
    assert enc.output_dim == 8
    assert sum(isinstance(m, torch.nn.Linear) for m in enc.net) == 2
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in enc.net) == 2
    with pytest.raises(ValueError, match="must be >= 1"):
        FeatureMLP(0)


def test_embedding_model_round_trip(tmp_path):
    torch.manual_seed(0)
    model = EmbeddingModel(FeatureMLP(4, hidden_dim=6, dropout=0.3), MeanPooler())
    x = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32)
    before = model.encode(list(x))
    model.save(tmp_path / "m")
    again = EmbeddingModel.from_folder(tmp_path / "m")
    assert isinstance(again.encoder, FeatureMLP) and again.encoder.dropout_p == 0.3
    np.testing.assert_allclose(again.encode(list(x)), before, atol=1e-6)  # eval mode: dropout off


def test_standardize_fits_training_statistics_and_is_saved(tmp_path):
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(50, 4)).astype(np.float32)
    x[:, 3] = 5.0  # a constant feature keeps scale 1
    mlp = FeatureMLP(4, hidden_dim=6, dropout=0.0, standardize=True)
    assert mlp.fit_statistics(list(x)) and not FeatureMLP(4).fit_statistics(list(x))
    np.testing.assert_allclose(mlp.mean.numpy(), x.mean(axis=0), rtol=1e-5)
    assert mlp.scale[3] == 1.0 and mlp.scale[0] == pytest.approx(float(x[:, 0].std()), rel=1e-5)
    ref = FeatureMLP(4, hidden_dim=6, dropout=0.0)
    ref.net.load_state_dict(mlp.net.state_dict())
    z = (torch.from_numpy(x) - mlp.mean.float()) / mlp.scale.float()
    assert torch.allclose(mlp({"x": torch.from_numpy(x)}).pooled, ref({"x": z}).pooled, atol=1e-5)
    model = EmbeddingModel(mlp, MeanPooler())
    model.save(tmp_path / "m")
    again = EmbeddingModel.from_folder(tmp_path / "m")
    np.testing.assert_allclose(again.encode(list(x)), model.encode(list(x)), atol=1e-6)
