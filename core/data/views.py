"""Augmented views: pairs ``(x, augment(x))`` for contrastive training without labels.

A sentence paired with a perturbed copy of itself (Pixel-Linguist's typos and homoglyphs), an image with a
crop of itself (SimCLR): the positive is a fresh *view* of the anchor, the other rows of the batch are the
negatives. Two pieces:

* :class:`Views` — a source: the distinct non-empty values of some columns of another source, each row
  holding the value twice (``anchor``, ``positive``).
* :class:`ViewsDataModule` — a :class:`~polymodal.data.TableDataModule` that passes the training values of
  the columns named in ``augment`` through ``augment[column](value, rng)``, with ``rng`` seeded by
  ``(seed, epoch, row)``: every epoch draws new views, and a run resumed from a checkpoint replays exactly
  the pairs an uninterrupted run would have seen (also with DataLoader workers).

An augmentation is any callable ``(value, numpy.random.Generator) -> value``, e.g.
:class:`polymodal.plugins.pixel.Perturber`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from torch.utils.data import Dataset, Sampler

from polymodal.data.datamodule import RowsDataset, TableDataModule, default_seed
from polymodal.data.sources import Source, Table
from polymodal.data.tables import check_columns

__all__ = ["Augmentation", "AugmentedRows", "ViewSampler", "Views", "ViewsDataModule"]

log = logging.getLogger(__name__)


@runtime_checkable
class Augmentation(Protocol):
    """A random transformation of one raw value, drawing only from ``rng``."""

    def __call__(self, value: Any, rng: np.random.Generator) -> Any: ...


class Views(Source):
    """Distinct non-empty values of ``columns`` of ``source`` (first occurrence order), each as two views.

    Args:
        columns: columns to take values from (labels and other columns are ignored).
        path: the table to read; or give ``source``.
        source: the rows (any source, e.g. a :class:`~polymodal.data.Table` with ``read_options``).
        names: the two output columns (both hold the value; augment the second in the data module).
        max_rows: keep only the first N distinct values.
    """

    def __init__(
        self,
        columns: Sequence[str],
        path: str | None = None,
        source: Source | None = None,
        names: Sequence[str] = ("anchor", "positive"),
        max_rows: int | None = None,
    ) -> None:
        if (path is None) == (source is None):
            raise ValueError("Views needs exactly one of path (a table) or source")
        self.source = source if source is not None else Table(path)  # type: ignore[arg-type]
        self.columns, self.names, self.max_rows = list(columns), list(names), max_rows
        if not self.columns:
            raise ValueError("Views needs at least one column to take values from")
        if len(self.names) != 2 or len(set(self.names)) != 2:
            raise ValueError(f"Views names two distinct output columns, got {self.names}")

    def describe(self) -> str:
        return f"{self.source.describe()} (views of {', '.join(self.columns)})"

    def read(self) -> Any:
        import pandas as pd

        df = self.source.frame()
        check_columns(df, self.columns, self.source.describe())
        seen: dict[str, None] = {}
        for col in self.columns:
            for v in df[col].tolist():
                if isinstance(v, str) and v.strip():
                    seen.setdefault(v.strip(), None)
        values = list(seen)[: self.max_rows]
        if not values:
            raise ValueError(f"{self.source.describe()}: no non-empty values in columns {self.columns}")
        log.info("%s: %d distinct values", self.describe(), len(values))
        return pd.DataFrame({self.names[0]: values, self.names[1]: values})


class AugmentedRows(Dataset):
    """Training rows whose ``augment`` columns are re-drawn per ``(epoch, index)`` key (see the module doc)."""

    def __init__(self, rows: RowsDataset, augment: dict[str, Augmentation], seed: int) -> None:
        self.rows, self.augment, self.seed = rows, dict(augment), int(seed)

    @property
    def columns(self) -> dict[str, list[Any]]:
        return self.rows.columns

    @property
    def targets(self) -> dict[str, list[float]]:
        return self.rows.targets

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: tuple[int, int] | int) -> tuple[dict[str, Any], dict[str, float], dict[str, Any], int]:
        epoch, i = key if isinstance(key, tuple) else (0, key)
        values, targets, meta, row = self.rows[i]
        rng = np.random.default_rng([self.seed, epoch, row])
        values = {c: self.augment[c](v, rng) if c in self.augment else v for c, v in values.items()}
        return values, targets, meta, row


class ViewSampler(Sampler[tuple[int, int]]):
    """Wraps a training sampler and tags every index with the epoch, so augmentations can be seeded by it."""

    def __init__(self, sampler: Sampler[int]) -> None:
        self.sampler, self.epoch = sampler, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.sampler)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, i) for i in self.sampler)


class ViewsDataModule(TableDataModule):
    """:class:`~polymodal.data.TableDataModule` with augmented training views.

    Args:
        augment: input column -> augmentation applied to its training values (val/test stay as they are).
        **kwargs: everything :class:`~polymodal.data.TableDataModule` takes (``sources: {train: Views}``
            typically; ``inputs`` then ``[anchor, positive]``).
    """

    def __init__(self, augment: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.augment = dict(augment or {})
        for column, fn in self.augment.items():
            if not callable(fn):
                raise TypeError(f"augment[{column!r}] must be callable (value, rng) -> value, got {type(fn).__name__}")

    def load_split(self, split: str) -> Any:
        ds = super().load_split(split)
        if split != "train" or not self.augment or isinstance(ds, AugmentedRows):
            return ds
        missing = sorted(set(self.augment) - set(ds.columns))
        if missing:
            raise ValueError(f"data.augment names {missing}, which are not input columns {list(ds.columns)}")
        self.datasets[split] = AugmentedRows(ds, self.augment, default_seed(self.seed))  # type: ignore[assignment]
        return self.datasets[split]

    def train_sampler(self, ds: Any) -> Any:
        if isinstance(ds, AugmentedRows):
            return ViewSampler(super().train_sampler(ds.rows))
        return super().train_sampler(ds)
