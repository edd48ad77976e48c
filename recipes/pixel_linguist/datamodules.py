"""Data for the two Pixel-Linguist stages.

* :class:`PerturbedPairsDataModule` -- unsupervised stage: each training sentence is paired
  with a visually perturbed copy of itself (the positive); in-batch negatives do the rest.
* :class:`NLITripletsDataModule` (from :mod:`polymodal.data.nli`) -- supervised stage: (premise, entailed hypothesis,
  contradicted hypothesis) triplets built from an NLI table.

Both validate on an STS table (two sentence columns and a score), so the system logs
``val/spearman`` after every validation run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from polymodal.data.nli import NLITripletsDataModule, StsValidatedDataModule
from polymodal.data.tables import check_columns
from polymodal.plugins.pixel import Perturber

__all__ = ["NLITripletsDataModule", "PerturbedPairsDataModule"]

log = logging.getLogger(__name__)


class _PerturbedRows(Dataset):
    def __init__(self, texts: list[str], perturber: Perturber, seed: int) -> None:
        self.texts = texts
        self.perturber = perturber
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> tuple[list[str], None]:
        text = self.texts[i]
        return [text, self.perturber(text, self.rng)], None


class PerturbedPairsDataModule(StsValidatedDataModule):
    """Unsupervised stage: (sentence, perturbed sentence) pairs; STS validation.

    Args:
        train: table whose ``text_columns`` hold the training sentences (labels are ignored;
            duplicates are dropped).
        text_columns: columns to take sentences from.
        ops, char_rate, shuffle_prob: the :class:`~polymodal.plugins.pixel.Perturber` settings.
        seed: perturbation seed (a fresh perturbation is drawn every time a row is read).
        val: STS validation table; ``val_inputs``/``target``/``val_layout`` describe it.
        max_rows: keep only the first N sentences (after de-duplication).
        Other arguments as in :class:`~polymodal.data.TableDataModule`.
    """

    def __init__(
        self,
        train: str | None = None,
        text_columns: list[str] | None = None,
        ops: Sequence[str] = ("swap", "drop", "insert", "keyboard", "homoglyph", "word_shuffle"),
        char_rate: float = 0.05,
        shuffle_prob: float = 0.3,
        seed: int = 0,
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
            inputs=["anchor", "positive"],
            val_inputs=val_inputs,
            target=target,
            layout=layout,
            read_options=read_options,
            val_layout=val_layout,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            max_rows=max_rows,
        )
        self.text_columns = list(text_columns or ["sentence1", "sentence2"])
        self.perturber = Perturber(ops=list(ops), char_rate=char_rate, shuffle_prob=shuffle_prob, seed=seed)
        self.seed = seed

    def _train_rows(self, df: Any, path: str) -> Dataset:
        check_columns(df, self.text_columns, path)
        seen: dict[str, None] = {}
        for col in self.text_columns:
            for v in df[col].tolist():
                if isinstance(v, str) and v.strip():
                    seen.setdefault(v.strip(), None)
        texts = list(seen)
        if self.max_rows is not None:
            texts = texts[: self.max_rows]
        log.info("%s: %d unique sentences for perturbation pairs", path, len(texts))
        return _PerturbedRows(texts, self.perturber, self.seed)
