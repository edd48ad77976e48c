"""Pk, WindowDiff and Pearson r against hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest

from polymodal.evaluation.segmentation import (
    default_k,
    masses_to_boundaries,
    pk,
    segmentation_scores,
    windowdiff,
)
from polymodal.metrics.functional import pearson

# Reference: 6 sentences in two segments of 3 -> boundary after sentence index 2.
REF = [0, 0, 1, 0, 0]


def test_masses_to_boundaries():
    assert masses_to_boundaries([3, 3]).tolist() == REF
    assert masses_to_boundaries([1, 2, 1]).tolist() == [1, 0, 1]
    assert masses_to_boundaries([4]).tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="positive"):
        masses_to_boundaries([2, 0])


def test_default_k_is_half_mean_segment_length_rounded_half_up():
    assert default_k(REF) == 2  # 6 sentences / (2 * 2 segments) = 1.5 -> 2
    assert default_k(masses_to_boundaries([5, 5])) == 3  # 2.5 -> 3 (not banker's 2)
    assert default_k(masses_to_boundaries([1, 1, 1, 1])) == 1  # 0.5 -> 1


def test_pk_and_windowdiff_near_miss_by_hand():
    # Hypothesis puts the boundary one sentence early. k = 2, windows i = 0..3 over boundaries [i, i+2):
    #   ref counts 0 1 1 0 ; hyp [0,1,0,0,0] counts 1 1 0 0 -> windows 0 and 2 disagree -> 2/4.
    hyp = [0, 1, 0, 0, 0]
    assert pk(REF, hyp) == pytest.approx(0.5)
    assert windowdiff(REF, hyp) == pytest.approx(0.5)


def test_windowdiff_penalises_extra_boundary_pk_does_not():
    # Extra boundary right after the true one. ref counts 0 1 1 0 ; hyp [0,0,1,1,0] counts 0 1 2 1.
    #   Pk: only window 3 (0 vs >0) disagrees -> 1/4.  WindowDiff: windows 2 (1 vs 2) and 3 -> 2/4.
    hyp = [0, 0, 1, 1, 0]
    assert pk(REF, hyp) == pytest.approx(0.25)
    assert windowdiff(REF, hyp) == pytest.approx(0.5)


def test_perfect_none_and_all():
    assert pk(REF, REF) == 0.0 and windowdiff(REF, REF) == 0.0
    # No boundaries: ref windows 0 1 1 0 vs all 0 -> 2/4 for both.
    assert pk(REF, [0] * 5) == pytest.approx(0.5)
    assert windowdiff(REF, [0] * 5) == pytest.approx(0.5)
    # Boundary everywhere: hyp counts 2 2 2 2; Pk disagrees at 0 and 3 (2/4); WindowDiff everywhere (4/4).
    assert pk(REF, [1] * 5) == pytest.approx(0.5)
    assert windowdiff(REF, [1] * 5) == pytest.approx(1.0)


def test_explicit_k():
    # k = 1: windows are the single boundaries -> both metrics = share of mismatched boundary flags.
    hyp = [0, 1, 0, 0, 0]
    assert pk(REF, hyp, k=1) == pytest.approx(2 / 5)
    assert windowdiff(REF, hyp, k=1) == pytest.approx(2 / 5)


def test_bad_inputs():
    with pytest.raises(ValueError, match="different texts"):
        pk(REF, [0, 0, 1])
    with pytest.raises(ValueError, match="0/1"):
        windowdiff(REF, [0, 0, 2, 0, 0])
    with pytest.raises(ValueError, match="longer than the text"):
        pk(REF, REF, k=9)
    with pytest.raises(ValueError, match="document 1"):
        segmentation_scores([REF, REF], [REF, [0]])


def test_segmentation_scores_averages_documents():
    out = segmentation_scores([REF, REF], [REF, [0, 0, 1, 1, 0]])
    assert out["pk"] == pytest.approx((0 + 0.25) / 2)
    assert out["windowdiff"] == pytest.approx((0 + 0.5) / 2)
    assert out["documents"] == 2


def test_pearson_by_hand():
    # x - mean = (-1, 0, 1), y - mean = (-1, 1, 0): r = 1 / sqrt(2 * 2) = 0.5
    assert pearson(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])) == pytest.approx(0.5)
    # r is invariant to affine maps and flips sign with a negative scale
    x = np.array([2.0, 4.0, 5.0, 9.0])
    y = np.array([1.0, 0.0, 3.0, 4.0])
    # means 5 and 2; xc = (-3,-1,0,4), yc = (-1,-2,1,2); sxy = 3+2+0+8 = 13; sxx = 26; syy = 10
    assert pearson(x, y) == pytest.approx(13 / np.sqrt(26 * 10))
    assert pearson(-2 * x + 7, y) == pytest.approx(-13 / np.sqrt(26 * 10))
