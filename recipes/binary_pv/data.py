"""Choi (2000) segments as a retrieval corpus: one row per segment, grouped by the Brown text it was cut from."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any, Literal

from polymodal.data.sources import Source
from polymodal.data.text import read_choi
from polymodal.io import resolve_path

__all__ = ["ChoiSegments"]

log = logging.getLogger(__name__)


def source_id(first_sentence: str) -> int:
    """The id of a segment's source text: every Choi segment is the first n sentences of one Brown text, so
    segments of the same text share their first sentence (48-bit SHA-1 prefix: exact in a float64 target)."""
    return int(hashlib.sha1(first_sentence.encode("utf-8")).hexdigest()[:12], 16)


class ChoiSegments(Source):
    """Segments of the Choi benchmark (``choi.jsonl.gz``: one document of 10 segments per line).

    Columns: ``text`` (the segment's sentences joined by spaces), ``source`` (:func:`source_id`), ``group``,
    ``doc`` (the file's path) and ``segment`` (0-9). Relevance for retrieval: same ``source``.

    Args:
        path: the packed Choi file.
        groups: keep these Choi groups (``"1"``-``"4"``).
        texts: ``"all"``; ``"unseen"`` keeps only segments whose source text never occurs in ``seen_groups``
            (a transfer corpus: group 4's Brown categories b-h, k are absent from groups 1-3); ``"seen"`` the
            others.
        seen_groups: the groups that define seen source texts.
        max_rows: keep only the first N segments.

    The original data holds 14 empty segments; they are left out (and counted in the log).
    """

    def __init__(
        self,
        path: str,
        groups: Sequence[str] = ("1", "2", "3", "4"),
        texts: Literal["all", "seen", "unseen"] = "all",
        seen_groups: Sequence[str] = ("1", "2", "3"),
        max_rows: int | None = None,
    ) -> None:
        if texts not in ("all", "seen", "unseen"):
            raise ValueError(f"texts must be all, seen or unseen, got {texts!r}")
        self.path, self.groups, self.texts = path, [str(g) for g in groups], texts
        self.seen_groups, self.max_rows = [str(g) for g in seen_groups], max_rows

    def describe(self) -> str:
        return f"{self.path} (groups {','.join(self.groups)}, {self.texts} texts)"

    def read(self) -> Any:
        import pandas as pd

        file = resolve_path(self.path, what="Choi file")
        rows, seen, empty = [], set(), 0
        for doc in read_choi(file):
            for k, sentences in enumerate(doc.segments):
                if not sentences:
                    empty += 1
                    continue
                sid = source_id(sentences[0])
                if doc.group in self.seen_groups:
                    seen.add(sid)
                if doc.group in self.groups:
                    rows.append((" ".join(sentences), sid, doc.group, doc.path, k))
        if self.texts != "all":
            rows = [r for r in rows if (r[1] in seen) == (self.texts == "seen")]
        if self.max_rows is not None:
            rows = rows[: self.max_rows]
        if not rows:
            raise ValueError(f"{self.describe()}: no segment selected")
        if empty:
            log.info("%s: %d empty segment(s) of the original data left out", file, empty)
        return pd.DataFrame(rows, columns=["text", "source", "group", "doc", "segment"])
