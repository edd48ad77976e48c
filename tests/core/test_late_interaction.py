"""Late interaction: MaxSim scores, the reranker over a word-level model, the ragged FeatureCache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from polymodal.data.cache import FeatureCache
from polymodal.search import MaxSimReranker, maxsim_scores, retrieve_rerank


class HandWordModel(nn.Module):
    """A word-level model with hand-set word vectors (the fixture of the disagreement case)."""

    VECTORS = {
        "acme": [1, 0, 0, 0],
        "robotics": [0, 1, 0, 0],
        "filler": [0, 0, 1, 0],
        "gizmo": [0.5, 0.5, 0, 0.7],
    }

    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.tensor(list(self.VECTORS.values()), dtype=torch.float32))
        self.calls = 0

    def encode(self, values, batch_size=32, normalize=True, **_):
        self.calls += len(values)
        index = list(self.VECTORS)
        out = []
        for v in values:
            words = v.split() if isinstance(v, str) else list(v)
            vecs = self.table.detach()[[index.index(w) for w in words]].numpy()
            out.append(vecs / np.linalg.norm(vecs, axis=1, keepdims=True))
        return out


def sentence_cosine(model, query, docs):
    """The sentence-embedding baseline: cosine of the mean word vectors."""
    q = model.encode([query])[0].mean(0)
    d = np.stack([x.mean(0) for x in model.encode(docs)])
    return (d @ q) / (np.linalg.norm(d, axis=1) * np.linalg.norm(q))


def test_word_level_and_sentence_level_retrieval_disagree_on_a_constructed_case():
    model = HandWordModel()
    query = "acme robotics"
    docs = [
        "acme robotics filler filler filler filler",  # both query words, buried in unrelated words
        "gizmo gizmo",  # no query word, but its mean points between them
    ]
    sent = sentence_cosine(model, query, docs)
    word = MaxSimReranker(model).scores([query], docs)[0]
    assert int(np.argmax(sent)) == 1  # sentence cosine prefers the paraphrase-like mean
    assert int(np.argmax(word)) == 0  # MaxSim finds every query word exactly in document 0
    assert word[0] == pytest.approx(1.0)
    # the same by hand: doc 1's best cosine for each query word is that of "gizmo"
    g = np.array(HandWordModel.VECTORS["gizmo"]) / np.linalg.norm(HandWordModel.VECTORS["gizmo"])
    assert word[1] == pytest.approx((g[0] + g[1]) / 2, abs=1e-6)


def test_maxsim_scores_shapes_and_empty_sides():
    rng = np.random.default_rng(0)
    q = [rng.normal(size=(3, 8)), np.zeros((0, 8))]
    d = [rng.normal(size=(5, 8)), np.zeros((0, 8)), rng.normal(size=(2, 8))]
    s = maxsim_scores(q, d)
    assert s.shape == (2, 3) and (s[1] == -1).all() and s[0, 1] == -1
    qn = q[0] / np.linalg.norm(q[0], axis=1, keepdims=True)
    dn = d[2] / np.linalg.norm(d[2], axis=1, keepdims=True)
    assert s[0, 2] == pytest.approx((qn @ dn.T).max(axis=1).mean(), abs=1e-6)
    with pytest.raises(ValueError, match="query 0: expected a \\(tokens, dim\\) array"):
        maxsim_scores([np.zeros(4)], d)


def test_reranker_rank_search_and_retrieve_rerank_interface():
    model = HandWordModel()
    reranker = MaxSimReranker(model)
    docs = ["gizmo gizmo", "acme robotics filler filler filler filler", "filler"]
    hits = reranker.rank("acme robotics", docs, top_k=2, return_documents=True)
    assert [h["corpus_id"] for h in hits] == [1, 0] and hits[0]["text"] == docs[1]
    scores, ids = reranker.search(["acme robotics", "filler"], docs, top_k=1)
    assert ids.tolist() == [[1], [1]]  # "filler" ties documents 1 and 2 at 1.0: corpus order wins
    assert scores[1, 0] == pytest.approx(1.0)

    class MeanRetriever:  # sentence-level first stage from the same word vectors
        def encode_query(self, values, normalize=True):
            return np.stack([m.mean(0) for m in model.encode(values)])

        encode_document = encode_query

    out = retrieve_rerank("acme robotics", docs, MeanRetriever(), reranker, top_k=1, candidates=3)
    assert out[0].corpus_id == 1  # the first stage ranked it below "gizmo gizmo"; MaxSim puts it first


def test_feature_cache_ragged_round_trip(tmp_path):
    model = HandWordModel()
    cache = FeatureCache(model, tmp_path, options="words")
    first = cache.encode(["acme robotics", "filler", "acme robotics"], ragged=True)
    assert [a.shape for a in first] == [(2, 4), (1, 4), (2, 4)] and model.calls == 2
    again = FeatureCache(model, tmp_path, options="words").encode(["filler", "acme robotics"], ragged=True)
    assert model.calls == 2  # read back from the .npz
    np.testing.assert_array_equal(again[1], first[0])
    np.testing.assert_array_equal(again[0], first[1])


@pytest.mark.slow
def test_word_embedder_minilm_word_vectors_and_cache(tmp_path):
    from polymodal.plugins.text import WordEmbedder

    embedder = WordEmbedder("minilm-l6", max_length=64)
    out = embedder.encode([["Ada", "Lovelace", "wrote", "notes"], "one two"])
    assert [o.shape for o in out] == [(4, 384), (2, 384)]
    assert np.allclose(np.linalg.norm(out[0], axis=1), 1.0, atol=1e-5)
    reranker = MaxSimReranker(embedder, cache=str(tmp_path))
    s = reranker.scores(["Lovelace wrote notes"], ["Ada Lovelace wrote notes on the engine", "stock prices fell"])
    assert s[0, 0] > s[0, 1]
    with pytest.raises(ValueError, match="sentence 1: empty sentence"):
        embedder.encode([[]])
