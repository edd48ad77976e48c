"""Precomputed features: a source whose text columns are replaced by a frozen model's vectors.

Train many small heads on frozen embeddings: :class:`TextFeatures` reads another source, encodes the
distinct texts of the named columns once with every featurizer through the one
:class:`~polymodal.data.cache.FeatureCache` (keyed on content x model fingerprint, persisted atomically),
and puts one float32 vector per cell in their place: the concatenation of the featurizers' outputs, in
order. A :class:`~polymodal.vector.FeatureMLP` tower (with ``standardize: true`` for training-split
statistics) then reads the column. A cell holding a list of texts becomes the mean of their vectors (a
context window of sentences).

A featurizer is any module with ``encode(texts, batch_size=...) -> (N, D)`` whose ``state_dict`` fixes
its output: an :class:`~polymodal.model.EmbeddingModel` (an encoder with a pooler), or a lexicon scorer
of the text plugin (:mod:`polymodal.plugins.text.lexicons`, whose lexicon digest is a buffer).

Example (YAML)::

    train:
      class_path: polymodal.data.features.TextFeatures
      init_args:
        source: {class_path: Table, init_args: {path: essays.tsv}}
        columns: [essay]
        encoder: {class_path: TextEncoder, init_args: {model: minilm-l6}}
        poolers: [{class_path: MeanPooler}]
        cache_dir: /tmp/polymodal_cache
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from polymodal.data.cache import FeatureCache
from polymodal.data.sources import Source, as_source
from polymodal.data.tables import check_columns
from polymodal.modality import Encoder
from polymodal.poolers import MeanPooler, Pooler

__all__ = ["TextFeatures"]

log = logging.getLogger(__name__)


class _SharedPass:
    """Several poolers over one frozen encoder: one forward pass fills every pooler's results."""

    def __init__(self, encoder: Encoder, poolers: Sequence[Pooler]) -> None:
        self.encoder, self.poolers = encoder, list(poolers)
        self.memo: list[dict[str, np.ndarray]] = [{} for _ in self.poolers]

    def encode(self, index: int, texts: Sequence[str], batch_size: int) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self.memo[index]))
        if todo:
            import torch

            processor = self.encoder.processor
            order = np.argsort([-n for n in processor.lengths(todo)], kind="stable")
            with torch.inference_mode():
                for start in range(0, len(todo), batch_size):
                    batch = [todo[i] for i in order[start : start + batch_size]]
                    features = self.encoder(processor(batch))  # sequence (B, T, D)
                    for memo, pooler in zip(self.memo, self.poolers):
                        memo.update(zip(batch, pooler(features).float().numpy()))  # (B, D)
        return np.stack([self.memo[index][t] for t in texts])


class _Pooled(nn.Module):
    """What the feature cache sees of one pooler of a shared pass: the fingerprint of
    ``EmbeddingModel(encoder, pooler)`` (same modules, same names), computed through the shared pass."""

    def __init__(self, shared: _SharedPass, index: int) -> None:
        super().__init__()
        self.encoder, self.pooler = shared.encoder, shared.poolers[index]
        self.shared, self.index = shared, index

    @property
    def dim(self) -> int:
        return int(self.encoder.output_dim)

    def encode(self, texts: Sequence[str], batch_size: int = 32, **_: Any) -> np.ndarray:
        return self.shared.encode(self.index, texts, batch_size)


class TextFeatures(Source):
    """Rows of ``source`` with each text column replaced by feature vectors.

    Args:
        source: the rows (any source; a plain table is ``Table``).
        columns: text columns to replace (each cell a string, or a list of strings to average).
        encoder: a frozen encoder (e.g. ``TextEncoder``); each of ``poolers`` gives one block of features.
        poolers: poolers over ``encoder``'s features (default mean pooling); one encoder pass serves all.
        lexicons: further featurizers (modules with ``encode``), appended after the encoder's blocks.
        cache_dir: folder of the feature cache (``None``: in memory only).
        batch_size: texts per encoder forward pass.
    """

    def __init__(
        self,
        source: Source,
        columns: Sequence[str],
        encoder: Encoder | None = None,
        poolers: Sequence[Pooler] | None = None,
        lexicons: Sequence[nn.Module] | None = None,
        cache_dir: str | None = None,
        batch_size: int = 32,
    ) -> None:
        self.source = as_source(source)
        self.columns = [columns] if isinstance(columns, str) else list(columns)
        if not self.columns:
            raise ValueError("TextFeatures needs at least one text column")
        if encoder is None and poolers:
            raise ValueError("TextFeatures: poolers need an encoder")
        self.featurizers: list[Any] = []
        if encoder is not None:
            encoder.eval()
            shared = _SharedPass(encoder, poolers or [MeanPooler()])
            self.featurizers += [_Pooled(shared, i) for i in range(len(shared.poolers))]
        self.featurizers += list(lexicons or [])
        if not self.featurizers:
            raise ValueError("TextFeatures needs an encoder or at least one lexicon featurizer")
        self.cache_dir, self.batch_size = cache_dir, int(batch_size)

    def describe(self) -> str:
        return self.source.describe()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(N, D)`` float32 features of ``texts``: every featurizer's block, concatenated."""
        blocks = []
        for featurizer in self.featurizers:
            start = time.perf_counter()
            cache = FeatureCache(featurizer, self.cache_dir)
            blocks.append(np.asarray(cache.encode(list(texts), batch_size=self.batch_size), dtype=np.float32))
            if cache.misses:
                log.info("featurised %d texts in %.1f s", cache.misses, time.perf_counter() - start)
        return np.concatenate(blocks, axis=1)

    def read(self) -> Any:
        df = self.source.frame().copy()
        where = self.source.describe()
        check_columns(df, self.columns, where)
        cells = {c: df[c].tolist() for c in self.columns}
        texts: dict[str, int] = {}
        for column, values in cells.items():
            for i, v in enumerate(values):
                items = list(v) if isinstance(v, (list, tuple)) else [v]
                if not items or not all(isinstance(t, str) and t.strip() for t in items):
                    raise ValueError(
                        f"{where}: row {i + 1}, column {column!r}: expected a non-empty text, got {v!r:.60}"
                    )
                for t in items:
                    texts.setdefault(t, len(texts))
        matrix = self.encode(list(texts))  # (distinct texts, D)
        for column, values in cells.items():
            vectors = []
            for v in values:
                rows = [texts[t] for t in (v if isinstance(v, (list, tuple)) else [v])]
                vectors.append(matrix[rows[0]] if len(rows) == 1 else matrix[rows].mean(axis=0))
            df[column] = vectors
        return df
