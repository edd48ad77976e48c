"""Classification by linear probe: logistic regression on frozen embeddings, cross-validated.

As in SentEval / MTEB classification: embeddings are features of an L2-regularised logistic
regression; accuracy and macro-F1 are averaged over stratified folds. Needs scikit-learn
(``pip install 'polymodal[eval]'``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ClassificationResult", "LinearProbeEvaluator", "linear_probe"]


@dataclass(frozen=True)
class ClassificationResult:
    """Mean and standard deviation over folds of accuracy and macro-F1."""

    accuracy: float
    f1: float
    accuracy_std: float
    folds: int
    n: int

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}accuracy": self.accuracy, f"{prefix}f1": self.f1}


def linear_probe(
    embeddings: np.ndarray, labels: Sequence[Any], folds: int = 5, C: float = 1.0, seed: int = 0, max_iter: int = 1000
) -> ClassificationResult:
    """Stratified ``folds``-fold cross-validated logistic regression on ``embeddings`` ``(N, D)``."""
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import accuracy_score, f1_score
        from sklearn.model_selection import StratifiedKFold
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        raise ImportError("the linear probe needs scikit-learn: pip install 'polymodal[eval]'") from None
    X = np.asarray(embeddings, dtype=np.float64)
    y = np.asarray(labels)
    if X.shape[0] != len(y):
        raise ValueError(f"{X.shape[0]} embeddings but {len(y)} labels")
    _, counts = np.unique(y, return_counts=True)
    if len(counts) < 2:
        raise ValueError("a linear probe needs at least two classes")
    if counts.min() < folds:
        raise ValueError(f"the rarest class has {counts.min()} examples; need at least folds={folds}")
    accs, f1s = [], []
    for train, test in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(X, y):
        scaler = StandardScaler().fit(X[train])
        clf = LogisticRegression(C=C, max_iter=max_iter).fit(scaler.transform(X[train]), y[train])
        pred = clf.predict(scaler.transform(X[test]))
        accs.append(accuracy_score(y[test], pred))
        f1s.append(f1_score(y[test], pred, average="macro"))
    return ClassificationResult(float(np.mean(accs)), float(np.mean(f1s)), float(np.std(accs)), folds, len(y))


class LinearProbeEvaluator:
    """Embed ``values`` with a model's ``encode`` and cross-validate a linear probe on ``labels``.

    Args:
        values: inputs of the model's modality.
        labels: one class label per input.
        folds: stratified CV folds.
        C: inverse L2 regularisation strength.
        batch_size: encoding batch size.
    """

    def __init__(
        self, values: Sequence[Any], labels: Sequence[Any], folds: int = 5, C: float = 1.0, batch_size: int = 64
    ) -> None:
        if len(values) != len(labels):
            raise ValueError(f"LinearProbeEvaluator: {len(values)} values but {len(labels)} labels")
        self.values, self.labels = list(values), list(labels)
        self.folds, self.C, self.batch_size = folds, C, batch_size

    def score(self, embeddings: np.ndarray) -> ClassificationResult:
        return linear_probe(embeddings, self.labels, folds=self.folds, C=self.C)

    def __call__(self, model: Any) -> ClassificationResult:
        return self.score(np.asarray(model.encode(self.values, batch_size=self.batch_size)))
