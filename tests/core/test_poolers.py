"""Poolers on the Features shapes every built-in modality produces, and their exact maths."""

from __future__ import annotations

import pytest
import torch

from polymodal.features import Features
from polymodal.poolers import (
    POOLERS,
    MeanPooler,
    MultiLayerAttentionPooler,
    PromptedProcessor,
    PromptLastTokenPooler,
    PromptTemplate,
    WeightedMeanPooler,
    build_pooler,
    pooler_config,
    pooler_from_config,
)
from polymodal.poolers.weighted_mean import position_weights

D, L = 16, 3


def _features(kind: str, B: int = 3, T: int = 6) -> Features:
    """Features like each built-in modality returns them (text: right padding; pixel/glyph:
    full patch grids; timeseries: left-padded windows), with hidden states."""
    g = torch.Generator().manual_seed(0)
    states = tuple(torch.randn(B, T, D, generator=g) for _ in range(L + 1))
    mask = torch.ones(B, T, dtype=torch.bool)
    if kind == "text":
        mask[1, 4:] = False
        mask[2, 2:] = False
    elif kind == "timeseries":
        mask[0, :3] = False
    return Features(sequence=states[-1], mask=mask, hidden_states=states)


def _make(name: str):
    if name == "multilayer":
        return MultiLayerAttentionPooler(dim=D, num_layers=L + 1, num_heads=2)
    return build_pooler(name)


@pytest.mark.parametrize("kind", ["text", "pixel", "glyph", "timeseries"])
@pytest.mark.parametrize("name", sorted(POOLERS))
def test_every_pooler_on_every_modality_shape(name, kind):
    feats = _features(kind)
    pooler = _make(name)
    out = pooler(feats)
    assert out.shape == (3, D)
    assert torch.isfinite(out).all()
    # padding content must not leak into the result
    noisy = Features(
        sequence=feats.sequence.masked_fill(~feats.mask.unsqueeze(-1), 1e4),
        mask=feats.mask,
        hidden_states=tuple(h.masked_fill(~feats.mask.unsqueeze(-1), 1e4) for h in feats.hidden_states),
    )
    if name != "cls" or kind != "timeseries":  # cls reads position 0, padding there by construction
        torch.testing.assert_close(pooler(noisy), out)
    # config round trip gives the same module type and output (same weights for trainable ones)
    rebuilt = pooler_from_config(pooler_config(pooler))
    rebuilt.load_state_dict(pooler.state_dict())
    torch.testing.assert_close(rebuilt(feats), out)


def test_weighted_mean_matches_hand_computation_and_is_padding_side_invariant():
    seq = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    out = WeightedMeanPooler()(Features(seq, right))
    assert out[0, 0].item() == pytest.approx((1 * 0 + 2 * 1 + 3 * 2) / 6)
    assert out[1, 0].item() == pytest.approx((1 * 4 + 2 * 5 + 3 * 6 + 4 * 7) / 10)
    left_seq = torch.cat([torch.zeros(1, 1, 1), seq[:1, :3]], dim=1)
    left = torch.tensor([[0, 1, 1, 1]], dtype=torch.bool)
    torch.testing.assert_close(WeightedMeanPooler()(Features(left_seq, left)), out[:1])
    torch.testing.assert_close(position_weights(right, "uniform").sum(1), torch.ones(2))
    torch.testing.assert_close(WeightedMeanPooler("uniform")(Features(seq, right)), MeanPooler()(Features(seq, right)))
    with pytest.raises(ValueError, match="linear"):
        WeightedMeanPooler("cubic")


def test_weighted_mean_equals_sentence_transformers_weightedmean():
    pytest.importorskip("sentence_transformers")
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling

    feats = _features("text")
    pooling = Pooling(D, pooling_mode="weightedmean")
    ref = pooling({"token_embeddings": feats.sequence, "attention_mask": feats.mask.long()})["sentence_embedding"]
    torch.testing.assert_close(WeightedMeanPooler()(feats), ref)


def test_multilayer_starts_as_last_layer_mean_and_trains():
    feats = _features("text")
    pooler = MultiLayerAttentionPooler(dim=D, num_layers=L + 1, num_heads=4)
    torch.testing.assert_close(pooler(feats), MeanPooler()(feats))  # zero-initialised output projection
    opt = torch.optim.SGD(pooler.parameters(), lr=0.5)
    target = torch.randn(3, D)
    losses = []
    for _ in range(20):
        loss = (pooler(feats) - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    # now every layer matters: changing layer 1 changes the output
    changed = list(feats.hidden_states)
    changed[1] = changed[1] + torch.randn_like(changed[1])
    other = Features(feats.sequence, feats.mask, hidden_states=tuple(changed))
    assert not torch.allclose(pooler(other), pooler(feats))


def test_multilayer_errors_are_clear():
    pooler = MultiLayerAttentionPooler(dim=D, num_layers=L + 1, num_heads=2)
    with pytest.raises(ValueError, match="hidden_states=True"):
        pooler(Features(torch.zeros(1, 2, D), torch.ones(1, 2)))
    with pytest.raises(ValueError, match="num_layers=9"):
        MultiLayerAttentionPooler(dim=D, num_layers=9, num_heads=2)(_features("text"))
    with pytest.raises(ValueError, match="divide"):
        MultiLayerAttentionPooler(dim=D, num_layers=2, num_heads=3)
    with pytest.raises(ValueError, match="token pooling"):
        MultiLayerAttentionPooler(dim=D, num_layers=2, num_heads=2, token_pooling="median")


def test_prompt_template_and_processor():
    t = PromptTemplate("prompteol")
    assert t("A {b} c") == 'This sentence : "A {b} c" means in one word:"'
    with pytest.raises(ValueError, match="exactly once"):
        PromptTemplate("no slot here")
    seen = []

    class Echo:
        def __call__(self, values):
            seen.extend(values)
            return {"n": torch.tensor([len(values)])}

        def lengths(self, values):
            return [len(v) for v in values]

        def validate(self, value):
            pass

    proc = PromptedProcessor(Echo(), "Q: {text}")
    proc(["x", "yy"])
    assert seen == ["Q: x", "Q: yy"]
    assert proc.lengths(["x"]) == [4]
    import pickle

    assert pickle.loads(pickle.dumps(PromptedProcessor(MeanPooler, "{text}"))).template.template == "{text}"
    assert PromptLastTokenPooler("one_word").get_config()["template"].startswith("This sentence:")
