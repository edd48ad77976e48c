"""Choi (2000) documents: the reader, the two split protocols and the sentence-pair source.

``choi.jsonl.gz`` holds one document per line, ``{"path", "group", "segments": [[sentence, ...], ...]}``.
Every segment is the first ``n`` sentences of a Brown text, so a segment's first sentence names its
*source text*: the topic label of topic classification (TC). ``document`` protocol: a document goes to
test when the SHA-256 of its path falls in bucket 0-1 of 10, val in bucket 2, train otherwise. Choi draws
its 9,200 segments from ~400 texts, so that split leaks texts (:func:`overlap_report`); the
``text-disjoint`` protocol holds out 30 % of the texts, cuts their segments out of the training
documents and builds val / test as new Choi-style documents from held-out texts only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from polymodal.data.sources import Source
from polymodal.data.text import read_choi
from polymodal.io import resolve_path

__all__ = ["ChoiPairs", "Document", "heldout_documents", "load_choi", "overlap_report", "split_documents"]


@dataclass
class Document:
    """Sentences; ``boundaries`` ``(N - 1,)``: 1 where a segment starts at the next sentence; ``sources``:
    each sentence's source text (its segment's first sentence)."""

    name: str
    sentences: list[str]
    boundaries: np.ndarray
    sources: list[str]

    def segments(self) -> list[list[str]]:
        cuts = [0, *(np.flatnonzero(self.boundaries) + 1), len(self.sentences)]
        return [self.sentences[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


def _document(name: str, segments: list[list[str]]) -> Document:
    segments = [s for s in segments if s]  # a few .ref files hold an empty segment
    if len(segments) < 2:
        raise ValueError(f"{name}: needs at least two non-empty segments, got {len(segments)}")
    sentences = [s for seg in segments for s in seg]
    boundaries = np.zeros(len(sentences) - 1, dtype=np.int64)
    boundaries[np.cumsum([len(s) for s in segments])[:-1] - 1] = 1
    return Document(name, sentences, boundaries, [seg[0] for seg in segments for _ in seg])


def load_choi(path: str, max_docs: int | None = None) -> list[Document]:
    """Read ``choi.jsonl[.gz]``; errors name the file, line and field."""
    file = resolve_path(path, what="Choi documents file")
    docs: list[Document] = []
    for rec in read_choi(file):
        try:
            docs.append(_document(rec.path, rec.segments))
        except ValueError as exc:
            raise ValueError(f"{file}: line {rec.line}: {exc}") from None
        if max_docs is not None and len(docs) >= max_docs:
            break
    if not docs:
        raise ValueError(f"{file}: no documents")
    return docs


def _bucket(text: str, buckets: int) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % buckets


def split_documents(docs: list[Document]) -> dict[str, list[Document]]:
    """The fixed document-level split: SHA-256 bucket of the path; 0-1 test, 2 val, 3-9 train."""
    out: dict[str, list[Document]] = {"train": [], "val": [], "test": []}
    for d in docs:
        b = _bucket(d.name, 10)
        out["test" if b < 2 else "val" if b == 2 else "train"].append(d)
    return out


def overlap_report(train: list[Document], test: list[Document]) -> dict[str, float]:
    """Shares of the test sentences and source texts that occur in the training documents."""
    sentences, sources = {s for d in train for s in d.sentences}, {s for d in train for s in d.sources}
    return {
        "test_sentences_seen": float(np.mean([s in sentences for d in test for s in d.sentences])),
        "test_texts_seen": float(np.mean([s in sources for s in {s for d in test for s in d.sources}])),
    }


def heldout_documents(
    docs: list[Document], texts: set[str], n_docs: int, seed: int, segments: int = 10, sizes: tuple[int, int] = (3, 11)
) -> list[Document]:
    """Choi-style documents from ``texts`` only: ``segments`` segments, each the first n ~ U[sizes] sentences
    (capped at the longest opening in the corpus) of a random text, never the same text twice in a row."""
    openings: dict[str, list[str]] = {}
    for seg in (s for d in docs for s in d.segments()):
        if seg[0] in texts and len(seg) > len(openings.get(seg[0], [])):
            openings[seg[0]] = seg
    keys = sorted(openings)
    if len(keys) < 2:
        raise ValueError(f"need at least two held-out source texts, got {len(keys)}")
    rng, out = np.random.default_rng(seed), []
    for i in range(n_docs):
        chosen: list[list[str]] = []
        while len(chosen) < segments:
            key = keys[int(rng.integers(len(keys)))]
            if chosen and chosen[-1][0] == key:
                continue
            chosen.append(openings[key][: int(rng.integers(sizes[0], sizes[1] + 1))])
        out.append(_document(f"heldout/{seed}/{i}", chosen))
    return out


def protocol_split(docs: list[Document], protocol: str, heldout: int = 200) -> dict[str, list[Document]]:
    """``document``: :func:`split_documents`; ``text-disjoint``: 30 % of the texts (SHA-256 of the first
    sentence) held out, cut from the training documents, val / test generated from them."""
    split = split_documents(docs)
    if protocol == "document":
        return split
    held = {s for s in {s for d in docs for s in d.sources} if _bucket(s, 1000) < 300}
    train = []
    for d in split["train"]:
        kept = [seg for seg in d.segments() if seg[0] not in held]
        if len(kept) >= 2:
            train.append(_document(d.name, kept))
    return {
        "train": train,
        "val": heldout_documents(docs, held, heldout, 1),
        "test": heldout_documents(docs, held, heldout, 2),
    }


class ChoiPairs(Source):
    """One row per gap of every document of a split: ``left`` / ``right`` (the sentences either side, or
    the ``context`` sentences either side as a list), targets ``stp`` (same segment), ``nsp`` (``right``
    follows ``left``), ``tc`` (topic id of ``left`` among the training documents' texts, NaN if unseen), and
    ``doc`` / ``gap`` / ``boundary`` for :class:`polymodal.metrics.segmentation.Segmentation`. With
    ``negatives`` (train only) every gap also gives ``(left, random sentence of another document)`` with
    ``nsp = 0`` and NaN ``stp`` (left out of that loss).

    Args:
        path: ``choi.jsonl.gz``. part: ``train`` / ``val`` / ``test``. protocol: ``document`` or
        ``text-disjoint``. negatives: add NSP negatives to train. context: sentences per side.
        heldout_docs: text-disjoint val / test size. max_docs: read only N documents. seed: negatives.
    """

    def __init__(
        self,
        path: str,
        part: Literal["train", "val", "test"] = "train",
        protocol: Literal["document", "text-disjoint"] = "document",
        negatives: bool = True,
        context: int = 1,
        heldout_docs: int = 200,
        max_docs: int | None = None,
        seed: int = 0,
    ) -> None:
        if part not in ("train", "val", "test") or protocol not in ("document", "text-disjoint") or context < 1:
            raise ValueError(f"ChoiPairs: bad part {part!r}, protocol {protocol!r} or context {context}")
        self.path, self.part, self.protocol, self.context = path, part, protocol, context
        self.negatives, self.heldout_docs, self.max_docs, self.seed = negatives, heldout_docs, max_docs, seed

    def describe(self) -> str:
        return f"{self.path} ({self.protocol} {self.part})"

    def documents(self) -> dict[str, list[Document]]:
        return protocol_split(load_choi(self.path, self.max_docs), self.protocol, self.heldout_docs)

    def read(self) -> pd.DataFrame:
        split = self.documents()
        docs, c, nan = split[self.part], self.context, float("nan")
        if not docs:
            raise ValueError(f"{self.describe()}: no documents in this split (max_docs={self.max_docs} too small?)")
        topics = {t: i for i, t in enumerate(sorted({s for d in split["train"] for s in d.sources}))}
        side = (lambda xs: xs[0]) if c == 1 else tuple  # noqa: E731
        rng, rows = np.random.default_rng(self.seed), []
        for k, d in enumerate(docs):
            for j, b in enumerate(d.boundaries.tolist()):
                left, topic = side(d.sentences[max(0, j + 1 - c) : j + 1]), float(topics.get(d.sources[j], nan))
                rows.append((left, side(d.sentences[j + 1 : j + 1 + c]), 1.0 - b, 1.0, topic, k, j, float(b)))
                if self.negatives and self.part == "train" and len(docs) > 1:
                    other = docs[(k + 1 + int(rng.integers(len(docs) - 1))) % len(docs)]
                    p = int(rng.integers(len(other.sentences)))
                    if other.sentences[p] != d.sentences[j + 1]:  # a shared text can make it the true next one
                        rows.append((left, side(other.sentences[p : p + c]), nan, 0.0, topic, k, j, nan))
        return pd.DataFrame(rows, columns=["left", "right", "stp", "nsp", "tc", "doc", "gap", "boundary"])
