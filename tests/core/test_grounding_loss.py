"""GroundingLoss: caption-image hinge (sum of violations, VSE++ hardest negative) and InfoNCE, aware of captions
of the same image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from polymodal.losses import GroundingLoss, grounding_loss


def test_grounding_loss_ignores_pairs_of_the_same_image():
    img = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), dim=-1)
    cap = img.clone()  # every caption sits exactly on its image
    ids = torch.tensor([7, 7, 3])
    for kind in ("hinge_sum", "hinge_max"):
        assert grounding_loss(cap, img, ids, kind=kind).item() == pytest.approx(0.0)
        # treated as different images, the two captions of image 7 violate the margin
        assert grounding_loss(cap, img, None, kind=kind).item() > 0.1
    loss = GroundingLoss("infonce", temperature=0.1)
    masked = loss([cap, img], ids.float())
    unmasked = loss([cap, img], None)
    assert math.isfinite(masked.item()) and masked.item() < unmasked.item()


def test_grounding_loss_max_violation_is_bounded_by_sum_and_kind_is_checked():
    torch.manual_seed(0)
    cap = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    img = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    assert grounding_loss(cap, img, kind="hinge_max") <= grounding_loss(cap, img, kind="hinge_sum")
    with pytest.raises(ValueError, match="unknown loss kind"):
        GroundingLoss("triplet")
    with pytest.raises(ValueError, match="exactly"):
        GroundingLoss()([cap], None)


def test_averaged_token_similarity_is_the_dot_of_unit_token_means():
    """CG-VLM's score (mean cosine over every patch-token pair) equals the dot of MeanPooler(normalize_tokens)
    outputs; it differs from the cosine of the plain means (the mean-vs-mean form)."""
    from polymodal.features import Features
    from polymodal.losses.grounding import averaged_token_similarity
    from polymodal.poolers import MeanPooler

    torch.manual_seed(0)
    img, cap = torch.randn(3, 4, 8) * torch.rand(3, 4, 1) * 5, torch.randn(3, 6, 8)  # tokens of unequal norms
    img_mask = torch.ones(3, 4, dtype=torch.bool)
    cap_mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3, [1] * 1 + [0] * 5], dtype=torch.bool)
    ref = torch.stack(  # brute force over the pairs of real tokens
        [
            torch.stack(
                [
                    torch.nn.functional.cosine_similarity(img[i][:, None], cap[j][cap_mask[j]][None], dim=-1).mean()
                    for j in range(3)
                ]
            )
            for i in range(3)
        ]
    )
    torch.testing.assert_close(averaged_token_similarity(img, img_mask, cap, cap_mask), ref)
    unit = MeanPooler(normalize_tokens=True)
    a, b = unit(Features(sequence=img, mask=img_mask)), unit(Features(sequence=cap, mask=cap_mask))
    torch.testing.assert_close(a @ b.T, ref)
    plain = MeanPooler()
    cosine = torch.nn.functional.cosine_similarity(
        plain(Features(sequence=img, mask=img_mask))[:, None], plain(Features(sequence=cap, mask=cap_mask))[None], -1
    )
    assert (cosine - ref).abs().max() > 0.05  # the two forms are different scores
    assert unit.get_config() == {"normalize_tokens": True} and plain.get_config() == {}
    # InfoNCE on the dot score: logits are the averaged similarities / temperature, never re-normalised
    ids = torch.arange(3)
    logits = ref / 0.1
    expected = (torch.nn.functional.cross_entropy(logits, ids) + torch.nn.functional.cross_entropy(logits.T, ids)) / 2
    torch.testing.assert_close(GroundingLoss("infonce", temperature=0.1, similarity="dot")([a, b], None), expected)
    assert not torch.allclose(GroundingLoss("infonce", temperature=0.1)([a, b], None), expected)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: GroundingLoss("infonce", similarity="l2"), "unknown similarity"),
        (
            lambda: grounding_loss(torch.ones(2, 3), torch.ones(2, 3), kind="infonce", similarity="l2"),
            "unknown similarity",
        ),
    ],
)
def test_bad_similarity_is_one_line(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_grouped_retrieval_dot_ranks_by_the_given_vectors():
    from polymodal.metrics.step import Retrieval, grouped_retrieval

    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    d = np.array([[0.9, 0.1], [3.0, 3.0]])  # for q0 its doc 0 has the better cosine, doc 1 the bigger dot
    g = np.array([0, 1])
    cosine = grouped_retrieval(q, d, g, ks=(1,), names=("c", "i"))
    dot = grouped_retrieval(q, d, g, ks=(1,), names=("c", "i"), similarity="dot")
    assert cosine["c2i_r1"] == 1.0 and dot["c2i_r1"] == 0.5  # q0 -> doc 0 is right under cosine only
    with pytest.raises(ValueError, match="unknown similarity"):
        Retrieval("caption", "image", similarity="l2")
