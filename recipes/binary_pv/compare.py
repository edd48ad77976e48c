"""Hamming-ranked retrieval on Choi segments: our Binary PV-DBOW vs gensim Doc2Vec and sign-binarised MiniLM.

Every method sees the same three collections (:class:`~polymodal.recipes.binary_pv.ChoiSegments`): it is trained
(or not: MiniLM is pretrained) on groups 1-2, and codes are computed for group 3 (segments of the same 124 Brown
texts; 2,902 of its 3,000 segments occur verbatim in groups 1-2, so this is a training-set check) and group 4's
unseen texts (transfer: Brown categories absent from training, every code inferred). Within each collection
every segment queries all others (leave-one-out); relevant = cut from the same source text. Metrics: precision@1,
precision@10 and MAP (:func:`polymodal.metrics.functional.group_precision_map`, ties in corpus order), code
inference time per document, and search time per query (faiss exact search: ``IndexBinaryFlat`` for codes,
``IndexFlatIP`` for real vectors, top 10, one thread).

Run (after ``polymodal fit --config recipes/binary_pv/choi.yaml``)::

    python -m polymodal.recipes.binary_pv.compare --model runs/binary_pv-choi/model --out runs/binary_pv-compare
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.metrics import functional as fn
from polymodal.plugins.text.static import pack_codes, tokenize
from polymodal.recipes.binary_pv.data import ChoiSegments

__all__ = ["evaluate_codes", "main"]

CHOI = "data://topicseg_choi/choi.jsonl.gz"


def _search_time(vectors: np.ndarray, binary: bool, k: int = 10) -> float:
    """Mean seconds per query of an exact faiss top-k search of every row against the collection (one thread)."""
    import faiss

    faiss.omp_set_num_threads(1)
    if binary:
        index = faiss.IndexBinaryFlat(vectors.shape[1] * 8)
    else:
        vectors = np.ascontiguousarray(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), dtype=np.float32)
        index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    start = time.perf_counter()
    for row in range(0, len(vectors)):
        index.search(vectors[row : row + 1], k)
    return (time.perf_counter() - start) / len(vectors)


def evaluate_codes(vectors: np.ndarray, groups: np.ndarray, binary: bool, ks: Sequence[int] = (1, 10)) -> dict:
    """Leave-one-out P@k / MAP of packed codes (Hamming) or real vectors (cosine), plus search time per query."""
    if binary:
        dist = fn.hamming_distances(vectors, vectors).astype(np.float64)
    else:
        dist = -fn.cosine_matrix(vectors, vectors)
    out = fn.group_precision_map(dist, groups, groups, ks, exclude_self=True)
    out["search_ms_per_query"] = 1e3 * _search_time(vectors, binary)
    return out


def _timed(encode: Callable[[list[str]], np.ndarray], texts: list[str]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = encode(texts)
    return out, (time.perf_counter() - start) / len(texts)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="exported Binary PV model folder (ExportModel of choi.yaml)")
    parser.add_argument("--choi", default=CHOI)
    parser.add_argument("--doc2vec-epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-rows", type=int, default=None, help="segments per collection (smoke runs)")
    parser.add_argument(
        "--eval-rows", type=int, default=None, help="first N segments per evaluated collection (training unchanged)"
    )
    parser.add_argument("--skip-minilm", action="store_true")
    parser.add_argument("--out", default="runs/binary_pv-compare")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    import polymodal

    train = ChoiSegments(args.choi, groups=["1", "2"], max_rows=args.max_rows).frame()
    cap = min(n for n in (args.max_rows, args.eval_rows) if n is not None) if args.max_rows or args.eval_rows else None
    collections = {
        "group3 (training texts)": ChoiSegments(args.choi, groups=["3"], max_rows=cap).frame(),
        "group4 unseen texts (transfer)": ChoiSegments(args.choi, groups=["4"], texts="unseen", max_rows=cap).frame(),
    }
    ours = polymodal.load(args.model)
    bits = int(ours.encoder.output_dim)

    from gensim.models.doc2vec import Doc2Vec, TaggedDocument

    start = time.perf_counter()
    d2v = Doc2Vec(
        [TaggedDocument(tokenize(t), [i]) for i, t in enumerate(train["text"])],
        dm=0, vector_size=bits, min_count=2, epochs=args.doc2vec_epochs, workers=1, seed=args.seed, negative=5,
    )  # fmt: skip
    d2v_fit = time.perf_counter() - start

    def d2v_encode(texts: list[str]) -> np.ndarray:
        return np.stack([d2v.infer_vector(tokenize(t)) for t in texts])

    minilm = None if args.skip_minilm else polymodal.load("minilm-l6")
    rows: list[dict[str, Any]] = []

    def add(collection: str, method: str, seconds_per_doc: float, metrics: dict[str, float]) -> None:
        rows.append({"collection": collection, "method": method, "infer_ms_per_doc": 1e3 * seconds_per_doc, **metrics})

    for name, frame in collections.items():
        texts, groups = frame["text"].tolist(), frame["source"].to_numpy()
        codes, t_ours = _timed(lambda x: ours.encode(x, batch_size=500), texts)
        add(name, f"Binary PV-DBOW ({bits} bits, Hamming)", t_ours, evaluate_codes(pack_codes(codes), groups, True))
        vec, t_d2v = _timed(d2v_encode, texts)
        add(name, f"gensim Doc2Vec PV-DBOW ({bits}-d, cosine)", t_d2v, evaluate_codes(vec, groups, False))
        add(name, f"gensim Doc2Vec sign ({bits} bits, Hamming)", t_d2v, evaluate_codes(pack_codes(vec), groups, True))
        if minilm is not None:
            emb, t_mini = _timed(lambda x: minilm.encode(x, batch_size=64), texts)
            dim = emb.shape[1]
            add(name, f"MiniLM-L6 sign ({dim} bits, Hamming)", t_mini, evaluate_codes(pack_codes(emb), groups, True))
            add(name, f"MiniLM-L6 ({dim}-d float, cosine)", t_mini, evaluate_codes(emb, groups, False))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"doc2vec_fit_s": d2v_fit, "train_segments": len(train), "rows": rows, "args": vars(args)}
    from polymodal.io import atomic_path

    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    lines = [
        "| collection | method | P@1 | P@10 | MAP | code inference ms/doc | search ms/query |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['collection']} ({int(r['queries'])} queries) | {r['method']} | {r['p@1']:.4f} | {r['p@10']:.4f} | "
            f"{r['map']:.4f} | {r['infer_ms_per_doc']:.2f} | {r['search_ms_per_query']:.4f} |"
        )
    table = "\n".join(lines)
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(table + "\n")
    print(table)
    return result


if __name__ == "__main__":
    main()
