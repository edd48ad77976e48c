"""Text blocks: a corpus cut into fixed-length token blocks for causal language modelling (nanoGPT's layout).

The text is split by characters into a training part (first ``1 - val_fraction``) and a validation part, each
tokenised once and cut into non-overlapping blocks of ``block_size`` tokens. Every training epoch starts its
blocks at another offset (``epoch * 37 mod block_size``) and visits them in an order that depends only on
``(seed, epoch)`` (:class:`BlockSampler`), so each epoch sees different cuts and a resumed run replays exactly
the batches of an uninterrupted one. Batches are :class:`~polymodal.contracts.Batch` with one input column
(``text``) holding ``input_ids``, ``attention_mask`` and ``labels`` ``(B, T)``, what
:func:`polymodal.presets.LanguageModelSystem` reads.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from polymodal.contracts import Batch
from polymodal.data.datamodule import default_seed
from polymodal.io import resolve_path

__all__ = ["BlockSampler", "TextBlocksDataModule", "TokenBlocks", "load_tokenizer"]

SHIFT = 37  # offset step between epochs; coprime with the usual power-of-two block sizes


def load_tokenizer(spec: Any) -> Any:
    """A tokenizer with ``encode(text) -> ids``: an object passes through, a string is a ``tokenizer.json``
    file or a folder holding one (``package://`` paths allowed; read with Hugging Face ``tokenizers``)."""
    if not isinstance(spec, (str, os.PathLike)):
        if not callable(getattr(spec, "encode", None)):
            raise TypeError(f"a tokenizer needs an encode(text) method, got {type(spec).__name__}")
        return spec
    path = resolve_path(spec, what="tokenizer")
    path = path / "tokenizer.json" if path.is_dir() else path
    try:
        from tokenizers import Tokenizer
    except ImportError:  # pragma: no cover - tokenizers comes with the text / glyph extras
        raise ImportError("reading a tokenizer.json needs tokenizers: pip install 'polymodal[text]'") from None
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # noqa: BLE001 - a bad file is one line, not a Rust traceback
        raise ValueError(f"{path}: not a tokenizer.json ({str(exc).splitlines()[0][:120]})") from None


def _encode(tokenizer: Any, text: str) -> list[int]:
    try:
        out = tokenizer.encode(text, add_special_tokens=False)
    except TypeError:  # a tokenizer without the keyword
        out = tokenizer.encode(text)
    return list(getattr(out, "ids", out))


class TokenBlocks(Dataset):
    """Blocks of ``block_size`` tokens of one token stream; item ``start`` is ``ids[start : start + block_size]``.

    Integer starts come from a sampler (:class:`BlockSampler`), so the blocks can be cut at any offset.
    """

    def __init__(self, ids: np.ndarray, block_size: int, limit: int | None = None) -> None:
        self.ids = torch.from_numpy(np.asarray(ids, dtype=np.int64))
        self.block_size = block_size
        self.count = (len(self.ids) - (block_size - 1)) // block_size  # blocks at every offset
        if limit is not None:
            self.count = min(self.count, limit)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, start: int) -> torch.Tensor:
        return self.ids[start : start + self.block_size]


class BlockSampler(Sampler[int]):
    """Block start positions: offset ``(epoch * 37) % block_size`` if ``shift``, blocks in an order that depends
    only on ``(seed, epoch)`` if ``shuffle`` (Lightning calls :meth:`set_epoch` at every epoch start)."""

    def __init__(self, blocks: TokenBlocks, shuffle: bool = False, shift: bool = False, seed: int = 0) -> None:
        self.blocks, self.shuffle, self.shift, self.seed = blocks, shuffle, shift, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.blocks)

    def __iter__(self) -> Iterator[int]:
        n, size = len(self.blocks), self.blocks.block_size
        offset = (self.epoch * SHIFT) % size if self.shift else 0
        order = torch.arange(n)
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
        return iter((offset + order * size).tolist())


def collate_blocks(rows: list[torch.Tensor]) -> Batch:
    """Stack blocks into the ``text`` column of a :class:`Batch` (labels = inputs; the LM shifts them)."""
    ids = torch.stack(rows)  # (B, T)
    return Batch(inputs={"text": {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}})


class TextBlocksDataModule(pl.LightningDataModule):
    """A plain-text corpus as train / validation token blocks (see the module docstring).

    Args:
        path: UTF-8 text file (``.gz`` read transparently; ``package://`` paths allowed).
        tokenizer: a ``tokenizer.json`` (or a folder with one), or any object with ``encode(text)``.
        block_size: tokens per block.
        val_fraction: last fraction of the characters used for validation.
        batch_size: blocks per batch.
        max_val_blocks: cap on validation blocks (evaluation cost).
        max_chars: use only the first N characters of the file (quick runs).
        seed: shuffling seed; default the ``PL_GLOBAL_SEED`` of ``seed_everything`` (0 when unset).
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        path: str,
        tokenizer: Any,
        block_size: int = 128,
        val_fraction: float = 0.1,
        batch_size: int = 32,
        max_val_blocks: int | None = None,
        max_chars: int | None = None,
        seed: int | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if block_size < 2:
            raise ValueError(f"block_size must be >= 2, got {block_size}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.path, self.tokenizer = path, tokenizer
        self.block_size, self.val_fraction, self.batch_size = block_size, val_fraction, batch_size
        self.max_val_blocks, self.max_chars = max_val_blocks, max_chars
        self.seed, self.num_workers = seed, num_workers
        self.ids: dict[str, np.ndarray] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.ids:
            return
        p = resolve_path(self.path, what="text corpus")
        raw = p.read_bytes()
        if p.suffix == ".gz":
            raw = gzip.decompress(raw)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{p}: not UTF-8 text (byte {exc.start})") from None
        if self.max_chars:
            text = text[: self.max_chars]
        cut = int(len(text) * (1 - self.val_fraction))
        tokenizer = load_tokenizer(self.tokenizer)
        for split, part in (("train", text[:cut]), ("val", text[cut:])):
            ids = np.asarray(_encode(tokenizer, part), dtype=np.int64)
            if len(ids) < 2 * self.block_size:
                raise ValueError(
                    f"{p}: the {split} part has {len(ids)} tokens, fewer than 2 blocks of {self.block_size}"
                )
            self.ids[split] = ids

    def _loader(self, split: str, train: bool) -> DataLoader:
        blocks = TokenBlocks(self.ids[split], self.block_size, None if train else self.max_val_blocks)
        sampler = BlockSampler(blocks, shuffle=train, shift=train, seed=default_seed(self.seed))
        return DataLoader(
            blocks,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=train,
            collate_fn=collate_blocks,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)
