"""Heads: pooled embeddings of one or more input columns -> predictions.

A head names the input ``columns`` it reads; :class:`polymodal.System` passes it their pooled
embeddings (each ``(B, D_i)``) and sizes it from the towers' widths when it is built, so a YAML never
spells out input widths. Objectives (:mod:`polymodal.objectives`) turn head outputs into losses and
metrics read them.

* :class:`LinearHead`: concatenation of the columns -> (optional hidden layer) -> ``out_dim`` logits.
* :class:`PairHead`: SBERT's pair features ``[u, v, |u - v|, u * v]`` (any subset, in that order) ->
  MLP -> logits: the classification head of Reimers & Gurevych (2019) and the siamese student head of
  Distilled Sentence Embedding (Barkan et al., 2020).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

__all__ = ["Head", "LinearHead", "PairHead"]

PairFeature = Literal["u", "v", "abs_diff", "product"]


class Head(nn.Module):
    """Base class: ``forward(embeddings) -> (B, out_dim)`` (``(B,)`` when ``out_dim == 1``).

    Args:
        columns: input columns whose pooled embeddings the head reads, in order (``None``: every input column
            of the batch, in order).
        out_dim: number of outputs (1 for a regression value or a binary logit, C for C classes).
        num_inputs: with ``columns=None`` and one tower shared by every column, how many columns there are.
    """

    def __init__(self, columns: Sequence[str] | None = None, out_dim: int = 1, num_inputs: int = 1) -> None:
        super().__init__()
        if columns is not None and not columns:
            raise ValueError("a head needs at least one input column (or columns=None for all of them)")
        if out_dim < 1 or num_inputs < 1:
            raise ValueError(f"out_dim and num_inputs must be >= 1, got {out_dim}, {num_inputs}")
        self.columns = None if columns is None else [str(c) for c in columns]
        self.out_dim = int(out_dim)
        self.num_inputs = int(num_inputs)
        self.built = False

    def build(self, in_dims: Sequence[int]) -> None:
        """Create the layers for input widths ``in_dims`` (one per column); called once by the System."""
        raise NotImplementedError

    def _out(self, y: Tensor) -> Tensor:
        return y.squeeze(-1) if self.out_dim == 1 else y


def _mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Module:
    layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
    if hidden > 0:
        layers += [nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim)]
    else:
        layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class LinearHead(Head):
    """Concatenated column embeddings -> ``out_dim`` outputs (a hidden GELU layer when ``hidden > 0``).

    Args:
        columns: input columns read (their embeddings are concatenated in this order; ``None``: all).
        out_dim: outputs.
        hidden: width of one hidden layer (0: a single linear map).
        dropout: dropout on the head's input.
        num_inputs: see :class:`Head`.
    """

    def __init__(
        self,
        columns: Sequence[str] | None = None,
        out_dim: int = 1,
        hidden: int = 0,
        dropout: float = 0.0,
        num_inputs: int = 1,
    ) -> None:
        super().__init__(columns, out_dim, num_inputs)
        if hidden < 0 or not 0.0 <= dropout < 1.0:
            raise ValueError(f"need hidden >= 0 and 0 <= dropout < 1, got hidden={hidden}, dropout={dropout}")
        self.hidden, self.dropout = int(hidden), float(dropout)
        self.net: nn.Module | None = None

    def build(self, in_dims: Sequence[int]) -> None:
        self.net = _mlp(int(sum(in_dims)), self.hidden, self.out_dim, self.dropout)
        self.built = True

    @property
    def linear(self) -> nn.Linear | None:
        """The single linear layer of a ``hidden=0`` head (what a cross-encoder export keeps)."""
        if self.net is None or self.hidden:
            return None
        return [m for m in self.net.modules() if isinstance(m, nn.Linear)][0]

    def forward(self, embeddings: Sequence[Tensor]) -> Tensor:
        assert self.net is not None, "head used before System built it"
        return self._out(self.net(torch.cat(list(embeddings), dim=-1)))  # (B, out_dim)


class PairHead(Head):
    """Pair features of two columns ``u``, ``v`` -> MLP -> ``out_dim`` outputs.

    Args:
        columns: the two input columns (``u`` then ``v``; ``None``: the batch's two input columns).
        out_dim: outputs (3 for NLI three-way, 1 for a score or a binary logit).
        features: which of ``u``, ``v``, ``abs_diff`` (``|u - v|``) and ``product`` (``u * v``) to
            concatenate; SBERT uses ``[u, v, abs_diff]``, InferSent and DSE all four.
        hidden: width of the hidden layer (0: linear on the features).
        dropout: dropout on the features.
    """

    def __init__(
        self,
        columns: Sequence[str] | None = None,
        out_dim: int = 1,
        features: Sequence[PairFeature] = ("u", "v", "abs_diff", "product"),
        hidden: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(columns, out_dim, num_inputs=2)
        if self.columns is not None and len(self.columns) != 2:
            raise ValueError(f"PairHead reads exactly two columns, got {self.columns}")
        unknown = sorted(set(features) - {"u", "v", "abs_diff", "product"})
        if unknown or not features:
            raise ValueError(f"PairHead features must be a non-empty subset of u, v, abs_diff, product; got {features}")
        self.features = [f for f in ("u", "v", "abs_diff", "product") if f in features]
        self.hidden, self.dropout = int(hidden), float(dropout)
        self.net: nn.Module | None = None

    def build(self, in_dims: Sequence[int]) -> None:
        if len(set(in_dims)) != 1:
            raise ValueError(f"PairHead needs two embeddings of one width, got {list(in_dims)}")
        self.net = _mlp(int(in_dims[0]) * len(self.features), self.hidden, self.out_dim, self.dropout)
        self.built = True

    def pair_features(self, u: Tensor, v: Tensor) -> Tensor:
        parts = {"u": u, "v": v, "abs_diff": (u - v).abs(), "product": u * v}
        return torch.cat([parts[f] for f in self.features], dim=-1)  # (B, k * D)

    def forward(self, embeddings: Sequence[Tensor]) -> Tensor:
        assert self.net is not None, "head used before System built it"
        u, v = embeddings
        return self._out(self.net(self.pair_features(u, v)))
