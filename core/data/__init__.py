"""Data: table reading, the table data module and NLI triplets."""

from __future__ import annotations

from polymodal.data.datamodule import Collator, RowsDataset, TableDataModule
from polymodal.data.nli import NLITripletsDataModule, StsValidatedDataModule
from polymodal.data.tables import LAYOUTS, check_columns, iter_table, read_table

__all__ = [
    "LAYOUTS",
    "Collator",
    "NLITripletsDataModule",
    "RowsDataset",
    "StsValidatedDataModule",
    "TableDataModule",
    "check_columns",
    "iter_table",
    "read_table",
]
