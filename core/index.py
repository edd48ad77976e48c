"""Vector indexes of embeddings in FAISS or usearch, saved as data and tied to the model that built them.

An index folder holds::

    index.json        format version, backend, precision, dimension, count, int8 ranges,
                      the model reference and its fingerprint (polymodal.data.cache.model_fingerprint)
    vectors.faiss     FAISS index (backend "faiss")   |  vectors.usearch  usearch index (backend "usearch")
    documents.jsonl   optional: one JSON string per row, the text each vector was made from

Loading reads JSON, the backends' own binary formats and JSON lines; it never unpickles or imports
anything the folder names. A query model is compared with the recorded fingerprint and refused
when it differs, so vectors from two models are never compared.

Backends and precisions (``pip install 'polymodal[index]'`` brings ``faiss-cpu`` and ``usearch``):

=========  ================================================  ==========================================
backend    precisions                                          search
=========  ================================================  ==========================================
faiss      ``float32`` (IndexFlatIP), ``ubinary`` (IndexBinaryFlat)  exact
usearch    ``float32``, ``int8``, ``binary``/``ubinary`` (b1 Hamming)  HNSW (approximate; ``exact=True``)
=========  ================================================  ==========================================

Quantised indexes rescore ``top_k * rescore_multiplier`` candidates with the float query, as
:func:`polymodal.semantic_search` does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from polymodal.io import atomic_path, ensure_writable_dir, resolve_path
from polymodal.search import (
    _as_float,
    _dequantize_int8,
    _unpack_bits,
    int8_ranges,
    quantize,
)

__all__ = ["BACKENDS", "INDEX_FORMAT_VERSION", "VectorIndex"]

INDEX_FORMAT_VERSION = 1
INDEX_CONFIG = "index.json"
DOCUMENTS = "documents.jsonl"
Backend = Literal["faiss", "usearch"]
#: backend -> precisions it stores.
BACKENDS: dict[str, tuple[str, ...]] = {
    "faiss": ("float32", "ubinary"),
    "usearch": ("float32", "int8", "binary", "ubinary"),
}
_FILES = {"faiss": "vectors.faiss", "usearch": "vectors.usearch"}


def _import(backend: str) -> Any:
    try:
        if backend == "faiss":
            import faiss

            return faiss
        from usearch import index as usearch_index

        return usearch_index
    except ImportError:
        package = "faiss-cpu" if backend == "faiss" else "usearch"
        raise ImportError(f"the {backend} backend needs {package}: pip install 'polymodal[index]'") from None


def _check_choice(backend: str, precision: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown index backend {backend!r} (expected one of {', '.join(BACKENDS)})")
    if precision not in BACKENDS[backend]:
        raise ValueError(f"the {backend} backend stores precisions {', '.join(BACKENDS[backend])}, not {precision!r}")


@dataclass
class VectorIndex:
    """A FAISS or usearch index of ``count`` embeddings of width ``dim``, with its provenance.

    Build one with :meth:`build` (from embeddings) or :meth:`polymodal.model.EmbeddingModel.build_index`
    (from raw documents), :meth:`save` it, :meth:`load` it later and :meth:`search` it with
    embeddings or, through :meth:`query`, with raw queries and the same model.
    """

    backend: str
    precision: str
    dim: int
    count: int
    fingerprint: str
    model: str = ""
    ranges: np.ndarray | None = None
    documents: list[str] | None = None
    native: Any = field(default=None, repr=False)

    # ------------------------------------------------------------------ build
    @classmethod
    def build(
        cls,
        embeddings: Any,
        backend: Backend = "faiss",
        precision: str = "float32",
        fingerprint: str = "",
        model: str = "",
        documents: Sequence[str] | None = None,
        ranges: np.ndarray | None = None,
    ) -> VectorIndex:
        """Index ``(N, D)`` float embeddings (normalise them for cosine search).

        Args:
            embeddings: float embeddings, one row per document.
            backend: ``"faiss"`` or ``"usearch"``.
            precision: how vectors are stored (see the module table).
            fingerprint: the model's :func:`~polymodal.data.cache.model_fingerprint`.
            model: how to load the model again (registered name or folder), for ``polymodal search``.
            documents: the texts, stored beside the vectors (``None``: ids only).
            ranges: int8 calibration ranges (default: from ``embeddings``).
        """
        _check_choice(backend, precision)
        emb = _as_float(embeddings, "embeddings")
        if emb.shape[0] == 0:
            raise ValueError("cannot build an index from an empty corpus (0 embeddings)")
        if documents is not None:
            documents = list(documents)
            if len(documents) != emb.shape[0]:
                raise ValueError(f"{len(documents)} documents for {emb.shape[0]} embeddings")
        n, dim = emb.shape
        lib = _import(backend)
        if precision == "int8" and ranges is None:
            ranges = int8_ranges(emb)
        codes = emb if precision == "float32" else quantize(emb, precision, ranges=ranges)  # type: ignore[arg-type]
        if backend == "faiss":
            if precision == "float32":
                native = lib.IndexFlatIP(dim)
            else:
                native = lib.IndexBinaryFlat(codes.shape[1] * 8)
            native.add(np.ascontiguousarray(codes))
        else:
            if precision == "float32":
                native = lib.Index(ndim=dim, metric="ip", dtype="f32")
            elif precision == "int8":
                native = lib.Index(ndim=dim, metric="ip", dtype="i8")
            else:
                native = lib.Index(ndim=codes.shape[1] * 8, metric="hamming", dtype="b1")
                codes = codes.view(np.uint8) ^ 0x80 if precision == "binary" else codes
            native.add(np.arange(n, dtype=np.uint64), np.ascontiguousarray(codes))
        return cls(backend, precision, dim, n, fingerprint, model, ranges, documents, native)

    # ------------------------------------------------------------------ search
    def check_model(self, model: Any) -> None:
        """Raise ``ValueError`` (one line) unless ``model`` is the one that built this index."""
        from polymodal.data.cache import model_fingerprint

        if not self.fingerprint:
            return
        got = model_fingerprint(model)
        if got != self.fingerprint:
            raise ValueError(
                f"this index was built with another model ({self.model or 'unnamed'}, fingerprint "
                f"{self.fingerprint[:12]}); the query model's fingerprint is {got[:12]}: "
                "encode queries with the model that built the index"
            )
        if getattr(model, "dim", self.dim) != self.dim:
            raise ValueError(f"the query model embeds in {model.dim} dimensions, the index holds {self.dim}")

    def query(
        self, model: Any, queries: Sequence[Any], top_k: int = 10, batch_size: int = 64, **search_kwargs: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """Embed ``queries`` with ``model`` (checked against the index's fingerprint) and :meth:`search`."""
        self.check_model(model)
        encode = getattr(model, "encode_query", model.encode)
        emb = encode(list(queries), batch_size=batch_size, normalize=True)
        return self.search(emb, top_k, **search_kwargs)

    def search(
        self, queries: Any, top_k: int = 10, rescore_multiplier: int = 4, exact: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` of ``(Q, D)`` float query embeddings -> ``(scores, ids)``, each ``(Q, k)``, best first.

        Quantised indexes rescore ``top_k * rescore_multiplier`` candidates with the float queries.
        ``exact``: usearch searches exhaustively instead of walking its HNSW graph (FAISS is always exact).
        """
        q = _as_float(queries, "queries")
        if q.shape[1] != self.dim:
            raise ValueError(f"queries have {q.shape[1]} dimensions, the index holds {self.dim}")
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}")
        if isinstance(rescore_multiplier, bool) or not isinstance(rescore_multiplier, int) or rescore_multiplier < 1:
            raise ValueError(f"rescore_multiplier must be an integer >= 1, got {rescore_multiplier!r}")
        k = min(int(top_k), self.count)
        n_cand = k if self.precision == "float32" else min(k * rescore_multiplier, self.count)
        if self.precision == "float32":
            probe = q
        elif self.precision == "int8":
            probe = quantize(q, "int8", ranges=self.ranges)
        else:
            probe = np.packbits(q > 0, axis=-1)  # both binary kinds are searched as raw bits
        if self.backend == "faiss":
            scores, ids = self.native.search(np.ascontiguousarray(probe), n_cand)
            ids = ids.astype(np.int64)
        else:
            matches = self.native.search(np.ascontiguousarray(probe), n_cand, exact=exact)
            keys = np.atleast_2d(matches.keys).astype(np.int64)
            counts = np.reshape(np.asarray(getattr(matches, "counts", keys.shape[1])), (-1, 1))
            ids = np.where(np.arange(keys.shape[1]) < counts, keys, -1)
            scores = 1.0 - np.atleast_2d(matches.distances)  # ip distance is 1 - dot
        if self.precision == "float32":
            return scores.astype(np.float32), ids
        valid = ids >= 0
        safe = np.where(valid, ids, 0)
        stored = self._stored(safe.ravel()).reshape(*safe.shape, -1)  # (Q, C, bytes or D)
        if self.precision == "int8":
            cand = _dequantize_int8(stored, self.ranges)
        else:
            cand = _unpack_bits(stored.astype(np.uint8), self.dim)
        rescored = np.einsum("qd,qcd->qc", q, cand)
        rescored[~valid] = -np.inf
        order = np.argsort(-rescored, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(rescored, order, 1).astype(np.float32), np.take_along_axis(ids, order, 1)

    def _stored(self, ids: np.ndarray) -> np.ndarray:
        """The stored codes of ``ids`` (raw bits for binary kinds) -> ``(len(ids), width)``."""
        if self.backend == "faiss":
            faiss = _import("faiss")
            codes = faiss.vector_to_array(self.native.xb).reshape(self.count, -1)
            return codes[ids]
        got = self.native.get(ids.astype(np.uint64))
        return np.stack(got) if isinstance(got, tuple) else np.asarray(got).reshape(len(ids), -1)

    # ------------------------------------------------------------- save / load
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index folder (each file atomically); returns its path."""
        directory = ensure_writable_dir(path, what="index directory")
        target = directory / _FILES[self.backend]
        with atomic_path(target) as tmp:
            if self.backend == "faiss":
                faiss = _import("faiss")
                write = faiss.write_index if self.precision == "float32" else faiss.write_index_binary
                write(self.native, str(tmp))
            else:
                self.native.save(str(tmp))
        if self.documents is not None:
            with atomic_path(directory / DOCUMENTS) as tmp:
                with open(tmp, "w", encoding="utf-8") as fh:
                    for doc in self.documents:
                        fh.write(json.dumps(doc, ensure_ascii=False) + "\n")
        config = {
            "format_version": INDEX_FORMAT_VERSION,
            "backend": self.backend,
            "precision": self.precision,
            "dim": self.dim,
            "count": self.count,
            "model": self.model,
            "fingerprint": self.fingerprint,
            "ranges": None if self.ranges is None else np.asarray(self.ranges, dtype=np.float64).tolist(),
            "documents": self.documents is not None,
        }
        with atomic_path(directory / INDEX_CONFIG) as tmp:
            tmp.write_text(json.dumps(config, indent=1))
        return directory

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> VectorIndex:
        """Read an index folder written by :meth:`save` (JSON + the backend's binary file; no pickle)."""
        directory = resolve_path(path, what="index directory")
        config_path = directory / INDEX_CONFIG
        if not config_path.is_file():
            raise FileNotFoundError(f"not a polymodal index folder (no {INDEX_CONFIG}): {directory}")
        try:
            config = json.loads(config_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{config_path}: invalid JSON: {exc}") from None
        if not isinstance(config, dict):
            raise ValueError(f"{config_path}: expected a JSON object")
        if config.get("format_version") != INDEX_FORMAT_VERSION:
            raise ValueError(f"{config_path}: format_version {config.get('format_version')!r} not supported")
        backend, precision = str(config.get("backend")), str(config.get("precision"))
        try:
            _check_choice(backend, precision)
        except ValueError as exc:
            raise ValueError(f"{config_path}: {exc}") from None
        for key in ("dim", "count"):
            if isinstance(config.get(key), bool) or not isinstance(config.get(key), int) or config[key] < 1:
                raise ValueError(f"{config_path}: field {key!r} must be a positive integer, got {config.get(key)!r}")
        ranges = config.get("ranges")
        if precision == "int8":
            try:
                ranges = np.asarray(ranges, dtype=np.float32)
            except (TypeError, ValueError):
                ranges = np.zeros(0)
            if ranges.shape != (2, config["dim"]):
                raise ValueError(f"{config_path}: field 'ranges' must be 2 x {config['dim']} numbers for int8")
        else:
            ranges = None
        lib = _import(backend)
        vectors = directory / _FILES[backend]
        if not vectors.is_file():
            raise FileNotFoundError(f"index vectors missing: {vectors}")
        try:
            if backend == "faiss":
                native = lib.read_index(str(vectors)) if precision == "float32" else lib.read_index_binary(str(vectors))
                size, width = native.ntotal, native.d
            else:
                native = lib.Index.restore(str(vectors))
                if native is None:
                    raise ValueError("not a usearch index")
                size, width = len(native), native.ndim
        except (RuntimeError, ValueError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"{vectors}: corrupt or unreadable {backend} index ({first[:200]})") from None
        want = config["dim"] if precision in ("float32", "int8") else -(-config["dim"] // 8) * 8
        if size != config["count"] or width != want:
            raise ValueError(
                f"{vectors}: holds {size} vectors of width {width}, {INDEX_CONFIG} says {config['count']} of {want}"
            )
        documents = None
        if config.get("documents"):
            doc_path = directory / DOCUMENTS
            if not doc_path.is_file():
                raise FileNotFoundError(f"index documents missing: {doc_path}")
            documents = []
            with open(doc_path, encoding="utf-8") as fh:
                for line_no, line in enumerate(fh, 1):
                    try:
                        doc = json.loads(line)
                    except json.JSONDecodeError:
                        doc = None
                    if not isinstance(doc, str):
                        raise ValueError(f"{doc_path}: line {line_no}: expected one JSON string per line")
                    documents.append(doc)
            if len(documents) != config["count"]:
                raise ValueError(f"{doc_path}: {len(documents)} documents for {config['count']} vectors")
        fingerprint = config.get("fingerprint") or ""
        if not isinstance(fingerprint, str):
            raise ValueError(f"{config_path}: field 'fingerprint' must be a string")
        return cls(
            str(backend),
            str(precision),
            int(config["dim"]),
            int(config["count"]),
            fingerprint,
            str(config.get("model") or ""),
            ranges,
            documents,
            native,
        )
