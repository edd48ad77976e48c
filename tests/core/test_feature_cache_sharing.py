"""Processes sharing one FeatureCache folder keep every entry any of them computed (merge on save)."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pytest
import torch

from polymodal.data.cache import FeatureCache


class Hashing:
    """A deterministic stand-in encoder: 4 numbers from each string's bytes."""

    def state_dict(self):
        return {"w": torch.ones(2)}

    def encode(self, values, batch_size=64, normalize=None, **kw):
        return np.array([[len(v), ord(v[0]), ord(v[-1]), sum(map(ord, v)) % 97] for v in values], dtype=np.float32)


def _encode_in_child(directory: str, words: list[str]) -> None:
    FeatureCache(Hashing(), directory).encode(words)


def test_two_caches_opened_before_either_saved_keep_both_sets(tmp_path):
    a, b = FeatureCache(Hashing(), tmp_path), FeatureCache(Hashing(), tmp_path)
    a.encode(["alpha", "beta"])
    b.encode(["gamma"])  # b never read a's file: its save must merge, not overwrite
    a.encode(["delta"])
    reopened = FeatureCache(Hashing(), tmp_path)
    assert len(reopened) == 4
    out = reopened.encode(["alpha", "beta", "gamma", "delta"])
    assert reopened.misses == 0
    np.testing.assert_array_equal(out, Hashing().encode(["alpha", "beta", "gamma", "delta"]))


@pytest.mark.parametrize("workers", [4])
def test_concurrent_processes_lose_no_entry(tmp_path, workers):
    ctx = mp.get_context("fork")
    chunks = [[f"w{i}-{j}" for j in range(25)] for i in range(workers)]
    procs = [ctx.Process(target=_encode_in_child, args=(str(tmp_path), chunk)) for chunk in chunks]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * workers
    cache = FeatureCache(Hashing(), tmp_path)
    assert len(cache) == 25 * workers
    assert not list(tmp_path.glob("*.tmp"))  # no temporary file left behind


def test_a_symlinked_lock_file_is_not_followed(tmp_path):
    cache = FeatureCache(Hashing(), tmp_path / "c")
    (tmp_path / "c").mkdir()
    victim = tmp_path / "victim"
    (tmp_path / "c" / f"{cache.path.name}.lock").symlink_to(victim)
    with pytest.raises(OSError):
        cache.encode(["x"])
    assert not victim.exists()
