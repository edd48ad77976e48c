"""Dated news -> cached sentence embeddings -> per-day embedding sets (the PreBit text stream).

PreBit embedded ~5,000 tweets a day with FinBERT. Here the stream is dated Bitcoin news
(BBC/CNN/NYT/Reuters, 2011-06..2019-05) embedded with a (finance-adapted) MiniLM, and each
day's *set* of embeddings (that day's articles and those of the preceding days) is what the
text model's CNN reads. Days without any article are empty sets: the model sees a mask, not
zeros passed off as data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.io import atomic_path, resolve_path

__all__ = ["article_texts", "daily_sets", "embed_texts", "load_news"]

log = logging.getLogger(__name__)


def load_news(path: str | os.PathLike[str], date_column: str = "date"):
    """Read the dated news table, sorted by date; rows without a parsable date are an error."""
    import pandas as pd

    from polymodal.data.tables import check_columns, read_table

    df = read_table(path)
    check_columns(df, [date_column, "headline"], path)
    dates = pd.to_datetime(df[date_column], errors="coerce")
    bad = np.flatnonzero(dates.isna().to_numpy())
    if len(bad):
        raise ValueError(f"{path}: column {date_column!r}: unparsable date at row {bad[0] + 1}")
    df = df.assign(**{date_column: dates.dt.normalize()}).sort_values(date_column, kind="stable")
    return df.reset_index(drop=True)


def article_texts(news, max_chars: int = 400) -> list[str]:
    """Headline plus the start of the article body (bounded for CPU cost)."""
    body = news["content"].fillna("").astype(str) if "content" in news.columns else [""] * len(news)
    return [
        (str(h).strip() + ". " + " ".join(str(b).split())[:max_chars]).strip()
        for h, b in zip(news["headline"].astype(str), body)
    ]


def embed_texts(
    texts: list[str], model: str, cache_dir: str | os.PathLike[str] | None = None, batch_size: int = 32
) -> np.ndarray:
    """Embed ``texts`` with ``polymodal.load(model)``; cached on disk by (model, texts) hash.

    The cache key includes the model folder's weights file modification time, so a retrained
    model is not served stale embeddings.
    """
    import polymodal

    stamp = ""
    path = Path(model).expanduser()
    if path.is_dir() and (path / "model.safetensors").exists():
        stamp = str((path / "model.safetensors").stat().st_mtime_ns)
    key = hashlib.sha256(json.dumps([model, stamp, texts]).encode()).hexdigest()[:16]
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir).expanduser() / f"news-embeddings-{key}.npy"
        if cache.exists():
            return np.load(cache)
    log.info("embedding %d texts with %s", len(texts), model)
    emb = polymodal.load(model).encode(texts, batch_size=batch_size, normalize=True, show_progress_bar=False)
    emb = np.asarray(emb, dtype=np.float32)
    if cache is not None:
        with atomic_path(cache) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, emb)
    return emb


def daily_sets(
    days: Any, news_dates: Any, embeddings: np.ndarray, days_back: int = 0, max_texts: int = 32, lag: int = 0
) -> list[np.ndarray]:
    """For each day ``d``: embeddings of articles dated in ``[d - lag - days_back, d - lag]``.

    Args:
        days: the calendar (DatetimeIndex) to build sets for.
        news_dates: article dates (normalised to midnight), sorted.
        embeddings: ``(N, D)`` article embeddings, same order as ``news_dates``.
        days_back: also include the preceding ``days_back`` days.
        max_texts: keep the most recent ``max_texts`` articles.
        lag: shift the window back by ``lag`` days (1 = only news published before day ``d``).

    Returns:
        one ``(n_d, D)`` array per day; ``n_d = 0`` on days without news.
    """
    import pandas as pd

    nd = pd.DatetimeIndex(news_dates).values.astype("datetime64[D]")
    dd = pd.DatetimeIndex(days).values.astype("datetime64[D]")
    hi = np.searchsorted(nd, dd - np.timedelta64(lag, "D"), side="right")
    lo = np.searchsorted(nd, dd - np.timedelta64(lag + days_back, "D"), side="left")
    lo = np.maximum(lo, hi - max_texts)
    return [embeddings[a:b] for a, b in zip(lo, hi)]


def resolve(path: str | None) -> str | None:
    """Resolve ``package://`` and ``~`` paths; keep short model names as they are."""
    if path is None:
        return None
    if path.startswith("package://") or os.sep in path or path.startswith("."):
        return str(resolve_path(path, what="file"))
    return path
