"""Evaluators usable from Python, the CLI and as Lightning validation metrics."""

from __future__ import annotations

from polymodal.evaluation.captioning import bleu, caption_scores, cider_d
from polymodal.evaluation.classification import ClassificationResult, LinearProbeEvaluator, linear_probe
from polymodal.evaluation.elastic import ElasticEvaluator, ElasticResult, encode_layers
from polymodal.evaluation.mteb import MTEBModel
from polymodal.evaluation.retrieval import RetrievalEvaluator, RetrievalResult, retrieval_metrics
from polymodal.evaluation.segmentation import masses_to_boundaries, pk, segmentation_scores, windowdiff
from polymodal.evaluation.sts import STSEvaluator, STSResult
from polymodal.metrics.functional import pearson, spearman

__all__ = [
    "ClassificationResult",
    "ElasticEvaluator",
    "ElasticResult",
    "LinearProbeEvaluator",
    "MTEBModel",
    "RetrievalEvaluator",
    "RetrievalResult",
    "STSEvaluator",
    "STSResult",
    "bleu",
    "caption_scores",
    "cider_d",
    "encode_layers",
    "linear_probe",
    "masses_to_boundaries",
    "pearson",
    "pk",
    "retrieval_metrics",
    "segmentation_scores",
    "spearman",
    "windowdiff",
]
