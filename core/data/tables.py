"""Reading tables (CSV/TSV/JSONL/Parquet, gzip transparently) with errors that name the file,
row and column."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from polymodal.io import resolve_path

__all__ = ["LAYOUTS", "check_columns", "iter_table", "read_table"]

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
        raise ImportError("reading tables needs pandas (a core dependency): pip install 'pandas>=2.2'") from None
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


#: Words pandas reads as missing by default. In polymodal tables they stay text in text columns (a
#: sentence may be "None" or "NA"); a column that is numeric apart from them turns them into NaN.
NA_WORDS = frozenset(
    [
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    ]
)


def _numeric_columns(df):
    """Columns that are numbers apart from NA words become numeric (NA words -> NaN); text stays text."""
    pd = _pandas()
    for col in df.columns:
        values = df[col]
        if not (values.dtype == object or pd.api.types.is_string_dtype(values.dtype)):
            continue
        is_str = values.map(lambda v: isinstance(v, str))
        if not is_str.all():
            continue
        missing = values.isin(NA_WORDS) | (values == "")
        rest = values[~missing]
        if len(rest) == 0 or not missing.any():
            continue
        try:
            numbers = pd.to_numeric(rest)
        except (ValueError, TypeError):
            continue
        out = pd.Series(float("nan"), index=df.index, dtype="float64")
        out[~missing] = numbers.astype("float64")
        df[col] = out
    return df


def _open_binary(path: Path):
    import bz2
    import gzip
    import lzma

    ext = path.suffix.lower()
    openers: dict[str, Any] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
    return openers.get(ext, open)(path, "rb")


def _bad_utf8_line(path: Path) -> str:
    """``"line N, byte 0xXX at column C"`` of the first line that is not UTF-8 (or ``""``)."""
    try:
        with _open_binary(path) as fh:
            for number, raw in enumerate(fh, start=1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return f"line {number} of the file (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
    except OSError:
        return ""
    return ""


def _check_header(p: Path, options: dict[str, Any]) -> None:
    """Refuse duplicate column names in a CSV/TSV header (pandas would rename the second ``x.1``)."""
    pd = _pandas()
    if options.get("header", "infer") is None or "names" in options:
        return
    keep = {k: options[k] for k in ("sep", "quoting", "quotechar", "escapechar", "encoding", "comment") if k in options}
    try:
        first = pd.read_csv(p, header=None, nrows=1, dtype=str, keep_default_na=False, **keep)
    except Exception:  # noqa: BLE001 - the real read reports parse errors with context
        return
    if first.empty:
        return
    names = [str(v) for v in first.iloc[0].tolist()]
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise ValueError(
                f"{p}: duplicate column name {name!r} in the header (columns {seen[name] + 1} and {i + 1}); "
                "rename one of them"
            )
        seen[name] = i


def _resolve_options(path, layout, read_options):
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
    structured = {".parquet", ".jsonl", ".ndjson", ".json"}
    if kind not in structured | {".csv", ".tsv", ".txt"} and layout is None:
        raise ValueError(
            f"{p}: unknown table format {''.join(p.suffixes) or '(no extension)'}; "
            "use .csv, .tsv, .jsonl, .json or .parquet (optionally .gz)"
        )
    if kind not in structured:  # csv/tsv/txt, or a named layout on any other extension
        options.setdefault("sep", "\t" if kind == ".tsv" else ",")
        if "keep_default_na" not in options and "na_values" not in options:
            options.update(keep_default_na=False, na_values=[""])  # "NA" / "None" / "null" stay text
            options["_polymodal_na"] = True
        kind = ".csv"
    elif kind in {".jsonl", ".ndjson", ".json"}:
        options.setdefault("encoding", "utf-8-sig")  # a BOM is accepted as in CSV
    return p, kind, options


class _ReadErrors:
    """Turn the many exceptions of pandas/pyarrow readers into one-line errors naming the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> None:
        p = self.path
        if exc is None or isinstance(exc, (FileNotFoundError, GeneratorExit, KeyboardInterrupt)):
            return None
        if isinstance(exc, UnicodeDecodeError) or "codec can't decode" in str(exc):
            where = _bad_utf8_line(p)
            raise ValueError(
                f"{p}: not UTF-8 text"
                + (f" at {where}" if where else f" ({exc})")
                + "; re-save it as UTF-8 or pass encoding=... in read_options"
            ) from None
        if isinstance(exc, (EOFError, OSError)):
            raise ValueError(f"{p}: cannot read ({type(exc).__name__}: {exc})") from None
        if isinstance(exc, (ValueError, KeyError)) and str(p) in str(exc):
            return None
        if isinstance(exc, Exception):  # pandas.errors.ParserError and friends
            raise ValueError(f"{p}: cannot parse: {exc}") from None
        return None


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
    p, kind, options = _resolve_options(path, layout, read_options)
    coerce = options.pop("_polymodal_na", False)
    with _ReadErrors(p):
        if kind == ".parquet":
            return pd.read_parquet(p, **options)
        if kind in {".jsonl", ".ndjson"}:
            return pd.read_json(p, lines=True, **options)
        if kind == ".json":
            return pd.read_json(p, **options)
        _check_header(p, options)
        df = pd.read_csv(p, **options)
    return _numeric_columns(df) if coerce else df


def iter_table(
    path: str | os.PathLike[str],
    layout: str | None = None,
    columns: Sequence[str] | None = None,
    chunk_rows: int = 8192,
    **read_options: Any,
) -> Iterator[Any]:
    """Read a table as consecutive DataFrames of at most ``chunk_rows`` rows (bounded memory).

    Same formats, layouts and errors as :func:`read_table`; each chunk keeps the file's row
    numbers as its index, so errors can name the row. ``columns`` (checked against the first
    chunk, error naming the file and the available columns) restricts what is kept in memory.
    A plain ``.json`` array cannot be streamed and is read whole, then sliced.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    pd = _pandas()
    p, kind, options = _resolve_options(path, layout, read_options)
    coerce = options.pop("_polymodal_na", False)
    wanted = list(columns) if columns is not None else None
    with _ReadErrors(p):
        if kind == ".parquet":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(p)
            if wanted is not None:
                check_columns(pd.DataFrame(columns=pf.schema_arrow.names), wanted, p)
            chunks = (b.to_pandas() for b in pf.iter_batches(batch_size=chunk_rows, columns=wanted))
        elif kind in {".jsonl", ".ndjson"}:
            chunks = pd.read_json(p, lines=True, chunksize=chunk_rows, **options)
        elif kind == ".json":
            df = pd.read_json(p, **options)
            chunks = (df.iloc[i : i + chunk_rows] for i in range(0, max(len(df), 1), chunk_rows))
        else:
            _check_header(p, options)
            chunks = pd.read_csv(p, chunksize=chunk_rows, **options)
    start = 0
    first = True
    while True:
        with _ReadErrors(p):
            try:
                chunk = next(chunks)
            except StopIteration:
                return
        if first and wanted is not None:
            check_columns(chunk, wanted, p)
        first = False
        if wanted is not None:
            chunk = chunk[wanted]
        if coerce:
            chunk = _numeric_columns(chunk)
        chunk.index = range(start, start + len(chunk))
        start += len(chunk)
        yield chunk


def check_columns(df, columns: Sequence[str], path: str | os.PathLike[str]) -> None:
    """Raise ``KeyError`` naming the file, the missing columns and the available ones."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(
            f"{path}: missing column(s) {', '.join(map(repr, missing))}; available: {', '.join(map(str, df.columns))}"
        )
