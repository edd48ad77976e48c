"""NLI triplets for contrastive sentence-embedding training, validated on an STS table.

:class:`StsValidatedDataModule` is a :class:`~polymodal.data.TableDataModule` whose training
rows are built by a subclass and whose val/test splits are STS tables (two sentence columns and
a score), so a :class:`~polymodal.systems.ContrastiveSystem` logs ``val/spearman``.
:class:`NLITripletsDataModule` builds (premise, entailed hypothesis, contradicted hypothesis)
triplets from one or more SNLI/MNLI-style tables (SimCSE's supervised data; the NLI stage of
SBERT / MahaSBERT).
"""

from __future__ import annotations

import logging
from typing import Any

from torch.utils.data import DataLoader, Dataset

from polymodal.data.datamodule import Collator, RowsDataset, TableDataModule
from polymodal.data.tables import check_columns, read_table

__all__ = ["NLITripletsDataModule", "StsValidatedDataModule"]

log = logging.getLogger(__name__)


def _concat(frames: list[Any]) -> Any:
    import pandas as pd

    return pd.concat(frames, ignore_index=True)


class StsValidatedDataModule(TableDataModule):
    """A data module whose training rows are built by the subclass and whose val/test splits
    are STS tables with ``val_inputs`` columns and a ``target`` score."""

    def __init__(
        self,
        train: str | None = None,
        val: str | None = None,
        test: str | None = None,
        inputs: list[str] | None = None,
        val_inputs: list[str] | None = None,
        target: str | None = "score",
        layout: str | None = None,
        read_options: dict[str, Any] | None = None,
        val_layout: str | None = None,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        max_rows: int | None = None,
        drop_last: bool = True,
    ) -> None:
        super().__init__(
            train=train,
            val=val,
            test=test,
            inputs=inputs,
            target=target,
            layout=layout,
            read_options=read_options,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            max_rows=max_rows,
            drop_last=drop_last,
        )
        self.val_inputs = list(val_inputs or ["sentence1", "sentence2"])
        self.val_layout = val_layout

    def _train_rows(self, df: Any, path: str) -> Dataset:
        raise NotImplementedError

    def load_split(self, split: str) -> Dataset:
        if split in self.datasets:
            return self.datasets[split]
        if split == "train":
            path = self.paths["train"]
            if path is None:
                raise ValueError("no train data: set data.train (a table path)")
            paths = [path] if isinstance(path, str) else list(path)
            frames = [read_table(p, layout=self.layout, **self.read_options) for p in paths]
            for p, frame in zip(paths[1:], frames[1:]):
                if list(frame.columns) != list(frames[0].columns):
                    raise ValueError(
                        f"{p}: columns {list(frame.columns)} differ from {paths[0]}: {list(frames[0].columns)}"
                    )
            df = frames[0] if len(frames) == 1 else _concat(frames)
            path = ", ".join(paths)
            ds = self._train_rows(df, path)
            if len(ds) == 0:
                raise ValueError(f"{path}: no training rows could be built")
            self.datasets["train"] = ds
            return ds
        # val/test: an ordinary STS table with the validation columns
        saved = (self.inputs, self._processors, self.layout, self.read_options)
        self.inputs = self.val_inputs
        self._processors = None if saved[1] is None else saved[1][: len(self.val_inputs)]
        self.layout, self.read_options = self.val_layout, {}
        try:
            return super().load_split(split)
        finally:
            self.inputs, self._processors, self.layout, self.read_options = saved

    def _loader(self, split: str, train: bool) -> DataLoader:
        ds = self.load_split(split)
        processors = self.processors()
        if not train:
            processors = processors[: len(self.val_inputs)]
        return DataLoader(
            ds,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            drop_last=train and self.drop_last,
            num_workers=self.num_workers,
            collate_fn=Collator(processors),
            persistent_workers=self.num_workers > 0,
        )


class NLITripletsDataModule(StsValidatedDataModule):
    """Supervised stage: (premise, entailment, contradiction) triplets; STS validation.

    Every premise with at least one entailed and one contradicted hypothesis gives one triplet
    per entailed hypothesis (the contradiction is taken in turn), as in SimCSE's supervised data.

    Args:
        train: NLI table(s) with ``premise``, ``hypothesis`` and ``label`` columns (SNLI/MNLI
            style); a list of tables with the same columns is concatenated.
        premise, hypothesis, label: column names.
        entailment, contradiction: label values.
        Other arguments as in :class:`PerturbedPairsDataModule`.
    """

    def __init__(
        self,
        train: str | list[str] | None = None,
        premise: str = "premise",
        hypothesis: str = "hypothesis",
        label: str = "label",
        entailment: str = "entailment",
        contradiction: str = "contradiction",
        val: str | None = None,
        val_inputs: list[str] | None = None,
        target: str | None = "score",
        layout: str | None = None,
        val_layout: str | None = None,
        read_options: dict[str, Any] | None = None,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        max_rows: int | None = None,
    ) -> None:
        super().__init__(
            train=train,
            val=val,
            inputs=["anchor", "positive", "negative"],
            val_inputs=val_inputs,
            target=target,
            layout=layout,
            read_options={"quoting": 3, **(read_options or {})},  # SNLI text has bare quotes
            val_layout=val_layout,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            max_rows=max_rows,
        )
        self.columns = (premise, hypothesis, label)
        self.labels = (entailment, contradiction)

    def _train_rows(self, df: Any, path: str) -> Dataset:
        premise, hypothesis, label = self.columns
        check_columns(df, [premise, hypothesis, label], path)
        groups: dict[str, dict[str, list[str]]] = {}
        for p, h, y in zip(df[premise].tolist(), df[hypothesis].tolist(), df[label].tolist()):
            if isinstance(p, str) and isinstance(h, str) and y in self.labels:
                groups.setdefault(p, {}).setdefault(y, []).append(h)
        anchors, positives, negatives = [], [], []
        for p, by_label in groups.items():
            pos, neg = by_label.get(self.labels[0], []), by_label.get(self.labels[1], [])
            for k, h in enumerate(pos):
                if neg:
                    anchors.append(p)
                    positives.append(h)
                    negatives.append(neg[k % len(neg)])
        if self.max_rows is not None:
            anchors, positives, negatives = (x[: self.max_rows] for x in (anchors, positives, negatives))
        log.info("%s: %d NLI triplets", path, len(anchors))
        return RowsDataset([anchors, positives, negatives], None)
