"""A tower's own self-supervised loss (word prediction of a paragraph vector, skip-gram context prediction)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import Tensor

from polymodal.objectives.base import STAGES, Objective

if TYPE_CHECKING:  # pragma: no cover
    from polymodal.system import Step

__all__ = ["TowerLoss"]


class TowerLoss(Objective):
    """The loss a tower defines itself: ``tower.loss(inputs, features)`` on one input column.

    For models whose training signal is their own (PV-DBOW predicts a document's words from its code,
    skip-gram predicts context words): the tower exposes ``loss(inputs, features=None) -> scalar``. When the
    tower sets ``loss_reads_features = True`` it gets the Step's features of the column (computed once and
    shared with the metrics, e.g. inferred codes of unseen documents); otherwise ``None``.

    Args:
        tower: the tower's name.
        column: the input column (default: the batch's only input column).
        weight: weight in the total loss.
        stages: where it runs.
    """

    def __init__(
        self, tower: str, column: str | None = None, weight: float = 1.0, stages: Sequence[str] = STAGES
    ) -> None:
        super().__init__(weight, stages)
        self.tower, self.column = tower, column

    def requires(self) -> tuple[list[str], list[str]]:
        return [self.column] if self.column else [], []

    def forward(self, step: Step) -> Tensor:
        column = self.column or step.only_column()
        model = step.system.towers[self.tower]
        if not callable(getattr(model, "loss", None)):
            raise TypeError(f"objective {self.name!r}: tower {self.tower!r} ({type(model).__name__}) has no loss()")
        features = step.features(column) if getattr(model, "loss_reads_features", False) else None
        return model.loss(step.inputs_of(column), features)
