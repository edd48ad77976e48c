"""paired_bootstrap: the paired significance test of the Pooling-and-Attention grid (bootstrap over items)."""

from __future__ import annotations

import numpy as np
import pytest

from polymodal.metrics.functional import paired_bootstrap, spearman


def test_identical_systems_have_zero_delta_and_p_one():
    rng = np.random.default_rng(0)
    gold, pred = rng.random(50), rng.random(50)
    out = paired_bootstrap(gold, pred, pred, samples=200)
    assert out["delta"] == 0 and out["low"] == out["high"] == 0 and out["p"] == 1.0


def test_a_clearly_better_system_is_significant_and_the_delta_is_the_full_sample_one():
    rng = np.random.default_rng(1)
    gold = rng.random(200)
    good = gold + 0.05 * rng.standard_normal(200)  # rho near 1
    noisy = gold + 1.0 * rng.standard_normal(200)  # rho near 0.3
    out = paired_bootstrap(gold, noisy, good, samples=500, seed=3)
    assert out["delta"] == pytest.approx(spearman(gold, good) - spearman(gold, noisy))
    assert out["low"] > 0 and out["p"] < 0.01 and out["low"] <= out["delta"] <= out["high"]
    flipped = paired_bootstrap(gold, good, noisy, samples=500, seed=3)  # same resamples: mirrored figures
    assert flipped["delta"] == pytest.approx(-out["delta"]) and flipped["p"] == out["p"]
    assert flipped["high"] == pytest.approx(-out["low"])


def test_p_is_twice_the_share_of_resamples_with_the_other_sign():
    # 4 items, a metric whose value is the mean of b - a: delta > 0 overall; hand-count the resamples
    target = np.zeros(4)
    a, b = np.zeros(4), np.array([1.0, 1.0, 1.0, -2.0])
    out = paired_bootstrap(target, a, b, metric=lambda t, p: float(p.mean()), samples=400, seed=0)
    rows = np.random.default_rng(0).integers(0, 4, size=(400, 4))
    share = float((b[rows].mean(axis=1) <= 0).mean())
    assert out["delta"] == pytest.approx(0.25) and out["p"] == pytest.approx(min(1.0, 2 * share))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.zeros(5), np.zeros(5), np.zeros(4)), "equal-length 1-D"),
        ((np.zeros(2), np.zeros(2), np.zeros(2)), "need >= 3 items"),
    ],
)
def test_bad_inputs_are_one_line(args, message):
    with pytest.raises(ValueError, match=message) as info:
        paired_bootstrap(*args)
    assert "\n" not in str(info.value)
