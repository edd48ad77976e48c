"""Language-model objectives: next-token loss of a causal LM tower."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import Tensor

from polymodal.objectives.base import STAGES, Objective

if TYPE_CHECKING:  # pragma: no cover
    from polymodal.system import Step

__all__ = ["CausalLMLoss"]


class CausalLMLoss(Objective):
    """Mean next-token cross-entropy of a Hugging Face style causal LM tower.

    The column's processed inputs hold ``input_ids`` ``(B, T)`` and optionally ``attention_mask`` and
    ``labels`` (``-100`` = ignored; default the inputs). The tower is called as
    ``tower(input_ids=..., attention_mask=..., labels=...)`` and must return ``.loss`` (every
    ``transformers`` ``*ForCausalLM`` does). The token-weighted negative log-likelihood is recorded in the
    step for :class:`polymodal.metrics.Perplexity`.

    Args:
        tower: the LM tower's name.
        column: the input column (default: the batch's only input column).
        weight: weight in the total loss.
        stages: where it runs.
    """

    def __init__(
        self, tower: str = "lm", column: str | None = None, weight: float = 1.0, stages: Sequence[str] = STAGES
    ) -> None:
        super().__init__(weight, stages)
        self.tower, self.column = tower, column

    def requires(self) -> tuple[list[str], list[str]]:
        return [self.column] if self.column else [], []

    def forward(self, step: Step) -> Tensor:
        column = self.column or step.only_column()
        batch = step.inputs_of(column)
        ids = batch["input_ids"]
        labels = batch.get("labels", ids)
        out = step.system.towers[self.tower](input_ids=ids, attention_mask=batch.get("attention_mask"), labels=labels)
        loss = out.loss if hasattr(out, "loss") else out["loss"]
        if loss is None:
            raise ValueError(f"tower {self.tower!r} returned no loss; it must accept labels=")
        tokens = (labels[:, 1:] != -100).sum()
        step.record(f"{self.name}/nll", loss.detach().double() * tokens, tokens.detach().double())
        return loss
