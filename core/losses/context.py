"""Helpers for objectives that run the towers on parts of a batch themselves (GradCache mini-batches)."""

from __future__ import annotations

from torch import Tensor

__all__ = ["batch_size_of", "slice_inputs"]


def batch_size_of(inputs: dict[str, Tensor]) -> int:
    """Rows in a processed batch (leading dimension of its first tensor)."""
    for v in inputs.values():
        if isinstance(v, Tensor):
            return int(v.shape[0])
    raise ValueError("processed batch holds no tensors")


def slice_inputs(inputs: dict[str, Tensor], start: int, stop: int) -> dict[str, Tensor]:
    """Rows ``start:stop`` of a processed batch; padding columns no row uses are trimmed."""
    out = {k: (v[start:stop] if isinstance(v, Tensor) and v.dim() >= 1 else v) for k, v in inputs.items()}
    mask = out.get("attention_mask")
    if isinstance(mask, Tensor) and mask.dim() == 2 and mask.shape[1] > 0:
        used = mask.bool().any(dim=0).nonzero()
        keep = int(used.max().item()) + 1 if len(used) else 1
        if keep < mask.shape[1]:
            T = mask.shape[1]
            out = {
                k: (v[:, :keep] if isinstance(v, Tensor) and v.dim() >= 2 and v.shape[1] == T else v)
                for k, v in out.items()
            }
    return out
