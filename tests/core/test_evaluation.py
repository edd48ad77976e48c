"""Evaluators: retrieval metrics by hand, linear probe, (layer, dim) tables, MTEB encode, cache."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from polymodal.data.cache import FeatureCache
from polymodal.evaluation import (
    ElasticEvaluator,
    LinearProbeEvaluator,
    MTEBModel,
    RetrievalEvaluator,
    STSEvaluator,
    encode_layers,
    linear_probe,
    retrieval_metrics,
)
from polymodal.model import EmbeddingModel
from polymodal.plugins.text import TextEncoder
from polymodal.poolers import MeanPooler
from tests.helpers import TINY_BERT as BASE_TINY_BERT

TINY_BERT = dict(BASE_TINY_BERT, max_position_embeddings=128, num_hidden_layers=3)


@pytest.fixture(scope="module")
def tiny_model() -> EmbeddingModel:
    torch.manual_seed(0)
    return EmbeddingModel(TextEncoder(model=TINY_BERT, tokenizer="bytes", max_length=64), MeanPooler()).eval()


def test_retrieval_metrics_by_hand():
    # query 0: relevant {2}; ranking 1, 2, 0 -> first hit at rank 2
    # query 1: relevant {0, 1}; ranking 0, 2, 1 -> hits at ranks 1 and 3
    scores = np.array([[0.1, 0.9, 0.5], [0.9, 0.1, 0.5]])
    res = retrieval_metrics(scores, [{2}, {0, 1}], ks=(1, 2))
    assert res["recall@1"] == pytest.approx((0 + 0.5) / 2)
    assert res["recall@2"] == pytest.approx((1 + 0.5) / 2)
    assert res["mrr@10"] == pytest.approx((0.5 + 1.0) / 2)
    nd0 = (1 / math.log2(3)) / 1.0
    nd1 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert res["ndcg@10"] == pytest.approx((nd0 + nd1) / 2)
    with pytest.raises(ValueError, match="no relevant"):
        retrieval_metrics(scores, [{2}, set()])


def test_retrieval_evaluator_with_ids_and_a_model(tiny_model):
    corpus = {"d1": "the cat sat on the mat", "d2": "stock markets fell", "d3": "a recipe for bread"}
    queries = {"q1": "the cat sat on the mat", "q2": "a recipe for bread"}
    res = RetrievalEvaluator(queries, corpus, {"q1": {"d1"}, "q2": {"d3"}})(tiny_model)
    assert res["recall@1"] == 1.0 and res["mrr@10"] == 1.0 and res["ndcg@10"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="not in the corpus"):
        RetrievalEvaluator(queries, corpus, {"q1": {"dx"}, "q2": {"d3"}})


def test_linear_probe_separates_separable_data_and_not_noise():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 30)
    centers = rng.normal(size=(3, 8)) * 5
    X = centers[labels] + rng.normal(size=(90, 8))
    good = linear_probe(X, labels, folds=5)
    assert good.accuracy > 0.95 and good.folds == 5 and good.n == 90
    noise = linear_probe(rng.normal(size=(90, 8)), labels, folds=5)
    assert noise.accuracy < 0.6
    with pytest.raises(ValueError, match="rarest class"):
        linear_probe(X[27:37], labels[27:37], folds=5)


def test_linear_probe_evaluator_runs_encode(tiny_model):
    texts = [f"{w} number {i}" for w in ("apple", "zebra") for i in range(10)]
    labels = [0] * 10 + [1] * 10
    res = LinearProbeEvaluator(texts, labels, folds=2)(tiny_model)
    assert 0.0 <= res.accuracy <= 1.0 and res.n == 20


def test_encode_layers_last_equals_encode_and_views_truncate(tiny_model):
    texts = ["a b c", "hello there world", "x"]
    layers = encode_layers(tiny_model, texts, [1, 2, 3], batch_size=2)
    np.testing.assert_allclose(layers[3], tiny_model.encode(texts), atol=1e-6)
    assert not np.allclose(layers[1], layers[3])
    assert tiny_model.encoder.hidden_states is False  # switch restored


def test_elastic_table_over_layers_and_dims(tiny_model):
    s1 = ["a man plays guitar", "a dog runs", "the sun is hot", "cats sleep", "rain falls"]
    s2 = ["a man playing a guitar", "a cat sleeps", "it is sunny", "a dog barks", "it rains"]
    gold = [5.0, 1.0, 3.5, 1.5, 4.5]
    sts = STSEvaluator(s1, s2, gold)
    res = ElasticEvaluator(sts, layers=[1, 3], dims=[8, 32])(tiny_model)
    assert set(res.scores) == {(1, 8), (1, 32), (3, 8), (3, 32)}
    full = sts(tiny_model).spearman
    assert res.scores[(3, 32)] == pytest.approx(full, abs=1e-9)
    table = res.table()
    assert "| layer \\ dim | 8 | 32 |" in table and table.count("\n") == 4
    with pytest.raises(ValueError, match="exceed"):
        ElasticEvaluator(sts, layers=[1], dims=[64])(tiny_model)


def test_mteb_model_accepts_lists_and_dataloader_batches(tiny_model):
    wrapped = MTEBModel(tiny_model, prompts={"query": "q: "})
    a = wrapped.encode(["one", "two"], batch_size=2)
    b = wrapped.encode([{"text": ["one"]}, {"text": ["two"]}])
    assert a.dtype == np.float32 and a.shape == (2, 32)
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    q = wrapped.encode(["one"], prompt_type="query")
    np.testing.assert_allclose(q[0], wrapped.encode(["q: one"])[0], atol=1e-6)
    assert wrapped.similarity(a, a).shape == (2, 2)


def test_embedding_cache_hits_and_persists(tiny_model, tmp_path):
    calls = []
    real = tiny_model.encode

    class Spy:
        def __getattr__(self, name):
            return getattr(tiny_model, name)

        def encode(self, values, **kw):
            calls.append(list(values))
            return real(values, **kw)

    cache = FeatureCache(Spy(), tmp_path)
    first = cache.encode(["a", "b", "a"])
    assert calls == [["a", "b"]] and cache.misses == 2 and cache.hits == 1
    second = cache.encode(["b", "c"])
    assert calls[-1] == ["c"]
    np.testing.assert_allclose(second[0], first[1])
    np.testing.assert_allclose(first, real(["a", "b", "a"]), atol=1e-6)
    reopened = FeatureCache(Spy(), tmp_path)
    assert len(reopened) == 3
    reopened.encode(["a", "b", "c"])
    assert calls[-1] == ["c"] and reopened.hits == 3  # nothing recomputed
    # a changed model gets a different fingerprint: no stale vectors
    changed = EmbeddingModel(TextEncoder(model=TINY_BERT, tokenizer="bytes", max_length=64), MeanPooler())
    assert FeatureCache(changed, tmp_path).fingerprint != cache.fingerprint
