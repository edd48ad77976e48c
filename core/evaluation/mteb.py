"""An MTEB model around any polymodal ``EmbeddingModel``, for the ``mteb`` package (v2 protocol; v1 calls too).

``mteb.evaluate(MTEBModel(model), tasks)`` works offline: mteb 2.x calls
``encode(DataLoader of {"text": [...]} batches, task_metadata=..., hf_split=..., hf_subset=...,
prompt_type=...)`` and reads ``mteb_model_meta`` (without it, mteb would treat the object as an
unknown model name), ``similarity`` and ``similarity_pairwise``. The older call
``encode(sentences, batch_size=..., task_name=...)`` is accepted as well. polymodal does not depend on
mteb; the metadata is built only when mteb asks (``pip install 'polymodal[mteb]'``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

__all__ = ["MTEBModel", "mteb_sts_task"]


class MTEBModel:
    """MTEB-compatible ``encode`` for a polymodal model.

    Args:
        model: an ``EmbeddingModel`` (or anything with ``encode``).
        prompts: optional ``{task_name or prompt_type: prefix}`` prepended to string inputs
            (``{"query": "query: ", "document": "passage: "}`` for E5-style models).
        batch_size: default batch size.
        normalize: L2-normalise the output.
        name: model name reported to mteb (``"polymodal/<name>"``; results are filed under it).
        revision: revision reported to mteb (default: the first 12 hex digits of the weights' fingerprint).
    """

    def __init__(
        self,
        model: Any,
        prompts: Mapping[str, str] | None = None,
        batch_size: int = 64,
        normalize: bool = True,
        name: str | None = None,
        revision: str | None = None,
    ) -> None:
        self.model = model
        self.prompts = dict(prompts or {})
        self.batch_size = batch_size
        self.normalize = normalize
        self.name = name
        self.revision = revision
        self._meta: Any = None

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
        task_metadata: Any = None,
        hf_split: str | None = None,
        hf_subset: str | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """``(N, D)`` float32 embeddings of a list or of mteb's DataLoader of ``{"text": [...]}`` batches."""
        texts = self._texts(inputs)
        if task_name is None and task_metadata is not None:
            task_name = getattr(task_metadata, "name", None)
        kind = getattr(prompt_type, "value", prompt_type)
        prefix = self.prompts.get(task_name or "", self.prompts.get(str(kind), "")) if self.prompts else ""
        if prefix:
            texts = [prefix + t if isinstance(t, str) else t for t in texts]
        emb = self.model.encode(texts, batch_size=batch_size or self.batch_size, normalize=self.normalize)
        return np.asarray(emb, dtype=np.float32)

    def similarity(self, a: Any, b: Any) -> np.ndarray:
        """Cosine similarity matrix ``(N, M)`` (what mteb uses for retrieval and STS with this model)."""
        from polymodal.metrics.functional import cosine_matrix

        return cosine_matrix(np.asarray(a), np.asarray(b))

    def similarity_pairwise(self, a: Any, b: Any) -> np.ndarray:
        """Cosine similarity of corresponding rows ``(N,)`` (mteb's STS and pair classification)."""
        from polymodal.metrics.functional import pair_cosine

        return pair_cosine(np.asarray(a), np.asarray(b))

    @property
    def mteb_model_meta(self) -> Any:
        """An ``mteb.ModelMeta`` describing the model (needs mteb; built on first access)."""
        if self._meta is None:
            try:
                from mteb.models.model_meta import ModelMeta, ScoringFunction
            except ImportError:
                raise ImportError("mteb_model_meta needs mteb: pip install 'polymodal[mteb]'") from None
            revision = self.revision
            if revision is None:
                from polymodal.data.cache import model_fingerprint

                revision = model_fingerprint(self.model)[:12] if hasattr(self.model, "state_dict") else "unknown"
            modality = getattr(self.model, "modality", "text")
            self._meta = ModelMeta.create_empty(
                {
                    "name": f"polymodal/{self.name or type(self.model).__name__}",
                    "revision": revision,
                    "modalities": [modality],
                    "embed_dim": getattr(self.model, "dim", None),
                    "similarity_fn_name": ScoringFunction.COSINE,
                    "framework": ["PyTorch"],
                    "open_weights": True,
                }
            )
        return self._meta


def mteb_sts_task(
    name: str,
    sentences1: list[str],
    sentences2: list[str],
    scores: list[float],
    min_score: float = 0.0,
    max_score: float = 5.0,
    description: str = "",
) -> Any:
    """A local STS data set as an mteb custom task (``AbsTaskSTS``), held in memory: nothing is downloaded.

    ``mteb.evaluate(MTEBModel(model), mteb_sts_task(...), cache=None)`` then scores it with mteb's own
    STS evaluator (main score ``cosine_spearman``).

    Args:
        name: task name mteb reports.
        sentences1: first sentences.
        sentences2: second sentences.
        scores: gold similarity scores.
        min_score: lowest possible gold score (mteb normalises by the range).
        max_score: highest possible gold score.
        description: one line for the task metadata.
    """
    try:
        from datasets import Dataset, DatasetDict
        from mteb.abstasks.sts import AbsTaskSTS
        from mteb.abstasks.task_metadata import TaskMetadata
    except ImportError:
        raise ImportError("mteb tasks need mteb: pip install 'polymodal[mteb]'") from None
    if not (len(sentences1) == len(sentences2) == len(scores)):
        raise ValueError(f"mteb_sts_task: lengths differ: {len(sentences1)} / {len(sentences2)} / {len(scores)}")
    metadata = TaskMetadata(
        name=name,
        description=description or f"polymodal local STS task {name}",
        reference=None,
        dataset={"path": f"polymodal/{name}", "revision": "local"},
        type="STS",
        category="t2t",
        modalities=["text"],
        eval_splits=["test"],
        eval_langs=["eng-Latn"],
        main_score="cosine_spearman",
        date=None,
        domains=None,
        task_subtypes=None,
        license=None,
        annotations_creators=None,
        dialect=None,
        sample_creation=None,
        bibtex_citation="",
    )
    data = DatasetDict(
        {
            "test": Dataset.from_dict(
                {"sentence1": list(sentences1), "sentence2": list(sentences2), "score": list(scores)}
            )
        }
    )

    def load_data(self: Any, num_proc: int | None = None, **kwargs: Any) -> None:
        self.dataset = data
        self.data_loaded = True

    cls = type(
        f"PolymodalSTS_{name}",
        (AbsTaskSTS,),
        {"metadata": metadata, "min_score": min_score, "max_score": max_score, "load_data": load_data},
    )
    return cls()
