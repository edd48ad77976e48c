"""Plain-text corpora as rows: :class:`TextLines` groups the non-empty lines of a ``.txt`` (or ``.txt.gz``) file;
:func:`read_choi` reads the Choi segmentation benchmark's JSON lines (the one reader every recipe and the bench use)."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from polymodal.data.sources import Source
from polymodal.io import resolve_path

__all__ = ["ChoiRecord", "TextLines", "read_choi"]


class ChoiRecord(NamedTuple):
    """One document of a Choi file: its 1-based ``line``, ``path`` (the original ``.ref`` file, or ``line N``),
    ``group`` (``"1"``-``"4"``, ``""`` if absent) and ``segments`` (lists of sentences; may contain empty ones)."""

    line: int
    path: str
    group: str
    segments: list[list[str]]


def read_choi(path: Any, what: str = "Choi file") -> Iterator[ChoiRecord]:
    """The documents of a Choi JSON-lines file (``{"path", "group", "segments": [[sentence, ...], ...]}`` per
    line, ``.gz`` allowed; ``data://topicseg_choi/choi.jsonl.gz``). Blank lines are skipped; a line that is not
    JSON or whose ``segments`` is not a list of lists of strings is one error naming the file and line."""
    file = resolve_path(path, what=what)
    opener: Any = gzip.open if file.name.endswith(".gz") else open
    with opener(file, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{file}: line {lineno}: not JSON ({exc.msg})") from None
            segments = doc.get("segments") if isinstance(doc, dict) else None
            if not isinstance(segments, list) or not all(
                isinstance(s, list) and all(type(x) is str for x in s) for s in segments
            ):
                raise ValueError(f"{file}: line {lineno}, field 'segments': expected a list of lists of sentences")
            yield ChoiRecord(lineno, str(doc.get("path", f"line {lineno}")), str(doc.get("group", "")), segments)


class TextLines(Source):
    """Rows of ``lines`` consecutive non-empty lines of a plain-text file (column ``text``; ``block`` = its
    0-based index, ``line`` = the 1-based file line it starts at).

    Args:
        path: a UTF-8 text file, optionally gzip-compressed (``.gz``).
        lines: non-empty lines per row.
        replace: whole-word, case-insensitive replacements applied to every row (``{bank: bank_river}``;
            e.g. a pseudo-word test that merges two words into one).
        max_rows: keep only the first N rows.
    """

    def __init__(
        self, path: str, lines: int = 1, replace: Mapping[str, str] | None = None, max_rows: int | None = None
    ) -> None:
        if lines < 1:
            raise ValueError(f"lines must be >= 1, got {lines}")
        self.path, self.lines, self.max_rows = path, int(lines), max_rows
        self.replace = {str(k).lower(): str(v) for k, v in (replace or {}).items()}

    def describe(self) -> str:
        return str(self.path)

    def read(self) -> Any:
        import pandas as pd

        file = resolve_path(self.path, what="text corpus")
        opener: Any = gzip.open if file.suffix == ".gz" else open
        try:
            with opener(file, "rt", encoding="utf-8") as fh:
                raw = fh.read().splitlines()
        except UnicodeDecodeError as exc:
            raise ValueError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, self.replace)) + r")\b", re.I) if self.replace else None
        rows: list[tuple[str, int]] = []
        block: list[str] = []
        start = 0
        for number, line in enumerate(raw, 1):
            if not line.strip():
                continue
            if not block:
                start = number
            block.append(line.strip())
            if len(block) == self.lines:
                rows.append((" ".join(block), start))
                block = []
        if block:
            rows.append((" ".join(block), start))
        if self.max_rows is not None:
            rows = rows[: self.max_rows]
        if not rows:
            raise ValueError(f"{file}: no non-empty line")
        texts = [pattern.sub(lambda m: self.replace[m.group(1).lower()], t) if pattern else t for t, _ in rows]
        return pd.DataFrame({"text": texts, "block": range(len(rows)), "line": [s for _, s in rows]})
