"""polymodal.data.splits: every method partitions the distinct keys exactly, with the requested counts."""

from __future__ import annotations

import numpy as np
import pytest

from polymodal.data.splits import split_keys, split_rows

KEYS = [f"k{i}" for i in range(4838)]
# four unbalanced classes (PhraseBank-like shares): per-class rounding overfills a part
CLASSES = np.repeat([0, 1, 2, 3], [2870, 1363, 600, 5]).tolist()


@pytest.mark.parametrize(
    ("method", "sizes", "strata"),
    [
        ("hash", [0.8, 0.1, 0.1], None),
        ("chronological", [0.8, 0.1, 0.1], None),
        ("stratified", [0.8, 0.1, 0.1], CLASSES),
        ("stratified", [0.9, 0.1], CLASSES),
        ("stratified", [0.7, 0.2, 0.1], np.linspace(1, 7, len(KEYS)).tolist()),  # continuous target: deciles
        ("stratified", [100, 50], CLASSES),  # counts, not fractions
    ],
)
def test_parts_are_disjoint_and_sized_and_lose_no_key(method, sizes, strata):
    parts = split_keys(KEYS, sizes, method=method, strata=strata, seed=0)
    total = len(KEYS)
    want = [s if s >= 1 else s * total for s in sizes]
    assert all(abs(len(p) - w) < 1 for p, w in zip(parts, want)), [len(p) for p in parts]
    flat = [k for p in parts for k in p]
    assert len(set(flat)) == len(flat)  # disjoint
    if sum(sizes) == pytest.approx(1.0):
        assert set(flat) == set(KEYS)  # nothing dropped (the PhraseBank split lost 2 of 4,838 before)


def test_stratified_parts_keep_each_class_share():
    train, val, test = split_keys(KEYS, [0.8, 0.1, 0.1], method="stratified", strata=CLASSES, seed=0)
    cls = dict(zip(KEYS, CLASSES))
    for part in (train, val, test):
        share = np.bincount([cls[k] for k in part], minlength=4) / len(part)
        assert np.abs(share - np.bincount(CLASSES) / len(KEYS)).max() < 0.01


def test_split_rows_keeps_rows_of_one_key_together():
    keys = ["a", "a", "b", "c", "c", "c", "d"]
    parts = [set(np.asarray(keys)[split_rows(keys, [2, 2], part)]) for part in (0, 1)]
    assert parts[0].isdisjoint(parts[1]) and parts[0] | parts[1] == {"a", "b", "c", "d"}
