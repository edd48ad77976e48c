"""Quantised embeddings and exact semantic search with float rescoring; retrieve-then-rerank.

* :func:`quantize` turns float embeddings into ``int8`` (per-dimension calibration ranges) or
  packed binary (``binary`` / ``ubinary``) codes, byte-identical to
  ``sentence_transformers.quantization.quantize_embeddings``: 4x and 32x smaller.
* :func:`semantic_search` finds the ``top_k`` corpus rows of each query by inner product (cosine
  for normalised inputs). With a quantised corpus it searches the codes for
  ``top_k * rescore_multiplier`` candidates (Hamming distance for binary, integer dot products
  for int8), then rescores them with the float query -- the recipe of Shakir et al.
  (sentence-transformers' "Embedding Quantization", 2024) -- so a 32x smaller binary corpus keeps
  most of the float recall. Candidates are gathered from the codes by array indexing, and binary
  Hamming search runs in FAISS when ``faiss-cpu`` is installed (``pip install 'polymodal[index]'``).
  Queries and corpus may be any aligned towers' embeddings: text-text, text-image, image-image.
* :func:`retrieve_rerank` retrieves candidates with a bi-encoder and reorders them with a
  :class:`~polymodal.plugins.text.cross_encoder.CrossEncoder` -- or with a :class:`MaxSimReranker`.
* :func:`maxsim_scores` / :class:`MaxSimReranker`: late interaction (ColBERT's MaxSim): a query scores a document
  by the mean over its tokens (or words) of the best cosine to any of the document's tokens. The reranker embeds
  with any token-level model (:class:`~polymodal.plugins.text.WordEmbedder`), caches the vectors in the one
  :class:`~polymodal.data.cache.FeatureCache`, and offers ``rank`` (the cross-encoder interface) and ``search``.

Example:
    >>> corpus = model.encode(docs, normalize=True)
    >>> codes = polymodal.quantize(corpus, "ubinary")
    >>> scores, ids = polymodal.semantic_search(model.encode(["query"], normalize=True), codes, top_k=10,
    ...                                          precision="ubinary", rescore_multiplier=4)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import torch

__all__ = [
    "MaxSimReranker",
    "Precision",
    "RerankHit",
    "int8_ranges",
    "maxsim_scores",
    "quantize",
    "retrieve_rerank",
    "semantic_search",
]

Precision = Literal["float32", "int8", "binary", "ubinary"]
_PRECISIONS: tuple[str, ...] = get_args(Precision)
_CHUNK = 16384  # corpus rows scored at a time (bounds the (Q, chunk) score matrix)


def _as_float(emb: Any, what: str) -> np.ndarray:
    if isinstance(emb, torch.Tensor):
        emb = emb.detach().float().cpu().numpy()
    arr = np.asarray(emb)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D (N, D) array, got shape {arr.shape}")
    if arr.dtype in (np.int8, np.uint8):
        raise ValueError(f"{what} must be float embeddings, got {arr.dtype} codes")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{what} must be float embeddings, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _check_precision(precision: str) -> None:
    if precision not in _PRECISIONS:
        raise ValueError(f"unknown precision {precision!r} (expected one of {', '.join(_PRECISIONS)})")


def int8_ranges(calibration: Any) -> np.ndarray:
    """Per-dimension ``(2, D)`` min/max of ``calibration`` embeddings: the int8 quantisation ranges.

    Compute them once on a representative sample (e.g. the corpus) and reuse them for every
    later batch and for the queries, so all codes share one scale.
    """
    arr = _as_float(calibration, "calibration embeddings")
    if arr.shape[0] < 2:
        raise ValueError(f"int8 ranges need at least 2 calibration embeddings, got {arr.shape[0]}")
    return np.vstack((arr.min(axis=0), arr.max(axis=0)))


def quantize(
    emb: Any,
    precision: Precision = "binary",
    ranges: np.ndarray | None = None,
    calibration: Any = None,
) -> np.ndarray:
    """Quantise float embeddings ``(N, D)``.

    Args:
        emb: float embeddings (numpy or torch).
        precision: ``"int8"`` (``(N, D)`` int8, 256 buckets per dimension between the calibration
            min and max), ``"binary"`` (``(N, ceil(D/8))`` int8: bits of ``emb > 0`` packed, minus
            128), ``"ubinary"`` (the same bits as uint8) or ``"float32"`` (a float32 copy).
        ranges: int8 only: ``(2, D)`` per-dimension min/max (:func:`int8_ranges`).
        calibration: int8 only: embeddings to compute ``ranges`` from when none are given (default:
            ``emb`` itself, which needs at least 2 rows).

    Returns:
        The codes, equal to ``sentence_transformers.quantization.quantize_embeddings``'s.
    """
    _check_precision(precision)
    arr = _as_float(emb, "embeddings")
    if precision == "float32":
        return arr.copy()
    if precision in ("binary", "ubinary"):
        bits = np.packbits(arr > 0, axis=-1)  # (N, ceil(D/8)) uint8
        return bits if precision == "ubinary" else (bits.astype(np.int16) - 128).astype(np.int8)
    if ranges is None:
        ranges = int8_ranges(arr if calibration is None else calibration)
    ranges = np.asarray(ranges, dtype=np.float32)
    if ranges.shape != (2, arr.shape[1]):
        raise ValueError(f"int8 ranges must have shape (2, {arr.shape[1]}), got {ranges.shape}")
    starts = ranges[0]
    steps = (ranges[1] - starts) / 255
    steps = np.where(steps == 0, 1, steps)
    codes = np.clip(np.floor((arr - starts) / steps), 0, 255)
    return (codes - 128).astype(np.int8)


def _dequantize_int8(codes: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    ranges = np.asarray(ranges, dtype=np.float32)
    steps = (ranges[1] - ranges[0]) / 255
    steps = np.where(steps == 0, 1, steps)
    return (codes.astype(np.float32) + 128) * steps + ranges[0]


def _unpack_bits(codes: np.ndarray, dim: int) -> np.ndarray:
    """Packed binary codes (int8 or uint8) -> ``(..., dim)`` float32 of 0/1."""
    return np.unpackbits(codes.view(np.uint8), axis=-1)[..., :dim].astype(np.float32)


def _topk_dense(queries: np.ndarray, corpus: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by inner product, scoring the corpus in chunks -> ``(Q, k)`` scores and ids."""
    q = torch.from_numpy(queries)
    best_s = torch.full((len(queries), 0), -torch.inf)
    best_i = torch.zeros((len(queries), 0), dtype=torch.long)
    for start in range(0, corpus.shape[0], _CHUNK):
        block = torch.from_numpy(np.ascontiguousarray(corpus[start : start + _CHUNK], dtype=np.float32))
        scores = q @ block.T  # (Q, chunk)
        s, i = scores.topk(min(k, scores.shape[1]), dim=1)
        best_s = torch.cat([best_s, s], dim=1)
        best_i = torch.cat([best_i, i + start], dim=1)
        if best_s.shape[1] > k:
            best_s, pos = best_s.topk(k, dim=1)
            best_i = best_i.gather(1, pos)
    return best_s.numpy(), best_i.numpy()


def _topk_hamming(query_bits: np.ndarray, corpus_bits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` smallest Hamming distances between packed uint8 codes -> ``(Q, k)`` distances and ids."""
    faiss: Any = None
    try:
        import faiss
    except ImportError:
        pass
    if faiss is not None:
        index = faiss.IndexBinaryFlat(corpus_bits.shape[1] * 8)
        index.add(np.ascontiguousarray(corpus_bits))
        dist, ids = index.search(np.ascontiguousarray(query_bits), k)
        return dist.astype(np.float32), ids.astype(np.int64)
    # Without FAISS: +-1 vectors, Hamming = (bits - dot) / 2, exact in float32 for any realistic width.
    nbits = corpus_bits.shape[1] * 8
    q = _unpack_bits(query_bits, nbits) * 2 - 1
    best_s = np.empty((len(q), 0), np.float32)
    best_i = np.empty((len(q), 0), np.int64)
    for start in range(0, corpus_bits.shape[0], _CHUNK):
        c = _unpack_bits(corpus_bits[start : start + _CHUNK], nbits) * 2 - 1
        s, i = _topk_dense(q, c, k)
        best_s, best_i = np.concatenate([best_s, s], 1), np.concatenate([best_i, i + start], 1)
        if best_s.shape[1] > k:
            order = np.argsort(-best_s, axis=1, kind="stable")[:, :k]
            best_s, best_i = np.take_along_axis(best_s, order, 1), np.take_along_axis(best_i, order, 1)
    return (nbits - best_s) / 2, best_i


def semantic_search(
    queries: Any,
    corpus: Any,
    top_k: int = 10,
    rescore_multiplier: int = 4,
    precision: Precision = "float32",
    ranges: np.ndarray | None = None,
    rescore: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` search of float ``queries`` in a float or quantised ``corpus``.

    Args:
        queries: ``(Q, D)`` float query embeddings (normalise them for cosine scores).
        corpus: ``(N, D)`` float embeddings, or codes from :func:`quantize` with the same ``precision``.
            A float corpus with ``precision != "float32"`` is quantised here (int8 ranges from
            ``ranges``, else from the corpus itself).
        top_k: results per query (at most ``N``).
        rescore_multiplier: with a quantised corpus, ``top_k * rescore_multiplier`` candidates are
            found on the codes and rescored with the float query.
        precision: ``"float32"``, ``"int8"``, ``"binary"`` or ``"ubinary"``.
        ranges: int8 calibration ranges ``(2, D)`` the corpus codes were made with (needed when
            ``corpus`` is already int8 codes).
        rescore: rescore the candidates with the float queries (else return code scores: negative
            Hamming distance for binary, integer dot products for int8).

    Returns:
        ``(scores, ids)``, both ``(Q, k)`` with ``k = min(top_k, N)``, best first. Rescored scores are
        the float query's dot product with the dequantised candidate (0/1 bits for binary, as
        sentence-transformers rescores), so they rank but are not cosines.
    """
    _check_precision(precision)
    q = _as_float(queries, "queries")
    if isinstance(corpus, torch.Tensor):
        corpus = corpus.detach().cpu().numpy()
    corpus = np.asarray(corpus)
    if corpus.ndim != 2 or corpus.shape[0] == 0:
        raise ValueError(f"corpus must be a non-empty 2-D array of embeddings or codes, got shape {corpus.shape}")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}")
    if isinstance(rescore_multiplier, bool) or not isinstance(rescore_multiplier, (int, np.integer)):
        raise ValueError(f"rescore_multiplier must be an integer >= 1, got {rescore_multiplier!r}")
    if rescore_multiplier < 1:
        raise ValueError(f"rescore_multiplier must be an integer >= 1, got {rescore_multiplier!r}")
    dim = q.shape[1]
    if len(q) == 0:
        empty = np.empty((0, min(top_k, corpus.shape[0])))
        return empty.astype(np.float32), empty.astype(np.int64)
    is_codes = corpus.dtype in (np.int8, np.uint8)
    if precision == "float32":
        corpus = _as_float(corpus, "corpus")
        if corpus.shape[1] != dim:
            raise ValueError(f"queries have {dim} dimensions but the corpus has {corpus.shape[1]}")
        return _topk_dense(q, corpus, min(top_k, corpus.shape[0]))
    if not is_codes:
        corpus = _as_float(corpus, "corpus")
        if corpus.shape[1] != dim:
            raise ValueError(f"queries have {dim} dimensions but the corpus has {corpus.shape[1]}")
        if precision == "int8" and ranges is None:
            ranges = int8_ranges(corpus)
        corpus = quantize(corpus, precision, ranges=ranges)
    k = min(top_k, corpus.shape[0])
    n_candidates = min(k * rescore_multiplier, corpus.shape[0]) if rescore else k
    if precision in ("binary", "ubinary"):
        want = (dim + 7) // 8
        if corpus.shape[1] != want:
            raise ValueError(f"{precision} corpus codes have {corpus.shape[1]} bytes; {dim}-dim queries need {want}")
        corpus_bits = corpus.view(np.uint8) ^ 0x80 if precision == "binary" else corpus.view(np.uint8)
        dist, ids = _topk_hamming(np.packbits(q > 0, axis=-1), corpus_bits, n_candidates)
        if not rescore:
            return -dist, ids
        candidates = _unpack_bits(corpus_bits[ids], dim)  # (Q, C, D) 0/1
    else:
        if ranges is None:
            raise ValueError("an int8 corpus needs the ranges it was quantised with (polymodal.int8_ranges)")
        if corpus.shape[1] != dim:
            raise ValueError(f"queries have {dim} dimensions but the corpus has {corpus.shape[1]}")
        q_codes = quantize(q, "int8", ranges=ranges).astype(np.float32)
        scores, ids = _topk_dense(q_codes, corpus.astype(np.float32), n_candidates)
        if not rescore:
            return scores, ids
        candidates = _dequantize_int8(corpus[ids], ranges)  # (Q, C, D)
    rescored = np.einsum("qd,qcd->qc", q.astype(np.float64), candidates)  # (Q, C), float64 as sentence-transformers
    order = np.argsort(-rescored, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(rescored, order, 1).astype(np.float32), np.take_along_axis(ids, order, 1)


@dataclass(frozen=True)
class RerankHit:
    """One reranked document: its corpus index, the cross-encoder score and the bi-encoder score."""

    corpus_id: int
    score: float
    retrieval_score: float


def retrieve_rerank(
    query: str,
    documents: Sequence[str],
    retriever: Any,
    reranker: Any,
    top_k: int = 10,
    candidates: int = 50,
    corpus_embeddings: Any = None,
    batch_size: int = 32,
) -> list[RerankHit]:
    """Retrieve ``candidates`` documents with a bi-encoder, then rerank them with a cross-encoder.

    Args:
        query: the query text.
        documents: the corpus texts.
        retriever: an :class:`~polymodal.model.EmbeddingModel` (its ``encode_query`` / ``encode_document``
            prompts are used when it has them).
        reranker: a :class:`~polymodal.plugins.text.cross_encoder.CrossEncoder` (anything with ``rank``).
        top_k: hits returned.
        candidates: documents retrieved for reranking (``>= top_k``).
        corpus_embeddings: precomputed normalised document embeddings (skip re-encoding the corpus).
        batch_size: cross-encoder batch size.

    Returns:
        Up to ``top_k`` :class:`RerankHit`, best cross-encoder score first.
    """
    if not isinstance(query, str):
        raise TypeError(f"query must be a string, got {type(query).__name__}")
    documents = list(documents)
    if not documents:
        raise ValueError("retrieve_rerank: the corpus is empty")
    if candidates < top_k:
        raise ValueError(f"candidates ({candidates}) must be >= top_k ({top_k})")
    if corpus_embeddings is None:
        corpus_embeddings = retriever.encode_document(documents, normalize=True)
    elif len(corpus_embeddings) != len(documents):
        raise ValueError(f"corpus_embeddings has {len(corpus_embeddings)} rows for {len(documents)} documents")
    q = retriever.encode_query([query], normalize=True)
    scores, ids = semantic_search(q, corpus_embeddings, top_k=min(candidates, len(documents)))
    pool = [int(i) for i in ids[0]]
    retrieval = {int(i): float(s) for i, s in zip(ids[0], scores[0])}
    ranked = reranker.rank(query, [documents[i] for i in pool], top_k=top_k, batch_size=batch_size)
    return [RerankHit(pool[hit["corpus_id"]], hit["score"], retrieval[pool[hit["corpus_id"]]]) for hit in ranked]


# ----------------------------------------------------------------------------- late interaction (MaxSim)
def _unit_rows(x: Any, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"{what}: expected a (tokens, dim) array, got shape {a.shape}")
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


def maxsim_scores(queries: Sequence[Any], documents: Sequence[Any]) -> np.ndarray:
    """Late-interaction scores ``(Q, N)``: for each query, the mean over its token vectors of the maximum cosine
    to the token vectors of each document (ColBERT's MaxSim, averaged instead of summed so that queries of
    different lengths compare on one scale).

    Args:
        queries: per query a ``(T_q, D)`` array of token (or word) vectors.
        documents: per document a ``(T_d, D)`` array.

    A query or document without any vector scores ``-1`` against everything (never the best match).
    """
    docs = [_unit_rows(d, f"document {j}") for j, d in enumerate(documents)]
    out = np.full((len(queries), len(docs)), -1.0, dtype=np.float64)
    nonempty = [j for j, d in enumerate(docs) if len(d)]
    if not nonempty:
        return out
    flat = np.concatenate([docs[j] for j in nonempty], axis=0)  # (sum T_d, D)
    starts = np.cumsum([0] + [len(docs[j]) for j in nonempty[:-1]])
    for i, q in enumerate(queries):
        qn = _unit_rows(q, f"query {i}")
        if not len(qn):
            continue
        sims = qn @ flat.T  # (T_q, sum T_d)
        best = np.maximum.reduceat(sims, starts, axis=1)  # (T_q, N') best match per document
        out[i, nonempty] = best.mean(axis=0)
    return out


class MaxSimReranker:
    """Late-interaction retrieval and reranking over a token-level embedding model.

    Args:
        model: a token-level model whose ``encode(values)`` returns one ``(T_i, D)`` array per value, e.g.
            :class:`~polymodal.plugins.text.WordEmbedder` (words of sentences).
        cache: a directory for the vectors (:class:`~polymodal.data.cache.FeatureCache`, keyed on content and the
            model's fingerprint); ``None`` keeps them in memory only.
        batch_size: sentences per forward pass.

    ``rank(query, documents)`` has the interface of a cross-encoder's, so the reranker also plugs into
    :func:`retrieve_rerank` (bi-encoder candidates, MaxSim order).
    """

    def __init__(self, model: Any, cache: str | None = None, batch_size: int = 32) -> None:
        from polymodal.data.cache import FeatureCache

        self.model = model
        self.cache = FeatureCache(model, cache, options="maxsim-token-vectors")
        self.batch_size = int(batch_size)

    def embed(self, values: Sequence[Any]) -> list[np.ndarray]:
        """Token vectors of each value (cached)."""
        return self.cache.encode(list(values), batch_size=self.batch_size, normalize=True, ragged=True)

    def scores(self, queries: Sequence[Any], documents: Sequence[Any]) -> np.ndarray:
        """MaxSim scores ``(Q, N)`` of raw queries against raw documents."""
        return maxsim_scores(self.embed(queries), self.embed(documents))

    def search(self, queries: Sequence[Any], corpus: Sequence[Any], top_k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)``, each ``(Q, min(top_k, N))``: the best documents of every query, best first (ties keep
        corpus order)."""
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        s = self.scores(queries, corpus)
        ids = np.argsort(-s, axis=1, kind="stable")[:, :top_k]
        return np.take_along_axis(s, ids, axis=1), ids

    def rank(
        self,
        query: Any,
        documents: Sequence[Any],
        top_k: int | None = None,
        batch_size: int | None = None,
        return_documents: bool = False,
    ) -> list[dict[str, Any]]:
        """``[{"corpus_id": i, "score": s}, ...]`` best first (the cross-encoder ``rank`` interface)."""
        documents = list(documents)
        if not documents:
            raise ValueError("rank() needs at least one document, got an empty list")
        scores = np.asarray(self.scores([query], documents)[0])  # (N,)
        order = np.argsort(-scores, kind="stable")[: top_k or len(documents)]
        hits: list[dict[str, Any]] = [{"corpus_id": int(i), "score": float(scores[i])} for i in order]
        if return_documents:
            for hit in hits:
                hit["text"] = documents[hit["corpus_id"]]
        return hits
