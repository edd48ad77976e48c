"""GroundingLoss: caption-image hinge (sum of violations, VSE++ hardest negative) and InfoNCE, aware of captions
of the same image."""

from __future__ import annotations

import math

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
