"""Evaluators usable from Python, the CLI and as Lightning validation metrics."""

from __future__ import annotations

from polymodal.evaluation.correlation import pearson, spearman
from polymodal.evaluation.sts import STSEvaluator, STSResult

__all__ = ["STSEvaluator", "STSResult", "pearson", "spearman"]
