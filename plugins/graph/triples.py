"""Knowledge-graph triple files: reading with one-line errors, vocabularies, 1-N queries, entity texts.

A graph folder holds ``train.txt``, ``valid.txt`` and ``test.txt`` (optionally ``.gz``): one triple per line,
``head<TAB>relation<TAB>tail`` (the layout of the UMLS / Nations / Kinships files shipped in PyKEEN and of most
KGE benchmarks), and optionally ``entities.tsv`` (``id<TAB>name[<TAB>description]``) with readable names and
definitions. Entities and relations are indexed by the training file only; a valid/test triple naming anything
else is an error (the file, line and name), as is a line that is not three fields, or a file without triples.
"""

from __future__ import annotations

import gzip
import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from polymodal.data.sources import Source
from polymodal.io import resolve_path

__all__ = ["INVERSE", "KGQueries", "KnowledgeGraph", "entity_descriptions", "read_triples"]

#: Suffix of reciprocal relations: the query ``(t, r^-1, ?)`` asks for the heads of ``r``.
INVERSE = "^-1"
SPLIT_FILES = {"train": "train", "val": "valid", "test": "test"}


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def read_triples(path: str | Path) -> list[tuple[str, str, str, int]]:
    """``(head, relation, tail, line)`` of every non-blank line of a tab-separated triple file.

    Raises:
        ValueError: one line naming the file and line: a line without exactly three non-empty fields, or a file
            with no triple at all (an empty graph).
    """
    file = resolve_path(path, what="triple file")
    out: list[tuple[str, str, str, int]] = []
    with _open_text(file) as fh:
        for n, line in enumerate(fh, 1):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            parts = text.split("\t")
            if len(parts) != 3 or not all(p.strip() for p in parts):
                raise ValueError(
                    f"{path}: line {n}: expected 3 tab-separated fields (head, relation, tail), got "
                    f"{len(parts) if len(parts) != 3 else 'an empty field'}: {text[:60]!r}"
                )
            h, r, t = (p.strip() for p in parts)
            out.append((h, r, t, n))
    if not out:
        raise ValueError(f"{path}: line 1: no triples (an empty graph)")
    return out


def _split_file(folder: Path, name: str) -> Path:
    for candidate in (folder / f"{name}.txt", folder / f"{name}.txt.gz", folder / f"{name}.tsv"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{folder}: no {name}.txt (or {name}.txt.gz / {name}.tsv) triple file")


@dataclass
class KnowledgeGraph:
    """Triples of a graph folder as integer ids, with the vocabularies of its training split.

    Attributes:
        folder: where it was read from.
        entities: entity ids (sorted) of the training triples.
        relations: relation ids (sorted) of the training triples.
        triples: split (``train``/``val``/``test``) -> list of ``(h, r, t)`` index triples.
        names: entity -> readable name (``entities.tsv``, else the id with ``_`` as spaces).
        definitions: entity -> description from ``entities.tsv`` (empty when the file has none).
    """

    folder: str
    entities: list[str]
    relations: list[str]
    triples: dict[str, list[tuple[int, int, int]]]
    names: dict[str, str] = field(default_factory=dict)
    definitions: dict[str, str] = field(default_factory=dict)

    @property
    def num_entities(self) -> int:
        return len(self.entities)

    @property
    def query_relations(self) -> list[str]:
        """Relations and their reciprocals (``r^-1``), the relation vocabulary of 1-N queries."""
        return self.relations + [r + INVERSE for r in self.relations]

    @classmethod
    def read(cls, folder: str) -> KnowledgeGraph:
        """Read a graph folder (cached per resolved path; see the module docstring for the layout)."""
        return _read_graph(str(resolve_path(folder, what="graph folder")), folder)

    def answers(self, splits: Sequence[str] = ("train",)) -> dict[tuple[int, int], set[int]]:
        """``(entity, query relation) -> answers`` over ``splits``, both directions (reciprocal ids ``r + R``)."""
        out: dict[tuple[int, int], set[int]] = defaultdict(set)
        R = len(self.relations)
        for split in splits:
            for h, r, t in self.triples.get(split, []):
                out[(h, r)].add(t)
                out[(t, r + R)].add(h)
        return out


@lru_cache(maxsize=8)
def _read_graph(resolved: str, shown: str) -> KnowledgeGraph:
    folder = Path(resolved)
    if not folder.is_dir():
        raise NotADirectoryError(f"graph folder {shown} is not a folder")
    raw = {split: (_split_file(folder, name), None) for split, name in SPLIT_FILES.items()}
    train_file = raw["train"][0]
    train = read_triples(train_file)
    entities = sorted({h for h, _, _, _ in train} | {t for _, _, t, _ in train})
    relations = sorted({r for _, r, _, _ in train})
    bad = [r for r in relations if r.endswith(INVERSE)]
    if bad:
        raise ValueError(f"{train_file}: relation {bad[0]!r} ends with the reserved reciprocal suffix {INVERSE!r}")
    e_index = {e: i for i, e in enumerate(entities)}
    r_index = {r: i for i, r in enumerate(relations)}
    triples: dict[str, list[tuple[int, int, int]]] = {
        "train": [(e_index[h], r_index[r], e_index[t]) for h, r, t, _ in train]
    }
    for split in ("val", "test"):
        file = raw[split][0]
        rows = []
        for h, r, t, n in read_triples(file):
            for kind, value, index in (("entity", h, e_index), ("relation", r, r_index), ("entity", t, e_index)):
                if value not in index:
                    raise ValueError(
                        f"{file}: line {n}: {kind} {value!r} does not occur in the training graph ({train_file.name})"
                    )
            rows.append((e_index[h], r_index[r], e_index[t]))
        triples[split] = rows
    names = {e: e.replace("_", " ") for e in entities}
    definitions: dict[str, str] = {}
    table = folder / "entities.tsv"
    if table.is_file():
        with open(table, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                parts = line.rstrip("\r\n").split("\t")
                if not line.strip():
                    continue
                if len(parts) not in (2, 3):
                    raise ValueError(
                        f"{table}: line {n}: expected id<TAB>name[<TAB>description], got {len(parts)} fields"
                    )
                if parts[0] in names:
                    names[parts[0]] = parts[1]
                    if len(parts) == 3 and parts[2].strip():
                        definitions[parts[0]] = parts[2]
    return KnowledgeGraph(shown, entities, relations, triples, names, definitions)


def entity_descriptions(graph: KnowledgeGraph, max_facts: int = 16) -> list[str]:
    """One text per entity: its definition (``entities.tsv``) if given, else a templated text of its *training*
    triples: ``"<name>. <name> <relation> <tail>. <head> <relation> <name>. ..."``.

    Facts are taken round-robin over the entity's relations (outgoing first, then incoming; within a relation in
    the file's order), at most ``max_facts``, so that frequent relations do not crowd out the rest. Only training
    triples are used: no validation or test fact leaks into the text.
    """
    out_facts: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    names = [graph.names[e] for e in graph.entities]
    rel_words = [r.replace("_", " ") for r in graph.relations]
    for h, r, t in graph.triples["train"]:
        out_facts[h][f"o{r}"].append(f"{names[h]} {rel_words[r]} {names[t]}.")
        out_facts[t][f"i{r}"].append(f"{names[h]} {rel_words[r]} {names[t]}.")
    texts = []
    for i, entity in enumerate(graph.entities):
        if entity in graph.definitions:
            texts.append(f"{names[i]}: {graph.definitions[entity]}")
            continue
        groups = [facts for _, facts in sorted(out_facts[i].items(), key=lambda kv: (kv[0][0] != "o", kv[0]))]
        chosen: list[str] = []
        depth = 0
        while len(chosen) < max_facts and any(depth < len(g) for g in groups):
            for g in groups:
                if depth < len(g) and len(chosen) < max_facts:
                    chosen.append(g[depth])
            depth += 1
        texts.append(" ".join([f"{names[i]}."] + chosen))
    return texts


class KGQueries(Source):
    """Link-prediction queries of one split of a graph folder, as rows of one ``query`` column.

    Training rows are 1-N: one row per ``(entity, relation)`` with every training answer (and one per
    reciprocal query ``(tail, relation^-1)``). Evaluation rows are one per triple and direction (tail and head
    prediction), each with its single answer and the *filter*: every true answer of the query in train, valid and
    test. A ``query`` value is ``(entity, query relation, answers, known)`` by name; the
    :class:`~polymodal.plugins.graph.HypercomplexKGE` processor turns it into ids and masks. Columns ``head``,
    ``relation`` and ``tail`` (eval: the triple; train: the answer count in ``tail``) may be passed as meta.

    Args:
        graph: the graph folder.
        split: ``train``, ``val`` or ``test``.
    """

    def __init__(self, graph: str, split: str = "train") -> None:
        if split not in SPLIT_FILES:
            raise ValueError(f"split must be one of {list(SPLIT_FILES)}, got {split!r}")
        self.graph, self.split = graph, split

    def describe(self) -> str:
        return f"{self.graph} ({SPLIT_FILES[self.split]} triples)"

    def read(self) -> Any:
        import pandas as pd

        kg = KnowledgeGraph.read(self.graph)
        E, Rq = kg.entities, kg.query_relations
        if self.split == "train":
            answers = kg.answers(("train",))
            rows = [
                ((E[e], Rq[r], tuple(E[a] for a in sorted(ans)), ()), E[e], Rq[r], str(len(ans)))
                for (e, r), ans in sorted(answers.items())
            ]
        else:
            known = kg.answers(("train", "val", "test"))
            R = len(kg.relations)
            rows = []
            for h, r, t in kg.triples[self.split]:
                for e, q, a in ((h, r, t), (t, r + R, h)):
                    rows.append(((E[e], Rq[q], (E[a],), tuple(E[k] for k in sorted(known[(e, q)]))), E[h], Rq[r], E[t]))
        return pd.DataFrame(rows, columns=["query", "head", "relation", "tail"])
