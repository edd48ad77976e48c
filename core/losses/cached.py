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

Mini-batches are cut from the rows *sorted by length* (``attention_mask`` row sums; the embeddings
are put back in row order) and each is trimmed to its own longest row, so they carry little
padding: the whole batch, as plain InfoNCE runs it, is padded to its longest row. On STS-B-like
data that saving pays for most of the extra forward pass (``benchmarks/cached_loss.py``).

On CPU, when the forward consumes no random numbers (no active dropout: checked on the first
mini-batch by comparing the RNG state before and after), the other mini-batches of both passes run
as ``streams`` one-thread streams (default: the torch thread count) instead of one batch split over
all threads: OpenMP barriers stall under contention, one-thread streams do not. With dropout the
passes stay sequential, because only a sequential replay reproduces the masks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

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
        mini_batch_size: rows embedded at once; bounds activation memory (times ``streams`` on CPU).
        temperature: softmax temperature on cosine similarities.
        symmetric: also classify positives against all anchors.
        gather: gather candidates across ranks under DDP.
        streams: CPU mini-batches in flight at once, one thread each, when the forward is free of
            randomness (default: ``torch.get_num_threads()``; ``1``: always sequential).

        weight: weight in the System's total loss.
        stages: where it runs.
        loss: another pooled-embedding loss to compute on the cached embeddings instead of InfoNCE (e.g.
            :class:`~polymodal.losses.ProgressiveInfoNCELoss` for PEG; ``temperature``/``symmetric``/``gather``
            are then ignored). It must depend on the embeddings only through differentiable operations.

    An objective of :class:`polymodal.System`: in training it runs the towers itself through the step; in
    validation (no gradients) it is plain InfoNCE on the step's embeddings.

    Example:
        >>> loss = CachedInfoNCELoss(mini_batch_size=64)
        >>> value = loss(step)  # value.backward() re-embeds each mini-batch and back-propagates
    """

    def __init__(
        self,
        mini_batch_size: int = 128,
        temperature: float = 0.05,
        symmetric: bool = False,
        gather: bool = True,
        streams: int | None = None,
        weight: float = 1.0,
        stages: Sequence[str] = STAGES,
        loss: nn.Module | None = None,
    ) -> None:
        super().__init__(weight, stages)
        default = InfoNCELoss(temperature=temperature, symmetric=symmetric, gather=gather)
        self.info_nce = loss if loss is not None else default
        if mini_batch_size < 1:
            raise ValueError(f"mini_batch_size must be >= 1, got {mini_batch_size}")
        if streams is not None and streams < 1:
            raise ValueError(f"streams must be >= 1, got {streams}")
        self.mini_batch_size = mini_batch_size
        self.streams = streams

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
        columns = [_by_length(inputs) for inputs in context.inputs]  # (sorted inputs, order)
        streams: list[int] = []  # per column: > 1 when its forward is random-free (no active dropout)
        with torch.no_grad():
            for j, (inputs, order) in enumerate(columns):
                chunks = self._chunks(inputs)
                column_states = [_RandState()]
                parts = [context.embed(j, slice_inputs(inputs, *chunks[0]))]
                streams.append(self._streams(inputs, column_states[0]))
                if streams[j] == 1:
                    for chunk in chunks[1:]:
                        column_states.append(_RandState())  # replayed before this chunk's re-forward
                        parts.append(context.embed(j, slice_inputs(inputs, *chunk)))
                else:

                    def embed(chunk: tuple[int, int], j: int = j, inputs: dict[str, Tensor] = inputs) -> Tensor:
                        with torch.no_grad():  # grad mode is per thread
                            return context.embed(j, slice_inputs(inputs, *chunk))

                    parts += _run(embed, chunks[1:], streams[j])
                    column_states += [column_states[0]] * (len(chunks) - 1)  # nothing random to replay
                reps.append(_unsort(torch.cat(parts), order))  # (B, D), row order
                states.append(column_states)
        if not torch.is_grad_enabled():
            return self.info_nce(reps)
        leaves = [r.detach().requires_grad_() for r in reps]
        with torch.enable_grad():
            loss = self.info_nce(leaves)
            grads = torch.autograd.grad(loss, leaves)  # cached d loss / d embeddings
        sorted_grads = [g if order is None else g[order] for g, (_, order) in zip(grads, columns)]
        result = loss.detach().requires_grad_()
        hook = _Backward(context, self._chunks, [c[0] for c in columns], sorted_grads, states, streams)
        result.register_hook(hook)
        return result

    def _streams(self, inputs: dict[str, Tensor], before: _RandState) -> int:
        """Streams for this step: > 1 only on CPU and when the first forward drew no random numbers."""
        wanted = torch.get_num_threads() if self.streams is None else self.streams
        on_cpu = all(v.device.type == "cpu" for v in inputs.values() if isinstance(v, Tensor))
        if wanted <= 1 or not on_cpu or batch_size_of(inputs) <= self.mini_batch_size:
            return 1
        return wanted if torch.equal(before.cpu, torch.get_rng_state()) else 1


@contextlib.contextmanager
def _one_thread_each(streams: int) -> Iterator[ThreadPoolExecutor | None]:
    if streams <= 1:
        yield None
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(streams, thread_name_prefix="polymodal-gradcache") as pool:
            yield pool
    finally:
        torch.set_num_threads(threads)


def _run(fn: Callable[[Any], Any], items: Sequence[Any], streams: int) -> list[Any]:
    """``[fn(x) for x in items]``, on ``streams`` one-thread workers when ``streams > 1``."""
    with _one_thread_each(min(streams, len(items))) as pool:
        return [fn(x) for x in items] if pool is None else list(pool.map(fn, items))


def _by_length(inputs: dict[str, Tensor]) -> tuple[dict[str, Tensor], Tensor | None]:
    """``inputs`` with rows sorted longest first (by ``attention_mask``) and the order, or ``(inputs, None)``."""
    mask = inputs.get("attention_mask")
    if not (isinstance(mask, Tensor) and mask.dim() == 2):
        return inputs, None
    order = torch.argsort(mask.sum(1), descending=True, stable=True)
    if bool((order == torch.arange(len(order), device=order.device)).all()):
        return inputs, None
    n = len(order)
    return {k: v.index_select(0, order) if _per_row(v, n) else v for k, v in inputs.items()}, order


def _per_row(value: object, n: int) -> bool:
    return isinstance(value, Tensor) and value.dim() >= 1 and value.shape[0] == n


def _unsort(rows: Tensor, order: Tensor | None) -> Tensor:
    if order is None:
        return rows
    out = torch.empty_like(rows)
    out[order] = rows
    return out


class _Backward:
    """Hook on the returned loss: re-embed each mini-batch and back-propagate cached grads."""

    def __init__(
        self,
        context: Step,
        chunks,
        inputs: Sequence[dict[str, Tensor]],
        grads: Sequence[Tensor],
        states: list[list[_RandState]],
        streams: Sequence[int],
    ) -> None:
        self.context, self.chunks, self.inputs, self.grads, self.states = context, chunks, inputs, grads, states
        self.streams = streams

    def __call__(self, grad_output: Tensor) -> None:
        outer = _RandState()
        for j in range(self.context.num_columns):
            inputs = self.inputs[j]  # rows sorted by length, as in the first pass

            def replay(
                item: tuple[tuple[int, int], _RandState], j: int = j, inputs: dict[str, Tensor] = inputs
            ) -> None:
                (start, stop), state = item
                if self.streams[j] == 1:
                    state.restore()  # same dropout masks as the first pass
                with torch.enable_grad():
                    emb = self.context.embed(j, slice_inputs(inputs, start, stop))
                    surrogate = (emb * self.grads[j][start:stop].to(emb.dtype)).sum() * grad_output
                    surrogate.backward()

            _run(replay, list(zip(self.chunks(inputs), self.states[j])), self.streams[j])
        outer.restore()
