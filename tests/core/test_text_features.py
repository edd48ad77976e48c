"""TextFeatures (precomputed features through the one FeatureCache), LayerMeanPooler, the lexicon featurizers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from polymodal.data.cache import model_fingerprint
from polymodal.data.features import TextFeatures
from polymodal.data.sources import Source
from polymodal.features import Features
from polymodal.model import EmbeddingModel
from polymodal.poolers import MaxPooler, MeanPooler
from polymodal.poolers.layers import LayerMeanPooler
from tests.conftest import has_module


class Rows(Source):
    def __init__(self, **columns):
        self.columns = columns

    def read(self):
        return pd.DataFrame(self.columns)


def _encoder():
    from polymodal.plugins.text import TextEncoder

    torch.manual_seed(0)
    config = {
        "model_type": "bert",
        "vocab_size": 261,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 128,
    }
    return TextEncoder(config, hidden_states=True)


def test_columns_become_concatenated_vectors_equal_to_the_models(tmp_path):
    encoder = _encoder()
    source = Rows(text=["a cat", "dogs bark", ["a cat", "the end"]], y=[1.0, 2.0, 3.0])
    out = TextFeatures(source, ["text"], encoder, [MeanPooler(), MaxPooler()], cache_dir=str(tmp_path)).frame()
    models = [EmbeddingModel(encoder, MeanPooler()), EmbeddingModel(encoder, MaxPooler())]
    expected = np.concatenate([m.encode(["a cat", "dogs bark", "the end"]) for m in models], axis=1)  # (3, 64)
    got = np.stack(out["text"])
    np.testing.assert_allclose(got[:2], expected[:2], atol=1e-6)
    np.testing.assert_allclose(got[2], (expected[0] + expected[2]) / 2, atol=1e-6)  # a list of texts: the mean
    assert out["y"].tolist() == [1.0, 2.0, 3.0] and len(list(tmp_path.glob("*.npz"))) == 2


def test_cache_is_keyed_on_the_model_not_its_name(tmp_path):
    encoder = _encoder()
    first = TextFeatures(Rows(text=["one", "two"]), ["text"], encoder, cache_dir=str(tmp_path))
    first.frame()
    pooled = first.featurizers[0]
    assert model_fingerprint(pooled) == model_fingerprint(EmbeddingModel(encoder, MeanPooler()))
    again = TextFeatures(Rows(text=["two", "one"]), ["text"], encoder, cache_dir=str(tmp_path))
    calls = []
    again.featurizers[0].shared.encode = lambda *a: calls.append(a)  # a hit never computes
    np.testing.assert_array_equal(np.stack(again.frame()["text"]), np.stack(first.frame()["text"])[::-1])
    assert not calls
    with torch.no_grad():
        encoder.model.embeddings.word_embeddings.weight.add_(torch.randn(261, 32))  # other weights: other features
    changed = TextFeatures(Rows(text=["one", "two"]), ["text"], encoder, cache_dir=str(tmp_path)).frame()
    assert not np.allclose(np.stack(changed["text"]), np.stack(first.frame()["text"]))


@pytest.mark.parametrize(
    ("texts", "kwargs", "message"),
    [
        (["fine", ""], {}, "row 2, column 'text': expected a non-empty text"),
        (["fine", None], {}, "row 2, column 'text': expected a non-empty text"),
        (["fine"], {"columns": ["nope"]}, "nope"),
        (["fine"], {"poolers": [MeanPooler()], "encoder": None}, "poolers need an encoder"),
    ],
)
def test_bad_inputs(texts, kwargs, message):
    args = {"columns": ["text"], "encoder": _encoder(), **kwargs}
    with pytest.raises((ValueError, KeyError), match=message):  # a missing column is a KeyError (check_columns)
        TextFeatures(Rows(text=texts), **args).frame()


def test_layer_mean_pooler_is_first_last_average():
    states = tuple(torch.randn(2, 3, 4) for _ in range(3))
    mask = torch.tensor([[True, True, False], [True, True, True]])
    features = Features(sequence=states[-1], mask=mask, hidden_states=states)
    mixed = (states[1] + states[2]) / 2
    expected = torch.stack([mixed[0, :2].mean(0), mixed[1].mean(0)])
    assert torch.allclose(LayerMeanPooler()(features), expected, atol=1e-6)
    with pytest.raises(ValueError, match="needs hidden_states"):
        LayerMeanPooler()(Features(sequence=states[-1], mask=mask))
    with pytest.raises(ValueError, match="layer 7 out of range"):
        LayerMeanPooler([7])(features)


@pytest.mark.skipif(not has_module("nrclex") or not has_module("vaderSentiment"), reason="needs the lexicons extra")
def test_lexicon_featurizers_by_hand(tmp_path):
    from polymodal.plugins.text.lexicons import NRC_AFFECTS, NRCFeatures, VaderFeatures

    # "abandoned" -> anger, fear, negative, sadness; "the" -> nothing; 2 tokens.
    f = dict(zip(NRC_AFFECTS, NRCFeatures().encode(["The abandoned"])[0]))
    assert f["anger"] == f["fear"] == f["sadness"] == f["negative"] == pytest.approx(0.5) and f["joy"] == 0.0
    assert NRCFeatures().encode(["The abandoned"])[0, 10:].tolist() == pytest.approx([np.log(2), 1.0])
    v = VaderFeatures().encode(["I am so sad and angry about this tragedy.", "What a wonderful, happy day!"])
    assert v.shape == (2, 8) and v[0, 3] < 0 < v[1, 3]  # compound
    out = TextFeatures(
        Rows(text=["a sad day", "joy"]), ["text"], lexicons=[VaderFeatures(), NRCFeatures()], cache_dir=str(tmp_path)
    ).frame()
    assert np.stack(out["text"]).shape == (2, 20)


@pytest.mark.skipif(not has_module("afinn") or not has_module("empath"), reason="needs the lexicons extra")
def test_afinn_empath_lsa_featurizers_by_hand():
    from polymodal.data.cache import model_fingerprint
    from polymodal.plugins.text.lexicons import AfinnFeatures, EmpathFeatures, LsaFeatures

    a = AfinnFeatures().encode(["good bad the", "the"])  # AFINN-165: good +3, bad -3
    assert a[0].tolist() == pytest.approx([0.0, 0.0, 0.0, -3.0, 3.0, 1 / 3, 1 / 3]) and a[1].tolist() == [0.0] * 7
    e = EmpathFeatures()
    row = dict(zip(e.categories, EmpathFeatures().encode(["sad sad cat"])[0]))
    assert len(e.categories) == 194 and row["sadness"] == pytest.approx(2 / 3) and row["pet"] == pytest.approx(1 / 3)
    corpus = Rows(text=[f"doc {i} about {w} and {v}" for i, (w, v) in enumerate(zip("abcdefghij" * 3, "klmno" * 6))])
    lsa = LsaFeatures(corpus, "text", dim=4, min_df=1)
    z = lsa.encode(["about a and k", "doc 3"])
    assert z.shape == (2, 4) and np.allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(LsaFeatures(corpus, "text", dim=4, min_df=1).encode(["about a and k"]), z[:1], atol=1e-6)
    other = LsaFeatures(corpus, "text", dim=3, min_df=1)
    assert model_fingerprint(other) != model_fingerprint(lsa)  # the cache sees the settings / corpus
    with pytest.raises(ValueError, match="no column 'essay'"):
        LsaFeatures(corpus, "essay")
