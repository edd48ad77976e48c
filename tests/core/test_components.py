"""Features, base poolers and losses, correlation, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polymodal.evaluation import pearson, spearman
from polymodal.features import Features
from polymodal.io import atomic_path, resolve_path
from polymodal.losses import CoSENTLoss, CosineMSELoss, InfoNCELoss
from polymodal.metrics.functional import rankdata
from polymodal.poolers import ClsPooler, LastTokenPooler, MaxPooler, MeanPooler, build_pooler


def _features() -> Features:
    seq = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2)  # (B=2, T=3, D=2)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    return Features(seq, mask)


def test_features_validates_shapes():
    with pytest.raises(ValueError, match=r"mask must be \(B, T\)"):
        Features(torch.zeros(2, 3, 4), torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"sequence must be \(B, T, D\)"):
        Features(torch.zeros(2, 3), torch.ones(2, 3))
    assert Features(torch.zeros(1, 2, 3), torch.ones(1, 2)).mask.dtype == torch.bool


def test_features_at_layer_truncates_hidden_states():
    states = tuple(torch.full((1, 2, 3), float(i)) for i in range(4))  # embeddings + 3 layers
    f = Features(states[-1], torch.ones(1, 2), hidden_states=states)
    assert f.num_layers == 3
    assert f.at_layer(2).sequence[0, 0, 0].item() == 2.0
    assert len(f.at_layer(2).hidden_states) == 3
    with pytest.raises(ValueError, match="hidden_states=True"):
        Features(states[-1], torch.ones(1, 2)).at_layer(1)


def test_poolers_respect_mask():
    f = _features()
    # row 0 uses positions 0,1: [0,1],[2,3]; row 1 uses all: [6,7],[8,9],[10,11]
    assert torch.equal(MeanPooler()(f), torch.tensor([[1.0, 2.0], [8.0, 9.0]]))
    assert torch.equal(MaxPooler()(f), torch.tensor([[2.0, 3.0], [10.0, 11.0]]))
    assert torch.equal(ClsPooler()(f), torch.tensor([[0.0, 1.0], [6.0, 7.0]]))
    assert torch.equal(LastTokenPooler()(f), torch.tensor([[2.0, 3.0], [10.0, 11.0]]))


def test_last_token_pooler_handles_left_padding():
    seq = torch.arange(6, dtype=torch.float32).view(1, 3, 2)
    f = Features(seq, torch.tensor([[0, 1, 1]]))
    assert torch.equal(LastTokenPooler()(f), torch.tensor([[4.0, 5.0]]))


def test_build_pooler_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="unknown pooler 'median'.*mean, cls, max, last"):
        build_pooler("median")


def test_infonce_matches_hand_computed_cross_entropy():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    t = 0.5
    cos = torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(p, dim=-1).T / t
    expected = -(torch.log_softmax(cos, -1)[0, 0] + torch.log_softmax(cos, -1)[1, 1]) / 2
    assert torch.allclose(InfoNCELoss(temperature=t)([a, p]), expected)
    # A hard-negative column adds candidates: the loss can only grow.
    n = torch.tensor([[0.9, 0.1], [0.1, 0.9]])
    assert InfoNCELoss(temperature=t)([a, p, n]) > expected
    sym = InfoNCELoss(temperature=t, symmetric=True)([a, p])
    assert not torch.allclose(sym, expected)


def test_cosent_is_zero_ish_for_perfect_order_and_large_for_reversed():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # cos 1, .707, 0
    good = CoSENTLoss()([a, b], torch.tensor([5.0, 3.0, 0.0]))
    bad = CoSENTLoss()([a, b], torch.tensor([0.0, 3.0, 5.0]))
    assert good < 0.01 < 5 < bad
    # all scores equal -> no ordered pairs -> log(1) = 0
    assert CoSENTLoss()([a, b], torch.ones(3)).item() == 0.0
    with pytest.raises(ValueError, match="two input columns and a score"):
        CoSENTLoss()([a], None)


def test_cosine_mse_scales_target():
    a = torch.tensor([[1.0, 0.0]])
    b = torch.tensor([[1.0, 0.0]])
    assert CosineMSELoss(score_scale=5.0)([a, b], torch.tensor([5.0])).item() == pytest.approx(0.0)
    assert CosineMSELoss(score_scale=5.0)([a, b], torch.tensor([0.0])).item() == pytest.approx(1.0)


def test_correlations_match_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    y = x + rng.normal(size=200)
    y[::7] = y[3]  # ties
    assert spearman(x, y) == pytest.approx(scipy_stats.spearmanr(x, y).statistic, abs=1e-12)
    assert pearson(x, y) == pytest.approx(scipy_stats.pearsonr(x, y).statistic, abs=1e-12)
    assert np.array_equal(rankdata([3, 1, 3, 2]), [3.5, 1, 3.5, 2])
    with pytest.raises(ValueError, match="equal length"):
        pearson([1, 2], [1, 2, 3])


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half-written")
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no temp file left behind
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"


def test_atomic_path_unwritable_dir_names_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="cannot create output directory .*file/sub"):
        with atomic_path(blocker / "sub" / "out.bin"):
            pass


def test_resolve_path_errors_and_package_scheme():
    with pytest.raises(FileNotFoundError, match="data file not found: /nope/x.csv"):
        resolve_path("/nope/x.csv", what="data file")
    assert resolve_path("package://sbert/tiny.yaml").name == "tiny.yaml"
