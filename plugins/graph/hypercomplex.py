"""4-D hypercomplex algebras for knowledge-graph embeddings: quaternions (Hamilton product) and dihedrons
(split quaternions, the "Dihedron" algebra of Nayyeri et al.).

A hypercomplex vector is a tensor whose last-but-one axis holds the four components ``(1, i, j, k)``:
``(..., 4, D)`` (D independent hypercomplex numbers). The product is bilinear in the components and given by
one multiplication table per algebra, so both share one implementation:

* quaternion: ``i² = j² = k² = ijk = -1`` (``ij = k``, ``jk = i``, ``ki = j``, anti-commuting);
* dihedron / split quaternion: ``i² = -1``, ``j² = k² = +1``, ``ij = k``, ``jk = -i``, ``ki = j``
  (anti-commuting), so ``ijk = +1``.

References:
    Zhang et al., "Quaternion Knowledge Graph Embeddings" (QuatE), NeurIPS 2019.
    Nayyeri et al., "Integrating Knowledge Graph Embeddings and Pre-trained Language Models in Hypercomplex
    Spaces", ISWC 2023 (arXiv:2208.02743).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = ["Algebra", "MULTIPLICATION", "dihedron_product", "hamilton_product", "hypercomplex_product", "normalize"]

Algebra = Literal["quaternion", "dihedron"]

# MULTIPLICATION[algebra][a][b] = (sign, c): e_a * e_b = sign * e_c, with e_0 = 1, e_1 = i, e_2 = j, e_3 = k.
MULTIPLICATION: dict[str, tuple[tuple[tuple[int, int], ...], ...]] = {
    "quaternion": (
        ((1, 0), (1, 1), (1, 2), (1, 3)),
        ((1, 1), (-1, 0), (1, 3), (-1, 2)),
        ((1, 2), (-1, 3), (-1, 0), (1, 1)),
        ((1, 3), (1, 2), (-1, 1), (-1, 0)),
    ),
    "dihedron": (
        ((1, 0), (1, 1), (1, 2), (1, 3)),
        ((1, 1), (-1, 0), (1, 3), (-1, 2)),
        ((1, 2), (-1, 3), (1, 0), (-1, 1)),
        ((1, 3), (1, 2), (1, 1), (1, 0)),
    ),
}


def hypercomplex_product(p: Tensor, q: Tensor, algebra: Algebra = "quaternion") -> Tensor:
    """Component-wise product ``p ⊗ q`` of hypercomplex vectors ``(..., 4, D)`` in the given algebra."""
    if algebra not in MULTIPLICATION:
        raise ValueError(f"algebra must be one of {sorted(MULTIPLICATION)}, got {algebra!r}")
    if p.shape[-2] != 4 or q.shape[-2] != 4:
        raise ValueError(f"hypercomplex vectors need 4 components on axis -2, got {tuple(p.shape)}, {tuple(q.shape)}")
    table = MULTIPLICATION[algebra]
    parts: list[Tensor | None] = [None] * 4
    for a in range(4):
        for b in range(4):
            sign, c = table[a][b]
            term = p[..., a, :] * q[..., b, :]
            term = term if sign > 0 else -term
            parts[c] = term if parts[c] is None else parts[c] + term  # type: ignore[operator]
    return torch.stack(parts, dim=-2)  # type: ignore[arg-type]  # (..., 4, D)


def hamilton_product(p: Tensor, q: Tensor) -> Tensor:
    """Quaternion (Hamilton) product of ``(..., 4, D)`` tensors."""
    return hypercomplex_product(p, q, "quaternion")


def dihedron_product(p: Tensor, q: Tensor) -> Tensor:
    """Dihedron (split-quaternion) product of ``(..., 4, D)`` tensors."""
    return hypercomplex_product(p, q, "dihedron")


def normalize(q: Tensor, eps: float = 1e-9) -> Tensor:
    """Each of the D hypercomplex numbers scaled to unit Euclidean norm over its four components
    (QuatE's unit relation quaternion: a pure rotation)."""
    return q / q.norm(dim=-2, keepdim=True).clamp_min(eps)
