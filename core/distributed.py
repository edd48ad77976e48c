"""Cross-rank helpers. Process groups belong to Lightning; these only use them."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["all_gather_with_grad", "gather_concat", "rank_and_world"]


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` when not running distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_gather_with_grad(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` ``(B, ...)`` from every rank along dim 0, keeping autograd.

    Gradients flowing into other ranks' slices are summed back to their owners
    (``torch.distributed.nn.all_gather``), so a loss over the gathered batch trains every rank.
    Assumes equal ``B`` on every rank (Lightning's DistributedSampler pads to that).
    """
    rank, world = rank_and_world()
    if world == 1:
        return tensor
    import torch.distributed.nn.functional as dist_fn

    parts = dist_fn.all_gather(tensor.contiguous())
    return torch.cat(parts, dim=0)


def gather_concat(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` ``(N_r, ...)`` from every rank, where ``N_r`` may differ (no grad).

    Used for metrics that must be computed over the whole dataset, not per rank.
    """
    rank, world = rank_and_world()
    if world == 1:
        return tensor
    n = torch.tensor([tensor.shape[0]], device=tensor.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros((longest, *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
    padded[: tensor.shape[0]] = tensor
    parts = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)], dim=0)
