"""Pearson and Spearman correlation in numpy (no scipy needed in the core)."""

from __future__ import annotations

import numpy as np

__all__ = ["pearson", "rankdata", "spearman"]


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks starting at 1 with ties given their average rank (scipy's ``method="average"``)."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # Boundaries of runs of equal values.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_x)) + 1]
    ends = np.r_[starts[1:], len(x)]
    avg = (starts + ends - 1) / 2.0 + 1.0
    ranks_sorted = np.repeat(avg, ends - starts)
    ranks = np.empty_like(ranks_sorted)
    ranks[order] = ranks_sorted
    return ranks


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r; raises if either input is constant or lengths differ."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"pearson needs two 1-D arrays of equal length, got {x.shape} and {y.shape}")
    if len(x) < 2:
        raise ValueError("pearson needs at least 2 points")
    xc, yc = x - x.mean(), y - y.mean()
    denom = np.sqrt((xc * xc).sum() * (yc * yc).sum())
    if denom == 0:
        return float("nan")
    return float((xc * yc).sum() / denom)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho: Pearson on average ranks."""
    return pearson(rankdata(x), rankdata(y))
