"""Sources: where a split's rows come from. Each returns a pandas DataFrame; the data module picks the
input, target and meta columns from it, validates every value and batches it.

* :class:`Table` — a CSV/TSV/JSONL/Parquet file (``read_table``); a plain path string means this.
* :class:`NLITriplets` — (anchor, positive, negative) rows built from SNLI/MNLI-style tables.
* :class:`Split` — one part of another source, split by :mod:`polymodal.data.splits` (hash of a key
  column, stratified on a target, or chronological).

Recipes add sources of their own kind in the same shape (a class with :meth:`Source.frame`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from polymodal.data.splits import SplitMethod, split_rows
from polymodal.data.tables import check_columns, read_table

__all__ = ["NLITriplets", "Source", "Split", "Table", "as_source"]

log = logging.getLogger(__name__)


class Source:
    """Base class: :meth:`frame` returns the rows as a DataFrame (read once, cached)."""

    _frame: Any = None

    def frame(self) -> Any:
        if self._frame is None:
            self._frame = self.read()
        return self._frame

    def read(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:
        """Where the rows come from, for error messages (a path, or a short description)."""
        return type(self).__name__


class Table(Source):
    """Rows of one table file.

    Args:
        path: the file (or ``package://<recipe>/data/<file>``).
        layout: named layout for header-less files (``"stsb"``; detected from well-known names).
        read_options: extra ``pandas.read_*`` arguments.
        max_rows: keep only the first N rows.
    """

    def __init__(
        self,
        path: str,
        layout: str | None = None,
        read_options: dict[str, Any] | None = None,
        max_rows: int | None = None,
    ) -> None:
        self.path, self.layout = path, layout
        self.read_options = dict(read_options or {})
        self.max_rows = max_rows

    def read(self) -> Any:
        df = read_table(self.path, layout=self.layout, **self.read_options)
        return df.iloc[: self.max_rows] if self.max_rows is not None else df

    def describe(self) -> str:
        return str(self.path)


class NLITriplets(Source):
    """(premise, entailed hypothesis, contradicted hypothesis) rows from SNLI/MNLI-style tables.

    Every premise with at least one entailed and one contradicted hypothesis gives one row per entailed
    hypothesis (the contradictions are taken in turn), as in SimCSE's supervised data. Output columns:
    ``anchor``, ``positive``, ``negative``.

    Args:
        paths: one table or several with the same columns (concatenated).
        premise, hypothesis, label: column names.
        entailment, contradiction: label values.
        max_rows: keep only the first N triplets.
    """

    def __init__(
        self,
        paths: str | list[str],
        premise: str = "premise",
        hypothesis: str = "hypothesis",
        label: str = "label",
        entailment: str = "entailment",
        contradiction: str = "contradiction",
        max_rows: int | None = None,
    ) -> None:
        self.paths = [paths] if isinstance(paths, str) else list(paths)
        if not self.paths:
            raise ValueError("NLITriplets needs at least one table")
        self.columns = (premise, hypothesis, label)
        self.labels = (entailment, contradiction)
        self.max_rows = max_rows

    def describe(self) -> str:
        return ", ".join(self.paths)

    def read(self) -> Any:
        import pandas as pd

        premise, hypothesis, label = self.columns
        frames = [read_table(p, quoting=3) for p in self.paths]  # SNLI text has bare quotes
        for p, frame in zip(self.paths, frames):
            check_columns(frame, [premise, hypothesis, label], p)
        df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        groups: dict[str, dict[str, list[str]]] = {}
        for p, h, y in zip(df[premise].tolist(), df[hypothesis].tolist(), df[label].tolist()):
            if isinstance(p, str) and isinstance(h, str) and y in self.labels:
                groups.setdefault(p, {}).setdefault(y, []).append(h)
        rows: list[tuple[str, str, str]] = []
        for p, by_label in groups.items():
            pos, neg = by_label.get(self.labels[0], []), by_label.get(self.labels[1], [])
            if neg:
                rows.extend((p, h, neg[k % len(neg)]) for k, h in enumerate(pos))
        if self.max_rows is not None:
            rows = rows[: self.max_rows]
        if not rows:
            raise ValueError(f"{self.describe()}: no (premise, entailment, contradiction) triplet could be built")
        log.info("%s: %d NLI triplets", self.describe(), len(rows))
        return pd.DataFrame(rows, columns=["anchor", "positive", "negative"])


class Split(Source):
    """One part of another source.

    Args:
        path: the table to split; or give ``source``.
        source: the rows to split (any source).
        sizes: counts or fractions of the distinct keys per part, e.g. ``[800, 100, 100]``.
        part: which part (0-based), or its name ``"train"``/``"val"``/``"test"`` (= 0/1/2).
        key: column whose values are split (rows sharing a key stay together); default: the row number.
        method: ``"hash"`` (SHA-1 order of the key; the same keys always give the same parts),
            ``"stratified"`` (on ``stratify``) or ``"chronological"`` (the key is a time).
        stratify: column holding the target to stratify on (one value per key: the first row's).
        seed: stratified only.
    """

    PARTS = {"train": 0, "val": 1, "test": 2}

    def __init__(
        self,
        sizes: Sequence[float],
        part: int | str = "train",
        path: str | None = None,
        source: Source | None = None,
        key: str | None = None,
        method: SplitMethod = "hash",
        stratify: str | None = None,
        seed: int = 0,
    ) -> None:
        if (path is None) == (source is None):
            raise ValueError("Split needs exactly one of path (a table) or source")
        self.source = source if source is not None else Table(path)  # type: ignore[arg-type]
        self.sizes = list(sizes)
        if isinstance(part, str):
            if part not in self.PARTS:
                raise ValueError(f"part must be an index or one of {list(self.PARTS)}, got {part!r}")
            part = self.PARTS[part]
        self.part, self.key, self.method, self.stratify, self.seed = int(part), key, method, stratify, seed

    def describe(self) -> str:
        return f"{self.source.describe()} (part {self.part} of a {self.method} split {self.sizes})"

    def read(self) -> Any:
        df = self.source.frame()
        wanted = [c for c in (self.key, self.stratify) if c]
        check_columns(df, wanted, self.source.describe())
        keys = df[self.key].tolist() if self.key else list(range(len(df)))
        strata = None
        if self.stratify:
            first = df.groupby(df[self.key] if self.key else df.index, sort=False)[self.stratify].first()
            strata = first.tolist()
        rows = split_rows(keys, self.sizes, self.part, self.method, strata, self.seed)
        return df.iloc[rows].reset_index(drop=True)


def as_source(value: str | Source | None) -> Source | None:
    """A path string becomes a :class:`Table`; sources pass through."""
    if value is None or isinstance(value, Source):
        return value
    if isinstance(value, str):
        return Table(value)
    raise TypeError(f"expected a table path or a polymodal Source, got {type(value).__name__}")
