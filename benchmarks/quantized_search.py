"""Quantised semantic search: ``polymodal.quantize`` + ``polymodal.semantic_search`` vs
``sentence_transformers.quantization`` on the same embeddings, in one process.

Corpus: every unique sentence of SNLI dev+test, STS-B train+dev and the Flickr8k-subset captions
(../shared/data), embedded once with the bundled all-MiniLM-L6-v2 (normalised; cached in
``--cache``). ``--queries`` of them, drawn with a fixed seed, are removed from the corpus and used
as queries. Ground truth: exact float32 top-10 by cosine. For each precision both libraries search
the same codes exhaustively (``exact=True`` for sentence-transformers, with its index built once
beforehand, so its per-call index building is not timed) and rescore ``top_k * rescore_multiplier``
candidates with the float queries; the results must be identical (same ids). Time: best of
``--repeats`` full search calls for all queries.

    python benchmarks/quantized_search.py [--queries 1000] [--top-k 10] [--rescore-multiplier 4] \\
        [--threads 1] [--repeats 5] [--cache runs/quantized_search_corpus.npz]

Prints one row per precision (recall@10 vs exact float search, seconds, their/ours) and
``ratio: X`` = sentence-transformers time / polymodal time for binary (ubinary) search with
rescoring, at equal recall.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("POLYMODAL_SHARED_DATA", REPO.parent / "shared" / "data"))


def corpus_sentences(shared: Path) -> list[str]:
    from polymodal.data.tables import read_table

    texts: list[str] = []
    for name in ("snli_1.0_dev.tsv.gz", "snli_1.0_test.tsv.gz"):
        df = read_table(shared / "nli" / name)
        texts += df["premise"].astype(str).tolist() + df["hypothesis"].astype(str).tolist()
    for name in ("sts-train.csv.gz", "sts-dev.csv.gz"):
        df = read_table(shared / "stsb" / name)
        texts += df["sentence1"].astype(str).tolist() + df["sentence2"].astype(str).tolist()
    texts += read_table(shared / "captions" / "captions.tsv")["caption"].astype(str).tolist()
    return list(dict.fromkeys(t.strip() for t in texts if t.strip()))


def best(fn, repeats: int):
    out, times = None, []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--rescore-multiplier", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=REPO / "runs" / "quantized_search_corpus.npz")
    args = parser.parse_args(argv)

    import faiss
    import numpy as np
    import torch
    from usearch.index import Index

    import polymodal

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from sentence_transformers.util.quantization import (
            quantize_embeddings,
            semantic_search_faiss,
            semantic_search_usearch,
        )

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    texts = corpus_sentences(args.shared)
    if args.cache.exists() and np.load(args.cache)["n"] == len(texts):
        emb = np.load(args.cache)["emb"]
    else:
        start = time.perf_counter()
        emb = polymodal.load("minilm-l6").encode(texts, batch_size=64, normalize=True)
        print(f"encoded {len(texts)} sentences in {time.perf_counter() - start:.0f}s")
        args.cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.cache, emb=emb, n=len(texts))
    rng = np.random.default_rng(0)
    q_idx = rng.choice(len(texts), size=args.queries, replace=False)
    mask = np.ones(len(texts), bool)
    mask[q_idx] = False
    queries, corpus = emb[q_idx], emb[mask]
    k, mult = args.top_k, args.rescore_multiplier
    print(f"corpus {corpus.shape[0]} x {corpus.shape[1]}, {len(queries)} queries, top-{k}, rescore x{mult}")

    t_exact, (_, exact) = best(lambda: polymodal.semantic_search(queries, corpus, k), args.repeats)

    def recall(ids: np.ndarray) -> float:
        return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(exact, ids)]))

    def st_ids(res) -> np.ndarray:
        return np.array([[h["corpus_id"] for h in r] for r in res])

    rows, ratios = [], {}
    # float32: exact inner-product search, FAISS IndexFlatIP for sentence-transformers
    flat = faiss.IndexFlatIP(corpus.shape[1])
    flat.add(corpus)
    t_st, res = best(
        lambda: semantic_search_faiss(queries, corpus_index=flat, top_k=k, rescore=False, exact=True)[0], args.repeats
    )
    rows.append(("float32", 4 * corpus.shape[1], recall(exact), recall(st_ids(res)), t_exact, t_st))

    # ubinary: FAISS IndexBinaryFlat (Hamming) + float rescoring, 32x smaller
    codes = polymodal.quantize(corpus, "ubinary")
    assert np.array_equal(codes, quantize_embeddings(corpus, "ubinary"))
    bin_index = faiss.IndexBinaryFlat(codes.shape[1] * 8)
    bin_index.add(codes)
    t_ours, (_, ours) = best(
        lambda: polymodal.semantic_search(queries, codes, k, mult, precision="ubinary"), args.repeats
    )
    t_st, res = best(
        lambda: semantic_search_faiss(
            queries, corpus_index=bin_index, corpus_precision="ubinary", top_k=k, rescore_multiplier=mult, exact=True
        )[0],
        args.repeats,
    )
    same_bin = float(np.mean(ours == st_ids(res)))
    assert same_bin > 0.99 and abs(recall(ours) - recall(st_ids(res))) < 1e-3, "ubinary results differ"
    rows.append(("ubinary", codes.shape[1], recall(ours), recall(st_ids(res)), t_ours, t_st))
    ratios["ubinary"] = t_st / t_ours

    # int8: calibration ranges from the corpus; usearch i8 (exact) for sentence-transformers
    ranges = polymodal.int8_ranges(corpus)
    codes8 = polymodal.quantize(corpus, "int8", ranges=ranges)
    assert np.array_equal(codes8, quantize_embeddings(corpus, "int8", ranges=ranges))
    i8 = Index(ndim=corpus.shape[1], metric="ip", dtype="i8")
    i8.add(np.arange(len(codes8)), codes8)
    t_ours, (_, ours) = best(
        lambda: polymodal.semantic_search(queries, codes8, k, mult, precision="int8", ranges=ranges), args.repeats
    )
    t_st, res = best(
        lambda: semantic_search_usearch(
            queries,
            corpus_index=i8,
            corpus_precision="int8",
            top_k=k,
            ranges=ranges,
            rescore_multiplier=mult,
            exact=True,
        )[0],
        args.repeats,
    )
    same = float(np.mean(ours == st_ids(res)))
    assert abs(recall(ours) - recall(st_ids(res))) < 1e-3, "int8 recall differs"
    rows.append(("int8", corpus.shape[1], recall(ours), recall(st_ids(res)), t_ours, t_st))
    ratios["int8"] = t_st / t_ours

    print(f"\nrecall@{k} vs exact float search; seconds for {len(queries)} queries (best of {args.repeats})")
    print("| precision | bytes/vector | recall ours | recall ST | ours s | ST s | ST / ours |")
    print("|---|---|---|---|---|---|---|")
    for name, nbytes, r_ours, r_st, t_o, t_s in rows:
        print(f"| {name} | {nbytes} | {r_ours:.4f} | {r_st:.4f} | {t_o:.3f} | {t_s:.3f} | {t_s / t_o:.2f} |")
    print(f"ids identical to sentence-transformers' at each rank: ubinary {same_bin:.4f}, int8 {same:.4f}")
    print("(differences: candidates with equal code scores at the cut, or near-equal rescored scores, are ordered")
    print(" differently: their quicksort is not stable; recall must be equal)")
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print(f"ratio: {ratios['ubinary']:.2f}")
    return ratios["ubinary"]


if __name__ == "__main__":
    main()
