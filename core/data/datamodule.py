"""The data module: rows from sources, columns routed to the system's towers, :class:`Batch` out."""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from polymodal.contracts import Batch, system_of
from polymodal.data.sources import Source, Table
from polymodal.data.tables import check_columns
from polymodal.modality import Processor

__all__ = ["Collator", "EpochShuffleSampler", "RowsDataset", "TableDataModule", "column_name"]

log = logging.getLogger(__name__)

Column = str | list[str]


def column_name(column: Column) -> str:
    """The name of an input column; a list of columns is one paired column (``"a+b"``) of tuples."""
    return column if isinstance(column, str) else "+".join(column)


class RowsDataset(Dataset):
    """Rows of input values per column, float targets per name and raw meta values.

    Args:
        columns: input column name -> values.
        targets: target name -> floats (NaN = missing label).
        meta: meta column name -> raw values.
        rows: 1-based row numbers in the source (for error messages after bad rows were skipped).
    """

    def __init__(
        self,
        columns: dict[str, list[Any]],
        targets: dict[str, list[float]] | None = None,
        meta: dict[str, list[Any]] | None = None,
        rows: list[int] | None = None,
    ) -> None:
        self.columns = dict(columns)
        self.targets = dict(targets or {})
        self.meta = dict(meta or {})
        n = len(next(iter(self.columns.values()))) if self.columns else 0
        self.rows = rows if rows is not None else list(range(1, n + 1))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[dict[str, Any], dict[str, float], dict[str, Any], int]:
        return (
            {c: v[i] for c, v in self.columns.items()},
            {t: v[i] for t, v in self.targets.items()},
            {m: v[i] for m, v in self.meta.items()},
            self.rows[i],
        )


class EpochShuffleSampler(torch.utils.data.Sampler[int]):
    """Random order that depends only on ``(seed, epoch)``.

    Lightning calls ``set_epoch`` at every epoch start, so a run resumed from a checkpoint sees exactly
    the batches an uninterrupted run would have seen (the global RNG, which a resume does not restore,
    is never used). Every polymodal data module shuffles with it.
    """

    def __init__(self, length: int, seed: int = 0) -> None:
        self.length = length
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.length, generator=generator).tolist())


def default_seed(seed: int | None) -> int:
    """``seed``, else the ``PL_GLOBAL_SEED`` that ``seed_everything`` sets (0 when unset)."""
    return int(seed) if seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))


class Collator:
    """Picklable collate function: runs each column's processor and builds a :class:`Batch`.

    A value a processor rejects (a corrupt image found only when decoding, say) is reported with the
    source, its row and its column.
    """

    def __init__(self, processors: dict[str, Processor], source: str | None = None) -> None:
        self.processors = dict(processors)
        self.source = source or "data"

    def _process(self, column: str, rows: list[tuple]) -> dict[str, Any]:
        processor = self.processors[column]
        values = [r[0][column] for r in rows]
        try:
            return processor(values)
        except (ValueError, TypeError):
            for r in rows:  # find the culprit, one value at a time
                try:
                    processor([r[0][column]])
                except (ValueError, TypeError) as exc:
                    raise type(exc)(f"{self.source}: row {r[3]}, column {column!r}: {exc}") from None
            raise

    def __call__(self, rows: list[tuple]) -> Batch:
        inputs = {c: self._process(c, rows) for c in self.processors}
        targets = {}
        if rows:
            for name in rows[0][1]:
                targets[name] = torch.tensor([r[1][name] for r in rows], dtype=torch.float32)
        meta = {m: [r[2][m] for r in rows] for m in (rows[0][2] if rows else {})}
        return Batch(inputs=inputs, targets=targets, meta=meta, rows=[r[3] for r in rows])


def _bad_value(v: Any) -> str | None:
    if v is None:
        return "missing value"
    if isinstance(v, float) and math.isnan(v):
        return "missing value"
    return None


class TableDataModule(pl.LightningDataModule):
    """Train/val/test/predict rows from sources, input columns routed to the system's towers.

    The system decides preprocessing: at ``setup`` the data module asks the attached system for one
    :class:`~polymodal.modality.Processor` per input column (``processors_for``), so tokenisation and
    rendering run in DataLoader workers; the training split's raw values go to ``fit_input_statistics``
    (normalisers fit on training data only).

    Args:
        train: training table (a path; ``package://...`` for files shipped with the recipes).
        val: validation table.
        test: test table.
        predict: table for ``polymodal predict``.
        sources: split name (``train``/``val``/``test``/``predict``) -> a
            :class:`~polymodal.data.sources.Source` for rows that are not one plain table (NLI triplets, a
            hash split of a table, ...). (Separate from the path arguments on purpose: a YAML value that
            may be a class and is an existing file path is read as a config file by jsonargparse.)
        inputs: input columns in the order the objectives expect them; an entry that is a list of columns
            is one paired column of tuples named ``"a+b"`` (a cross-encoder reads pairs).
        eval_inputs: input columns of val/test when they differ (NLI triplets in training, STS pairs in
            validation).
        target: target column(s); several give several named targets (multi-task).
        eval_target: the column read for the target in val/test when it differs (a student trained on teacher
            scores, validated on gold scores; or NLI triplets without a target, validated on STS scores). With one
            training target it keeps that target's name, so objectives and metrics that name the target see it;
            with several (teacher scores per candidate) it is the val/test split's only target, under its own
            name, and the training objectives that need the training targets skip validation.
        meta: columns passed through unprocessed (ids, file names, reference texts).
        eval_meta: meta columns of val/test when they differ (``[]``: none; e.g. training objectives that read the
            raw text of triplet columns, validated on STS pairs that do not have them). Default: ``meta``.
        classes: target column -> its class names in index order, for categorical labels written as text
            (``{label: [entailment, neutral, contradiction]}``); a value not in the list is a bad value.
        ranges: target column -> ``[low, high]`` its values must lie in (``{score: [0, 5]}`` for STS-B); a
            value outside is a bad value instead of passing without a word.
        allow_missing_targets: keep rows whose target is empty (NaN: that row is left out of that target's
            loss); by default an empty target is a bad value.
        layout: named layout for header-less files given as plain paths (``"stsb"``).
        read_options: extra ``pandas.read_*`` arguments for plain paths.
        batch_size: training batch size (per device).
        eval_batch_size: batch size for val/test/predict (default: ``batch_size``).
        num_workers: DataLoader workers.
        skip_bad_rows: drop rows with missing/invalid values and report the count, instead of raising
            (the default) with the file, row and column of the first bad value.
        max_rows: keep only the first N rows of each split.
        drop_last: drop the last incomplete training batch (in-batch-negative losses like it).
        seed: shuffling seed; the order of epoch ``e`` depends only on ``(seed, e)``, so resumed runs replay
            the same batches. Default: the ``PL_GLOBAL_SEED`` set by ``seed_everything`` (0 when unset).
        stratify_bins: stratified sampling for a continuous target: bin the training target into this many
            quantile bins and draw every epoch so that consecutive batches hold the bins in proportion.
        stratify_mode: ``"stratified"`` (proportional; a permutation of all rows) or ``"balanced"`` (bins
            drawn with weight ``count ** stratify_alpha``: 0 gives every bin the same share).
        stratify_alpha: see ``stratify_mode``.
        stratify_column: stratify training batches on the strata held in this column (class labels, or
            joint bins of several targets) instead of binning the target; read like a ``meta`` column.
    """

    def __init__(
        self,
        train: str | None = None,
        val: str | None = None,
        test: str | None = None,
        predict: str | None = None,
        sources: dict[str, Source] | None = None,
        inputs: list[str | list[str]] | None = None,
        eval_inputs: list[str | list[str]] | None = None,
        target: str | list[str] | None = None,
        eval_target: str | None = None,
        meta: list[str] | None = None,
        eval_meta: list[str] | None = None,
        classes: dict[str, list[str]] | None = None,
        ranges: dict[str, list[float]] | None = None,
        allow_missing_targets: bool = False,
        layout: str | None = None,
        read_options: dict[str, Any] | None = None,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        skip_bad_rows: bool = False,
        max_rows: int | None = None,
        drop_last: bool = False,
        seed: int | None = None,
        stratify_bins: int | None = None,
        stratify_mode: str = "stratified",
        stratify_alpha: float = 0.0,
        stratify_column: str | None = None,
    ) -> None:
        super().__init__()
        if not inputs:
            raise ValueError("the data module needs inputs: the list of input column names")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if eval_batch_size is not None and eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be >= 1, got {eval_batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if stratify_bins is not None and stratify_bins < 2:
            raise ValueError(f"stratify_bins must be >= 2, got {stratify_bins}")
        if stratify_mode not in ("stratified", "balanced"):
            raise ValueError(f"stratify_mode must be 'stratified' or 'balanced', got {stratify_mode!r}")
        targets = [] if target is None else [target] if isinstance(target, str) else list(target)
        extra = dict(sources or {})
        unknown = sorted(set(extra) - {"train", "val", "test", "predict"})
        if unknown:
            raise ValueError(f"sources: unknown split(s) {unknown}; use train, val, test, predict")
        self.sources: dict[str, Source | None] = {}
        for split, path in (("train", train), ("val", val), ("test", test), ("predict", predict)):
            if path is not None and split in extra:
                raise ValueError(f"data.{split} and data.sources.{split} both given; keep one")
            self.sources[split] = extra.get(split) or (
                Table(path, layout=layout, read_options=read_options) if path is not None else None
            )
        self.inputs = list(inputs)
        self.eval_inputs = list(eval_inputs) if eval_inputs else None
        self.targets = targets
        self.eval_target = eval_target
        self.meta = list(meta or [])
        if stratify_column is not None and stratify_column not in self.meta:
            self.meta.append(stratify_column)
        self.eval_meta = None if eval_meta is None else list(eval_meta)
        self.stratify_column = stratify_column
        self.classes = {k: [str(c) for c in v] for k, v in (classes or {}).items()}
        self.ranges = {k: (float(v[0]), float(v[1])) for k, v in (ranges or {}).items()}
        for column, (low, high) in self.ranges.items():
            if not low < high:
                raise ValueError(f"ranges.{column}: need [low, high] with low < high, got {[low, high]}")
        for column, names in self.classes.items():
            if len(set(names)) != len(names) or len(names) < 2:
                raise ValueError(f"classes.{column}: need at least two distinct class names, got {names}")
        self.allow_missing_targets = allow_missing_targets
        self.stratify = (stratify_bins, stratify_mode, float(stratify_alpha))
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.skip_bad_rows = skip_bad_rows
        self.max_rows = max_rows
        self.drop_last = drop_last
        self.seed = seed
        self.datasets: dict[str, RowsDataset] = {}
        self.skipped: dict[str, int] = {}
        self._processors: dict[str, Processor] = {}

    # --------------------------------------------------------------- columns
    def inputs_for(self, split: str) -> list[Column]:
        if split in ("val", "test") and self.eval_inputs:
            return self.eval_inputs
        return self.inputs

    def meta_for(self, split: str) -> list[str]:
        if split in ("val", "test") and self.eval_meta is not None:
            return self.eval_meta
        return self.meta

    def set_processors(self, processors: dict[str, Processor] | list[Processor]) -> None:
        """Use these processors instead of asking the system: input column name -> processor, or a list in
        the order of ``inputs``."""
        if isinstance(processors, dict):
            self._processors.update(processors)
            return
        names = [column_name(c) for c in self.inputs]
        if len(processors) != len(names):
            raise ValueError(f"need {len(names)} processors (one per input column {names}), got {len(processors)}")
        self._processors.update(dict(zip(names, processors)))

    def processors(self, split: str = "train") -> dict[str, Processor]:
        names = [column_name(c) for c in self.inputs_for(split)]
        missing = [n for n in names if n not in self._processors]
        if missing:
            system = system_of(self.trainer)
            if system is None:
                raise RuntimeError(
                    "the data module needs processors: attach it to a polymodal System or call set_processors"
                )
            self._processors.update(dict(zip(missing, system.processors_for(missing))))
        return {n: self._processors[n] for n in names}

    # --------------------------------------------------------------- loading
    def load_split(self, split: str) -> RowsDataset:
        """Read and validate one split (cached)."""
        if split in self.datasets:
            return self.datasets[split]
        source = self.sources[split]
        if source is None:
            raise ValueError(f"no {split} data: set data.{split} (a table path or a source)")
        where = source.describe()
        df = source.frame()
        if self.max_rows is not None:
            df = df.iloc[: self.max_rows]
        columns = self.inputs_for(split)
        target_cols = self.targets if split != "predict" else []
        if split in ("val", "test") and self.eval_target:
            target_cols = [self.eval_target]
        flat = [c for col in columns for c in ([col] if isinstance(col, str) else col)]
        meta_cols = self.meta_for(split)
        check_columns(df, flat + target_cols + meta_cols, where)
        processors = self._processors
        bad: list[tuple[int, str, str]] = []
        values: dict[str, list[Any]] = {}
        for col in columns:
            name = column_name(col)
            raw = df[col].tolist() if isinstance(col, str) else list(zip(*(df[c].tolist() for c in col), strict=True))
            for i, v in enumerate(raw):
                parts = [v] if isinstance(col, str) else list(v)
                reason = next((r for r in map(_bad_value, parts) if r), None)
                if reason is None and name in processors:
                    try:
                        processors[name].validate(v)
                    except ValueError as exc:
                        reason = str(exc)
                if reason:
                    bad.append((i, name, reason))
            values[name] = raw
        targets: dict[str, list[float]] = {}
        for j, col in enumerate(target_cols):
            if split in ("val", "test") and self.eval_target:
                key = self.targets[0] if len(self.targets) == 1 else self.eval_target
            else:
                key = self.targets[j]
            out = []
            index = {name: float(k) for k, name in enumerate(self.classes.get(col, []))}
            for i, v in enumerate(df[col].tolist()):
                if index:
                    if str(v) in index:
                        out.append(index[str(v)])
                        continue
                    if not (self.allow_missing_targets and _bad_value(v)):
                        bad.append((i, col, f"{v!r:.40} is not one of the classes {self.classes[col]}"))
                    out.append(float("nan"))
                    continue
                try:
                    f = float(v)
                    if math.isnan(f) and self.allow_missing_targets:
                        pass
                    elif not math.isfinite(f):
                        raise ValueError
                    elif col in self.ranges and not self.ranges[col][0] <= f <= self.ranges[col][1]:
                        low, high = self.ranges[col]
                        bad.append((i, col, f"{f:g} is outside the declared range [{low:g}, {high:g}]"))
                except (TypeError, ValueError):
                    bad.append((i, col, f"not a finite number: {v!r:.40}"))
                    f = float("nan")
                out.append(f)
            targets[key] = out
        meta = {m: df[m].tolist() for m in meta_cols}
        rows = list(range(1, len(df) + 1))
        if bad:
            first = min(bad)
            # Row numbers are 1-based data rows (header excluded), as a spreadsheet user counts them.
            message = f"{where}: row {first[0] + 1}, column {first[1]!r}: {first[2]}"
            if not self.skip_bad_rows:
                n_bad = len({b[0] for b in bad})
                raise ValueError(f"{message} ({n_bad} bad row(s); set data.skip_bad_rows=true to drop them)")
            drop = {b[0] for b in bad}
            keep = [i for i in range(len(df)) if i not in drop]
            values = {k: [v[i] for i in keep] for k, v in values.items()}
            targets = {k: [v[i] for i in keep] for k, v in targets.items()}
            meta = {k: [v[i] for i in keep] for k, v in meta.items()}
            rows = [i + 1 for i in keep]
            self.skipped[split] = len(drop)
            log.warning("%s: skipped %d bad row(s) of %d (first: %s)", where, len(drop), len(df), message)
        if not rows:
            raise ValueError(f"{where}: no rows to use")
        ds = RowsDataset(values, targets, meta, rows)
        self.datasets[split] = ds
        return ds

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ["train", "val"], "validate": ["val"], "test": ["test"], "predict": ["predict"]}
        system = system_of(self.trainer)
        for split in wanted.get(stage or "fit", ["train", "val", "test"]):
            if self.sources[split] is not None:
                if system is not None:
                    self.processors(split)  # per-value validation in load_split uses them
                self.load_split(split)
        # Encoders whose input statistics are weights (e.g. time-series normalisers) fit them on the
        # training split only, before any batch is seen: no leakage from val/test.
        if stage in (None, "fit") and "train" in self.datasets and system is not None:
            ds = self.datasets["train"]
            system.fit_input_statistics(list(ds.columns), list(ds.columns.values()))

    # ----------------------------------------------------------- dataloaders
    def train_sampler(self, ds: RowsDataset) -> torch.utils.data.Sampler[int]:
        seed = default_seed(self.seed)
        bins, mode, alpha = self.stratify
        from polymodal.data.stratified import StratifiedSampler, quantile_bins

        if self.stratify_column is not None:
            strata = np.unique(np.asarray(ds.meta[self.stratify_column]), return_inverse=True)[1]
            return StratifiedSampler(strata, mode=mode, alpha=alpha, seed=seed)
        if bins is None:
            return EpochShuffleSampler(len(ds), seed)

        if len(ds.targets) != 1:
            raise ValueError("data.stratify_bins needs exactly one target column (data.target)")
        target = next(iter(ds.targets.values()))
        return StratifiedSampler(quantile_bins(target, bins), mode=mode, alpha=alpha, seed=seed)

    def _loader(self, split: str, train: bool) -> DataLoader:
        ds = self.load_split(split)
        sampler: torch.utils.data.Sampler[int] | None = None
        if train:
            sampler = self.train_sampler(ds)
        elif torch.distributed.is_available() and torch.distributed.is_initialized():
            # Each item on exactly one rank (no padding duplicates), so metrics gathered over ranks are
            # those of the whole dataset. Lightning keeps a DistributedSampler as given.
            from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler

            sampler = UnrepeatedDistributedSampler(ds, shuffle=False)
        return DataLoader(
            ds,
            batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=sampler,
            drop_last=train and self.drop_last,
            num_workers=self.num_workers,
            collate_fn=Collator(self.processors(split), self.sources[split].describe()),  # type: ignore[union-attr]
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("val", False) if self.sources["val"] is not None else []

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", False)
