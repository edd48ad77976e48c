"""CoNLL column files with BIO (IOB2) tags: the source of token-level tasks (named-entity recognition).

One token per line, ``token<TAB>tag`` (or more whitespace-separated columns: the first is the token, the last the
tag), a blank line between sentences, ``-DOCSTART-`` lines skipped; plain or ``.gz``. Tags are ``O``, ``B-<type>``
and ``I-<type>``, and an ``I-<type>`` must continue a ``B-<type>`` / ``I-<type>`` of the same type (IOB2). Every
violation is one line naming the file and line::

    data/ai/test.txt:17: tag 'I-person' follows 'O' (IOB2: an entity starts with B-person)

:func:`read_conll` returns :class:`Sentence` objects; :class:`ConllSource` is the data-layer source (a DataFrame
with ``tokens`` / ``tags`` lists, the joined ``text``, the ``domain`` and the file ``line`` of each sentence), with
an optional fixed seeded subset for budgeted evaluation. :func:`bio_entities` (in
:mod:`polymodal.metrics.functional`) turns tag sequences into entity spans.
"""

from __future__ import annotations

import gzip
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polymodal.data.sources import Source

__all__ = ["ConllSource", "Sentence", "entity_types", "read_conll", "tag_set"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sentence:
    """One sentence of a CoNLL file.

    Attributes:
        tokens: the words.
        tags: one BIO tag per word.
        line: 1-based line of the sentence's first token in its file.
    """

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    line: int


def _open(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _check_tag(tag: str, previous: str, where: str, types: set[str] | None) -> None:
    if tag == "O":
        return
    prefix, sep, kind = tag.partition("-")
    if not sep or prefix not in ("B", "I") or not kind or kind != kind.strip():
        raise ValueError(f"{where}: tag {tag!r} is not BIO (expected O, B-<type> or I-<type>)")
    if types is not None and kind not in types:
        raise ValueError(f"{where}: unknown entity type {kind!r} in tag {tag!r} (known types: {sorted(types)})")
    if prefix == "I" and previous not in (f"B-{kind}", f"I-{kind}"):
        raise ValueError(f"{where}: tag {tag!r} follows {previous!r} (IOB2: an entity starts with B-{kind})")


def read_conll(path: str | Path, types: Sequence[str] | None = None) -> list[Sentence]:
    """Read a BIO-tagged CoNLL file.

    Args:
        path: the file (``.gz`` read compressed).
        types: the entity types allowed (``None``: any); a tag of another type is an error naming the line.

    Raises:
        FileNotFoundError: no such file.
        ValueError: one line ``<file>:<line>: <what is wrong>`` for a line without a tag, an empty token, a tag that
            is not BIO, an ``I-`` tag not continuing its entity, an unknown entity type, an undecodable byte, or a
            file without any sentence.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"CoNLL file not found: {file}")
    allowed = None if types is None else set(types)
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = 0

    def close() -> None:
        if tokens:
            sentences.append(Sentence(tuple(tokens), tuple(tags), start))
            tokens.clear()
            tags.clear()

    lineno = 0
    try:
        with _open(file) as fh:
            for lineno, raw in enumerate(fh, start=1):
                line = raw.rstrip("\r\n")
                if not line.strip():
                    close()
                    continue
                if line.startswith("-DOCSTART-"):
                    close()
                    continue
                where = f"{file}:{lineno}"
                parts = line.split("\t") if "\t" in line else line.split()
                if len(parts) < 2:
                    raise ValueError(f"{where}: expected 'token<TAB>tag', got {line!r:.60}")
                token, tag = parts[0], parts[-1].strip()
                if not token.strip():
                    raise ValueError(f"{where}: empty token (tag {tag!r}); an empty sentence or a stray tab?")
                _check_tag(tag, tags[-1] if tags else "O", where, allowed)
                if not tokens:
                    start = lineno
                tokens.append(token.strip())
                tags.append(tag)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{file}:{lineno + 1}: not UTF-8 text ({exc.reason})") from None
    except (OSError, EOFError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{file}: unreadable ({exc})") from None
    close()
    if not sentences:
        raise ValueError(f"{file}:{lineno}: no sentence in the file (an empty CoNLL file?)")
    return sentences


def entity_types(tags: Sequence[str]) -> list[str]:
    """Sorted entity types of a tag sequence (``["B-person", "I-person", "O"]`` -> ``["person"]``)."""
    return sorted({t[2:] for t in tags if t != "O"})


def tag_set(types: Sequence[str]) -> list[str]:
    """The label list of a token classifier over ``types``: ``O``, then ``B-``/``I-`` of each type in order."""
    out = ["O"]
    for kind in types:
        out += [f"B-{kind}", f"I-{kind}"]
    return out


class ConllSource(Source):
    """Sentences of one or more CoNLL files as rows.

    Columns: ``tokens`` (list of words), ``tags`` (list of BIO tags), ``text`` (the words joined by spaces),
    ``domain`` (the file's folder name, or its entry of ``domains``), ``file`` and ``line`` (where the sentence starts).

    Args:
        paths: one file or several (concatenated in order).
        types: entity types allowed in the files (``None``: any); another type is an error naming file and line.
        sample: keep a fixed random subset of this many sentences per file (seeded; the subset depends only on
            ``seed`` and the file's sentence count, and rows keep file order). ``None``: every sentence.
        seed: seed of ``sample``.
        domains: the ``domain`` value of each file's rows, one per path (default: each file's parent folder name).
    """

    def __init__(
        self,
        paths: str | list[str],
        types: list[str] | None = None,
        sample: int | None = None,
        seed: int = 0,
        domains: list[str] | None = None,
    ) -> None:
        self.paths = [paths] if isinstance(paths, str) else list(paths)
        if not self.paths:
            raise ValueError("ConllSource needs at least one file")
        if sample is not None and sample < 1:
            raise ValueError(f"sample must be >= 1, got {sample}")
        self.types = None if types is None else [str(t) for t in types]
        if domains is not None and len(domains) != len(self.paths):
            raise ValueError(f"ConllSource: {len(domains)} domains for {len(self.paths)} paths; give one per path")
        self.sample, self.seed = sample, int(seed)
        self.domains = None if domains is None else [str(d) for d in domains]

    def describe(self) -> str:
        return ", ".join(self.paths)

    def sentences(self) -> list[tuple[str, str, Sentence]]:
        """``(domain, file, sentence)`` for every kept sentence."""
        from polymodal.io import resolve_path

        out = []
        for j, spec in enumerate(self.paths):
            file = resolve_path(spec, what="CoNLL file")
            sentences = read_conll(file, self.types)
            if self.sample is not None and self.sample < len(sentences):
                keep = sorted(random.Random(self.seed).sample(range(len(sentences)), self.sample))
                sentences = [sentences[i] for i in keep]
            domain = self.domains[j] if self.domains else file.parent.name
            out += [(domain, str(file), s) for s in sentences]
        return out

    def read(self) -> Any:
        import pandas as pd

        rows = [
            {
                "tokens": list(s.tokens),
                "tags": list(s.tags),
                "text": " ".join(s.tokens),
                "domain": domain,
                "file": file,
                "line": s.line,
            }
            for domain, file, s in self.sentences()
        ]
        log.info("%s: %d sentences", self.describe(), len(rows))
        return pd.DataFrame(rows, columns=["tokens", "tags", "text", "domain", "file", "line"])
