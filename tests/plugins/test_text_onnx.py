"""The opt-in ONNX Runtime encode backend equals the torch model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polymodal.model import EmbeddingModel
from polymodal.plugins.text import TextEncoder
from polymodal.poolers import ClsPooler, MeanPooler
from tests.helpers import TINY_BERT as BASE_TINY_BERT

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TINY_BERT = dict(BASE_TINY_BERT, max_position_embeddings=128)
TEXTS = ["hello", "a much longer sentence than the first one", "mid size text", "x", "ünï ☃"]


@pytest.mark.parametrize("pooler,normalize", [(MeanPooler(), True), (ClsPooler(), False)])
def test_onnx_encode_equals_torch(tmp_path, pooler, normalize):
    from polymodal.plugins.text.onnx_backend import OnnxEmbeddingModel, export_onnx

    torch.manual_seed(0)
    model = EmbeddingModel(TextEncoder(model=TINY_BERT, tokenizer="bytes", max_length=64), pooler, normalize).eval()
    path = export_onnx(model, tmp_path / "m.onnx")
    assert path.is_file()
    onnx_model = OnnxEmbeddingModel(model, path, threads=1)
    got = onnx_model.encode(TEXTS, batch_size=2)
    np.testing.assert_allclose(got, model.encode(TEXTS, batch_size=2), atol=1e-5, rtol=1e-5)
    assert onnx_model.max_difference(TEXTS, batch_size=3) < 1e-5  # other batch shapes: dynamic axes work
    assert onnx_model.encode([], batch_size=2).shape == (0, 32)
