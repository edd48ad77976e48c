"""Contiguous token blocks from a plain-text corpus, for causal language modelling."""

from __future__ import annotations

import gzip
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from polymodal.io import resolve_path

__all__ = ["TextBlocksDataModule"]


class _Blocks(Dataset):
    def __init__(self, ids: np.ndarray, block_size: int, offset: int = 0) -> None:
        n = (len(ids) - offset) // block_size
        self.blocks = torch.from_numpy(ids[offset : offset + n * block_size].reshape(n, block_size).astype(np.int64))

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.blocks[i]


def _collate(rows: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"input_ids": torch.stack(rows)}


class TextBlocksDataModule(pl.LightningDataModule):
    """A text file split by characters into train (first part) and validation (last part),
    tokenised, and cut into non-overlapping blocks of ``block_size`` tokens (nanoGPT's layout).

    Each training epoch starts the blocks at a different offset (``epoch * stride`` modulo the
    block size, with ``stride`` coprime-ish to it), so every epoch sees different cuts.

    Args:
        path: UTF-8 text file (``.gz`` read transparently; ``package://`` paths allowed).
        tokenizer: tokenizer spec (see ``polymodal.plugins.glyph.as_glyph_tokenizer``); default:
            the model's ``tokenizer`` attribute.
        block_size: tokens per block.
        val_fraction: last fraction of the characters used for validation.
        batch_size: blocks per batch.
        max_val_blocks: cap on validation blocks (evaluation cost).
        max_chars: use only the first N characters of the file (quick runs).
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        path: str,
        tokenizer: str | None = None,
        block_size: int = 128,
        val_fraction: float = 0.1,
        batch_size: int = 32,
        max_val_blocks: int | None = None,
        max_chars: int | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if block_size < 2:
            raise ValueError(f"block_size must be >= 2, got {block_size}")
        self.path = path
        self.tokenizer_spec = tokenizer
        self.block_size = block_size
        self.val_fraction = val_fraction
        self.batch_size = batch_size
        self.max_val_blocks = max_val_blocks
        self.max_chars = max_chars
        self.num_workers = num_workers
        self.ids: dict[str, np.ndarray] = {}

    def _tokenizer(self) -> Any:
        from polymodal.plugins.glyph import as_glyph_tokenizer

        if self.tokenizer_spec is not None:
            return as_glyph_tokenizer(self.tokenizer_spec)
        model = self.trainer.lightning_module if self.trainer is not None else None
        tok = getattr(getattr(model, "model", None), "tokenizer", None)
        if tok is None:
            raise ValueError("TextBlocksDataModule needs a tokenizer: set data.tokenizer or use a model with one")
        return tok

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
        tok = self._tokenizer()
        for split, part in (("train", text[:cut]), ("val", text[cut:])):
            ids = np.asarray(tok.encode(part), dtype=np.int64)
            if len(ids) < 2 * self.block_size:
                raise ValueError(
                    f"{p}: the {split} part has {len(ids)} tokens, fewer than 2 blocks of {self.block_size}"
                )
            self.ids[split] = ids

    def train_dataloader(self) -> DataLoader:
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        offset = (epoch * 37) % self.block_size
        return DataLoader(
            _Blocks(self.ids["train"], self.block_size, offset),
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=True,
            collate_fn=_collate,
            num_workers=self.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        ds = _Blocks(self.ids["val"], self.block_size)
        if self.max_val_blocks is not None:
            ds.blocks = ds.blocks[: self.max_val_blocks]
        return DataLoader(ds, batch_size=self.batch_size, collate_fn=_collate, num_workers=self.num_workers)
