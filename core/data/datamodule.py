"""A LightningDataModule over tables with a column -> encoder mapping."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from polymodal.data.tables import check_columns, read_table
from polymodal.modality import Processor

__all__ = ["Collator", "EpochShuffleSampler", "RowsDataset", "TableDataModule"]

log = logging.getLogger(__name__)


class RowsDataset(Dataset):
    """Rows of input values (one list per input column) and optional float targets."""

    def __init__(self, columns: list[list[Any]], target: list[float] | None, rows: list[int] | None = None) -> None:
        self.columns = columns
        self.target = target
        #: 0-based row numbers in the source table (for error messages after bad rows were skipped).
        self.rows = rows if rows is not None else list(range(len(columns[0]) if columns else 0))

    def __len__(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def __getitem__(self, i: int) -> tuple[list[Any], float | None, int]:
        return [c[i] for c in self.columns], (None if self.target is None else self.target[i]), self.rows[i]


class EpochShuffleSampler(torch.utils.data.Sampler[int]):
    """Random order that depends only on ``(seed, epoch)``.

    Lightning calls ``set_epoch`` at every epoch start, so a run resumed from a checkpoint
    sees exactly the batches an uninterrupted run would have seen (the global RNG, which a
    resume does not restore, is never used).
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


class Collator:
    """Picklable collate function: runs each column's processor on the batch.

    A value the processor rejects (a corrupt image found only when decoding, say) is reported
    with the source file, its row and its column.
    """

    def __init__(
        self, processors: Sequence[Processor], columns: Sequence[str] | None = None, source: str | None = None
    ) -> None:
        self.processors = list(processors)
        self.columns = list(columns) if columns is not None else [str(j) for j in range(len(self.processors))]
        self.source = source or "data"

    def _process(self, j: int, rows: list[tuple]) -> dict[str, Any]:
        values = [r[0][j] for r in rows]
        try:
            return self.processors[j](values)
        except (ValueError, TypeError):
            for r in rows:  # find the culprit, one value at a time
                try:
                    self.processors[j]([r[0][j]])
                except (ValueError, TypeError) as exc:
                    row = r[2] + 1 if len(r) > 2 else "?"
                    raise type(exc)(f"{self.source}: row {row}, column {self.columns[j]!r}: {exc}") from None
            raise

    def __call__(self, rows: list[tuple]) -> dict[str, Any]:
        inputs = [self._process(j, rows) for j in range(len(self.processors))]
        target = None
        if rows and rows[0][1] is not None:
            target = torch.tensor([r[1] for r in rows], dtype=torch.float32)
        return {"inputs": inputs, "target": target}


class TableDataModule(pl.LightningDataModule):
    """Train/val/test/predict tables read with pandas, columns routed to the model's encoders.

    The model decides preprocessing: at ``setup`` the data module asks the attached
    LightningModule for one :class:`~polymodal.modality.Processor` per input column
    (``processors_for(columns)``), so tokenisation/rendering runs in DataLoader workers.

    Args:
        train: training table (path or ``package://...``); optional for validate/test/predict.
        val: validation table.
        test: test table.
        predict: table to embed with ``polymodal predict``.
        inputs: input column names in the order the loss expects them.
        target: label/score column, if any.
        layout: named layout for header-less files (``"stsb"``); detected from well-known names.
        read_options: extra ``pandas.read_*`` arguments.
        batch_size: training batch size (per device).
        eval_batch_size: batch size for val/test/predict (default: ``batch_size``).
        num_workers: DataLoader workers.
        skip_bad_rows: drop rows with missing/invalid values and report the count, instead of
            raising (the default) with the file, row and column of the first bad value.
        max_rows: keep only the first N rows of each table (quick runs).
        drop_last: drop the last incomplete training batch (in-batch-negative losses like it).
        seed: shuffling seed; the order of epoch ``e`` depends only on ``(seed, e)``, so resumed
            runs replay the same batches. Default: the ``PL_GLOBAL_SEED`` set by
            ``seed_everything`` (0 when unset).
        eval_target: the val/test target column when it differs from the training one (e.g.
            a student trained on teacher scores, validated on gold scores).
        stratify_bins: stratified sampling for a continuous target: bin the training target
            into this many quantile bins and draw every epoch so that consecutive batches hold
            the bins in proportion (see :mod:`polymodal.data.stratified`).
        stratify_mode: ``"stratified"`` (proportional; a permutation of all rows) or
            ``"balanced"`` (bins drawn with weight ``count ** stratify_alpha``: ``0`` gives every
            bin the same share, oversampling rare target ranges).
        stratify_alpha: see ``stratify_mode``.
    """

    def __init__(
        self,
        train: str | None = None,
        val: str | None = None,
        test: str | None = None,
        predict: str | None = None,
        inputs: list[str] | None = None,
        target: str | None = None,
        layout: str | None = None,
        read_options: dict[str, Any] | None = None,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        skip_bad_rows: bool = False,
        max_rows: int | None = None,
        drop_last: bool = False,
        seed: int | None = None,
        eval_target: str | None = None,
        stratify_bins: int | None = None,
        stratify_mode: str = "stratified",
        stratify_alpha: float = 0.0,
    ) -> None:
        super().__init__()
        if not inputs:
            raise ValueError("TableDataModule needs inputs: the list of input column names")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.paths = {"train": train, "val": val, "test": test, "predict": predict}
        self.inputs = list(inputs)
        self.target = target
        self.eval_target = eval_target
        if stratify_bins is not None and stratify_bins < 2:
            raise ValueError(f"stratify_bins must be >= 2, got {stratify_bins}")
        if stratify_mode not in ("stratified", "balanced"):
            raise ValueError(f"stratify_mode must be 'stratified' or 'balanced', got {stratify_mode!r}")
        self.stratify = (stratify_bins, stratify_mode, float(stratify_alpha))
        self.layout = layout
        self.read_options = dict(read_options or {})
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.skip_bad_rows = skip_bad_rows
        self.max_rows = max_rows
        self.drop_last = drop_last
        self.seed = seed
        self.datasets: dict[str, RowsDataset] = {}
        self.skipped: dict[str, int] = {}
        self._processors: list[Processor] | None = None

    # --------------------------------------------------------------- loading
    def set_processors(self, processors: Sequence[Processor]) -> None:
        """Use these processors (one per input column) instead of asking the model."""
        if len(processors) != len(self.inputs):
            raise ValueError(f"need {len(self.inputs)} processors (one per input column), got {len(processors)}")
        self._processors = list(processors)

    def processors(self) -> list[Processor]:
        if self._processors is None:
            model = self.trainer.lightning_module if self.trainer is not None else None
            if model is None or not hasattr(model, "processors_for"):
                raise RuntimeError(
                    "TableDataModule needs processors: attach it to a polymodal system or call set_processors"
                )
            self._processors = list(model.processors_for(self.inputs))
        return self._processors

    def load_split(self, split: str) -> RowsDataset:
        """Read and validate one split (cached)."""
        if split in self.datasets:
            return self.datasets[split]
        path = self.paths[split]
        if path is None:
            raise ValueError(f"no {split} data: set data.{split} (a table path)")
        df = read_table(path, layout=self.layout, **self.read_options)
        target_col = self.eval_target if split in ("val", "test") and self.eval_target else self.target
        wanted = self.inputs + ([target_col] if target_col and split != "predict" else [])
        check_columns(df, wanted, path)
        if self.max_rows is not None:
            df = df.iloc[: self.max_rows]
        processors = self._processors
        bad: list[tuple[int, str, str]] = []
        columns: list[list[Any]] = []
        for j, col in enumerate(self.inputs):
            values = df[col].tolist()
            for i, v in enumerate(values):
                reason = _bad_value(v)
                if reason is None and processors is not None:
                    try:
                        processors[j].validate(v)
                    except ValueError as exc:
                        reason = str(exc)
                if reason:
                    bad.append((i, col, reason))
            columns.append(values)
        target = None
        if target_col and split != "predict":
            raw = df[target_col].tolist()
            target = []
            for i, v in enumerate(raw):
                try:
                    f = float(v)
                    if not math.isfinite(f):
                        raise ValueError
                except (TypeError, ValueError):
                    bad.append((i, target_col, f"not a finite number: {v!r:.40}"))
                    f = float("nan")
                target.append(f)
        rows: list[int] | None = None
        if bad:
            first = min(bad)
            # Row numbers are 1-based data rows (header excluded), as a spreadsheet user counts them.
            where = f"{path}: row {first[0] + 1}, column {first[1]!r}: {first[2]}"
            if not self.skip_bad_rows:
                raise ValueError(
                    f"{where} ({len({b[0] for b in bad})} bad row(s); set data.skip_bad_rows=true to drop them)"
                )
            drop = {b[0] for b in bad}
            keep = [i for i in range(len(df)) if i not in drop]
            columns = [[c[i] for i in keep] for c in columns]
            target = None if target is None else [target[i] for i in keep]
            rows = keep
            self.skipped[split] = len(drop)
            log.warning("%s: skipped %d bad row(s) of %d (first: %s)", path, len(drop), len(df), where)
        if not columns[0]:
            raise ValueError(f"{path}: no rows to use")
        ds = RowsDataset(columns, target, rows)
        self.datasets[split] = ds
        return ds

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ["train", "val"], "validate": ["val"], "test": ["test"], "predict": ["predict"]}
        for split in wanted.get(stage or "fit", ["train", "val", "test"]):
            if self.paths[split] is not None:
                self.load_split(split)
        # Encoders whose input statistics are weights (e.g. time-series normalisers) fit them on
        # the training split only, before any batch is seen: no leakage from val/test.
        model = self.trainer.lightning_module if self.trainer is not None else None
        if stage in (None, "fit") and "train" in self.datasets and hasattr(model, "fit_input_statistics"):
            model.fit_input_statistics(self.inputs, self.datasets["train"].columns)

    # ----------------------------------------------------------- dataloaders
    def _loader(self, split: str, train: bool) -> DataLoader:
        ds = self.load_split(split)
        sampler: torch.utils.data.Sampler[int] | None = None
        if train:
            seed = self.seed if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))
            bins, mode, alpha = self.stratify
            if bins is None:
                sampler = EpochShuffleSampler(len(ds), seed)
            else:
                from polymodal.data.stratified import StratifiedSampler, quantile_bins

                if ds.target is None:
                    raise ValueError("data.stratify_bins needs a target column (data.target)")
                sampler = StratifiedSampler(quantile_bins(ds.target, bins), mode=mode, alpha=alpha, seed=seed)
        elif torch.distributed.is_available() and torch.distributed.is_initialized():
            # Each item on exactly one rank (no padding duplicates), so metrics gathered over
            # ranks are those of the whole dataset. Lightning keeps a DistributedSampler as given.
            from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler

            sampler = UnrepeatedDistributedSampler(ds, shuffle=False)
        return DataLoader(
            ds,
            batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=sampler,
            drop_last=train and self.drop_last,
            num_workers=self.num_workers,
            collate_fn=Collator(self.processors(), self.inputs, str(self.paths[split])),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("val", False) if self.paths["val"] else []

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", False)

    def transfer_batch_to_device(self, batch: dict[str, Any], device: torch.device, dataloader_idx: int) -> Any:
        return {
            "inputs": [{k: v.to(device) if hasattr(v, "to") else v for k, v in x.items()} for x in batch["inputs"]],
            "target": None if batch["target"] is None else batch["target"].to(device),
        }


def _bad_value(v: Any) -> str | None:
    if v is None:
        return "missing value"
    if isinstance(v, float) and math.isnan(v):
        return "missing value"
    return None
