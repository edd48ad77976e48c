"""Data: table reading, the table data module, NLI triplets and stratified sampling."""

from __future__ import annotations

from polymodal.data.datamodule import Collator, RowsDataset, TableDataModule
from polymodal.data.nli import NLITripletsDataModule, StsValidatedDataModule
from polymodal.data.stratified import (
    StratifiedBatchSampler,
    StratifiedSampler,
    combine_bins,
    quantile_bins,
    stratified_split,
)
from polymodal.data.tables import LAYOUTS, check_columns, iter_table, read_table

__all__ = [
    "LAYOUTS",
    "Collator",
    "NLITripletsDataModule",
    "RowsDataset",
    "StratifiedBatchSampler",
    "StratifiedSampler",
    "StsValidatedDataModule",
    "TableDataModule",
    "check_columns",
    "combine_bins",
    "iter_table",
    "quantile_bins",
    "read_table",
    "stratified_split",
]
