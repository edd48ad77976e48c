"""Text-segmentation metrics: Pk (Beeferman et al., 1999) and WindowDiff (Pevzner & Hearst, 2002).

A segmentation of ``N`` sentences is a 0/1 *boundary* sequence of length ``N - 1``: entry ``j``
is 1 when a new segment starts at sentence ``j + 1``. :func:`masses_to_boundaries` converts
segment lengths (``[3, 3]`` = two segments of three sentences) to that form.

Both metrics slide a window of ``k`` sentences over the text (``N - k`` positions, window
``i`` spans the boundaries ``i .. i+k-1``, i.e. sentences ``i`` and ``i + k``):

* **Pk** counts windows where reference and hypothesis disagree on whether the window's two
  ends lie in the same segment (any boundary inside vs none);
* **WindowDiff** counts windows where the *number* of boundaries inside differs.

Both are error rates in ``[0, 1]`` (lower is better). ``k`` defaults to half the mean
reference segment length, rounded half up (at least 1), the usual convention (NLTK's
``pk``/``windowdiff`` give the same values for the same ``k``). Corpus figures such as Choi's
are the mean of per-document scores (:func:`segmentation_scores`).

References:
    D. Beeferman, A. Berger, J. Lafferty. "Statistical Models for Text Segmentation." Machine
    Learning 34 (1999).
    L. Pevzner, M. Hearst. "A Critique and Improvement of an Evaluation Metric for Text
    Segmentation." Computational Linguistics 28(1) (2002).

From per-gap boundary scores to segmentations: :func:`threshold_boundaries` (optionally only at local
maxima), :func:`top_k_boundaries` (the number of segments is known), :func:`tune_threshold` (the
threshold with the lowest mean Pk on validation documents) and :func:`score_segmentations` (Pk /
WindowDiff in % for both decodings).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "default_k",
    "masses_to_boundaries",
    "pk",
    "score_segmentations",
    "segmentation_scores",
    "threshold_boundaries",
    "top_k_boundaries",
    "tune_threshold",
    "windowdiff",
]


def masses_to_boundaries(masses: Sequence[int]) -> np.ndarray:
    """Segment lengths -> 0/1 boundary sequence of length ``sum(masses) - 1``."""
    m = [int(x) for x in masses]
    if not m or any(x < 1 for x in m):
        raise ValueError(f"segment masses must be positive integers, got {list(masses)}")
    b = np.zeros(sum(m) - 1, dtype=np.int64)
    b[np.cumsum(m)[:-1] - 1] = 1
    return b


def _as_boundaries(x: Sequence[int] | np.ndarray, name: str) -> np.ndarray:
    b = np.asarray(x)
    if b.ndim != 1:
        raise ValueError(f"{name} must be a 1-D 0/1 boundary sequence, got shape {b.shape}")
    if len(b) and not np.isin(b, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0/1 boundary flags, got values {sorted(set(b.tolist()))[:5]}")
    return b.astype(np.int64)


def default_k(reference: Sequence[int] | np.ndarray) -> int:
    """Half the mean reference segment length, rounded half up, at least 1."""
    ref = _as_boundaries(reference, "reference")
    n_sentences = len(ref) + 1
    n_segments = int(ref.sum()) + 1
    return max(1, math.floor(n_sentences / (2 * n_segments) + 0.5))


def _windows(reference, hypothesis, k: int | None) -> tuple[np.ndarray, np.ndarray]:
    ref = _as_boundaries(reference, "reference")
    hyp = _as_boundaries(hypothesis, "hypothesis")
    if len(ref) != len(hyp):
        raise ValueError(f"reference and hypothesis cover different texts: {len(ref) + 1} vs {len(hyp) + 1} sentences")
    k = default_k(ref) if k is None else int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > len(ref):
        raise ValueError(f"k={k} is longer than the text ({len(ref) + 1} sentences)")
    # Boundaries inside each window [i, i + k) via cumulative sums: (N - k,) counts.
    cr, ch = np.r_[0, np.cumsum(ref)], np.r_[0, np.cumsum(hyp)]
    return cr[k:] - cr[:-k], ch[k:] - ch[:-k]


def pk(reference: Sequence[int] | np.ndarray, hypothesis: Sequence[int] | np.ndarray, k: int | None = None) -> float:
    """Pk error rate of one document (0/1 boundary sequences of equal length)."""
    r, h = _windows(reference, hypothesis, k)
    return float(np.mean((r > 0) != (h > 0)))


def windowdiff(
    reference: Sequence[int] | np.ndarray, hypothesis: Sequence[int] | np.ndarray, k: int | None = None
) -> float:
    """WindowDiff error rate of one document (0/1 boundary sequences of equal length)."""
    r, h = _windows(reference, hypothesis, k)
    return float(np.mean(r != h))


def segmentation_scores(
    references: Sequence[Sequence[int] | np.ndarray], hypotheses: Sequence[Sequence[int] | np.ndarray]
) -> dict[str, float]:
    """Mean per-document Pk and WindowDiff (each document with its own default ``k``)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if not references:
        raise ValueError("no documents to score")
    pks, wds = [], []
    for i, (r, h) in enumerate(zip(references, hypotheses)):
        try:
            pks.append(pk(r, h))
            wds.append(windowdiff(r, h))
        except ValueError as exc:
            raise ValueError(f"document {i}: {exc}") from None
    return {"pk": float(np.mean(pks)), "windowdiff": float(np.mean(wds)), "documents": float(len(pks))}


def _local_maxima(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    left = np.r_[-np.inf, s[:-1]]
    right = np.r_[s[1:], -np.inf]
    return (s >= left) & (s > right)


def threshold_boundaries(scores: Sequence[float] | np.ndarray, threshold: float, peaks: bool = False) -> np.ndarray:
    """0/1 boundaries where ``score > threshold`` (only at local maxima with ``peaks``)."""
    s = np.asarray(scores, dtype=np.float64)
    b = s > threshold
    if peaks:
        b &= _local_maxima(s)
    return b.astype(np.int64)


def top_k_boundaries(scores: Sequence[float] | np.ndarray, k: int) -> np.ndarray:
    """The ``k`` highest-scoring gaps as boundaries (the number of segments is known)."""
    s = np.asarray(scores, dtype=np.float64)
    b = np.zeros(len(s), dtype=np.int64)
    if k > 0:
        b[np.argsort(-s, kind="stable")[:k]] = 1
    return b


def tune_threshold(
    scores: Sequence[np.ndarray], references: Sequence[np.ndarray], peaks: bool = False, grid: int = 100
) -> float:
    """The threshold (from quantiles of all scores) with the lowest mean Pk on these documents."""
    flat = np.concatenate([np.asarray(s, dtype=np.float64) for s in scores])
    # just below each quantile, so "score > threshold" keeps the quantile's own value
    candidates = np.nextafter(np.unique(np.quantile(flat, np.linspace(0.0, 1.0, grid + 1))), -np.inf)
    best, best_pk = float(candidates[0]), float("inf")
    for thr in candidates:
        value = segmentation_scores(references, [threshold_boundaries(s, thr, peaks) for s in scores])["pk"]
        if value < best_pk:
            best, best_pk = float(thr), value
    return best


def score_segmentations(
    scores: Sequence[np.ndarray], references: Sequence[np.ndarray], threshold: float | None, peaks: bool = False
) -> dict[str, float]:
    """Pk / WindowDiff in % with boundaries above ``threshold`` (skipped when ``None``) and, as
    ``pk_known_k`` / ``windowdiff_known_k``, with the true number of boundaries per document."""
    known = segmentation_scores(references, [top_k_boundaries(s, int(np.sum(r))) for s, r in zip(scores, references)])
    out = {"pk_known_k": 100 * known["pk"], "windowdiff_known_k": 100 * known["windowdiff"]}
    if threshold is not None:
        tuned = segmentation_scores(references, [threshold_boundaries(s, threshold, peaks) for s in scores])
        out = {"pk": 100 * tuned["pk"], "windowdiff": 100 * tuned["windowdiff"], **out}
    return out
