"""Stratification for continuous targets: quantile bins, stratified splits, stratified batches.

A regression target (a 1-7 empathy rating, a return, a score) is cut into quantile bins;
the bins then stratify

* a train/validation split (:func:`stratified_split`): every bin keeps its share in both parts;
* the training batches (:class:`StratifiedSampler`, :class:`StratifiedBatchSampler`):
  ``mode="stratified"`` spreads every bin evenly over the epoch so each batch holds the bins in
  their overall proportions; ``mode="balanced"`` draws bins with probability proportional to
  ``count ** alpha`` (``alpha=0``: every bin equally often, i.e. rare extreme targets are
  oversampled; ``alpha=1``: the natural frequencies), items with replacement within a bin.

Orders depend only on ``(seed, epoch)`` (Lightning calls ``set_epoch``), like
:class:`~polymodal.data.datamodule.EpochShuffleSampler`, so resumed runs replay the same batches.

Example:
    >>> bins = quantile_bins(targets, n_bins=5)
    >>> train_idx, val_idx = stratified_split(bins, val_fraction=0.1, seed=0)
    >>> loader = DataLoader(ds, batch_size=32, sampler=StratifiedSampler(bins[train_idx], seed=0))
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
import torch
from torch.utils.data import BatchSampler, Sampler

__all__ = [
    "StratifiedBatchSampler",
    "StratifiedSampler",
    "combine_bins",
    "quantile_bins",
    "stratified_split",
]


def _as_1d_finite(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {x.shape}")
    if not len(x):
        raise ValueError(f"{name} is empty")
    bad = np.flatnonzero(~np.isfinite(x))
    if len(bad):
        raise ValueError(f"{name}: {len(bad)} non-finite value(s), first at index {int(bad[0])}: {x[bad[0]]!r}")
    return x


def quantile_bins(values: Sequence[float] | np.ndarray, n_bins: int = 5) -> np.ndarray:
    """Bin a continuous target into (at most) ``n_bins`` quantile bins.

    Bin edges are the ``1/n_bins, 2/n_bins, ...`` quantiles; duplicate edges (many tied values,
    e.g. a rating scale) are merged, so fewer bins may come back. Bin ids are consecutive,
    ``0 .. n-1``, ordered by value.

    Args:
        values: ``(N,)`` finite numbers.
        n_bins: requested number of bins (>= 1).

    Returns:
        ``(N,)`` int64 bin ids.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    x = _as_1d_finite(values, "values")
    inner = np.unique(np.quantile(x, np.arange(1, n_bins) / n_bins)) if n_bins > 1 else np.empty(0)
    # side="left": a value equal to an edge goes to the lower bin, so a block of tied values at
    # an edge is never split between two bins.
    bins = np.searchsorted(inner, x, side="left")
    _, ids = np.unique(bins, return_inverse=True)  # drop empty bins, keep order
    return ids.astype(np.int64)


def combine_bins(*bins: Sequence[int] | np.ndarray, min_count: int = 1) -> np.ndarray:
    """Joint strata of several binned targets (e.g. empathy bin x distress bin).

    Args:
        bins: equally long ``(N,)`` integer arrays.
        min_count: joint cells with fewer members are merged into one ``rare`` stratum (the last id).

    Returns:
        ``(N,)`` int64 ids, consecutive from 0.
    """
    if not bins:
        raise ValueError("combine_bins needs at least one array")
    arrays = [np.asarray(b) for b in bins]
    n = len(arrays[0])
    for j, a in enumerate(arrays):
        if a.ndim != 1 or len(a) != n:
            raise ValueError(f"bins[{j}] has shape {a.shape}; expected ({n},) like bins[0]")
    _, joint = np.unique(np.stack(arrays, axis=1), axis=0, return_inverse=True)
    joint = joint.reshape(-1)
    if min_count > 1:
        counts = np.bincount(joint)
        rare = counts[joint] < min_count
        if rare.any():
            joint = np.where(rare, joint.max() + 1, joint)
    _, ids = np.unique(joint, return_inverse=True)
    return ids.reshape(-1).astype(np.int64)


def _check_bins(bins: Sequence[int] | np.ndarray) -> np.ndarray:
    b = np.asarray(bins)
    if b.ndim != 1 or not len(b):
        raise ValueError(f"bins must be a non-empty 1-D integer array, got shape {b.shape}")
    if not np.issubdtype(b.dtype, np.integer):
        raise ValueError(f"bins must be integers (use quantile_bins for a continuous target), got {b.dtype}")
    return b.astype(np.int64)


def stratified_split(
    bins: Sequence[int] | np.ndarray, val_fraction: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices so every stratum keeps (about) its share in the validation part.

    The validation size is ``round(val_fraction * N)``, shared out over the bins by largest
    remainder; every bin with at least two members keeps at least one in training (which can make
    the validation part slightly smaller with tiny bins).

    Args:
        bins: ``(N,)`` stratum ids (e.g. from :func:`quantile_bins`).
        val_fraction: share of rows in the validation part, in ``(0, 1)``.
        seed: shuffling seed.

    Returns:
        ``(train_indices, val_indices)``, each sorted ascending.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    b = _check_bins(bins)
    rng = np.random.default_rng(seed)
    labels, counts = np.unique(b, return_counts=True)
    total = int(round(val_fraction * len(b)))
    quota = counts * val_fraction
    take = np.floor(quota).astype(int)
    order = np.argsort(-(quota - take), kind="stable")
    for j in order:  # largest remainders first
        if take.sum() >= total:
            break
        take[j] += 1
    take = np.minimum(take, np.maximum(counts - 1, 0) + (counts == 1))  # keep one in train where possible
    val: list[np.ndarray] = []
    for label, k in zip(labels, take):
        members = np.flatnonzero(b == label)
        val.append(rng.permutation(members)[:k])
    val_idx = np.sort(np.concatenate(val)) if val else np.empty(0, dtype=np.int64)
    train_mask = np.ones(len(b), dtype=bool)
    train_mask[val_idx] = False
    return np.flatnonzero(train_mask), val_idx


class StratifiedSampler(Sampler[int]):
    """Epoch order whose consecutive chunks are stratified on ``bins``.

    ``mode="stratified"`` (a permutation of all items): each bin is shuffled and its members are
    spread at even spacing (plus jitter) over the epoch, so every window of ``B`` consecutive
    items holds each bin in its overall proportion (within one item).

    ``mode="balanced"`` (``num_samples`` draws, with replacement): a bin is drawn with
    probability proportional to ``count ** alpha``, then a member of it uniformly. ``alpha=0``
    oversamples rare bins up to parity; ``alpha=0.5`` is a softer reweighting.

    Args:
        bins: ``(N,)`` stratum ids of the dataset's items.
        mode: ``"stratified"`` or ``"balanced"``.
        alpha: balanced mode: bin weight exponent.
        num_samples: balanced mode: draws per epoch (default ``N``).
        seed: the order depends only on ``(seed, epoch)``.
    """

    def __init__(
        self,
        bins: Sequence[int] | np.ndarray,
        mode: Literal["stratified", "balanced"] = "stratified",
        alpha: float = 0.0,
        num_samples: int | None = None,
        seed: int = 0,
    ) -> None:
        if mode not in ("stratified", "balanced"):
            raise ValueError(f"mode must be 'stratified' or 'balanced', got {mode!r}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if num_samples is not None and num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.bins = _check_bins(bins)
        self.mode = mode
        self.alpha = float(alpha)
        self.num_samples = num_samples if num_samples is not None else len(self.bins)
        self.seed = seed
        self.epoch = 0
        self._labels, self._inverse, self._counts = np.unique(self.bins, return_inverse=True, return_counts=True)
        self._members = [np.flatnonzero(self._inverse == j) for j in range(len(self._labels))]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.bins) if self.mode == "stratified" else self.num_samples

    def bin_weights(self) -> np.ndarray:
        """Probability of drawing each bin in balanced mode (sorted bin labels' order)."""
        w = self._counts.astype(np.float64) ** self.alpha
        return w / w.sum()

    def indices(self) -> np.ndarray:
        """The epoch's item order."""
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        if self.mode == "stratified":
            keys = np.empty(len(self.bins))
            for members in self._members:
                n = len(members)
                # Evenly spaced slots in [0, 1) with a random offset per bin and a shuffled member per slot.
                keys[rng.permutation(members)] = (np.arange(n) + rng.random()) / n
            return np.argsort(keys + 1e-9 * rng.random(len(keys)), kind="stable")
        chosen = rng.choice(len(self._members), size=self.num_samples, p=self.bin_weights())
        out = np.empty(self.num_samples, dtype=np.int64)
        for j, members in enumerate(self._members):
            where = np.flatnonzero(chosen == j)
            out[where] = members[rng.integers(0, len(members), size=len(where))]
        return out

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())


class StratifiedBatchSampler(BatchSampler):
    """Batches of a :class:`StratifiedSampler` (``DataLoader(batch_sampler=...)``).

    Args:
        bins: ``(N,)`` stratum ids.
        batch_size: items per batch.
        drop_last: drop the last incomplete batch.
        mode, alpha, num_samples, seed: as for :class:`StratifiedSampler`.
    """

    def __init__(
        self,
        bins: Sequence[int] | np.ndarray,
        batch_size: int,
        drop_last: bool = False,
        mode: Literal["stratified", "balanced"] = "stratified",
        alpha: float = 0.0,
        num_samples: int | None = None,
        seed: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        super().__init__(
            StratifiedSampler(bins, mode=mode, alpha=alpha, num_samples=num_samples, seed=seed), batch_size, drop_last
        )

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)  # type: ignore[union-attr]
