"""Objectives: what a :class:`polymodal.System` minimises, one small module each.

An objective is an ``nn.Module`` whose ``forward(step)`` returns a scalar loss from the per-step context
:class:`polymodal.system.Step`, in which every tower's features and embeddings are computed once and shared
by all objectives and metrics. Objectives may also run the towers themselves (GradCache re-embeds in
mini-batches, 2D Matryoshka reads every layer, distillation runs a teacher). A plain pooled-embedding loss
(``loss(embeddings, target)``: InfoNCE, CoSENT, ...) given where an objective is expected is wrapped in
:class:`EmbeddingLoss` by the System.
"""

from __future__ import annotations

from polymodal.objectives.base import EmbeddingLoss, Objective
from polymodal.objectives.heads import HeadLoss
from polymodal.objectives.language import CausalLMLoss
from polymodal.objectives.prefix_lm import PrefixLMLoss
from polymodal.objectives.tokens import TokenClassificationLoss
from polymodal.objectives.tower import TowerLoss

__all__ = [
    "CausalLMLoss",
    "EmbeddingLoss",
    "HeadLoss",
    "Objective",
    "PrefixLMLoss",
    "TokenClassificationLoss",
    "TowerLoss",
]
