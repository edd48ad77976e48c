"""Gathered contrastive losses under 2-process CPU DDP (gloo) equal the single-process loss on
the concatenated batch, and so do the (DDP-averaged) gradients."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from polymodal.losses import FocalInfoNCELoss, InfoNCELoss

WORLD, B, IN, D = 2, 4, 12, 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data():
    g = torch.Generator().manual_seed(0)
    cols = [torch.randn(WORLD * B, IN, generator=g) for _ in range(3)]  # anchors, positives, negatives
    torch.manual_seed(1)
    layer = torch.nn.Linear(IN, D)
    return cols, layer


def _make_loss(name: str):
    if name == "infonce":
        return InfoNCELoss()
    if name == "infonce_sym_neg":
        return InfoNCELoss(symmetric=True)
    return FocalInfoNCELoss(gamma=2.0)


def _loss_and_grads(layer, cols, loss_fn):
    loss = loss_fn([layer(c) for c in cols])
    layer.zero_grad()
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in layer.parameters()]


def _worker(rank: int, port: int, name: str, out: str) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        cols, layer = _data()
        local = [c[rank * B : (rank + 1) * B] for c in cols]
        loss, grads = _loss_and_grads(layer, local, _make_loss(name))
        # what DDP does: average the loss for logging and the gradients across ranks
        dist.all_reduce(loss)
        for g in grads:
            dist.all_reduce(g)
        if rank == 0:
            torch.save({"loss": loss / WORLD, "grads": [g / WORLD for g in grads]}, out)
    finally:
        dist.destroy_process_group()
    # Leave without C++ static destructors: a gloo worker thread can still be winding down and
    # abort the process at interpreter exit ("terminate called without an active exception").
    os._exit(0)


@pytest.mark.parametrize("name", ["infonce", "infonce_sym_neg", "focal"])
def test_gathered_loss_and_grads_equal_single_process(name, tmp_path):
    out = str(tmp_path / "rank0.pt")
    mp.spawn(_worker, args=(_free_port(), name, out), nprocs=WORLD, join=True)
    got = torch.load(out)
    cols, layer = _data()
    want_loss, want_grads = _loss_and_grads(layer, cols, _make_loss(name))
    torch.testing.assert_close(got["loss"], want_loss, atol=1e-6, rtol=1e-5)
    for g, w in zip(got["grads"], want_grads):
        torch.testing.assert_close(g, w, atol=1e-6, rtol=1e-5)


def test_single_process_loss_differs_from_per_rank_loss():
    """Guards the test above: without gathering, the per-rank losses do NOT match."""
    cols, layer = _data()
    halves = [InfoNCELoss()([layer(c[r * B : (r + 1) * B]) for c in cols]) for r in range(WORLD)]
    full = InfoNCELoss()([layer(c) for c in cols])
    assert not torch.allclose(sum(halves) / WORLD, full)
