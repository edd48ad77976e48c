"""The generative loss of a prefix language model (:class:`polymodal.PrefixLM`): next-token NLL of the answer
tokens given the prefix tokens (an image's adapted patch grid, a vector) and the prompt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import Tensor

from polymodal.objectives.base import STAGES, Objective

if TYPE_CHECKING:  # pragma: no cover
    from polymodal.system import Step

__all__ = ["PrefixLMLoss"]


class PrefixLMLoss(Objective):
    """Mean NLL per answer token (answer + eos; prompt and prefix positions are never targets).

    The prefix tokens and the text's input embeddings are the Step's features of the two columns, computed
    once per batch and shared with every other objective and metric (a contrastive alignment loss on the same
    tokens, Recall@k, caption metrics). The token-weighted NLL is recorded as ``<name>/nll`` for
    :class:`polymodal.metrics.Perplexity`.

    Args:
        tower: the :class:`~polymodal.prefix_lm.PrefixLM` tower's name.
        prefix: the prefix input column (e.g. ``image``).
        text: the ``(prompt, answer)`` text column (e.g. ``prompt+caption``).
        weight: weight in the total loss.
        stages: where it runs.
    """

    def __init__(
        self,
        tower: str = "vlm",
        prefix: str = "image",
        text: str = "prompt+caption",
        weight: float = 1.0,
        stages: Sequence[str] = STAGES,
    ) -> None:
        super().__init__(weight, stages)
        self.tower, self.prefix, self.text = tower, prefix, text

    def requires(self) -> tuple[list[str], list[str]]:
        return [self.prefix, self.text], []

    def forward(self, step: Step) -> Tensor:
        model = step.system.towers[self.tower]
        tokens = step.features(self.prefix).sequence  # (B, N, D)
        text = step.inputs_of(self.text)
        nll, count = model.token_nll(tokens, text, step.features(self.text).sequence)
        total = count.sum()
        step.record(f"{self.name}/nll", nll.sum().detach().double(), total.detach().double())
        return nll.sum() / total.clamp(min=1)
