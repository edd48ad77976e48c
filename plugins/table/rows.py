"""Rows of typed columns: read with a schema, checked, serialised to text or split into typed field values.

A :class:`TableSchema` names each column's type; :func:`read_rows` reads a CSV/TSV/JSONL/Parquet table and
checks that every schema column is there (one line naming the file and the missing columns) and that every
non-empty value parses as its type (one line naming the file, line and column). Values stay strings, normalised
per type (``date``: ``YYYY-MM-DD``; ``int``: digits without leading zeros; ``name``/``text``/``category``:
lower-case, single spaces). Empty cells are missing values (``""``), which serialisation skips.

Two views of a row feed models:

* :func:`serialize` — one string (``"given name: michaela; surname: neumann; ..."``) for a text encoder;
* :func:`field_values` — ``(column, value token)`` pairs, field by field (a date becomes its year, month name and
  day), the value nodes of a data graph.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["ColumnType", "TableSchema", "field_values", "normalise_value", "read_rows", "serialize"]

ColumnType = Literal["text", "name", "category", "int", "float", "date", "code"]
TYPES = ("text", "name", "category", "int", "float", "date", "code")
MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_SPACES = re.compile(r"\s+")
_TOKEN = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class TableSchema:
    """Column name -> type (``text``, ``name``, ``category``, ``int``, ``float``, ``date`` (YYYYMMDD or
    YYYY-MM-DD), ``code`` (an identifier kept verbatim)), plus an optional key column (row id, not a field)."""

    columns: Mapping[str, ColumnType]
    key: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.columns:
            raise ValueError("a table schema needs at least one column")
        bad = {c: t for c, t in self.columns.items() if t not in TYPES}
        if bad:
            raise ValueError(f"unknown column type(s) {bad}; choose from {list(TYPES)}")

    def label(self, column: str) -> str:
        return self.labels.get(column, column.replace("_", " "))


def normalise_value(value: Any, kind: ColumnType) -> str:
    """The canonical string of one cell; ``""`` for a missing value. Raises ``ValueError`` if it does not parse."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    text = _SPACES.sub(" ", str(value)).strip()
    if not text:
        return ""
    if kind in ("text", "name", "category"):
        return text.lower()
    if kind == "code":
        return text
    if kind == "int":
        if not re.fullmatch(r"[+-]?\d+(\.0+)?", text):
            raise ValueError(f"{text[:30]!r} is not an integer")
        return str(int(float(text)))
    if kind == "float":
        try:
            return repr(float(text))
        except ValueError:
            raise ValueError(f"{text[:30]!r} is not a number") from None
    digits = text.replace("-", "")
    try:
        if not re.fullmatch(r"\d{8}", digits):
            raise ValueError
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:])).isoformat()
    except ValueError:
        raise ValueError(f"{text[:30]!r} is not a date (YYYYMMDD or YYYY-MM-DD)") from None


def read_rows(path: str, schema: TableSchema, skip_bad_values: bool = False) -> Any:
    """A DataFrame of the schema's columns (key first), values normalised as strings.

    Args:
        path: the table file (``package://`` and ``data://`` paths work).
        schema: the columns and their types.
        skip_bad_values: blank a value that does not parse (counted in ``df.attrs["bad_values"]``) instead of
            raising.

    Raises:
        ValueError: one line: missing columns (file and header line), or a value that is not of its column's
            type (file, line, column).
    """
    from polymodal.data.tables import read_table

    df = read_table(path, dtype=str, keep_default_na=False)
    wanted = ([schema.key] if schema.key else []) + list(schema.columns)
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: line 1 (header): missing column(s) {missing}; the table has {list(df.columns)}")
    out = df[wanted].copy()
    bad = 0
    for column, kind in schema.columns.items():
        values = []
        for i, v in enumerate(out[column].tolist()):
            try:
                values.append(normalise_value(v, kind))
            except ValueError as exc:
                if not skip_bad_values:
                    raise ValueError(f"{path}: line {i + 2}, column {column!r}: {exc}") from None
                values.append("")
                bad += 1
        out[column] = values
    if schema.key:
        keys = out[schema.key].astype(str).str.strip()
        dup = keys[keys.duplicated()]
        if len(dup):
            raise ValueError(
                f"{path}: line {int(dup.index[0]) + 2}, column {schema.key!r}: duplicate key {dup.iloc[0]!r}"
            )
        empty = keys[keys == ""]
        if len(empty):
            raise ValueError(f"{path}: line {int(empty.index[0]) + 2}, column {schema.key!r}: empty key")
        out[schema.key] = keys
    if not len(out):
        raise ValueError(f"{path}: line 2: the table has no rows")
    out.attrs["bad_values"] = bad
    return out.reset_index(drop=True)


def serialize(row: Mapping[str, str], schema: TableSchema, style: Literal["kv", "values"] = "kv") -> str:
    """One row as text: ``"label: value; ..."`` (``kv``) or the values joined by spaces (``values``); missing
    values are left out; dates as ``YYYY-MM-DD``."""
    parts = []
    for column in schema.columns:
        value = row.get(column, "")
        if value:
            parts.append(f"{schema.label(column)}: {value}" if style == "kv" else value)
    return "; ".join(parts) if style == "kv" else " ".join(parts)


def field_values(row: Mapping[str, str], schema: TableSchema) -> list[tuple[str, str]]:
    """``(column, token)`` pairs of a row, field by field: text-like values split into lower-case word tokens, a
    date into its year, month name and day (``"1915"``, ``"november"``, ``"11"``), numbers and codes whole."""
    out: list[tuple[str, str]] = []
    for column, kind in schema.columns.items():
        value = row.get(column, "")
        if not value:
            continue
        if kind == "date":
            year, month, day = value.split("-")
            out += [(column, year), (column, MONTHS[int(month) - 1]), (column, str(int(day)))]
        elif kind in ("int", "float", "code"):
            out.append((column, value.lower()))
        else:
            out += [(column, tok) for tok in _TOKEN.findall(value.lower())]
    return out
