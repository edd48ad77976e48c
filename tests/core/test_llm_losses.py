"""Losses of the LLM-embedder recipe against hand computations: hard-negative mixing (KaLM-V2), progressive
sample weighting (PEG, also inside the GradCache loss), false-negative margin filtering (LG-ANNA / NV-Retriever)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from polymodal.losses import (
    CachedInfoNCELoss,
    HardNegativeMixingLoss,
    InfoNCELoss,
    MarginFilteredInfoNCELoss,
    ProgressiveInfoNCELoss,
    hard_negative_mixing_loss,
    mix_hard_negatives,
)
from tests.core.test_losses import TEXTS_A, TEXTS_B, _context, _encoder


def _v(*xs: float) -> torch.Tensor:
    return torch.tensor([list(xs)], dtype=torch.float32)


def test_mixing_with_top1_adds_the_hardest_negative_again():
    # anchor [1, 0]; positive [1, 0]; negatives [0, 1] (sim 0) and [0.6, 0.8] (sim 0.6, the hardest)
    anchor, positive, easy, hard = _v(1, 0), _v(1, 0), _v(0, 1), _v(0.6, 0.8)
    loss = HardNegativeMixingLoss(temperature=1.0, top_k=1, num_mixed=1).train()
    got = loss([anchor, positive, easy, hard])
    want = -math.log(math.e / (math.e + 1 + 2 * math.exp(0.6)))  # logits [1, 0, 0.6] + mixed 0.6
    assert got.item() == pytest.approx(want, rel=1e-6)
    # evaluation: plain InfoNCE, no synthetic negatives
    assert loss.eval()([anchor, positive, easy, hard]).item() == pytest.approx(
        -math.log(math.e / (math.e + 1 + math.exp(0.6))), rel=1e-6
    )


def test_mixed_negatives_are_normalised_mixtures_of_the_top_k_never_the_positive():
    anchors = F.normalize(torch.tensor([[1.0, 0.0, 0.0]]), dim=-1)
    # candidates: positive (index 0, the most similar), two hard ones, one far away
    cands = F.normalize(torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.4, 0.0], [0.8, 0.0, 0.6], [-1.0, 0.1, 0.0]]), dim=-1)
    mixed = mix_hard_negatives(anchors, cands, torch.tensor([0]), top_k=2, num_mixed=16, alpha=0.5,
                               generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert mixed.shape == (1, 16, 3)
    allowed = torch.stack([cands[1], cands[2], F.normalize(cands[1] + cands[2], dim=0)])  # (3, D)
    dist = torch.cdist(mixed[0], allowed).min(dim=1).values
    assert float(dist.max()) < 1e-6  # each is n1, n2 or their normalised midpoint: never the positive or far one
    torch.testing.assert_close(mixed.norm(dim=-1), torch.ones(1, 16))
    assert not mixed.requires_grad


def test_mixing_loss_gradient_skips_the_synthetic_negatives():
    anchors = torch.randn(4, 8, requires_grad=True)
    cands = torch.randn(8, 8, requires_grad=True)
    mixed = mix_hard_negatives(F.normalize(anchors.detach(), dim=-1), F.normalize(cands.detach(), dim=-1),
                               torch.arange(4), top_k=3, num_mixed=5)  # fmt: skip
    hard_negative_mixing_loss(anchors, cands, torch.arange(4), mixed).backward()
    assert anchors.grad is not None and cands.grad is not None  # the mixture itself is a constant


def test_progressive_weights_grow_from_infonce_to_focal_over_the_schedule():
    # two anchors: [1, 0] and [0, 1]; positives equal to them; T = 1
    anchors, positives = torch.eye(2), torch.eye(2)
    loss = ProgressiveInfoNCELoss(total_steps=2, gamma=2.0, temperature=1.0).train()
    p = math.e / (math.e + 1)  # each anchor's positive probability (by symmetry the same for both)
    first = loss([anchors, positives])  # gamma_t = 0: plain InfoNCE
    assert first.item() == pytest.approx(-math.log(p), rel=1e-6)
    assert loss.current_gamma() == pytest.approx(1.0) and int(loss.steps) == 1
    # unequal anchors: a = [1, 0] (easy), b = [0.6, 0.8] vs positives [1, 0], [0, 1]
    a = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    p_a = math.e / (math.e + 1)  # sims [1, 0]
    p_b = math.exp(0.8) / (math.exp(0.6) + math.exp(0.8))  # sims [0.6, 0.8]
    w = [(1 - p_a) ** 1.0, (1 - p_b) ** 1.0]
    w = [x / (sum(w) / 2) for x in w]
    want = -(w[0] * math.log(p_a) + w[1] * math.log(p_b)) / 2
    assert loss([a, positives]).item() == pytest.approx(want, rel=1e-6)  # gamma_t = 1
    assert loss.current_gamma() == pytest.approx(2.0)
    loss.eval()([a, positives])
    assert int(loss.steps) == 2  # evaluation does not advance the schedule
    assert "steps" in loss.state_dict()  # a resumed run continues the schedule


def test_progressive_inside_the_cached_loss_equals_it_on_the_whole_batch():
    enc = _encoder().eval()
    ctx = _context(enc)
    plain = ProgressiveInfoNCELoss(total_steps=4, gamma=2.0)
    plain.steps.fill_(2)  # gamma_t = 1: weights differ between anchors
    want = plain([ctx.embed(0), ctx.embed(1)])
    want.backward()
    grads = {n: p.grad.clone() for n, p in enc.named_parameters() if p.grad is not None}
    enc.zero_grad()
    inner = ProgressiveInfoNCELoss(total_steps=4, gamma=2.0)
    inner.steps.fill_(2)
    cached = CachedInfoNCELoss(mini_batch_size=2, streams=1, loss=inner).loss_from_context(ctx)
    torch.testing.assert_close(cached, want.detach(), atol=1e-6, rtol=1e-6)
    cached.backward()
    for name, grad in grads.items():
        torch.testing.assert_close(dict(enc.named_parameters())[name].grad, grad, atol=1e-5, rtol=1e-4, msg=name)
    assert int(inner.steps) == 3  # one schedule step per training step


def test_margin_filter_drops_candidates_too_close_to_the_positive():
    anchor, positive = _v(1, 0), _v(1, 0)
    near = _v(0.98, math.sqrt(1 - 0.98**2))  # sim 0.98 > 0.95 * 1: a likely false negative
    far = _v(0.5, math.sqrt(0.75))  # sim 0.5: kept
    got = MarginFilteredInfoNCELoss(temperature=1.0, relative_margin=0.95)([anchor, positive, near, far])
    assert got.item() == pytest.approx(-math.log(math.e / (math.e + math.exp(0.5))), rel=1e-5)
    # absolute margin 0.4: 0.98 > 1 - 0.4 dropped, 0.5 kept; margin 0.01: both kept (plain InfoNCE)
    got = MarginFilteredInfoNCELoss(temperature=1.0, relative_margin=None, margin=0.4)([anchor, positive, near, far])
    assert got.item() == pytest.approx(-math.log(math.e / (math.e + math.exp(0.5))), rel=1e-5)
    kept = MarginFilteredInfoNCELoss(temperature=1.0, relative_margin=None, margin=0.01)([anchor, positive, near, far])
    plain = InfoNCELoss(temperature=1.0)([anchor, positive, near, far])
    torch.testing.assert_close(kept, plain)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: HardNegativeMixingLoss(top_k=0), "top_k >= 1"),
        (lambda: HardNegativeMixingLoss(alpha=1.5), r"alpha must be in \[0, 1\]"),
        (lambda: ProgressiveInfoNCELoss(total_steps=0), "total_steps >= 1"),
        (lambda: ProgressiveInfoNCELoss(total_steps=10, gamma=-1), "gamma >= 0"),
        (lambda: MarginFilteredInfoNCELoss(relative_margin=None, margin=None), "give relative_margin or margin"),
        (lambda: MarginFilteredInfoNCELoss(temperature=0), "temperature must be > 0"),
    ],
)
def test_bad_arguments_one_line(make, message):
    with pytest.raises(ValueError, match=message) as info:
        make()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("loss", [HardNegativeMixingLoss(), ProgressiveInfoNCELoss(total_steps=3),
                                  MarginFilteredInfoNCELoss()])  # fmt: skip
def test_one_column_is_refused(loss):
    with pytest.raises(ValueError, match="anchor and a positive"):
        loss([torch.randn(2, 4)])


def test_listwise_kl_against_a_hand_computed_value():
    from polymodal.losses import listwise_kl_loss

    query = torch.tensor([[1.0, 0.0]])
    cands = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # cosines 1 and 0
    p1, p2 = math.e / (math.e + 1), 1 / (math.e + 1)
    got = listwise_kl_loss(query, cands, torch.zeros(1, 2), temperature=1.0)  # uniform teacher
    assert got.item() == pytest.approx(0.5 * math.log(0.5 / p1) + 0.5 * math.log(0.5 / p2), rel=1e-6)
    # a teacher equal to the student's own logits: zero divergence
    same = listwise_kl_loss(query, cands, torch.tensor([[1.0, 0.0]]), temperature=1.0, teacher_temperature=1.0)
    assert same.item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match=r"teacher \(B, K\)"):
        listwise_kl_loss(query, cands, torch.zeros(1, 3))


def test_listwise_objective_reads_candidate_columns_and_teacher_targets():
    from polymodal.contracts import Batch
    from polymodal.losses import ListwiseDistillationLoss, info_nce_loss, listwise_kl_loss
    from polymodal.poolers import MeanPooler
    from polymodal.system import Step, System

    enc = _encoder().eval()
    proc = enc.processor
    teacher = {"t_pos": torch.tensor([3.0, 1.0, 0.5]), "t_neg": torch.tensor([-1.0, 0.0, 2.0])}
    objective = ListwiseDistillationLoss(columns=["q", "pos", "neg"], teacher=["t_pos", "t_neg"], temperature=0.1)
    system = System(tower=enc, pooler=MeanPooler(), objectives={"soft": objective})
    inputs = {"q": proc(TEXTS_A[:3]), "pos": proc(TEXTS_B[:3]), "neg": proc(TEXTS_B[3:6])}
    step = Step(system, Batch(inputs=inputs, targets=teacher), "train")
    q, pos, neg = step.embeddings(["q", "pos", "neg"])
    want = listwise_kl_loss(q, torch.stack([pos, neg], 1), torch.stack([teacher["t_pos"], teacher["t_neg"]], 1), 0.1)
    torch.testing.assert_close(objective(step), want)
    assert objective.requires() == (["q", "pos", "neg"], ["t_pos", "t_neg"])
    both = ListwiseDistillationLoss(["q", "pos", "neg"], ["t_pos", "t_neg"], temperature=0.1, contrastive_weight=0.5)
    in_batch = info_nce_loss(q, torch.cat([pos, neg]), torch.arange(3), 0.1)
    torch.testing.assert_close(both(step), want + 0.5 * in_batch)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"columns": ["q", "p"], "teacher": ["t"]}, "K >= 2"),
        ({"columns": ["q", "p", "n"], "teacher": ["t"]}, "3 columns and 1 teacher targets"),
        ({"columns": ["q", "p", "n"], "teacher": ["a", "b"], "temperature": 0}, "temperatures must be > 0"),
    ],
)
def test_listwise_bad_arguments_one_line(kwargs, message):
    from polymodal.losses import ListwiseDistillationLoss

    with pytest.raises(ValueError, match=message) as info:
        ListwiseDistillationLoss(**kwargs)
    assert "\n" not in str(info.value)
