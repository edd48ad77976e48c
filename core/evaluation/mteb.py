"""A duck-typed MTEB model around any polymodal ``EmbeddingModel``.

MTEB calls ``model.encode(sentences, batch_size=..., task_name=..., prompt_type=...)``
(v1) or passes a DataLoader of ``{"text": [...]}`` batches (v2). :class:`MTEBModel`
accepts both and returns a float32 ``numpy`` array, so ``mteb.evaluate(MTEBModel(model), ...)``
works without polymodal depending on mteb.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

__all__ = ["MTEBModel"]


class MTEBModel:
    """MTEB-compatible ``encode`` for a polymodal model.

    Args:
        model: an ``EmbeddingModel`` (or anything with ``encode``).
        prompts: optional ``{task_name or prompt_type: prefix}`` prepended to string inputs
            (``{"query": "query: ", "document": "passage: "}`` for E5-style models).
        batch_size: default batch size.
        normalize: L2-normalise the output.
    """

    def __init__(
        self, model: Any, prompts: Mapping[str, str] | None = None, batch_size: int = 64, normalize: bool = True
    ) -> None:
        self.model = model
        self.prompts = dict(prompts or {})
        self.batch_size = batch_size
        self.normalize = normalize

    def _texts(self, inputs: Any) -> list[Any]:
        if isinstance(inputs, str):
            return [inputs]
        if isinstance(inputs, (list, tuple)) and not any(isinstance(x, Mapping) for x in inputs):
            return list(inputs)
        texts: list[Any] = []
        for batch in inputs:  # a DataLoader / iterable of batches
            if isinstance(batch, Mapping):
                col = batch.get("text", batch.get("sentences"))
                if col is None:
                    raise ValueError(f"MTEB batch has no 'text' field (keys: {sorted(batch)})")
                texts.extend(col)
            elif isinstance(batch, Iterable) and not isinstance(batch, str):
                texts.extend(batch)
            else:
                texts.append(batch)
        return texts

    def encode(
        self,
        inputs: Any,
        *,
        batch_size: int | None = None,
        task_name: str | None = None,
        prompt_type: Any = None,
        **kwargs: Any,
    ) -> np.ndarray:
        texts = self._texts(inputs)
        kind = getattr(prompt_type, "value", prompt_type)
        prefix = self.prompts.get(task_name or "", self.prompts.get(str(kind), "")) if self.prompts else ""
        if prefix:
            texts = [prefix + t if isinstance(t, str) else t for t in texts]
        emb = self.model.encode(texts, batch_size=batch_size or self.batch_size, normalize=self.normalize)
        return np.asarray(emb, dtype=np.float32)

    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Cosine similarity matrix (what MTEB uses for retrieval/STS with this model)."""
        a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
        b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
        return a @ b.T
