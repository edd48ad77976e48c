"""Stratification for continuous targets: bins, splits, samplers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from polymodal.data.stratified import (
    StratifiedBatchSampler,
    StratifiedSampler,
    combine_bins,
    quantile_bins,
    stratified_split,
)


def test_quantile_bins_by_hand():
    # 8 values, 4 bins: quartile edges 2.75, 4.5, 6.25 -> two values per bin, ordered by value.
    x = [8, 1, 7, 2, 6, 3, 5, 4]
    assert quantile_bins(x, 4).tolist() == [3, 0, 3, 0, 2, 1, 2, 1]
    assert quantile_bins(x, 1).tolist() == [0] * 8


def test_quantile_bins_merges_tied_edges():
    # A rating scale with a huge tied block: requested 4 bins, the tie is never split.
    x = [1.0] * 6 + [2.0, 3.0]
    bins = quantile_bins(x, 4)
    assert len(set(bins[:6].tolist())) == 1
    assert bins.max() + 1 < 4 and bins.tolist() == sorted(bins.tolist())


def test_quantile_bins_rejects_bad_values():
    with pytest.raises(ValueError, match="index 2"):
        quantile_bins([1.0, 2.0, float("nan")])
    with pytest.raises(ValueError, match="n_bins"):
        quantile_bins([1.0], 0)


def test_combine_bins_and_rare_cells():
    a = np.array([0, 0, 1, 1, 1])
    b = np.array([0, 0, 0, 1, 1])
    assert combine_bins(a, b).tolist() == [0, 0, 1, 2, 2]
    # cell (1, 0) has one member -> merged into the "rare" stratum (last id)
    assert combine_bins(a, b, min_count=2).tolist() == [0, 0, 2, 1, 1]
    with pytest.raises(ValueError, match="bins\\[1\\]"):
        combine_bins(a, b[:3])


def test_stratified_split_keeps_proportions():
    rng = np.random.default_rng(0)
    y = rng.normal(size=1000) ** 3
    bins = quantile_bins(y, 5)
    train, val = stratified_split(bins, 0.2, seed=1)
    assert len(val) == 200 and len(train) == 800
    assert not set(train) & set(val)
    assert np.bincount(bins[val]).tolist() == [40] * 5  # exactly 20% of each 200-item bin
    again, _ = stratified_split(bins, 0.2, seed=1)
    assert np.array_equal(train, again)
    other, _ = stratified_split(bins, 0.2, seed=2)
    assert not np.array_equal(train, other)


def test_stratified_split_small_bins_keep_a_training_member():
    bins = np.array([0, 0, 1, 1, 2, 2, 2, 2, 2, 2])
    train, val = stratified_split(bins, 0.5, seed=0)
    assert set(bins[train]) == {0, 1, 2}
    with pytest.raises(ValueError, match="integers"):
        stratified_split(np.array([0.5, 1.5]), 0.5)


def test_stratified_sampler_spreads_every_bin_over_every_batch():
    bins = np.repeat([0, 1, 2, 3], [40, 20, 10, 10])  # 80 items, proportions 4:2:1:1
    sampler = StratifiedSampler(bins, seed=3)
    order = sampler.indices()
    assert sorted(order.tolist()) == list(range(80))  # a permutation
    for batch in order.reshape(10, 8):
        counts = np.bincount(bins[batch], minlength=4)
        assert np.all(np.abs(counts - np.array([4, 2, 1, 1])) <= 1), counts
    # plain shuffling would leave some batch of 8 without a rare bin far more often
    sampler.set_epoch(1)
    assert not np.array_equal(sampler.indices(), order)
    sampler.set_epoch(0)
    assert np.array_equal(sampler.indices(), order)  # depends only on (seed, epoch)


def test_balanced_sampler_oversamples_rare_bins():
    bins = np.repeat([0, 1], [95, 5])
    uniform = StratifiedSampler(bins, mode="balanced", alpha=0.0, num_samples=4000, seed=0)
    drawn = bins[uniform.indices()]
    assert len(drawn) == 4000
    assert abs(drawn.mean() - 0.5) < 0.05  # rare bin drawn half the time
    natural = StratifiedSampler(bins, mode="balanced", alpha=1.0, num_samples=4000, seed=0)
    assert abs(bins[natural.indices()].mean() - 0.05) < 0.02
    assert np.allclose(uniform.bin_weights(), [0.5, 0.5])
    with pytest.raises(ValueError, match="mode"):
        StratifiedSampler(bins, mode="nope")  # type: ignore[arg-type]


def test_batch_sampler_in_a_dataloader():
    y = torch.arange(60, dtype=torch.float32)
    bins = quantile_bins(y.numpy(), 3)
    bs = StratifiedBatchSampler(bins, batch_size=6, seed=0)
    loader = DataLoader(torch.utils.data.TensorDataset(y), batch_sampler=bs)
    batches = [b[0] for b in loader]
    assert len(batches) == 10 and sum(len(b) for b in batches) == 60
    for b in batches:  # two items of each third of the range per batch
        assert np.bincount(bins[b.long().numpy()], minlength=3).tolist() == [2, 2, 2]
    bs.set_epoch(2)
    assert bs.sampler.epoch == 2
