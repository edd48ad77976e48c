"""Financial PhraseBank (Malo et al., 2014) as a data module: the finance-adaptation task.

PreBit used FinBERT. No FinBERT weights exist offline here, so the finance-adapted text
encoder is the bundled MiniLM fine-tuned on PhraseBank's 3-class sentence sentiment
(``finance_minilm.yaml``); its accuracy is measured on a held-out, stratified test split.
"""

from __future__ import annotations

import logging

import numpy as np

from polymodal.data.datamodule import RowsDataset, TableDataModule

__all__ = ["LABELS", "PhraseBankDataModule"]

log = logging.getLogger(__name__)

#: Class index of each PhraseBank label.
LABELS = ("negative", "neutral", "positive")


class PhraseBankDataModule(TableDataModule):
    """One PhraseBank agreement level (``sentence<TAB>label`` TSV), split once, stratified and
    seeded, into train/val/test. Duplicate sentences are dropped first so no sentence is in two
    splits.

    Args:
        path: e.g. ``../shared/data/fin_sentiment/fpb_sentences_50Agree.tsv.gz``.
        val_fraction: share of each class held out for validation.
        test_fraction: share of each class held out for the test.
        seed: split seed.
        max_rows: keep only this many training rows (quick runs).
        batch_size: training batch size.
        eval_batch_size: val/test batch size.
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        path: str,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
        max_rows: int | None = None,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__(
            train=path,
            val=path,
            test=path,
            inputs=["sentence"],
            target="label",
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
        )
        if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ValueError("val_fraction and test_fraction must be in (0, 1) and sum to less than 1")
        self.path, self.val_fraction, self.test_fraction, self.seed = path, val_fraction, test_fraction, seed
        self.train_rows = max_rows
        self.counts: dict[str, dict[str, int]] = {}

    def load_split(self, split: str) -> RowsDataset:
        if split in self.datasets:
            return self.datasets[split]
        from polymodal.data.tables import check_columns, read_table

        df = read_table(self.path, sep="\t", keep_default_na=False)
        check_columns(df, ["sentence", "label"], self.path)
        index = {name: i for i, name in enumerate(LABELS)}
        bad = [i for i, v in enumerate(df["label"]) if v not in index]
        if bad:
            raise ValueError(
                f"{self.path}: row {bad[0] + 1}, column 'label': {df['label'].iloc[bad[0]]!r} is not one of {LABELS}"
            )
        empty = [i for i, v in enumerate(df["sentence"]) if not str(v).strip()]
        if empty:
            raise ValueError(f"{self.path}: row {empty[0] + 1}, column 'sentence': empty sentence")
        df = df.drop_duplicates("sentence", keep="first").reset_index(drop=True)
        y = df["label"].map(index).to_numpy()
        rng = np.random.default_rng(self.seed)
        parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
        for c in range(len(LABELS)):
            idx = rng.permutation(np.flatnonzero(y == c))
            n_val, n_test = round(len(idx) * self.val_fraction), round(len(idx) * self.test_fraction)
            parts["test"] += idx[:n_test].tolist()
            parts["val"] += idx[n_test : n_test + n_val].tolist()
            parts["train"] += idx[n_test + n_val :].tolist()
        for name, rows in parts.items():
            rows = sorted(rows)
            if name == "train":
                rows = rng.permutation(rows)[: self.train_rows].tolist() if self.train_rows else rows
            sentences = df["sentence"].astype(str).iloc[rows].tolist()
            labels = [float(v) for v in y[rows]]
            self.datasets[name] = RowsDataset([sentences], labels)
            self.counts[name] = {LABELS[c]: int((y[rows] == c).sum()) for c in range(len(LABELS))}
        log.info("PhraseBank splits: %s", self.counts)
        return self.datasets[split]
