"""Choi (2000) segmentation documents: reading, a fixed document-level split, sentence pairs.

``choi.jsonl.gz`` holds one document per line, ``{"path", "group", "range", "doc_id",
"segments": [[sentence, ...] x 10]}``. Every segment is the first ``n`` sentences of a Brown
corpus text, so the first sentence of a segment identifies its *source text*; we use that
identity as the topic label for topic classification (TC), the only topic label Choi has.

The split is fixed and order-independent: a document goes to ``test`` when the SHA-256 of its
``path`` falls in bucket 0-1 of 10, ``val`` in bucket 2, ``train`` otherwise (70/10/20 %).

Caveat (measured by :func:`overlap_report`): Choi draws its 9,200 segments from only 399 Brown
texts, so documents share source texts and a document-level split still shows a model most
test sentences during training. :func:`heldout_text_documents` builds the text-disjoint check:
new Choi-style documents (10 segments, each the first ``n`` sentences of a random text) from
source texts that no training document uses.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from polymodal.io import resolve_path

__all__ = [
    "Document",
    "heldout_text_documents",
    "load_choi",
    "overlap_report",
    "remove_texts",
    "split_documents",
    "text_split",
]

log = logging.getLogger(__name__)


@dataclass
class Document:
    """A document as sentences plus segment structure.

    Attributes:
        name: source path inside the original dataset.
        group: Choi's experiment group (``"1"`` .. ``"4"``).
        sentences: ``N`` sentences in order.
        boundaries: ``(N - 1,)`` 0/1 array; 1 where a new segment starts at the next sentence.
        sources: ``(N,)`` source-text id of every sentence (the first sentence of its segment).
    """

    name: str
    group: str
    sentences: list[str]
    boundaries: np.ndarray
    sources: list[str]


def _document(name: str, group: str, segments: list[list[str]]) -> Document:
    segments = [s for s in segments if s]  # a few .ref files have empty segments (two separators in a row)
    if len(segments) < 2:
        raise ValueError(f"{name}: needs at least two non-empty segments, got {len(segments)}")
    sentences = [s for seg in segments for s in seg]
    boundaries = np.zeros(len(sentences) - 1, dtype=np.int64)
    boundaries[np.cumsum([len(s) for s in segments])[:-1] - 1] = 1
    sources = [seg[0] for seg in segments for _ in seg]
    return Document(name, group, sentences, boundaries, sources)


def load_choi(path: str | Path, max_docs: int | None = None) -> list[Document]:
    """Read ``choi.jsonl.gz`` (or a plain ``.jsonl``); errors name the file and line."""
    file = resolve_path(path, what="Choi documents file")
    opener = gzip.open if file.suffix == ".gz" else open
    docs: list[Document] = []
    empty = 0
    with opener(file, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{file}: line {lineno}: not JSON ({exc.msg})") from None
            segments = rec.get("segments")
            if not isinstance(segments, list) or not all(
                isinstance(s, list) and all(isinstance(x, str) for x in s) for s in segments
            ):
                raise ValueError(f"{file}: line {lineno}, field 'segments': expected a list of lists of sentences")
            empty += sum(1 for s in segments if not s)
            try:
                docs.append(_document(str(rec.get("path", f"line {lineno}")), str(rec.get("group", "")), segments))
            except ValueError as exc:
                raise ValueError(f"{file}: line {lineno}: {exc}") from None
            if max_docs is not None and len(docs) >= max_docs:
                break
    if not docs:
        raise ValueError(f"{file}: no documents")
    if empty:
        log.info("%s: dropped %d empty segment(s)", file, empty)
    return docs


def _bucket(text: str, buckets: int = 10) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % buckets


def split_documents(docs: list[Document]) -> dict[str, list[Document]]:
    """The fixed document-level split: SHA-256 bucket of the path; 0-1 test, 2 val, 3-9 train."""
    out: dict[str, list[Document]] = {"train": [], "val": [], "test": []}
    for d in docs:
        b = _bucket(d.name)
        out["test" if b < 2 else "val" if b == 2 else "train"].append(d)
    return out


def overlap_report(train: list[Document], test: list[Document]) -> dict[str, float]:
    """How much of ``test`` a model trained on ``train`` has seen (sentences, source texts)."""
    seen_sentences = {s for d in train for s in d.sentences}
    seen_sources = {s for d in train for s in d.sources}
    test_sentences = [s for d in test for s in d.sentences]
    test_sources = {s for d in test for s in d.sources}
    return {
        "test_sentences_seen_in_train": float(np.mean([s in seen_sentences for s in test_sentences])),
        "test_source_texts_seen_in_train": float(np.mean([s in seen_sources for s in test_sources])),
        "source_texts_total": float(len(seen_sources | test_sources)),
    }


def text_split(docs: list[Document], heldout_fraction: float = 0.3) -> tuple[set[str], set[str]]:
    """Partition source texts (by SHA-256 of their first sentence) into (train texts, held-out texts)."""
    sources = sorted({s for d in docs for s in d.sources})
    cut = int(round(heldout_fraction * 1000))
    held = {s for s in sources if int(hashlib.sha256(s.encode()).hexdigest(), 16) % 1000 < cut}
    return set(sources) - held, held


def heldout_text_documents(
    docs: list[Document],
    texts: set[str],
    n_docs: int = 200,
    segments: int = 10,
    sizes: tuple[int, int] = (3, 11),
    seed: int = 0,
) -> list[Document]:
    """Choi-style documents built only from ``texts`` (Choi's own procedure).

    Each document has ``segments`` segments; each segment is the first ``n`` sentences of a
    source text drawn at random (never the same text twice in a row), ``n`` uniform in ``sizes``
    (capped at the longest opening of that text present in the corpus).
    """
    openings: dict[str, list[str]] = {}
    for d in docs:
        start = 0
        for j in range(len(d.sentences)):
            if j == len(d.sentences) - 1 or d.boundaries[j]:
                seg = d.sentences[start : j + 1]
                if seg[0] in texts and len(seg) > len(openings.get(seg[0], [])):
                    openings[seg[0]] = seg
                start = j + 1
    keys = sorted(openings)
    if len(keys) < 2:
        raise ValueError(f"need at least two held-out source texts, got {len(keys)}")
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_docs):
        chosen: list[list[str]] = []
        last = None
        while len(chosen) < segments:
            key = keys[int(rng.integers(len(keys)))]
            if key == last:
                continue
            n = int(rng.integers(sizes[0], sizes[1] + 1))
            chosen.append(openings[key][:n])
            last = key
        out.append(_document(f"heldout/{seed}/{i}", "heldout", chosen))
    return out


def remove_texts(docs: list[Document], texts: set[str]) -> list[Document]:
    """Documents with every segment from ``texts`` cut out (documents left with < 2 segments dropped).

    The boundaries between the remaining segments are still true topic changes.
    """
    out = []
    for d in docs:
        segments: list[list[str]] = []
        current: list[str] = []
        for j, s in enumerate(d.sentences):
            current.append(s)
            if j == len(d.sentences) - 1 or d.boundaries[j]:
                if d.sources[j] not in texts:
                    segments.append(current)
                current = []
        if len(segments) >= 2:
            out.append(_document(d.name, d.group, segments))
    return out
