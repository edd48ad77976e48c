"""Evaluate an elastic (2D Matryoshka) model at several (layer, dimension) points.

Every requested layer is embedded in one pass per input list (hidden states kept), then each
(layer, dim) view is scored by any evaluator that takes an ``encode``-able model
(``STSEvaluator``, ``RetrievalEvaluator``, ``LinearProbeEvaluator``). The table prints layers
as rows and dims as columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["ElasticEvaluator", "ElasticResult", "encode_layers"]


def encode_layers(
    model: Any, values: Sequence[Any], layers: Sequence[int], batch_size: int = 64, normalize: bool | None = None
) -> dict[int, np.ndarray]:
    """``{layer: (N, D)}`` embeddings of ``values`` pooled after each layer in ``layers``.

    ``model`` is an :class:`~polymodal.model.EmbeddingModel` whose encoder can return hidden
    states (an ``hidden_states`` attribute, switched on for the call). Layer ``-1`` or the
    encoder's depth means the last layer. Inputs are length-sorted as in ``encode``.
    """
    encoder = model.encoder
    if not hasattr(encoder, "hidden_states"):
        raise ValueError(f"{type(encoder).__name__} cannot return hidden states (no hidden_states switch)")
    normalize = model.normalize if normalize is None else normalize
    values = list(values)
    sizer = getattr(encoder.processor, "lengths", None)
    lengths = list(sizer(values)) if sizer is not None else [len(v) if hasattr(v, "__len__") else 0 for v in values]
    order = np.argsort([-n for n in lengths], kind="stable")
    device = next(model.parameters()).device
    chunks: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    previous, was_training = encoder.hidden_states, model.training
    encoder.hidden_states = True
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(values), batch_size):
                batch = [values[i] for i in order[start : start + batch_size]]
                inputs = {k: v.to(device) for k, v in encoder.processor(batch).items()}
                features = encoder(inputs)
                for layer in layers:
                    last = layer == -1 or layer == features.num_layers
                    emb = model.pooler(features if last else features.at_layer(layer)).float()
                    chunks[layer].append((F.normalize(emb, dim=-1) if normalize else emb).cpu())
    finally:
        encoder.hidden_states = previous
        model.train(was_training)
    out = {}
    for layer, parts in chunks.items():
        stacked = torch.cat(parts) if parts else torch.empty(0, model.dim)
        result = torch.empty_like(stacked)
        result[torch.as_tensor(order)] = stacked
        out[layer] = result.numpy()
    return out


class _LayerCache:
    def __init__(self, model: Any, layers: Sequence[int], batch_size: int) -> None:
        self.model, self.layers, self.batch_size = model, list(layers), batch_size
        self.memo: dict[tuple, dict[int, np.ndarray]] = {}

    def get(self, values: Sequence[Any], layer: int) -> np.ndarray:
        key = tuple(values) if all(isinstance(v, str) for v in values) else (id(values), len(values))
        if key not in self.memo:
            self.memo[key] = encode_layers(self.model, values, self.layers, self.batch_size)
        return self.memo[key][layer]


class _View:
    """An ``encode``-able view of one (layer, dim) point."""

    def __init__(self, cache: _LayerCache, layer: int, dim: int) -> None:
        self.cache, self.layer, self.dim = cache, layer, dim

    def encode(self, values: Sequence[Any], batch_size: int = 64, **_: Any) -> np.ndarray:
        return self.cache.get(list(values), self.layer)[:, : self.dim]


@dataclass(frozen=True)
class ElasticResult:
    """``scores[(layer, dim)]`` of the chosen metric, plus the full evaluator results."""

    metric: str
    layers: tuple[int, ...]
    dims: tuple[int, ...]
    scores: dict[tuple[int, int], float]
    results: dict[tuple[int, int], Any]

    def table(self, digits: int = 4) -> str:
        """A Markdown table: one row per layer, one column per dim."""
        head = f"| layer \\ dim | {' | '.join(str(d) for d in self.dims)} |"
        rule = "|---|" + "---|" * len(self.dims)
        rows = [
            f"| {layer} | " + " | ".join(f"{self.scores[(layer, d)]:.{digits}f}" for d in self.dims) + " |"
            for layer in self.layers
        ]
        return "\n".join([f"{self.metric}", head, rule, *rows])


class ElasticEvaluator:
    """Run ``evaluator`` on every (layer, dim) view of a model.

    Args:
        evaluator: callable ``evaluator(model_like) -> result`` (any polymodal evaluator).
        layers: 1-based layers (``-1`` = last).
        dims: embedding prefix lengths.
        metric: attribute or key of the result to tabulate (``"spearman"``, ``"ndcg@10"``, ``"accuracy"``).
        batch_size: encoding batch size.

    Example:
        >>> res = ElasticEvaluator(STSEvaluator(s1, s2, gold), layers=[2, 4, 6], dims=[48, 96, 192, 384])(model)
        >>> print(res.table())
    """

    def __init__(
        self,
        evaluator: Callable[[Any], Any],
        layers: Sequence[int],
        dims: Sequence[int],
        metric: str = "spearman",
        batch_size: int = 64,
    ) -> None:
        if not layers or not dims:
            raise ValueError("ElasticEvaluator needs at least one layer and one dim")
        self.evaluator, self.layers, self.dims = evaluator, list(layers), list(dims)
        self.metric, self.batch_size = metric, batch_size

    def _value(self, result: Any) -> float:
        if hasattr(result, self.metric):
            return float(getattr(result, self.metric))
        try:
            return float(result[self.metric])
        except (KeyError, TypeError):
            raise ValueError(f"result {type(result).__name__} has no metric {self.metric!r}") from None

    def __call__(self, model: Any) -> ElasticResult:
        if max(self.dims) > model.dim:
            raise ValueError(f"dims {self.dims} exceed the model's width {model.dim}")
        cache = _LayerCache(model, self.layers, self.batch_size)
        results, scores = {}, {}
        for layer in self.layers:
            for dim in self.dims:
                res = self.evaluator(_View(cache, layer, dim))
                results[(layer, dim)] = res
                scores[(layer, dim)] = self._value(res)
        return ElasticResult(self.metric, tuple(self.layers), tuple(self.dims), scores, results)
