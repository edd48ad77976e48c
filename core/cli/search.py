"""``polymodal search``: query an index folder written by ``polymodal index``."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", required=True, help="index folder (polymodal index --output)")
    parser.add_argument("--query", required=True, action="append", help="query text (repeat for several)")
    parser.add_argument("--model", default=None, help="query model (default: the one recorded in the index)")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--rescore-multiplier", type=int, default=4)
    parser.add_argument("--exact", action="store_true", help="usearch: exhaustive instead of HNSW search")
    parser.add_argument("--json", action="store_true", help="one JSON object per query")


def run(ns: argparse.Namespace) -> int:
    import json

    import polymodal
    from polymodal.index import VectorIndex

    index = VectorIndex.load(ns.index)
    ref = ns.model or index.model
    if not ref:
        raise ValueError(f"{ns.index}: the index records no model; pass --model")
    model = polymodal.load(ref)
    scores, ids = index.query(model, ns.query, top_k=ns.top_k, rescore_multiplier=ns.rescore_multiplier, exact=ns.exact)
    for query, row_s, row_i in zip(ns.query, scores, ids):
        hits = [
            {"id": int(i), "score": round(float(s), 6), **({"text": index.documents[i]} if index.documents else {})}
            for s, i in zip(row_s, row_i)
            if i >= 0
        ]
        if ns.json:
            print(json.dumps({"query": query, "hits": hits}, ensure_ascii=False))
            continue
        print(f"query: {query}")
        for rank, hit in enumerate(hits, 1):
            print(f"{rank:3d}  {hit['score']:.4f}  {hit['id']:>6}  {hit.get('text', '')}")
    return 0
