"""Losses: maths against hand computations, 2DMSE, distillation, focal, GradCache, mining."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from polymodal.losses import (
    CachedInfoNCELoss,
    CoSENTLoss,
    EmbeddingDistillationLoss,
    FocalInfoNCELoss,
    InfoNCELoss,
    Matryoshka2DLoss,
    MatryoshkaLoss,
    ScoreDistillationLoss,
    info_nce_loss,
    mine_hard_negatives,
)
from polymodal.losses.cached import _RandState
from polymodal.losses.context import slice_inputs
from polymodal.losses.matryoshka2d import layer_kl_loss, layer_weight
from polymodal.model import EmbeddingModel
from polymodal.plugins.text import TextEncoder
from polymodal.poolers import MeanPooler
from tests.helpers import TINY_BERT as BASE_TINY_BERT

TINY_BERT = dict(BASE_TINY_BERT, max_position_embeddings=128, num_hidden_layers=3)
TEXTS_A = ["a cat sits", "the dog runs fast", "red car", "a bird sings in the tree", "hot coffee", "old books"]
TEXTS_B = ["a cat is sitting", "a dog running", "a red automobile", "birds singing", "warm coffee", "used books"]


def _encoder(dropout: float = 0.0, hidden_states: bool = False) -> TextEncoder:
    torch.manual_seed(0)
    cfg = dict(TINY_BERT, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return TextEncoder(model=cfg, tokenizer="bytes", max_length=64, hidden_states=hidden_states)


def _context(encoder: TextEncoder, pooler=None, target=None, stage: str = "train"):
    """The per-step context a System hands its objectives: two text columns (+ a score target)."""
    from polymodal.contracts import Batch
    from polymodal.system import Step, System

    system = System(tower=encoder, pooler=pooler or MeanPooler(), loss=InfoNCELoss())
    proc = encoder.processor
    targets = {} if target is None else {"score": target}
    return Step(system, Batch(inputs={"a": proc(TEXTS_A), "b": proc(TEXTS_B)}, targets=targets), stage)


def test_matryoshka_equals_sum_over_prefixes():
    a, b = torch.randn(5, 8), torch.randn(5, 8)
    s = torch.rand(5)
    inner = CoSENTLoss()
    got = MatryoshkaLoss(inner, dims=[8, 4, 2], weights=[1.0, 0.5, 0.25])([a, b], s)
    want = inner([a, b], s) + 0.5 * inner([a[:, :4], b[:, :4]], s) + 0.25 * inner([a[:, :2], b[:, :2]], s)
    torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match=r"\[1, 8\]"):
        MatryoshkaLoss(inner, dims=[16])([a, b], s)


def test_layer_weighting_variants():
    assert layer_weight(3, "uniform") == 1.0
    assert layer_weight(3, "linear") == pytest.approx(0.25)
    assert layer_weight(3, "log") == pytest.approx(1 / (1 + math.log(4)))
    with pytest.raises(ValueError, match="uniform"):
        Matryoshka2DLoss(CoSENTLoss(), dims=[8], layer_weighting="cubic")


def test_matryoshka2d_equals_manual_objective(monkeypatch):
    enc = _encoder(hidden_states=True).eval()
    scores = torch.linspace(0, 5, len(TEXTS_A))
    ctx = _context(enc, target=scores)
    inner = CoSENTLoss()
    loss = Matryoshka2DLoss(inner, dims=[32, 8], layer_weighting="linear", kl_weight=0.5, kl_temperature=0.3)
    monkeypatch.setattr(loss, "sample_layers", lambda n: [2])
    got = loss.loss_from_context(ctx)
    fa, fb = enc(ctx.inputs[0]), enc(ctx.inputs[1])
    pool = MeanPooler()
    last = [pool(fa), pool(fb)]
    mid = [pool(fa.at_layer(2)), pool(fb.at_layer(2))]

    def mat(e):
        return inner(e, scores) + inner([x[:, :8] for x in e], scores)

    kl = (layer_kl_loss(mid[0], last[0], 0.3) + layer_kl_loss(mid[1], last[1], 0.3)) / 2
    want = mat(last) + (1 / 3) * mat(mid) + 0.5 * kl
    torch.testing.assert_close(got, want)
    got.backward()  # trains the sampled (earlier) layer too
    assert enc.model.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0
    # sampling covers the candidate layers and respects layers_per_step
    torch.manual_seed(1)
    picks = {tuple(Matryoshka2DLoss(inner, dims=[8], layers_per_step=2).sample_layers(4)) for _ in range(30)}
    assert all(len(p) == 2 and set(p) <= {1, 2, 3} for p in picks) and len(picks) > 1
    with pytest.raises(ValueError, match="outside"):
        Matryoshka2DLoss(inner, dims=[8], layers=[5]).sample_layers(4)


def test_matryoshka2d_requires_hidden_states():
    ctx = _context(_encoder(hidden_states=False), target=torch.rand(len(TEXTS_A)))
    with pytest.raises(ValueError, match="hidden_states=True"):
        Matryoshka2DLoss(CoSENTLoss(), dims=[8]).loss_from_context(ctx)


def test_embedding_distillation_zero_for_identical_teacher_and_learns():
    teacher_enc = _encoder().eval()
    teacher = EmbeddingModel(teacher_enc, MeanPooler())
    student = _encoder().eval()
    student.load_state_dict(teacher_enc.state_dict())
    loss = EmbeddingDistillationLoss(teacher)
    assert loss.loss_from_context(_context(student)).item() == pytest.approx(0.0, abs=1e-10)
    torch.manual_seed(3)
    fresh = TextEncoder(model=TINY_BERT, tokenizer="bytes", max_length=64).eval()
    value = loss.loss_from_context(_context(fresh))
    assert value.item() > 1e-3
    value.backward()
    assert all(p.grad is None for p in teacher.parameters())  # teacher frozen
    torch.testing.assert_close(loss(_context(fresh)), value)  # forward(step) is the same objective
    projected = EmbeddingDistillationLoss(teacher, student_dim=16)
    assert projected.projection is not None and projected.projection.in_features == 16


def test_score_distillation_is_mse_of_cosine_to_scaled_teacher():
    a, b = torch.randn(4, 6), torch.randn(4, 6)
    t = torch.tensor([5.0, 0.0, 2.5, 4.0])
    got = ScoreDistillationLoss(scale=5.0)([a, b], t)
    torch.testing.assert_close(got, ((F.cosine_similarity(a, b) - t / 5) ** 2).mean())


def test_focal_reduces_to_infonce_at_gamma_zero_and_downweights_easy_pairs():
    torch.manual_seed(0)
    a, p, n = torch.randn(6, 8), torch.randn(6, 8), torch.randn(6, 8)
    torch.testing.assert_close(FocalInfoNCELoss(gamma=0.0)([a, p, n]), InfoNCELoss()([a, p, n]))
    logits = F.normalize(a) @ F.normalize(torch.cat([p, n])).T / 0.05
    logp = F.log_softmax(logits, -1)[torch.arange(6), torch.arange(6)]
    want = -((1 - logp.exp()) ** 2 * logp).mean()
    torch.testing.assert_close(FocalInfoNCELoss(gamma=2.0)([a, p, n]), want)
    # an easy pair (positive == anchor) contributes less than under plain InfoNCE
    easy = [a, a.clone()]
    assert FocalInfoNCELoss(gamma=2.0)(easy) < InfoNCELoss()(easy)
    sym = FocalInfoNCELoss(gamma=0.0, symmetric=True)([a, p])
    torch.testing.assert_close(sym, InfoNCELoss(symmetric=True)([a, p]))


def test_slice_inputs_trims_unused_padding():
    batch = {
        "input_ids": torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]]),
    }
    part = slice_inputs(batch, 1, 2)
    assert part["input_ids"].tolist() == [[4, 5]] and part["attention_mask"].tolist() == [[1, 1]]


@pytest.mark.parametrize("symmetric,streams", [(False, 1), (True, 1), (False, 2), (True, 3)])
def test_cached_infonce_equals_plain_loss_and_gradients(symmetric, streams):
    enc = _encoder().eval()  # no dropout: both runs see identical forward passes (and streams may run)
    ctx = _context(enc)
    plain = InfoNCELoss(symmetric=symmetric)([ctx.embed(0), ctx.embed(1)])
    plain.backward()
    want = {n: p.grad.clone() for n, p in enc.named_parameters() if p.grad is not None}
    enc.zero_grad()
    loss = CachedInfoNCELoss(mini_batch_size=2, symmetric=symmetric, streams=streams)
    assert loss._streams(ctx.inputs[0], _RandState()) == streams  # random-free forward: streams allowed
    cached = loss.loss_from_context(ctx)
    torch.testing.assert_close(cached, plain.detach(), atol=1e-6, rtol=1e-6)
    assert all(p.grad is None for p in enc.parameters())  # nothing happens before backward
    cached.backward()
    got = {n: p.grad for n, p in enc.named_parameters() if p.grad is not None}
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-5, rtol=1e-4, msg=name)


def test_cached_infonce_replays_dropout_exactly():
    enc = _encoder(dropout=0.3).train()
    ctx = _context(enc)
    # record every embedding call: first the no-grad pass, then the re-forward in backward
    calls: list[torch.Tensor] = []
    real_embed = ctx.embed

    def embed(j, inputs=None):
        out = real_embed(j, inputs)
        calls.append(out.detach().clone())
        return out

    ctx.embed = embed  # type: ignore[method-assign]
    loss = CachedInfoNCELoss(mini_batch_size=4, streams=2)(ctx)  # dropout: runs sequentially
    n_first = len(calls)
    loss.backward()
    assert len(calls) == 2 * n_first
    for first, second in zip(calls[:n_first], calls[n_first:]):
        torch.testing.assert_close(first, second)  # same dropout masks in the re-forward


def test_cached_without_grad_is_plain_infonce():
    enc = _encoder().eval()
    ctx = _context(enc)
    with torch.no_grad():
        got = CachedInfoNCELoss(mini_batch_size=3)(ctx)
        want = info_nce_loss(ctx.embed(0), ctx.embed(1), torch.arange(len(TEXTS_A)), 0.05)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)


class _LookupModel:
    """encode() from a fixed table of vectors (exact control over similarities)."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    def encode(self, values, batch_size=64):
        return np.array([self.table[v] for v in values], dtype=np.float32)


def test_mine_hard_negatives_margin_filters_false_negatives():
    table = {
        "q": [1.0, 0.0],
        "pos": [0.9, 0.1],
        "near_dup": [0.95, 0.05],  # scores above the positive: a likely false negative
        "hard": [0.6, 0.4],
        "easy": [0.0, 1.0],
    }
    model = _LookupModel(table)
    mined = mine_hard_negatives(model, ["q"], ["pos"], corpus=["pos", "near_dup", "hard", "easy"], margin=0.05)
    assert mined.negatives == [["hard"]] and mined.filtered == 1
    unfiltered = mine_hard_negatives(model, ["q"], ["pos"], corpus=["pos", "near_dup", "hard", "easy"], margin=None)
    assert unfiltered.negatives == [["near_dup"]] and unfiltered.filtered == 0
    rel = mine_hard_negatives(model, ["q"], ["pos"], corpus=list(table)[1:], relative_margin=0.5, margin=None)
    assert rel.negatives == [["easy"]]
    two = mine_hard_negatives(model, ["q"], ["pos"], corpus=list(table)[1:], num_negatives=2, margin=0.0)
    assert two.negatives == [["hard", "easy"]]
    assert two.triplets(["q"], ["pos"]) == [("q", "pos", "hard"), ("q", "pos", "easy")]
    with pytest.raises(ValueError, match="2 positives"):
        mine_hard_negatives(model, ["q"], ["pos", "pos"])


def test_distillation_rejects_token_ids_outside_the_teacher_vocabulary():
    teacher = EmbeddingModel(_encoder(), MeanPooler())
    ctx = _context(_encoder())
    ctx.inputs[0]["input_ids"][0, 0] = 500
    with pytest.raises(ValueError, match="share the tokenizer"):
        EmbeddingDistillationLoss(teacher).loss_from_context(ctx)


def test_batch_loss_system_trains_with_cached_loss_under_lightning(tmp_path):
    import pytorch_lightning as pl

    from polymodal.data import TableDataModule
    from polymodal.presets import ContrastiveSystem
    from polymodal.recipes import recipe_root

    enc = _encoder()
    system = ContrastiveSystem(encoder=enc, loss=CachedInfoNCELoss(mini_batch_size=4), warmup_ratio=0.0)
    before = {n: p.detach().clone() for n, p in enc.named_parameters()}
    data = TableDataModule(
        train=str(recipe_root() / "sbert" / "data" / "stsb_train_sample.tsv.gz"),
        inputs=["sentence1", "sentence2"],
        batch_size=12,
        drop_last=True,
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(system, data)
    assert np.isfinite(float(trainer.callback_metrics["train/loss"]))
    moved = [n for n, p in enc.named_parameters() if not torch.equal(p, before[n])]
    assert len(moved) > 0.9 * len(before)  # the cached gradients reached (almost) every weight


@pytest.mark.parametrize("symmetric", [False, True])
def test_infonce_exclude_same_group_drops_only_same_group_candidates(symmetric):
    from polymodal.losses import InfoNCELoss

    torch.manual_seed(0)
    a, p, n = torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 8)
    groups = torch.tensor([0, 0, 1, 2])  # rows 0 and 1 come from the same source text
    loss = InfoNCELoss(temperature=0.1, symmetric=symmetric, exclude_same_group=True)
    logits = torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(torch.cat([p, n]), dim=-1).T / 0.1
    mask = torch.zeros(4, 8, dtype=torch.bool)
    mask[0, 1] = mask[1, 0] = True  # each other's positive is no negative; hard negatives (columns 4-7) stay
    want = torch.nn.functional.cross_entropy(logits.masked_fill(mask, float("-inf")), torch.arange(4))
    if symmetric:
        back = torch.nn.functional.normalize(p, dim=-1) @ torch.nn.functional.normalize(a, dim=-1).T / 0.1
        want = (
            want + torch.nn.functional.cross_entropy(back.masked_fill(mask[:, :4], float("-inf")), torch.arange(4))
        ) / 2
    torch.testing.assert_close(loss([a, p, n], groups), want)
    plain = InfoNCELoss(temperature=0.1, symmetric=symmetric)([a, p, n])
    torch.testing.assert_close(loss([a, p, n], groups.float()), plain)  # a float target (an STS score) is no group
    torch.testing.assert_close(loss([a, p, n], torch.arange(4)), plain)  # all groups distinct: the plain loss
    with pytest.raises(ValueError, match=r"one group id per row \(4,\)"):
        loss([a, p, n], torch.zeros(3, dtype=torch.long))
