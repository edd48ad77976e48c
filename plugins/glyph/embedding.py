"""A frozen glyph embedding as a drop-in ``nn.Embedding`` for Hugging Face causal LMs."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from polymodal.plugins.glyph.table import build_glyph_table
from polymodal.plugins.glyph.tokenizers import as_glyph_tokenizer

__all__ = ["GlyphEmbedding", "replace_input_embeddings"]


class GlyphEmbedding(nn.Embedding):
    """``nn.Embedding`` whose weight is the frozen glyph table (``requires_grad=False``).

    Rows beyond the tokenizer's vocabulary (a model vocabulary padded to a multiple of 64, say)
    are zeros.

    Args:
        tokenizer: anything :func:`~polymodal.plugins.glyph.tokenizers.as_glyph_tokenizer` takes.
        dim: embedding width (the model's hidden size).
        num_embeddings: rows (default: the tokenizer's vocabulary size).
        font, size, width, seed, cache: see :func:`~polymodal.plugins.glyph.table.build_glyph_table`.
        padding_idx: as in ``nn.Embedding``.
    """

    def __init__(
        self,
        tokenizer: Any,
        dim: int,
        num_embeddings: int | None = None,
        font: str = "unifont",
        size: int = 16,
        width: int | None = None,
        seed: int = 0,
        cache: bool | str = True,
        padding_idx: int | None = None,
    ) -> None:
        tok = as_glyph_tokenizer(tokenizer)
        table = torch.from_numpy(build_glyph_table(tok, dim, font=font, size=size, width=width, seed=seed, cache=cache))
        rows = int(num_embeddings or tok.vocab_size)
        if rows < tok.vocab_size:
            raise ValueError(f"num_embeddings={rows} is smaller than the tokenizer's vocabulary ({tok.vocab_size})")
        super().__init__(rows, dim, padding_idx=padding_idx)
        with torch.no_grad():
            self.weight.zero_()
            self.weight[: tok.vocab_size] = table
        self.weight.requires_grad_(False)
        self.glyph_config = {"font": font, "size": size, "width": width, "seed": seed}

    def reset_parameters(self) -> None:  # nn.Embedding calls it in __init__; the table is set after
        nn.init.zeros_(self.weight)


def replace_input_embeddings(model: nn.Module, tokenizer: Any, **kwargs: Any) -> GlyphEmbedding:
    """Swap a Hugging Face model's input embeddings for a frozen :class:`GlyphEmbedding`.

    If the output layer shared its weight with the input embeddings (tied), it keeps its own
    trainable copy and ``config.tie_word_embeddings`` is set to False, so only the input side is
    frozen, as in Bochkov (2025).

    Args:
        model: a ``transformers`` model (``get_input_embeddings``/``set_input_embeddings``).
        tokenizer: the model's tokenizer (or a spec string).
        **kwargs: :class:`GlyphEmbedding` options (font, size, width, seed, cache).

    Returns:
        The new embedding module.
    """
    old = model.get_input_embeddings()
    emb = GlyphEmbedding(tokenizer, old.embedding_dim, num_embeddings=old.num_embeddings, **kwargs)
    emb.to(device=old.weight.device, dtype=old.weight.dtype)
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if out is not None and out.weight is old.weight:
        out.weight = nn.Parameter(old.weight.detach().clone())
    config = getattr(model, "config", None)
    if config is not None:
        config.tie_word_embeddings = False
        if hasattr(config, "get_text_config"):
            config.get_text_config().tie_word_embeddings = False
    model.set_input_embeddings(emb)
    return emb
