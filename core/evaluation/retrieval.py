"""Retrieval evaluation: Recall@k, MRR@10 and nDCG@10 of queries against a corpus.

Definitions follow BEIR / MTEB (binary relevance): Recall@k is the fraction of a query's
relevant documents found in the top k; MRR@10 the reciprocal rank of the first relevant
document within the top 10 (0 if none); nDCG@10 uses gains of 1 and ``log2(rank + 1)``
discounts, normalised by the ideal ranking. Scores are averaged over queries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from polymodal.metrics.functional import RetrievalResult, retrieval_metrics

__all__ = ["RetrievalEvaluator", "RetrievalResult", "retrieval_metrics"]


class RetrievalEvaluator:
    """Embed queries and corpus with a model's ``encode`` and rank by cosine similarity.

    Args:
        queries: ``{query_id: query}`` or a list (ids are positions).
        corpus: ``{doc_id: document}`` or a list.
        relevant: ``{query_id: {doc_id, ...}}`` (or a list of sets of positions).
        ks: cut-offs for Recall@k (MRR@10 and nDCG@10 are always reported).
        batch_size: encoding batch size.
        query_prefix: prepended to string queries (e.g. ``"query: "`` for E5-style models).

    Example:
        >>> RetrievalEvaluator(queries, corpus, qrels)(model)["ndcg@10"]
    """

    def __init__(
        self,
        queries: Mapping[Any, Any] | Sequence[Any],
        corpus: Mapping[Any, Any] | Sequence[Any],
        relevant: Mapping[Any, set[Any]] | Sequence[set[Any]],
        ks: Sequence[int] = (1, 5, 10),
        batch_size: int = 64,
        query_prefix: str = "",
    ) -> None:
        q_items = list(queries.items()) if isinstance(queries, Mapping) else list(enumerate(queries))
        c_items = list(corpus.items()) if isinstance(corpus, Mapping) else list(enumerate(corpus))
        self.query_ids = [k for k, _ in q_items]
        self.queries = [v for _, v in q_items]
        self.doc_ids = [k for k, _ in c_items]
        self.corpus = [v for _, v in c_items]
        position = {d: i for i, d in enumerate(self.doc_ids)}
        rel_map = relevant if isinstance(relevant, Mapping) else dict(enumerate(relevant))
        self.relevant: list[set[int]] = []
        for qid in self.query_ids:
            if qid not in rel_map:
                raise ValueError(f"query {qid!r} has no entry in relevant")
            unknown = [d for d in rel_map[qid] if d not in position]
            if unknown:
                raise ValueError(f"query {qid!r}: relevant document(s) {unknown[:3]} not in the corpus")
            self.relevant.append({position[d] for d in rel_map[qid]})
        self.ks = tuple(ks)
        self.batch_size = batch_size
        self.query_prefix = query_prefix

    def score(self, query_emb: np.ndarray, corpus_emb: np.ndarray) -> RetrievalResult:
        q = np.asarray(query_emb, dtype=np.float64)
        c = np.asarray(corpus_emb, dtype=np.float64)
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
        return retrieval_metrics(q @ c.T, self.relevant, self.ks)

    def __call__(self, model: Any) -> RetrievalResult:
        queries = [self.query_prefix + q if isinstance(q, str) else q for q in self.queries]
        q = np.asarray(model.encode(queries, batch_size=self.batch_size))
        c = np.asarray(model.encode(self.corpus, batch_size=self.batch_size))
        return self.score(q, c)
