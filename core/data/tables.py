"""Reading tables (CSV/TSV/JSONL/Parquet, gzip transparently) with errors that name the file,
row and column."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from polymodal.io import resolve_path

__all__ = ["LAYOUTS", "check_columns", "read_table"]

#: Named layouts for well-known files that have no header.
LAYOUTS: dict[str, dict[str, Any]] = {
    # STS Benchmark: tab-separated, unquoted, no header, 7 fields (+2 optional source fields).
    "stsb": {
        "sep": "\t",
        "header": None,
        "quoting": csv.QUOTE_NONE,
        "names": [
            "genre",
            "filename",
            "year",
            "sid",
            "score",
            "sentence1",
            "sentence2",
            "source1",
            "source2",
        ],
        "dtype": {"sentence1": str, "sentence2": str},
        "keep_default_na": False,
    },
}


def _pandas():
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("reading tables needs pandas: pip install 'polymodal[data]'") from None
    return pd


def detect_layout(path: Path) -> str | None:
    """Guess a named layout from the file name (``sts-train.csv.gz`` -> ``"stsb"``)."""
    name = path.name.lower()
    if name.startswith("sts-") and (".csv" in name or ".tsv" in name):
        return "stsb"
    return None


def _suffixes(path: Path) -> list[str]:
    s = [x.lower() for x in path.suffixes]
    return s[:-1] if s and s[-1] in {".gz", ".bz2", ".xz", ".zst"} else s


def read_table(
    path: str | os.PathLike[str],
    layout: str | None = None,
    **read_options: Any,
):
    """Read a table into a pandas DataFrame.

    The format follows the extension (``.csv``, ``.tsv``, ``.jsonl``/``.json``, ``.parquet``;
    ``.gz`` etc. decompressed transparently). ``layout`` names a preset for header-less files
    (``"stsb"``); it is detected from well-known file names when not given.

    Raises:
        FileNotFoundError: the file does not exist (one line, naming it).
        ValueError: the file cannot be parsed (naming it, with the parser's row if known).
    """
    pd = _pandas()
    p = resolve_path(path, what="data file")
    if p.is_dir():
        raise IsADirectoryError(f"data file is a directory: {p}")
    layout = layout or detect_layout(p)
    options: dict[str, Any] = {}
    if layout is not None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
        options.update(LAYOUTS[layout])
    options.update(read_options)
    ext = _suffixes(p)
    kind = ext[-1] if ext else ""
    try:
        if kind == ".parquet":
            df = pd.read_parquet(p, **options)
        elif kind in {".jsonl", ".ndjson"}:
            df = pd.read_json(p, lines=True, **options)
        elif kind == ".json":
            df = pd.read_json(p, **options)
        elif kind in {".csv", ".tsv", ".txt"} or layout is not None:
            options.setdefault("sep", "\t" if kind == ".tsv" else ",")
            df = pd.read_csv(p, **options)
        else:
            raise ValueError(
                f"{p}: unknown table format {''.join(p.suffixes) or '(no extension)'}; "
                "use .csv, .tsv, .jsonl, .json or .parquet (optionally .gz)"
            )
    except (UnicodeDecodeError, EOFError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{p}: cannot read ({type(exc).__name__}: {exc})") from None
    except ValueError as exc:
        if str(p) in str(exc):
            raise
        raise ValueError(f"{p}: cannot parse: {exc}") from None
    except Exception as exc:  # pandas.errors.ParserError and friends
        raise ValueError(f"{p}: cannot parse: {exc}") from None
    return df


def check_columns(df, columns: Sequence[str], path: str | os.PathLike[str]) -> None:
    """Raise ``KeyError`` naming the file, the missing columns and the available ones."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(
            f"{path}: missing column(s) {', '.join(map(repr, missing))}; available: {', '.join(map(str, df.columns))}"
        )
