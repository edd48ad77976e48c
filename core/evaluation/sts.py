"""Semantic textual similarity: correlation of pair cosine with gold scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from polymodal.metrics.functional import pair_cosine, pearson, spearman

__all__ = ["STSEvaluator", "STSResult", "pair_cosine"]


@dataclass(frozen=True)
class STSResult:
    """Correlations of cosine similarity with the gold scores (the STS-B convention)."""

    spearman: float
    pearson: float
    n: int

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}spearman": self.spearman, f"{prefix}pearson": self.pearson}


class STSEvaluator:
    """Scores sentence pairs with a model's ``encode`` and correlates with gold scores.

    Args:
        sentences1: first sentences.
        sentences2: second sentences, same length.
        scores: gold similarity scores, same length.
        batch_size: encoding batch size.

    Example:
        >>> result = STSEvaluator(s1, s2, gold)(polymodal.load("minilm-l6"))
        >>> result.spearman
    """

    def __init__(
        self,
        sentences1: Sequence[Any],
        sentences2: Sequence[Any],
        scores: Sequence[float],
        batch_size: int = 64,
    ) -> None:
        if not (len(sentences1) == len(sentences2) == len(scores)):
            raise ValueError(f"STSEvaluator: lengths differ: {len(sentences1)} / {len(sentences2)} / {len(scores)}")
        self.sentences1 = list(sentences1)
        self.sentences2 = list(sentences2)
        self.scores = np.asarray(scores, dtype=np.float64)
        self.batch_size = batch_size

    @staticmethod
    def score(emb1: np.ndarray, emb2: np.ndarray, gold: np.ndarray) -> STSResult:
        cos = pair_cosine(emb1, emb2)
        return STSResult(spearman(cos, gold), pearson(cos, gold), len(gold))

    def __call__(self, model: Any) -> STSResult:
        """Evaluate any object with ``encode(list, batch_size=...) -> (N, D)`` (MTEB-style)."""
        # Encode the union once: duplicates across the two sides are common in STS data.
        unique = list(dict.fromkeys(self.sentences1 + self.sentences2))
        emb = np.asarray(model.encode(unique, batch_size=self.batch_size))
        index = {s: i for i, s in enumerate(unique)}
        e1 = emb[[index[s] for s in self.sentences1]]
        e2 = emb[[index[s] for s in self.sentences2]]
        return self.score(e1, e2, self.scores)
