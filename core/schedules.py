"""Learning-rate schedules shared by the systems."""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["with_warmup_cosine", "with_warmup_linear_decay"]


def with_warmup_linear_decay(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float) -> Any:
    """Lightning ``configure_optimizers`` result: linear warm-up over ``warmup_ratio`` of
    ``total_steps``, then linear decay to 0 (the sentence-transformers schedule), stepped per
    batch. ``warmup_ratio <= 0`` returns the bare optimizer (constant learning rate)."""
    if warmup_ratio <= 0:
        return optimizer
    total = max(1, int(total_steps))
    warmup = int(math.floor(total * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def with_warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float, min_lr_ratio: float = 0.0
) -> Any:
    """Lightning ``configure_optimizers`` result: linear warm-up over ``warmup_ratio`` of
    ``total_steps``, then cosine decay to ``min_lr_ratio`` times the base rate, stepped per batch."""
    total = max(1, int(total_steps))
    warmup = int(math.floor(total * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
