"""Character-level text: a processor with no word vocabulary and a bi-GRU encoder with vectorial
self-attention pooling (the caption encoder of Merkx & Frank 2019).

* :class:`CharProcessor`: strings -> padded character ids (printable ASCII by default).
* :class:`VectorialAttentionPooling`: multi-head *vectorial* self-attention over time.
* :class:`CharGRUEncoder`: characters -> embeddings -> bidirectional GRU -> vectorial attention pooling.
  No words, no word embeddings, no pretrained text knowledge.

Reference:
    Danny Merkx and Stefan L. Frank. 2019. Learning semantic sentence representations from visually
    grounded language without lexical knowledge. Natural Language Engineering 25(4), 451-466.
    https://arxiv.org/abs/1903.11393 (code: github.com/DannyMerkx/caption2image).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from polymodal.features import Features
from polymodal.modality import Encoder, Processor

__all__ = ["DEFAULT_ALPHABET", "CharGRUEncoder", "CharProcessor", "VectorialAttentionPooling"]

#: Printable ASCII (space to tilde): ids 2..96. 0 is padding, 1 any other character.
DEFAULT_ALPHABET = "".join(chr(c) for c in range(32, 127))
PAD_ID, UNK_ID = 0, 1


class CharProcessor(Processor):
    """Strings -> padded character ids (no tokenisation, no vocabulary of words).

    Args:
        alphabet: characters with their own id (``2 + position``); others map to 1 (unknown).
        max_length: truncate longer strings to this many characters.
        lowercase: lowercase before lookup.
    """

    def __init__(self, alphabet: str = DEFAULT_ALPHABET, max_length: int = 256, lowercase: bool = False) -> None:
        if not alphabet:
            raise ValueError("alphabet is empty")
        if len(set(alphabet)) != len(alphabet):
            raise ValueError("alphabet has repeated characters")
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.alphabet = alphabet
        self.max_length = int(max_length)
        self.lowercase = bool(lowercase)
        self._index = {c: i + 2 for i, c in enumerate(alphabet)}

    @property
    def vocab_size(self) -> int:
        return len(self.alphabet) + 2

    def validate(self, value: Any) -> None:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {type(value).__name__}")
        if not value.strip():
            raise ValueError("empty string")

    def ids(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"expected a string, got {type(text).__name__}")
        text = text.lower() if self.lowercase else text
        ids = [self._index.get(c, UNK_ID) for c in text[: self.max_length]]
        return ids or [UNK_ID]  # an empty string still has one (unknown) position

    def lengths(self, values: Sequence[Any]) -> list[int]:
        return [min(len(v), self.max_length) if isinstance(v, str) else 0 for v in values]

    def __call__(self, values: Sequence[Any]) -> dict[str, Tensor]:
        rows = [self.ids(v) for v in values]
        T = max((len(r) for r in rows), default=1)
        ids = np.zeros((len(rows), T), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
        ids_t = torch.from_numpy(ids)  # (B, T)
        return {"char_ids": ids_t, "attention_mask": ids_t != PAD_ID}

    def get_config(self) -> dict[str, Any]:
        return {"alphabet": self.alphabet, "max_length": self.max_length, "lowercase": self.lowercase}


class VectorialAttentionPooling(nn.Module):
    """Multi-head *vectorial* self-attention pooling over time, padding masked out.

    Each head scores every feature of every position with a two-layer MLP
    (``D -> hidden -> D``, tanh), takes a softmax over the valid time steps per feature, and
    sums the weighted sequence; heads are concatenated. (Merkx & Frank 2019, section 3.)

    Args:
        dim: feature width ``D``.
        hidden_dim: MLP width.
        heads: number of heads; the output has ``heads * D`` features.
    """

    def __init__(self, dim: int, hidden_dim: int = 128, heads: int = 1) -> None:
        super().__init__()
        if heads < 1:
            raise ValueError(f"heads must be >= 1, got {heads}")
        self.heads = heads
        self.score = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, dim)) for _ in range(heads)
        )

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        # x (B, T, D), mask (B, T) bool
        neg = torch.finfo(x.dtype).min
        out = []
        for mlp in self.score:
            logits = mlp(x).masked_fill(~mask[:, :, None], neg)  # (B, T, D)
            alpha = torch.softmax(logits, dim=1)  # (B, T, D), 0 on padding
            out.append((alpha * x).sum(dim=1))  # (B, D)
        return torch.cat(out, dim=-1)  # (B, heads * D)


class CharGRUEncoder(Encoder):
    """Character embeddings -> bidirectional GRU -> vectorial attention pooling.

    ``Features.sequence`` holds the GRU states ``(B, T, 2 * hidden_dim)`` (padding masked);
    ``Features.pooled`` the attention-pooled sentence vector ``(B, heads * 2 * hidden_dim)``.
    Pool with ``ClsPooler(use_pooled=True)``. ``output_dim`` is the pooled width (with
    ``heads=1`` the two widths agree and any sequence pooler works too).

    Padding never reaches the result: sequences are packed for the GRU and padded positions get
    zero attention, so a sentence's embedding does not depend on what it is batched with.

    Args:
        embedding_dim: character embedding width (the paper: 20).
        hidden_dim: GRU width per direction (the paper: 1024).
        num_layers: stacked GRU layers.
        attention_dim: attention MLP width (the paper: 128).
        heads: attention heads (the paper: 2).
        dropout: dropout between GRU layers.
        alphabet: characters with their own embedding (printable ASCII by default).
        max_length: truncate captions to this many characters.
        lowercase: lowercase the text first.
    """

    modality = "text"

    def __init__(
        self,
        embedding_dim: int = 20,
        hidden_dim: int = 256,
        num_layers: int = 1,
        attention_dim: int = 128,
        heads: int = 1,
        dropout: float = 0.0,
        alphabet: str = DEFAULT_ALPHABET,
        max_length: int = 256,
        lowercase: bool = False,
    ) -> None:
        super().__init__()
        self._processor = CharProcessor(alphabet, max_length, lowercase)
        self.config = {
            "embedding_dim": embedding_dim,
            "hidden_dim": hidden_dim,
            "num_layers": num_layers,
            "attention_dim": attention_dim,
            "heads": heads,
            "dropout": dropout,
            **self._processor.get_config(),
        }
        self.embed = nn.Embedding(self._processor.vocab_size, embedding_dim, padding_idx=PAD_ID)
        self.rnn = nn.GRU(
            embedding_dim,
            hidden_dim,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.attention = VectorialAttentionPooling(2 * hidden_dim, attention_dim, heads)
        self._dim = heads * 2 * hidden_dim

    @property
    def processor(self) -> CharProcessor:
        return self._processor

    @property
    def output_dim(self) -> int:
        return self._dim

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        ids = inputs["char_ids"]  # (B, T)
        mask = inputs.get("attention_mask")
        mask = (ids != PAD_ID) if mask is None else mask.bool()
        lengths = mask.sum(dim=1).clamp(min=1)  # (B,)
        x = self.embed(ids)  # (B, T, E)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        seq, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])  # (B, T, 2H)
        pooled = self.attention(seq, mask)  # (B, heads * 2H)
        return Features(sequence=seq, mask=mask, pooled=pooled)

    def get_config(self) -> dict[str, Any]:
        return dict(self.config)

    @classmethod
    def from_config(cls, config: dict[str, Any], directory: Path) -> CharGRUEncoder:
        return cls(**config)
