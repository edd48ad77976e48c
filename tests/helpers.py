"""Tiny models shared by tests."""

from __future__ import annotations

import time

import pytorch_lightning as pl

TINY_BERT = {
    "model_type": "bert",
    "vocab_size": 261,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}

TINY_LLAMA = {
    "model_type": "llama",
    "vocab_size": 261,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}


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
