"""Embedding-task metrics of polymodal.metrics.functional, checked against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from polymodal.metrics.functional import (
    cosine_matrix,
    kmeans_v_measure,
    mean_average_precision,
    pair_classification_ap,
    pair_cosine,
    v_measure,
)


def _unit_at_cosine(c: float) -> list[float]:
    return [c, math.sqrt(1 - c * c)]


def test_pair_cosine_and_cosine_matrix_by_hand():
    a = np.array([[1.0, 0.0], [1.0, 1.0]])
    b = np.array([[0.0, 1.0], [2.0, 2.0]])
    np.testing.assert_allclose(pair_cosine(a, b), [0.0, 1.0], atol=1e-12)
    m = cosine_matrix(np.array([[1.0, 0.0]]), np.array([[3.0, 0.0], [0.0, 2.0], [-1.0, 0.0], [1.0, 1.0]]))
    np.testing.assert_allclose(m, [[1.0, 0.0, -1.0, 1 / math.sqrt(2)]], atol=1e-12)
    with pytest.raises(ValueError, match="equal shape"):
        pair_cosine(a, b[:1])


def test_pair_classification_ap_by_hand():
    # cosines 0.9 (pos), 0.1 (neg), 0.5 (neg), -0.2 (pos): ranked pos, neg, neg, pos
    # AP = (1/1 + 2/4) / 2 = 0.75
    cos = [0.9, 0.1, 0.5, -0.2]
    a = np.tile([1.0, 0.0], (4, 1))
    b = np.array([_unit_at_cosine(c) for c in cos])
    assert pair_classification_ap(a, b, np.array([1, 0, 0, 1])) == pytest.approx(0.75)
    # all positives first: AP 1
    assert pair_classification_ap(a, b, np.array([1, 0, 1, 0])) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="4 pairs"):
        pair_classification_ap(a, b, np.array([1, 0]))


def test_mean_average_precision_by_hand():
    # query 1: candidates ranked neg, pos, pos -> AP = (1/2 + 2/3) / 2 = 7/12; query 2: pos first -> 1
    relevance = [np.array([0, 1, 1]), np.array([1, 0])]
    scores = [np.array([0.3, 0.2, 0.1]), np.array([0.9, 0.1])]
    assert mean_average_precision(relevance, scores) == pytest.approx((7 / 12 + 1) / 2)
    with pytest.raises(ValueError, match="query 1 has no relevant"):
        mean_average_precision([np.array([1]), np.array([0, 0])], [np.array([1.0]), np.array([0.1, 0.2])])
    with pytest.raises(ValueError, match="query 0"):
        mean_average_precision([np.array([1, 0])], [np.array([0.1])])


def test_v_measure_by_hand():
    assert v_measure([0, 0, 1, 1], [5, 5, 7, 7]) == pytest.approx(1.0)  # a relabelling is perfect
    assert v_measure([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0)  # independent of the truth
    # truth [0,0,1,1], clusters [0,0,0,1]
    h_c = math.log(2)
    h_c_given_k = 0.75 * -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    h_k = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    h_k_given_c = 0.5 * math.log(2)
    hom, com = 1 - h_c_given_k / h_c, 1 - h_k_given_c / h_k
    assert v_measure([0, 0, 1, 1], [0, 0, 0, 1]) == pytest.approx(2 * hom * com / (hom + com))


def test_kmeans_v_measure_finds_separated_blobs_and_not_noise():
    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b", "c"], 40)
    centers = {"a": [10.0, 0.0], "b": [0.0, 10.0], "c": [-10.0, -10.0]}
    X = np.array([centers[y] for y in labels]) + rng.normal(size=(120, 2))
    assert kmeans_v_measure(X, labels) == pytest.approx(1.0)
    assert kmeans_v_measure(X, labels, minibatch=False) == pytest.approx(1.0)
    assert kmeans_v_measure(rng.normal(size=(120, 2)), labels) < 0.2
    with pytest.raises(ValueError, match="two gold clusters"):
        kmeans_v_measure(X, np.zeros(120))
