"""Hard-negative mining with a false-negative margin filter.

References: Moreira et al., "NV-Retriever: Improving text embedding models with effective
hard-negative mining" (2024), https://arxiv.org/abs/2407.15831 (positive-aware filters:
absolute and relative margins); LG-ANNA-Embedding (Bae et al. 2024) drops candidates that
score too close to the positive as likely false negatives; sentence-transformers'
``mine_hard_negatives``.

A candidate ``c`` for query ``q`` with positive ``p`` is kept only if
``sim(q, c) <= sim(q, p) - margin`` and ``sim(q, c) <= relative_margin * sim(q, p)``, is not
the positive itself (by identity of the text) and, optionally, ranks in ``[skip, top_k)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["MinedNegatives", "mine_hard_negatives"]


@dataclass
class MinedNegatives:
    """Result of :func:`mine_hard_negatives`.

    Attributes:
        negatives: per query, the chosen negatives (hardest first), at most ``num_negatives``.
        scores: their similarities to the query.
        positive_scores: ``sim(q, p)`` per query.
        filtered: how many candidates the margin filters dropped as likely false negatives.
    """

    negatives: list[list[Any]]
    scores: list[list[float]]
    positive_scores: np.ndarray
    filtered: int

    def triplets(self, queries: Sequence[Any], positives: Sequence[Any]) -> list[tuple[Any, Any, Any]]:
        """``(query, positive, negative)`` rows, one per mined negative (for InfoNCE with a
        hard-negative column)."""
        return [(q, p, n) for q, p, negs in zip(queries, positives, self.negatives) for n in negs]


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def mine_hard_negatives(
    model: Any,
    queries: Sequence[Any],
    positives: Sequence[Any],
    corpus: Sequence[Any] | None = None,
    num_negatives: int = 1,
    top_k: int = 50,
    skip: int = 0,
    margin: float | None = 0.0,
    relative_margin: float | None = None,
    batch_size: int = 64,
) -> MinedNegatives:
    """Mine hard negatives for ``(query, positive)`` pairs from ``corpus`` with ``model``.

    Args:
        model: anything with ``encode(values, batch_size=...) -> (N, D)`` (an EmbeddingModel).
        queries: anchors.
        positives: one positive per query.
        corpus: candidate pool; default: the positives themselves (in-dataset mining).
        num_negatives: negatives to keep per query.
        top_k: only look at the ``top_k`` most similar candidates.
        skip: ignore the ``skip`` most similar candidates (often near-duplicates).
        margin: keep ``c`` only if ``sim(q, c) <= sim(q, p) - margin`` (None: off).
        relative_margin: keep ``c`` only if ``sim(q, c) <= relative_margin * sim(q, p)``, e.g.
            0.95 (NV-Retriever's "TopK-PercPos"); None: off.
        batch_size: encoding batch size.
    """
    if len(queries) != len(positives):
        raise ValueError(f"mine_hard_negatives: {len(queries)} queries but {len(positives)} positives")
    if num_negatives < 1 or top_k < 1 or skip < 0:
        raise ValueError("need num_negatives >= 1, top_k >= 1 and skip >= 0")
    pool = list(positives if corpus is None else corpus)
    unique = list(dict.fromkeys(pool))
    q = _normalize(model.encode(list(queries), batch_size=batch_size))
    p = _normalize(model.encode(list(positives), batch_size=batch_size))
    c = _normalize(model.encode(unique, batch_size=batch_size))
    pos_scores = (q * p).sum(axis=1)  # (Q,)
    sims = q @ c.T  # (Q, C)
    k = min(top_k, len(unique))
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    negatives: list[list[Any]] = []
    scores: list[list[float]] = []
    filtered = 0
    for i in range(len(queries)):
        chosen, chosen_scores = [], []
        for rank, j in enumerate(top[i]):
            if rank < skip:
                continue
            cand, s = unique[j], float(sims[i, j])
            if cand == positives[i] or cand == queries[i]:
                continue
            if (margin is not None and s > pos_scores[i] - margin) or (
                relative_margin is not None and s > relative_margin * pos_scores[i]
            ):
                filtered += 1
                continue
            chosen.append(cand)
            chosen_scores.append(s)
            if len(chosen) == num_negatives:
                break
        negatives.append(chosen)
        scores.append(chosen_scores)
    return MinedNegatives(negatives, scores, pos_scores, filtered)
