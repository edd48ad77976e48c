"""Multi-layer trainable pooling: cross-attention over every layer's pooled vector.

Reference: Tang & Yang, "Pooling And Attention: What Are Effective Designs For LLM-Based
Embedding Models?" (2024), https://arxiv.org/abs/2409.02727 (section "Multi-Layers Trainable
Pooling"): the per-layer sentence vectors of *all* layers, plus a trainable layer embedding,
are keys and values of a cross-attention whose queries are a trainable matrix.

Design choice here (documented, not in the paper): the attention result goes through a
zero-initialised output projection and is added to the last layer's pooled vector, so an
untrained pooler equals plain ``token_pooling`` of the last layer and training can only move
away from that starting point. Works for any modality whose encoder returns ``hidden_states``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from polymodal.features import Features
from polymodal.poolers.base import Pooler
from polymodal.poolers.last_token import last_positions
from polymodal.poolers.mean import masked_mean

__all__ = ["MultiLayerAttentionPooler", "pool_tokens"]

TokenPooling = Literal["mean", "last", "cls"]


def pool_tokens(sequence: Tensor, mask: Tensor, how: TokenPooling) -> Tensor:
    """``(B, T, D)`` -> ``(B, D)`` by mean over real positions, last real position or position 0."""
    if how == "mean":
        return masked_mean(sequence, mask)
    if how == "last":
        idx = last_positions(mask)
        return sequence[torch.arange(sequence.shape[0], device=sequence.device), idx]
    if how == "cls":
        return sequence[:, 0]
    raise ValueError(f"unknown token pooling {how!r}; choose 'mean', 'last' or 'cls'")


class MultiLayerAttentionPooler(Pooler):
    """Trainable pooling over all layers' outputs.

    Args:
        dim: width ``D`` of the encoder's hidden states.
        num_layers: number of layer outputs used: the last ``num_layers`` entries of
            ``Features.hidden_states`` (``L + 1`` with the embedding layer for an ``L``-layer model).
        num_queries: rows of the trainable query matrix (their outputs are averaged).
        num_heads: attention heads (must divide ``dim``).
        token_pooling: how each layer's sequence becomes one vector: ``"mean"`` (encoders),
            ``"last"`` (decoder LMs, as in the paper) or ``"cls"``.
        dropout: attention dropout.
        output_gain: constant factor on the attention branch. With Adam and the zero-initialised
            output projection it acts as a learning-rate multiplier for the pooler, which starts
            from scratch while the backbone is only fine-tuned (e.g. 50 with lr 2e-5).

    Inputs:
        features with ``hidden_states`` (build the encoder with ``hidden_states=True``).

    Example:
        >>> pooler = MultiLayerAttentionPooler(dim=384, num_layers=7)
        >>> emb = pooler(encoder(batch))  # (B, 384)
    """

    def __init__(
        self,
        dim: int,
        num_layers: int,
        num_queries: int = 1,
        num_heads: int = 8,
        token_pooling: TokenPooling = "mean",
        dropout: float = 0.0,
        output_gain: float = 1.0,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide dim={dim}")
        if num_layers < 1 or num_queries < 1:
            raise ValueError("num_layers and num_queries must be >= 1")
        pool_tokens(torch.zeros(1, 1, 1), torch.ones(1, 1, dtype=torch.bool), token_pooling)  # validates the name
        self.dim, self.num_layers, self.num_queries, self.num_heads = dim, num_layers, num_queries, num_heads
        self.token_pooling = token_pooling
        self.dropout = dropout
        self.output_gain = output_gain
        self.layer_embedding = nn.Parameter(torch.zeros(num_layers, dim))  # (L, D)
        self.queries = nn.Parameter(torch.randn(num_queries, dim) * dim**-0.5)  # (Q, D)
        self.norm = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.out = nn.Linear(dim, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def layer_vectors(self, features: Features) -> Tensor:
        """Per-layer pooled vectors ``(B, L, D)`` of the last ``num_layers`` layers."""
        if features.hidden_states is None:
            raise ValueError(
                "MultiLayerAttentionPooler needs Features.hidden_states: build the encoder with hidden_states=True"
            )
        states = features.hidden_states[-self.num_layers :]
        if len(states) != self.num_layers:
            raise ValueError(
                f"MultiLayerAttentionPooler(num_layers={self.num_layers}) but the encoder returned "
                f"{len(features.hidden_states)} hidden states"
            )
        if states[-1].shape[-1] != self.dim:
            raise ValueError(
                f"MultiLayerAttentionPooler(dim={self.dim}) got hidden states of width {states[-1].shape[-1]}"
            )
        return torch.stack([pool_tokens(h, features.mask, self.token_pooling) for h in states], dim=1)

    def forward(self, features: Features) -> Tensor:
        layers = self.layer_vectors(features)  # (B, L, D)
        keys = self.norm(layers + self.layer_embedding.to(layers.dtype))  # (B, L, D)
        queries = self.queries.to(layers.dtype).unsqueeze(0).expand(layers.shape[0], -1, -1)  # (B, Q, D)
        attended, _ = self.attention(queries, keys, keys, need_weights=False)  # (B, Q, D)
        return layers[:, -1] + self.output_gain * self.out(attended.mean(dim=1))  # (B, D)

    def get_config(self) -> dict:
        return {
            "dim": self.dim,
            "num_layers": self.num_layers,
            "num_queries": self.num_queries,
            "num_heads": self.num_heads,
            "token_pooling": self.token_pooling,
            "dropout": self.dropout,
            "output_gain": self.output_gain,
        }
