"""Data: table reading and the table data module."""

from __future__ import annotations

from polymodal.data.datamodule import Collator, RowsDataset, TableDataModule
from polymodal.data.tables import LAYOUTS, check_columns, read_table

__all__ = ["LAYOUTS", "Collator", "RowsDataset", "TableDataModule", "check_columns", "read_table"]
