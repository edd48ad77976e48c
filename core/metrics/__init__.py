"""Metrics: the math (:mod:`polymodal.metrics.functional`) and, for training, torchmetrics classes that
accumulate per batch and sync across devices."""

from __future__ import annotations

from polymodal.metrics.functional import (
    RetrievalResult,
    average_precision,
    binary_metrics,
    multiclass_metrics,
    pearson,
    rankdata,
    regression_metrics,
    retrieval_metrics,
    roc_auc,
    spearman,
)

__all__ = [
    "RetrievalResult",
    "average_precision",
    "binary_metrics",
    "multiclass_metrics",
    "pearson",
    "rankdata",
    "regression_metrics",
    "retrieval_metrics",
    "roc_auc",
    "spearman",
]
