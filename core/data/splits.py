"""One split helper for every recipe: hash, stratified and chronological splits.

* ``"hash"``: items are ordered by the SHA-1 of their key (an image file name, a document id) and cut
  into consecutive parts. The assignment depends only on the keys, not on file order or a random
  state, so every recipe that splits the same keys the same way gets the same held-out items (e.g. the
  same 100 Flickr8k test images for every image recipe). Rows sharing a key (an image and its five
  captions) always land in the same part.
* ``"stratified"``: every quantile bin of a continuous target (or every class) keeps its share in
  every part (seeded; keys of one bin are dealt to the parts in proportion to their sizes).
* ``"chronological"``: ordered by a date/time key; the first part is the oldest (no look-ahead).

Sizes are counts (``[800, 100, 100]``) or fractions (``[0.8, 0.1, 0.1]``) of the distinct keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

__all__ = ["SplitMethod", "split_keys", "split_rows"]

SplitMethod = Literal["hash", "stratified", "chronological"]


def _counts(sizes: Sequence[float], n: int) -> list[int]:
    if not sizes or any(s < 0 for s in sizes):
        raise ValueError(f"split sizes must be non-negative numbers, got {list(sizes)}")
    if all(float(s).is_integer() and s >= 1 or s == 0 for s in sizes) and sum(sizes) > 1:
        counts = [int(s) for s in sizes]
        if sum(counts) > n:
            raise ValueError(f"split sizes {counts} need {sum(counts)} distinct keys, only {n} available")
        return counts
    if sum(sizes) > 1.0 + 1e-9:
        raise ValueError(f"split fractions {list(sizes)} sum to more than 1")
    counts = [int(round(float(s) * n)) for s in sizes]
    while sum(counts) > n:  # rounding up can overshoot by one
        counts[int(np.argmax(counts))] -= 1
    return counts


def _digest(key: Any) -> str:
    return hashlib.sha1(str(key).encode("utf-8", "surrogatepass")).hexdigest()


def split_keys(
    keys: Sequence[Any],
    sizes: Sequence[float],
    method: SplitMethod = "hash",
    strata: Sequence[float] | None = None,
    seed: int = 0,
) -> list[list[Any]]:
    """Split the distinct ``keys`` into ``len(sizes)`` parts.

    Args:
        keys: item keys (duplicates are one item).
        sizes: counts or fractions per part.
        method: ``"hash"``, ``"stratified"`` (needs ``strata``, one value per distinct key in first-seen
            order) or ``"chronological"`` (keys sortable as times, oldest first).
        strata: continuous target or class per distinct key (stratified only).
        seed: stratified only.

    Returns:
        One list of keys per part (hash: SHA-1 order; chronological: time order; stratified: seeded).
    """
    distinct = list(dict.fromkeys(keys))
    counts = _counts(sizes, len(distinct))
    if method == "hash":
        ordered = sorted(distinct, key=_digest)
    elif method == "chronological":
        ordered = sorted(distinct)
    elif method == "stratified":
        if strata is None or len(strata) != len(distinct):
            raise ValueError("a stratified split needs strata: one value per distinct key")
        from polymodal.data.stratified import quantile_bins

        values = np.asarray(strata, dtype=np.float64)
        is_classes = bool(np.all(values == values.round())) and len(np.unique(values)) <= max(2, len(values) // 10)
        bins = np.unique(values, return_inverse=True)[1] if is_classes else quantile_bins(values, 10)
        rng = np.random.default_rng(seed)
        parts: list[list[Any]] = [[] for _ in counts]
        total = max(1, sum(counts))
        for b in np.unique(bins):
            members = [distinct[i] for i in rng.permutation(np.flatnonzero(bins == b))]
            start = 0
            for j, c in enumerate(counts):
                take = int(round(len(members) * c / total)) if j < len(counts) - 1 else None
                chunk = members[start : None if take is None else start + take]
                parts[j].extend(chunk)
                start += len(chunk)
        # Per-bin rounding can overfill one part and underfill another: move the overflow (in its seeded
        # order) to the parts still short, so no key is lost and every part has exactly its count.
        overflow = [k for p, c in zip(parts, counts) for k in p[c:]]
        parts = [p[:c] for p, c in zip(parts, counts)]
        for p, c in zip(parts, counts):
            while len(p) < c and overflow:
                p.append(overflow.pop(0))
        return parts
    else:
        raise ValueError(f"unknown split method {method!r}; choose hash, stratified or chronological")
    out, start = [], 0
    for c in counts:
        out.append(ordered[start : start + c])
        start += c
    return out


def split_rows(
    keys: Sequence[Any],
    sizes: Sequence[float],
    part: int,
    method: SplitMethod = "hash",
    strata: Sequence[float] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Row indices (in file order) whose key falls in part ``part`` of :func:`split_keys`."""
    if not 0 <= part < len(sizes):
        raise ValueError(f"part {part} out of range for {len(sizes)} split sizes")
    chosen = set(split_keys(keys, sizes, method, strata, seed)[part])
    return np.asarray([i for i, k in enumerate(keys) if k in chosen], dtype=np.int64)
