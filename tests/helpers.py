"""Tiny models shared by tests."""

from __future__ import annotations

import time

import pytorch_lightning as pl

from polymodal.plugins.text.pretrained import ARCHITECTURES

# The registered test architectures (``model: test-bert`` / ``test-llama`` in the tiny YAMLs), with 64 positions.
TINY_BERT = ARCHITECTURES["test-bert"](max_position_embeddings=64)
TINY_LLAMA = ARCHITECTURES["test-llama"](max_position_embeddings=64)


def tiny_text_encoder(config: dict | None = None, **kwargs):
    import torch

    from polymodal.plugins.text import TextEncoder

    torch.manual_seed(0)
    return TextEncoder(model=dict(config or TINY_BERT), tokenizer="bytes", **kwargs)


class SlowDown(pl.Callback):
    """Sleep after each training batch (lets tests kill a run mid-epoch)."""

    def __init__(self, seconds: float = 0.05) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, *args, **kwargs) -> None:
        time.sleep(self.seconds)
