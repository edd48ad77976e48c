"""Frozen text-encoder features as data: one helper for every recipe that embeds texts once and trains on the
vectors (KG entity names and descriptions, captions, serialised table rows).

:func:`text_features` encodes with a named model (``polymodal.load`` for pretrained names such as
``"minilm-l6"``; a registered architecture such as ``"test-bert"`` is built with seeded random weights, for
tests) through the one :class:`~polymodal.data.cache.FeatureCache`, so a second run (or another recipe embedding
the same texts with the same model) reads the vectors from disk. :class:`Embedded` is a source that adds such
vectors as columns to another source's rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from polymodal.data.sources import Source
from polymodal.data.tables import check_columns

__all__ = ["Embedded", "frozen_text_model", "text_features"]

log = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def frozen_text_model(name: str) -> Any:
    """A frozen text :class:`~polymodal.model.EmbeddingModel` by registered name (loaded once per process).

    Pretrained names load their bundled weights; an architecture name (``"test-bert"``) gets random weights drawn
    from a fixed seed (identical in every process), mean pooling.
    """
    import torch

    import polymodal
    from polymodal.registry import list_models

    if name in list_models(kind="pretrained"):
        model = polymodal.load(name)
    elif name in list_models(kind="architecture"):
        from polymodal.model import EmbeddingModel
        from polymodal.plugins.text import TextEncoder
        from polymodal.poolers import MeanPooler

        state = torch.random.get_rng_state()
        torch.manual_seed(0)
        try:
            model = EmbeddingModel(TextEncoder(model=name, pretrained=False), MeanPooler(), normalize=False)
        finally:
            torch.random.set_rng_state(state)
    else:
        known = list_models(kind="pretrained") + list_models(kind="architecture")
        raise ValueError(f"unknown text model {name!r}; known: {', '.join(known)}")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def text_features(
    texts: Sequence[str],
    model: str = "minilm-l6",
    cache_dir: str | None = None,
    batch_size: int = 64,
    normalize: bool = False,
) -> np.ndarray:
    """``(N, D)`` float32 vectors of ``texts`` from a frozen named model, cached by content x model fingerprint."""
    from polymodal.data.cache import FeatureCache

    texts = [str(t) for t in texts]
    cache = FeatureCache(frozen_text_model(model), cache_dir, options="text_features")
    start = time.perf_counter()
    out = cache.encode(texts, batch_size=batch_size, normalize=normalize)
    log.info("%s: %d texts (%d computed) in %.1f s", model, len(texts), cache.misses, time.perf_counter() - start)
    return np.asarray(out, dtype=np.float32)


class Embedded(Source):
    """Another source's rows plus frozen-model vectors of some of its text columns.

    Args:
        source: the rows.
        columns: text column -> name of the new vector column (e.g. ``{caption_a: vec_a}``).
        model: registered text model (``minilm-l6``; ``test-bert`` in tests).
        cache_dir: feature-cache folder (recommended: vectors are computed once per text and model).
        batch_size: encoding batch size.
    """

    def __init__(
        self,
        source: Source,
        columns: dict[str, str],
        model: str = "minilm-l6",
        cache_dir: str | None = None,
        batch_size: int = 64,
    ) -> None:
        if not columns:
            raise ValueError("Embedded needs columns: {text column: vector column}")
        self.source, self.columns, self.model = source, dict(columns), model
        self.cache_dir, self.batch_size = cache_dir, batch_size

    def describe(self) -> str:
        return self.source.describe()

    def read(self) -> Any:
        df = self.source.frame().copy()
        check_columns(df, list(self.columns), self.source.describe())
        for text_col, vec_col in self.columns.items():
            vectors = text_features(df[text_col].astype(str).tolist(), self.model, self.cache_dir, self.batch_size)
            df[vec_col] = list(vectors)
        return df
