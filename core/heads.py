"""Heads: pooled embeddings of one or more input columns -> predictions.

A head names the input ``columns`` it reads; :class:`polymodal.System` passes it their pooled
embeddings (each ``(B, D_i)``) and sizes it from the towers' widths when it is built, so a YAML never
spells out input widths. Objectives (:mod:`polymodal.objectives`) turn head outputs into losses and
metrics read them.

* :class:`LinearHead`: concatenation of the columns -> (optional hidden layer) -> ``out_dim`` logits.
* :class:`TokenHead`: a tag for every token: reads the column's :class:`~polymodal.features.Features` sequence
  ``(B, T, D)`` (``reads = "sequence"``) instead of a pooled embedding -> ``(B, T, num_labels)`` logits; the
  head of token classification (named-entity recognition) on any encoder.
* :class:`PairHead`: SBERT's pair features ``[u, v, |u - v|, u * v]`` (any subset, in that order) ->
  MLP -> logits: the classification head of Reimers & Gurevych (2019) and the siamese student head of
  Distilled Sentence Embedding (Barkan et al., 2020).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

__all__ = ["Head", "LinearHead", "PairHead", "TokenHead"]

PairFeature = Literal["u", "v", "abs_diff", "product"]


class Head(nn.Module):
    """Base class: ``forward(embeddings) -> (B, out_dim)`` (``(B,)`` when ``out_dim == 1``).

    Args:
        columns: input columns whose pooled embeddings the head reads, in order (``None``: every input column
            of the batch, in order).
        out_dim: number of outputs (1 for a regression value or a binary logit, C for C classes).
        num_inputs: with ``columns=None`` and one tower shared by every column, how many columns there are.
    """

    #: What the System passes to ``forward``: ``"pooled"`` embeddings ``(B, D)`` of each column, or the columns'
    #: ``"sequence"`` :class:`~polymodal.features.Features` (token-level heads).
    reads: str = "pooled"

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


class TokenHead(Head):
    """Token classification: every position of one column's ``Features.sequence`` -> ``num_labels`` logits.

    The System gives it the column's :class:`~polymodal.features.Features` (``reads = "sequence"``), so it sits on
    any encoder's token states. ``labels`` names the classes in index order (for BIO tagging ``O``, ``B-x``,
    ``I-x``, ...: :func:`polymodal.data.conll.tag_set`); objectives and metrics map tags through it.

    Args:
        column: the input column whose token states are read.
        labels: class names in index order (at least two); or give ``types``.
        types: entity types: the labels are then the BIO tag set ``O, B-t1, I-t1, B-t2, ...``.
        hidden: width of one hidden GELU layer (0: linear).
        dropout: dropout on the token states.

    Output: ``(B, T, num_labels)`` logits.
    """

    reads = "sequence"

    def __init__(
        self,
        column: str,
        labels: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
        hidden: int = 0,
        dropout: float = 0.1,
    ) -> None:
        if (labels is None) == (types is None):
            raise ValueError("TokenHead needs exactly one of labels (tag names) or types (entity types, BIO tags)")
        if types is not None:
            labels = ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]
        labels = [str(x) for x in labels or []]
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ValueError(f"TokenHead needs at least two distinct labels, got {labels}")
        super().__init__([column], out_dim=len(labels))
        if hidden < 0 or not 0.0 <= dropout < 1.0:
            raise ValueError(f"need hidden >= 0 and 0 <= dropout < 1, got hidden={hidden}, dropout={dropout}")
        self.labels = labels
        self.index = {name: i for i, name in enumerate(labels)}
        self.hidden, self.dropout = int(hidden), float(dropout)
        self.net: nn.Module | None = None

    @property
    def column(self) -> str:
        assert self.columns is not None
        return self.columns[0]

    def build(self, in_dims: Sequence[int]) -> None:
        self.net = _mlp(int(in_dims[0]), self.hidden, self.out_dim, self.dropout)
        self.built = True

    def forward(self, features: Sequence[Any]) -> Tensor:
        assert self.net is not None, "head used before System built it"
        (f,) = features
        return self.net(f.sequence)  # (B, T, C)
