"""Table modality: rows of typed columns, read against a schema with one-line errors, and two views of a row for
models — serialised to one string (for a text encoder) or split field by field into typed value tokens (for a
graph over the content of tables and texts).

Example:
    >>> from polymodal.plugins.table import TableSchema, read_rows, serialize
    >>> schema = TableSchema({"given_name": "name", "surname": "name", "date_of_birth": "date"}, key="rec_id")
    >>> rows = read_rows("people.tsv", schema)
    >>> serialize(rows.iloc[0], schema)
    'given name: michaela; surname: neumann; date of birth: 1915-11-11'
"""

from __future__ import annotations

from polymodal.plugins_manager import require_extra

#: What this plugin imports beyond the core (its ``table`` extra), checked before anything else.
polymodal_extra = "table"
polymodal_requires = ("pandas",)
require_extra("table", polymodal_requires, polymodal_extra)

from polymodal.hookspecs import hookimpl
from polymodal.modality import Modality
from polymodal.plugins.table.rows import ColumnType, TableSchema, field_values, normalise_value, read_rows, serialize

__all__ = ["ColumnType", "TableSchema", "field_values", "normalise_value", "read_rows", "serialize"]

polymodal_api_version = 1


@hookimpl
def register_modalities(register):
    register(
        Modality(
            name="table",
            description="rows of typed columns: schema checks, serialised rows, field-by-field value tokens",
        )
    )
