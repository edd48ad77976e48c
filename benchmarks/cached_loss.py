"""Peak memory of cached (GradCache) vs plain InfoNCE at a 1,024-pair batch with MiniLM.

Both compute the loss and parameter gradients of in-batch InfoNCE over the same 1,024
(sentence1, sentence2) pairs of STS-B train with the bundled all-MiniLM-L6-v2 (mean pooling,
L2 normalisation, dropout off so both see identical forward passes), in one process:

* plain: embed all 2,048 sentences with autograd, loss, backward;
* cached: ``CachedInfoNCELoss(mini_batch_size=64)``: no-grad embedding, loss, then mini-batch
  re-forward + backward.

Memory is measured two ways: the peak of the bytes autograd keeps for backward
(``saved_tensors_hooks``, exact) and the peak process RSS above the level at the start of each
variant (sampled every 2 ms with psutil). The loss and every gradient must agree to 1e-5.

    python benchmarks/cached_loss.py [--batch-size 1024] [--mini-batch-size 64] [--threads 2]

Prints ``ratio: X`` = plain peak activation memory / cached peak activation memory.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (
    Path(os.environ.get("POLYMODAL_SHARED_DATA", REPO.parent / "shared" / "data")) / "stsb" / "sts-train.csv.gz"
)


class SavedBytes:
    """Peak bytes of the distinct non-parameter storages autograd holds for backward.

    Each saved tensor is wrapped in a handle; when autograd frees the graph the handle dies
    and its storage stops counting (storages shared by several saved tensors count once).
    """

    def __init__(self) -> None:
        self.refs: dict[int, list[int]] = {}  # storage ptr -> [handles alive, nbytes]
        self.live = 0
        self.peak = 0

    def _add(self, ptr: int, nbytes: int) -> None:
        entry = self.refs.setdefault(ptr, [0, nbytes])
        if entry[0] == 0:
            self.live += nbytes
            self.peak = max(self.peak, self.live)
        entry[0] += 1

    def _drop(self, ptr: int) -> None:
        entry = self.refs[ptr]
        entry[0] -= 1
        if entry[0] == 0:
            self.live -= entry[1]
            del self.refs[ptr]

    @contextmanager
    def track(self):
        import torch

        tracker = self

        class Handle:
            __slots__ = ("tensor", "ptr")

            def __init__(self, tensor) -> None:
                self.tensor = tensor
                storage = tensor.untyped_storage()
                self.ptr = storage.data_ptr()
                tracker._add(self.ptr, storage.nbytes())

            def __del__(self) -> None:
                tracker._drop(self.ptr)

        def pack(t):
            if isinstance(t, torch.nn.Parameter) or (t.is_leaf and t.requires_grad) or t.device.type == "meta":
                return t  # weights exist anyway; not activation memory
            return Handle(t)

        def unpack(packed):
            return packed.tensor if isinstance(packed, Handle) else packed

        with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            yield


class RssPeak:
    """Samples process RSS in a thread; ``peak_above_start`` in bytes."""

    def __init__(self, interval: float = 0.002) -> None:
        import psutil

        self.proc = psutil.Process()
        self.interval = interval

    @contextmanager
    def measure(self):
        start = self.proc.memory_info().rss
        peak = [start]
        stop = threading.Event()

        def loop():
            while not stop.is_set():
                peak[0] = max(peak[0], self.proc.memory_info().rss)
                time.sleep(self.interval)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        result = {}
        try:
            yield result
        finally:
            stop.set()
            thread.join()
            result["peak_above_start"] = peak[0] - start


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--mini-batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import gc

    import torch
    import torch.nn.functional as F

    import polymodal
    from polymodal.data.tables import read_table
    from polymodal.losses import CachedInfoNCELoss, InfoNCELoss
    from polymodal.losses.context import BatchContext

    torch.set_num_threads(args.threads)
    if not args.data.is_file():
        sys.exit(f"STS-B train not found at {args.data} (set POLYMODAL_SHARED_DATA)")
    df = read_table(args.data).iloc[: args.batch_size]
    a, b = df["sentence1"].tolist(), df["sentence2"].tolist()
    model = polymodal.load("minilm-l6").eval()  # dropout off: identical forwards in both variants
    encoder, pooler = model.encoder, model.pooler
    proc = encoder.processor
    ctx = BatchContext(
        inputs=[proc(a), proc(b)],
        target=None,
        encode=lambda x, j: encoder(x),
        pool=lambda f: F.normalize(pooler(f), dim=-1),
    )
    params = [p for p in model.parameters() if p.requires_grad]
    rss = RssPeak()

    # cached first, so the plain run's freed memory cannot hide inside the cached baseline
    saved_cached = SavedBytes()
    gc.collect()
    start = time.perf_counter()
    with rss.measure() as mem_cached, saved_cached.track():
        loss_cached = CachedInfoNCELoss(mini_batch_size=args.mini_batch_size).loss_from_context(ctx)
        loss_cached.backward()
    t_cached = time.perf_counter() - start
    grads_cached = [p.grad.detach().clone() for p in params]
    model.zero_grad(set_to_none=True)

    saved_plain = SavedBytes()
    gc.collect()
    start = time.perf_counter()
    with rss.measure() as mem_plain, saved_plain.track():
        loss_plain = InfoNCELoss()([ctx.embed(0), ctx.embed(1)])
        loss_plain.backward()
    t_plain = time.perf_counter() - start
    grads_plain = [p.grad.detach().clone() for p in params]

    loss_diff = abs(loss_cached.item() - loss_plain.item())
    grad_diff = max(float((g1 - g2).abs().max()) for g1, g2 in zip(grads_cached, grads_plain))
    mib = 2**20
    print(f"pairs: {args.batch_size}  mini_batch_size: {args.mini_batch_size}  threads: {torch.get_num_threads()}")
    print(f"loss plain {loss_plain.item():.6f}  cached {loss_cached.item():.6f}  |diff| {loss_diff:.2e}")
    print(f"max |grad difference| over {len(params)} tensors: {grad_diff:.2e}")
    for name, saved, mem, seconds in (
        ("plain ", saved_plain, mem_plain, t_plain),
        ("cached", saved_cached, mem_cached, t_cached),
    ):
        rss_mib = mem["peak_above_start"] / mib
        print(f"{name}: saved-for-backward peak {saved.peak / mib:8.1f} MiB, RSS +{rss_mib:8.1f} MiB, {seconds:.1f} s")
    if loss_diff > 1e-5 or grad_diff > 1e-5:
        sys.exit("cached and plain InfoNCE disagree by more than 1e-5")
    print(f"rss ratio: {mem_plain['peak_above_start'] / max(mem_cached['peak_above_start'], 1):.2f}")
    ratio = saved_plain.peak / max(saved_cached.peak, 1)
    print(f"ratio: {ratio:.2f}")
    return ratio


if __name__ == "__main__":
    main()
