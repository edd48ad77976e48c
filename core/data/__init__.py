"""Data: sources (tables, NLI triplets, CoNLL BIO files, image captions, splits), the data module, sampling."""

from __future__ import annotations

from polymodal.data.cache import FeatureCache, model_fingerprint
from polymodal.data.captions import Captions
from polymodal.data.conll import ConllSource, read_conll, tag_set
from polymodal.data.datamodule import Collator, EpochShuffleSampler, RowsDataset, TableDataModule, column_name
from polymodal.data.sources import NLITriplets, Source, Split, Table, as_source
from polymodal.data.splits import split_keys, split_rows
from polymodal.data.stratified import (
    StratifiedBatchSampler,
    StratifiedSampler,
    combine_bins,
    quantile_bins,
    stratified_split,
)
from polymodal.data.tables import LAYOUTS, check_columns, iter_table, read_table
from polymodal.data.text import ChoiRecord, TextLines, read_choi

__all__ = [
    "LAYOUTS",
    "Captions",
    "Collator",
    "ConllSource",
    "EpochShuffleSampler",
    "FeatureCache",
    "NLITriplets",
    "RowsDataset",
    "Source",
    "Split",
    "StratifiedBatchSampler",
    "StratifiedSampler",
    "Table",
    "TableDataModule",
    "TextLines",
    "ChoiRecord",
    "read_choi",
    "as_source",
    "check_columns",
    "column_name",
    "combine_bins",
    "iter_table",
    "model_fingerprint",
    "quantile_bins",
    "read_conll",
    "read_table",
    "split_keys",
    "split_rows",
    "stratified_split",
    "tag_set",
]
