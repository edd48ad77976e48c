"""Cached (GradCache) InfoNCE: a huge in-batch-negative batch in the memory of a small one.

References: Gao et al., "Scaling Deep Contrastive Learning Batch Size under Memory Limited
Setup" (GradCache, 2021), https://arxiv.org/abs/2101.06983 ; sentence-transformers'
``CachedMultipleNegativesRankingLoss``; PEG (Wu et al. 2023) trains with very large in-batch
negative pools this way.

Three passes per step:

1. embed every column in mini-batches *without* autograd (RNG state saved per mini-batch);
2. compute the InfoNCE loss on the detached embeddings and its gradient w.r.t. them;
3. when the returned loss is back-propagated, re-embed each mini-batch with autograd (same
   RNG state, so the same dropout) and back-propagate the cached embedding gradients.

Peak activation memory is that of one mini-batch; the loss and the parameter gradients equal
those of plain :class:`~polymodal.losses.infonce.InfoNCELoss` on the whole batch (up to float
rounding), at the cost of one extra forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from polymodal.losses.context import batch_size_of, slice_inputs
from polymodal.losses.infonce import InfoNCELoss
from polymodal.objectives.base import STAGES, Objective

if TYPE_CHECKING:  # pragma: no cover
    from polymodal.system import Step

__all__ = ["CachedInfoNCELoss"]


class _RandState:
    """Captures and restores the CPU (and current CUDA device) RNG state."""

    def __init__(self) -> None:
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda)


class CachedInfoNCELoss(Objective):
    """GradCache version of :class:`InfoNCELoss` (same arguments plus ``mini_batch_size``).

    Args:
        mini_batch_size: rows embedded at once; bounds activation memory.
        temperature: softmax temperature on cosine similarities.
        symmetric: also classify positives against all anchors.
        gather: gather candidates across ranks under DDP.

        weight: weight in the System's total loss.
        stages: where it runs.

    An objective of :class:`polymodal.System`: in training it runs the towers itself through the step; in
    validation (no gradients) it is plain InfoNCE on the step's embeddings.

    Example:
        >>> loss = CachedInfoNCELoss(mini_batch_size=64)
        >>> value = loss(step)  # value.backward() re-embeds each mini-batch and back-propagates
    """

    def __init__(
        self,
        mini_batch_size: int = 64,
        temperature: float = 0.05,
        symmetric: bool = False,
        gather: bool = True,
        weight: float = 1.0,
        stages: Sequence[str] = STAGES,
    ) -> None:
        super().__init__(weight, stages)
        self.info_nce = InfoNCELoss(temperature=temperature, symmetric=symmetric, gather=gather)
        if mini_batch_size < 1:
            raise ValueError(f"mini_batch_size must be >= 1, got {mini_batch_size}")
        self.mini_batch_size = mini_batch_size

    def _chunks(self, inputs: dict[str, Tensor]) -> list[tuple[int, int]]:
        n = batch_size_of(inputs)
        return [(s, min(s + self.mini_batch_size, n)) for s in range(0, n, self.mini_batch_size)]

    def forward(self, step: Step) -> Tensor:
        if not step.training or not torch.is_grad_enabled():
            return self.info_nce(step.embeddings())
        return self.loss_from_context(step)

    def loss_from_context(self, context: Step) -> Tensor:
        reps: list[Tensor] = []
        states: list[list[_RandState]] = []
        with torch.no_grad():
            for j in range(context.num_columns):
                parts, column_states = [], []
                for start, stop in self._chunks(context.inputs[j]):
                    column_states.append(_RandState())
                    parts.append(context.embed(j, slice_inputs(context.inputs[j], start, stop)))
                reps.append(torch.cat(parts))  # (B, D)
                states.append(column_states)
        if not torch.is_grad_enabled():
            return self.info_nce(reps)
        leaves = [r.detach().requires_grad_() for r in reps]
        with torch.enable_grad():
            loss = self.info_nce(leaves)
            grads = torch.autograd.grad(loss, leaves)  # cached d loss / d embeddings
        result = loss.detach().requires_grad_()
        result.register_hook(_Backward(context, self._chunks, grads, states))
        return result


class _Backward:
    """Hook on the returned loss: re-embed each mini-batch and back-propagate cached grads."""

    def __init__(self, context: Step, chunks, grads: Sequence[Tensor], states: list[list[_RandState]]) -> None:
        self.context, self.chunks, self.grads, self.states = context, chunks, grads, states

    def __call__(self, grad_output: Tensor) -> None:
        outer = _RandState()
        with torch.enable_grad():
            for j in range(self.context.num_columns):
                inputs = self.context.inputs[j]
                for (start, stop), state in zip(self.chunks(inputs), self.states[j]):
                    state.restore()
                    emb = self.context.embed(j, slice_inputs(inputs, start, stop))
                    surrogate = (emb * self.grads[j][start:stop].to(emb.dtype)).sum() * grad_output
                    surrogate.backward()
        outer.restore()
