"""The glyph modality: text in, a sequence of frozen glyph embeddings out."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from polymodal.features import Features
from polymodal.modality import Encoder, Processor
from polymodal.plugins.glyph.table import build_glyph_table
from polymodal.plugins.glyph.tokenizers import GlyphTokenizer, HFGlyphTokenizer, as_glyph_tokenizer

__all__ = ["GlyphEncoder", "GlyphProcessor"]


class GlyphProcessor(Processor):
    """Strings -> ``{"input_ids": (B, T), "attention_mask": (B, T)}`` with any glyph tokenizer.

    Args:
        tokenizer: a :class:`GlyphTokenizer`.
        max_length: longest sequence in tokens (longer texts are cut and counted in
            :attr:`truncated`, with one warning).
    """

    def __init__(self, tokenizer: GlyphTokenizer, max_length: int = 512) -> None:
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.truncated = 0
        self._warned = False

    def validate(self, value: Any) -> None:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {type(value).__name__} ({value!r:.40})")

    def _ids(self, values: Sequence[Any]) -> list[list[int]]:
        for i, v in enumerate(values):
            if not isinstance(v, str):
                raise TypeError(f"item {i}: the glyph modality expects strings, got {type(v).__name__}: {v!r:.60}")
        if isinstance(self.tokenizer, HFGlyphTokenizer):
            return self.tokenizer.encode_batch(values)
        return [self.tokenizer.encode(v) for v in values]

    def lengths(self, values: Sequence[Any]) -> list[int]:
        return [min(len(ids), self.max_length) for ids in self._ids(values)]

    def __call__(self, values: Sequence[Any]) -> dict[str, Tensor]:
        ids = self._ids(values)
        cut = sum(len(x) > self.max_length for x in ids)
        if cut:
            self.truncated += cut
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"{cut} of {len(ids)} texts were longer than max_length={self.max_length} tokens and were cut",
                    stacklevel=2,
                )
        T = max(1, max((min(len(x), self.max_length) for x in ids), default=1))
        out = np.full((len(ids), T), self.tokenizer.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), T), dtype=np.int64)
        for i, x in enumerate(ids):
            x = x[: self.max_length]
            out[i, : len(x)] = x
            mask[i, : len(x)] = 1
        return {"input_ids": torch.from_numpy(out), "attention_mask": torch.from_numpy(mask)}


class GlyphEncoder(Encoder):
    """Frozen glyph embeddings of the tokens of a text, optionally followed by trainable
    transformer layers.

    With ``num_layers=0`` (the default) the output is the glyph-embedded sequence itself (no
    trainable weights); with layers it is a small pre-norm transformer encoder on top of it.

    Args:
        tokenizer: ``"codepoints"`` (BMP), ``"codepoints:0x10FFFF"``, ``"bytes"``, a
            ``tokenizer.json`` or a model folder.
        dim: embedding width (default: the raw bitmap size, ``size * width``).
        font: glyph font (Unifont).
        size: glyph size in pixels.
        width: token canvas width (default ``size`` for codepoints, ``4 * size`` otherwise).
        seed: projection seed.
        max_length: longest sequence in tokens.
        num_layers: trainable transformer layers on top of the glyph embeddings.
        num_heads: their attention heads.
        max_positions: learned positions for those layers.
        hidden_states: also return every layer's output.
    """

    modality = "glyph"
    reads = "text"  # strings, rendered before the encoder sees them

    def __init__(
        self,
        tokenizer: str = "codepoints",
        dim: int | None = None,
        font: str = "unifont",
        size: int = 16,
        width: int | None = None,
        seed: int = 0,
        max_length: int = 512,
        num_layers: int = 0,
        num_heads: int = 4,
        max_positions: int = 512,
        hidden_states: bool = False,
    ) -> None:
        super().__init__()
        self.tokenizer_spec = str(tokenizer)
        tok = as_glyph_tokenizer(tokenizer)
        table = torch.from_numpy(build_glyph_table(tok, dim, font=font, size=size, width=width, seed=seed))
        # not persistent: rebuilt (or read from the cache) at load time, never stored with the weights
        self.register_buffer("table", table, persistent=False)
        self.glyph = {"dim": int(table.shape[1]), "font": font, "size": size, "width": width, "seed": seed}
        self.arch = {"num_layers": int(num_layers), "num_heads": int(num_heads), "max_positions": int(max_positions)}
        self.hidden_states = hidden_states
        self._processor = GlyphProcessor(tok, max_length)
        D = int(table.shape[1])
        if num_layers:
            if D % num_heads:
                raise ValueError(f"dim ({D}) must be divisible by num_heads ({num_heads})")
            if max_length > max_positions:
                raise ValueError(f"max_length ({max_length}) exceeds max_positions ({max_positions})")
            self.pos = nn.Parameter(torch.randn(1, max_positions, D) * 0.02)
            self.layers = nn.ModuleList(
                nn.TransformerEncoderLayer(D, num_heads, 4 * D, dropout=0.0, batch_first=True, norm_first=True)
                for _ in range(num_layers)
            )
            self.norm = nn.LayerNorm(D)

    @property
    def processor(self) -> GlyphProcessor:
        return self._processor

    @property
    def output_dim(self) -> int:
        return self.glyph["dim"]

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        ids = inputs["input_ids"]  # (B, T)
        mask = inputs["attention_mask"].bool()  # (B, T)
        x = self.table[ids]  # (B, T, D)
        states = [x] if self.hidden_states else None
        if self.arch["num_layers"]:
            x = x + self.pos[:, : x.shape[1]]
            for layer in self.layers:
                x = layer(x, src_key_padding_mask=~mask)
                if states is not None:
                    states.append(x)
            x = self.norm(x)
            if states is not None:
                states[-1] = x
        return Features(sequence=x, mask=mask, hidden_states=tuple(states) if states is not None else None)

    def get_config(self) -> dict[str, Any]:
        return {
            "tokenizer": self.tokenizer_spec,
            **self.glyph,
            "max_length": self._processor.max_length,
            **self.arch,
            "hidden_states": self.hidden_states,
        }

    def save_assets(self, directory: Path) -> None:
        tok = self._processor.tokenizer
        if isinstance(tok, HFGlyphTokenizer):
            tok.tokenizer.save(str(directory / "tokenizer.json"))

    @classmethod
    def from_config(cls, config: dict[str, Any], directory: Path) -> GlyphEncoder:
        cfg = dict(config)
        if (directory / "tokenizer.json").is_file():
            cfg["tokenizer"] = str(directory / "tokenizer.json")
        enc = cls(**cfg)
        return enc
