"""Pixel-Linguist's topical-alignment data: spans of the same source text are positives.

The authors' stage 1 (``run_bash/1-run_wikispan.sh``, dataset ``gowitheflow/wiki-span``) trains on pairs of
spans cut from the same Wikipedia text. Offline, the Choi (2000) segmentation data holds 9,200 segments that are
the opening sentences of 399 Brown-corpus texts (each text recurs in many documents); :class:`SourceSpans` turns
them into one row per span with the text it came from, and :class:`polymodal.data.groups.GroupedPairs` pairs
consecutive spans of one text (``group=source``): anchor and positive share a topic but not their words.
"""

from __future__ import annotations

from typing import Any

from polymodal.data.sources import Source
from polymodal.data.text import read_choi

__all__ = ["SourceSpans"]


class SourceSpans(Source):
    """One row per span of ``sentences`` consecutive sentences, keyed by the source text it was cut from.

    Reads Choi-format JSON lines (``{"segments": [[sentence, ...], ...], ...}``, ``data://topicseg_choi``). A
    segment is the opening of a source text, so its first sentence identifies the text; of the segments that
    open the same text the longest is kept (the others are its prefixes). Output columns: ``source`` (the
    text's key, ``t<index>`` in order of first appearance), ``span`` (the sentences joined by a space) and
    ``position`` (the span's index within its text).

    Args:
        path: the JSON-lines file (``.gz`` allowed).
        sentences: sentences per span.
        min_spans: texts with fewer spans are dropped (a positive needs a second span).
        max_chars: spans are cut to this many characters (the renderer shows only the first ~2 characters per
            16-px patch anyway); ``None`` keeps them whole.
    """

    def __init__(self, path: str, sentences: int = 1, min_spans: int = 2, max_chars: int | None = None) -> None:
        if sentences < 1:
            raise ValueError(f"SourceSpans: sentences must be >= 1, got {sentences}")
        if min_spans < 1:
            raise ValueError(f"SourceSpans: min_spans must be >= 1, got {min_spans}")
        if max_chars is not None and max_chars < 1:
            raise ValueError(f"SourceSpans: max_chars must be >= 1 or null, got {max_chars}")
        self.path, self.sentences, self.min_spans, self.max_chars = path, sentences, min_spans, max_chars

    def describe(self) -> str:
        return str(self.path)

    def texts(self) -> dict[str, list[str]]:
        """First sentence -> the longest run of opening sentences seen for that source text."""
        texts: dict[str, list[str]] = {}
        for doc in read_choi(self.path, what="source-spans file"):
            for seg in doc.segments:
                seg = [x.strip() for x in seg if x.strip()]
                if seg and len(seg) > len(texts.get(seg[0], [])):
                    texts[seg[0]] = seg
        return texts

    def read(self) -> Any:
        import pandas as pd

        rows = []
        for index, sentences in enumerate(self.texts().values()):
            spans = [" ".join(sentences[i : i + self.sentences]) for i in range(0, len(sentences), self.sentences)]
            if len(spans) < self.min_spans:
                continue
            for position, span in enumerate(spans):
                rows.append((f"t{index}", span[: self.max_chars] if self.max_chars else span, position))
        if not rows:
            raise ValueError(f"{self.describe()}: no source text with {self.min_spans}+ spans")
        return pd.DataFrame(rows, columns=["source", "span", "position"])
