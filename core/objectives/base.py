"""The objective contract and the wrapper for pooled-embedding losses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import Tensor, nn

if TYPE_CHECKING:  # pragma: no cover
    from polymodal.system import Step

__all__ = ["Objective", "EmbeddingLoss"]

STAGES = ("train", "val", "test")


class Objective(nn.Module):
    """Base class of everything a :class:`~polymodal.System` minimises.

    Args:
        weight: the objective's weight in the total loss.
        stages: where it runs; in ``val`` / ``test`` its value is logged as ``<stage>/<name>`` and summed
            into ``<stage>/loss``.

    Subclasses implement :meth:`forward` and, when they need particular input columns or targets, list them
    in :meth:`requires` so that a split without them (e.g. an STS validation set under an NLI-triplet
    objective) skips the objective explicitly instead of failing.
    """

    #: Set by the System: the objective's name (its key in ``objectives``).
    name: str = ""

    def __init__(self, weight: float = 1.0, stages: Sequence[str] = STAGES) -> None:
        super().__init__()
        if weight < 0:
            raise ValueError(f"objective weight must be >= 0, got {weight}")
        unknown = sorted(set(stages) - set(STAGES))
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; choose from {list(STAGES)}")
        self.weight = float(weight)
        self.stages = tuple(stages)

    def requires(self) -> tuple[list[str], list[str]]:
        """``(input columns, target names)`` a batch must hold for this objective (default: nothing)."""
        return [], []

    def forward(self, step: Step) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class EmbeddingLoss(Objective):
    """A pooled-embedding loss ``loss(embeddings, target)`` over input columns.

    Args:
        loss: any loss over a list of ``(B, D)`` embeddings and an optional target (``InfoNCELoss``,
            ``CoSENTLoss``, ``MatryoshkaLoss`` ...).
        columns: the input columns, in the order the loss expects (default: every input column of the batch).
        target: the target name (default: the batch's only target, or none).
        weight: weight in the total loss.
        stages: where it runs.
    """

    def __init__(
        self,
        loss: nn.Module,
        columns: Sequence[str] | None = None,
        target: str | None = None,
        weight: float = 1.0,
        stages: Sequence[str] = STAGES,
    ) -> None:
        super().__init__(weight, stages)
        self.loss = loss
        self.columns = None if columns is None else [str(c) for c in columns]
        self.target = target

    def requires(self) -> tuple[list[str], list[str]]:
        return list(self.columns or []), [self.target] if self.target else []

    def forward(self, step: Step) -> Tensor:
        columns = self.columns or step.columns
        return self.loss(step.embeddings(columns), step.target(self.target, required=False))
