"""The one feature cache: outputs of a frozen model keyed on (content, model fingerprint).

Every recipe that precomputes features of a frozen encoder (sentence embeddings of essays, image patch
grids, ...) uses :class:`FeatureCache`. Keys are SHA-256 digests of (model fingerprint, options, input
content): a string by its UTF-8 bytes, a file (``key="file"``) by its bytes, an array by its bytes. The model
fingerprint hashes every weight, the encoder and pooler configuration, so a changed model, a changed file or
a changed option never reuses stale vectors; nothing depends on file names or modification times. The cache
lives in memory and, with ``directory``, in one ``.npz`` per fingerprint and options, written atomically
(temporary file, fsync, rename), read with ``allow_pickle=False``. Processes sharing one cache folder do not lose
each other's entries: a save takes an ``flock`` on ``<file>.lock`` and first merges in whatever another process
wrote since this one last read the file. Per-item arrays of different lengths (token or
word vectors of sentences, ``encode(..., ragged=True)``) are stored concatenated with their lengths.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["FeatureCache", "content_key", "file_key", "model_fingerprint"]


def model_fingerprint(model: Any) -> str:
    """SHA-256 over a model's weights (names, shapes, bytes) and its configuration."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.view(-1).view(dtype=torch.uint8).numpy().tobytes() if t.numel() else b"")
    encoder = getattr(model, "encoder", None)
    if encoder is not None and hasattr(encoder, "get_config"):
        h.update(json.dumps(encoder.get_config(), sort_keys=True, default=str).encode())
    pooler = getattr(model, "pooler", None)
    if pooler is not None and hasattr(pooler, "get_config"):
        h.update(f"{type(pooler).__qualname__}{json.dumps(pooler.get_config(), sort_keys=True, default=str)}".encode())
    # output options that change the vectors without changing a weight (a Matryoshka-truncated width)
    h.update(f"truncate_dim={getattr(model, 'truncate_dim', None)}".encode())
    return h.hexdigest()


def file_key(path: str | os.PathLike[str], salt: str = "") -> str:
    """Digest of a file's bytes (not its name or time): the key of a cached image or document."""
    h = hashlib.sha256(salt.encode())
    h.update(b"f")
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_key(value: Any, salt: str = "") -> str:
    """Stable hex digest of an input value (strings by UTF-8 bytes, arrays by bytes, else pickle)."""
    h = hashlib.sha256(salt.encode())
    if isinstance(value, str):
        h.update(b"s" + value.encode("utf-8", "surrogatepass"))
    elif isinstance(value, bytes):
        h.update(b"b" + value)
    elif isinstance(value, np.ndarray):
        h.update(b"a" + str((value.shape, value.dtype.str)).encode() + value.tobytes())
    else:
        try:
            arr = np.asarray(value)
            if arr.dtype != object:
                return content_key(arr, salt)
        except Exception:  # noqa: BLE001 - fall back to pickle for anything else
            pass
        h.update(b"p" + pickle.dumps(value, protocol=4))
    return h.hexdigest()


class FeatureCache:
    """``encode`` with memoisation by content.

    Args:
        model: an ``EmbeddingModel`` (or anything with ``encode`` and ``state_dict``).
        directory: optional folder to persist the cache in.
        key: ``"value"`` (hash the input value itself) or ``"file"`` (inputs are file paths: hash the file's
            bytes, so a renamed file hits and a changed file misses).
        options: extra text that changes the features without changing the weights (a prompt, an image
            size, a pooling option); part of every key.

    Attributes:
        hits, misses: counts over the cache's lifetime.

    Example:
        >>> cached = FeatureCache(model, "~/.cache/polymodal")
        >>> cached.encode(sentences)  # computes
        >>> cached.encode(sentences)  # free
    """

    def __init__(
        self,
        model: Any,
        directory: str | os.PathLike[str] | None = None,
        key: str = "value",
        options: str = "",
    ) -> None:
        if key not in ("value", "file"):
            raise ValueError(f"key must be 'value' or 'file', got {key!r}")
        self.model = model
        self.key = key
        self.options = options
        self.fingerprint = model_fingerprint(model)
        self.tag = hashlib.sha256(f"{self.fingerprint}:{key}:{options}".encode()).hexdigest()
        self.directory = Path(directory).expanduser() if directory is not None else None
        self.store: dict[str, np.ndarray] = {}
        self.hits = self.misses = 0
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) of the file as last read or written
        if self.path is not None and self.path.is_file():
            self.store = self._read()

    def _read(self) -> dict[str, np.ndarray]:
        """The entries of the cache file (and remember its version, so a save knows whether to merge)."""
        assert self.path is not None
        stat = self.path.stat()
        with np.load(self.path, allow_pickle=False) as data:
            keys, vectors = data["keys"], data["vectors"]
            lengths = data["lengths"] if "lengths" in data else None
        if lengths is not None:  # ragged entries, concatenated along the first axis
            vectors = np.split(vectors, np.cumsum(lengths)[:-1])
        self._seen = (stat.st_mtime_ns, stat.st_size)
        return {str(k): v for k, v in zip(keys, vectors)}

    @property
    def path(self) -> Path | None:
        return None if self.directory is None else self.directory / f"{self.tag[:32]}.npz"

    def __len__(self) -> int:
        return len(self.store)

    def encode(
        self,
        values: Sequence[Any],
        batch_size: int = 64,
        normalize: bool | None = None,
        ragged: bool = False,
        **kwargs: Any,
    ) -> np.ndarray | list[np.ndarray]:
        """Like ``model.encode`` (numpy output); only values not seen before are computed.

        ``ragged``: the model returns one array per value whose shapes differ (token or word vectors of each
        sentence, ``(T_i, D)``); the result is then a list of arrays, in input order.
        """
        values = list(values)
        salt = f"{self.tag}:{normalize}"
        keys = [file_key(v, salt) if self.key == "file" else content_key(v, salt) for v in values]
        missing: dict[str, Any] = {}
        for k, v in zip(keys, values):
            if k not in self.store and k not in missing:
                missing[k] = v
        self.hits += len(values) - len(missing)
        self.misses += len(missing)
        if missing:
            emb = self.model.encode(list(missing.values()), batch_size=batch_size, normalize=normalize, **kwargs)
            if not ragged:
                emb = np.asarray(emb)
            for k, e in zip(missing, emb):
                self.store[k] = np.asarray(e, dtype=np.float32)
            self.save()
        if ragged:
            return [self.store[k] for k in keys]
        if not values:
            return np.empty((0, getattr(self.model, "dim", 0)), dtype=np.float32)
        return np.stack([self.store[k] for k in keys])

    def save(self) -> None:
        """Write the cache file (no-op without ``directory``), merged with entries another process added."""
        if self.path is None or not self.store:
            return
        import fcntl

        self.directory.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        lock = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one writer at a time; the kernel drops it if we die
            if self.path.is_file():
                stat = self.path.stat()
                if self._seen != (stat.st_mtime_ns, stat.st_size):  # written by someone else since we looked
                    for key, value in self._read().items():
                        self.store.setdefault(key, value)
            self._write()
        finally:
            os.close(lock)

    def _write(self) -> None:
        from polymodal.io import atomic_path

        assert self.path is not None
        keys = np.array(list(self.store), dtype="U64")
        values = list(self.store.values())
        arrays: dict[str, Any] = {}  # savez(**arrays): Any keeps mypy off its allow_pickle keyword
        if len({v.shape for v in values}) == 1:
            arrays["vectors"] = np.stack(values)
        else:  # ragged (per-sentence token vectors): concatenated, with each entry's length
            arrays["vectors"] = np.concatenate(values, axis=0)
            arrays["lengths"] = np.array([len(v) for v in values], dtype=np.int64)
        with atomic_path(self.path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, keys=keys, **arrays)
        stat = self.path.stat()
        self._seen = (stat.st_mtime_ns, stat.st_size)
