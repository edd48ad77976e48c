"""From per-gap scores to segmentations: TextTiling depth scores, thresholds, evaluation.

TextTiling-style baseline (Hearst, 1997) on sentence embeddings: the similarity at gap ``g``
(between sentences ``g`` and ``g + 1``) is the cosine of the mean embedding of the ``w``
sentences before and the ``w`` sentences after; the depth score of a gap is how far its
similarity lies below the nearest peaks to its left and right (climbing while the similarity
rises). Boundaries go at local maxima of depth above a cutoff: Hearst's ``mean - std / 2``
("unknown number"), a threshold tuned on validation documents, or the ``k`` deepest gaps when
the number of segments is known.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from polymodal.evaluation.segmentation import segmentation_scores

__all__ = [
    "depth_scores",
    "evaluate",
    "hearst_boundaries",
    "threshold_boundaries",
    "top_k_boundaries",
    "tune_threshold",
    "window_similarities",
]


def window_similarities(embeddings: np.ndarray, window: int) -> np.ndarray:
    """``(N - 1,)`` cosine similarity of the mean of ``window`` sentences either side of each gap."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    x = np.asarray(embeddings, dtype=np.float64)
    n = len(x)
    if n < 2:
        raise ValueError("a document needs at least 2 sentences")
    csum = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])  # (N + 1, D)
    sims = np.empty(n - 1)
    for g in range(n - 1):
        lo, hi = max(0, g + 1 - window), min(n, g + 1 + window)
        left = (csum[g + 1] - csum[lo]) / (g + 1 - lo)
        right = (csum[hi] - csum[g + 1]) / (hi - g - 1)
        denom = np.linalg.norm(left) * np.linalg.norm(right)
        sims[g] = float(left @ right / denom) if denom > 0 else 0.0
    return sims


def depth_scores(similarities: np.ndarray) -> np.ndarray:
    """Hearst's depth: ``(left peak - s) + (right peak - s)``, peaks found by climbing while rising."""
    s = np.asarray(similarities, dtype=np.float64)
    depth = np.zeros_like(s)
    for g in range(len(s)):
        left = g
        while left > 0 and s[left - 1] >= s[left]:
            left -= 1
        right = g
        while right < len(s) - 1 and s[right + 1] >= s[right]:
            right += 1
        depth[g] = (s[left] - s[g]) + (s[right] - s[g])
    return depth


def _local_maxima(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    left = np.r_[-np.inf, s[:-1]]
    right = np.r_[s[1:], -np.inf]
    return (s >= left) & (s > right)


def threshold_boundaries(scores: np.ndarray, threshold: float, peaks: bool = False) -> np.ndarray:
    """0/1 boundaries where ``score > threshold`` (only at local maxima with ``peaks``)."""
    s = np.asarray(scores, dtype=np.float64)
    b = s > threshold
    if peaks:
        b &= _local_maxima(s)
    return b.astype(np.int64)


def hearst_boundaries(depth: np.ndarray) -> np.ndarray:
    """Boundaries at depth peaks above ``mean - std / 2`` (Hearst's liberal cutoff); a gap of zero
    depth (a similarity peak, not a valley) is never a boundary."""
    d = np.asarray(depth, dtype=np.float64)
    return threshold_boundaries(d, max(d.mean() - d.std() / 2, 0.0), peaks=True)


def top_k_boundaries(scores: np.ndarray, k: int) -> np.ndarray:
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
        pk = segmentation_scores(references, [threshold_boundaries(s, thr, peaks) for s in scores])["pk"]
        if pk < best_pk:
            best, best_pk = float(thr), pk
    return best


def evaluate(
    scores: Sequence[np.ndarray], references: Sequence[np.ndarray], threshold: float, peaks: bool = False
) -> dict[str, float]:
    """Pk / WindowDiff (in %) with a threshold and with the known number of boundaries."""
    tuned = segmentation_scores(references, [threshold_boundaries(s, threshold, peaks) for s in scores])
    known = segmentation_scores(references, [top_k_boundaries(s, int(np.sum(r))) for s, r in zip(scores, references)])
    return {
        "pk": 100 * tuned["pk"],
        "windowdiff": 100 * tuned["windowdiff"],
        "pk_known_k": 100 * known["pk"],
        "windowdiff_known_k": 100 * known["windowdiff"],
    }
