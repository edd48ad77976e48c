"""Peak memory and step time of cached (GradCache) vs plain InfoNCE at a 1,024-pair batch with MiniLM.

Both compute the loss and parameter gradients of in-batch InfoNCE over the same 1,024
(sentence1, sentence2) pairs of STS-B train with the bundled all-MiniLM-L6-v2 (mean pooling,
L2 normalisation, dropout off so both see identical forward passes), in one process:

* plain: embed all 2,048 sentences with autograd, loss, backward;
* cached: ``CachedInfoNCELoss(mini_batch_size=128)`` (the default): no-grad embedding, loss, then
  mini-batch re-forward + backward (mini-batches cut from length-sorted rows).

Both use the same ``--threads`` torch threads (one process, no streams on either side). Step time:
``--repeats`` alternated timed steps per side (min / median, wall and process CPU seconds, load average
printed); memory tracking runs in its own first step per side, so its hooks do not slow the timed ones.

Memory is measured (with ``streams=1``: saved-tensor hooks see one thread) two ways: the peak of the
bytes autograd keeps for backward
(``saved_tensors_hooks``, exact) and the peak process RSS above the level at the start of each
variant (sampled every 2 ms with psutil). The loss and every gradient must agree to 1e-5.

    python benchmarks/cached_loss.py [--batch-size 1024] [--mini-batch-size 128] [--threads 2] [--repeats 3]

Prints ``time ratio: X`` = cached / plain step time (the goal is <= 1.5) beside the memory ratios, and
ends with ``ratio: X`` = plain peak activation memory / cached peak activation memory.
"""

from __future__ import annotations

import argparse
import os
import statistics
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
    parser.add_argument("--mini-batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import gc

    import torch

    import polymodal
    from polymodal.contracts import Batch
    from polymodal.data.tables import read_table
    from polymodal.losses import CachedInfoNCELoss, InfoNCELoss
    from polymodal.system import Step, System

    torch.set_num_threads(args.threads)
    if not args.data.is_file():
        sys.exit(f"STS-B train not found at {args.data} (set POLYMODAL_SHARED_DATA)")
    df = read_table(args.data).iloc[: args.batch_size]
    a, b = df["sentence1"].tolist(), df["sentence2"].tolist()
    model = polymodal.load("minilm-l6").eval()  # dropout off: identical forwards in both variants
    encoder, pooler = model.encoder, model.pooler
    proc = encoder.processor
    system = System(tower=encoder, pooler=pooler, normalize=True, loss=InfoNCELoss())
    batch = Batch(inputs={"a": proc(a), "b": proc(b)})

    def context() -> Step:  # what System hands its objectives; fresh per step (a Step caches embeddings)
        return Step(system, batch, "train")

    params = [p for p in model.parameters() if p.requires_grad]
    rss = RssPeak()

    def step(cached: bool, streams: int | None = None) -> torch.Tensor:
        model.zero_grad(set_to_none=True)
        if cached:
            loss = CachedInfoNCELoss(mini_batch_size=args.mini_batch_size, streams=streams)(context())
        else:
            ctx = context()
            loss = InfoNCELoss()([ctx.embed(0), ctx.embed(1)])
        loss.backward()
        return loss

    # memory: cached first, so the plain run's freed memory cannot hide inside the cached baseline;
    # with streams=1 (saved-tensor hooks are per thread; with N streams N mini-batches are alive at once)
    saved_cached, saved_plain = SavedBytes(), SavedBytes()
    gc.collect()
    with rss.measure() as mem_cached, saved_cached.track():
        loss_cached = step(cached=True, streams=1)
    grads_cached = [p.grad.detach().clone() for p in params]
    gc.collect()
    with rss.measure() as mem_plain, saved_plain.track():
        loss_plain = step(cached=False)
    grads_plain = [p.grad.detach().clone() for p in params]

    times: dict[str, list[tuple[float, float]]] = {"plain ": [], "cached": []}
    print(f"load average before the timed steps: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for _ in range(args.repeats):  # alternated, so load drifts hit both
        for name in times:
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            step(cached=name == "cached")
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    loss_diff = abs(loss_cached.item() - loss_plain.item())
    grad_diff = max(float((g1 - g2).abs().max()) for g1, g2 in zip(grads_cached, grads_plain))
    mib = 2**20
    real = float(batch.inputs["a"]["attention_mask"].sum(1).float().mean())
    padded = (batch.inputs["a"]["input_ids"].shape[1], batch.inputs["b"]["input_ids"].shape[1])
    print(f"pairs: {args.batch_size}  mini_batch_size: {args.mini_batch_size}  torch threads: {args.threads}")
    print(
        f"plain: the whole batch, 1 stream x {args.threads} threads; cached: length-sorted mini-batches as "
        f"{args.threads} one-thread streams (the forward is random-free, dropout off); tokens per row padded "
        f"{padded[0]} / {padded[1]}, real mean {real:.1f}"
    )
    print(f"loss plain {loss_plain.item():.6f}  cached {loss_cached.item():.6f}  |diff| {loss_diff:.2e}")
    print(f"max |grad difference| over {len(params)} tensors: {grad_diff:.2e}")
    for name, saved, mem in (("plain ", saved_plain, mem_plain), ("cached", saved_cached, mem_cached)):
        rss_mib = mem["peak_above_start"] / mib
        wall = [w for w, _ in times[name]]
        cpu = [c for _, c in times[name]]
        print(
            f"{name}: saved-for-backward peak {saved.peak / mib:8.1f} MiB, RSS +{rss_mib:8.1f} MiB, step wall "
            f"min {min(wall):.2f} s median {statistics.median(wall):.2f} s, CPU min {min(cpu):.2f} s"
        )
    if loss_diff > 1e-5 or grad_diff > 1e-5:
        sys.exit("cached and plain InfoNCE disagree by more than 1e-5")
    print(f"rss ratio: {mem_plain['peak_above_start'] / max(mem_cached['peak_above_start'], 1):.2f} (streams=1)")
    print(
        f"memory: measured with streams=1; the timed cached steps run {args.threads} streams, i.e. up to "
        f"{args.threads} mini-batches' activations at once ({args.threads * saved_cached.peak / mib:.1f} MiB)"
    )
    best = {k: min(w for w, _ in v) for k, v in times.items()}
    best_cpu = {k: min(c for _, c in v) for k, v in times.items()}
    print(f"time ratio: {best['cached'] / best['plain ']:.2f} (cached / plain step wall time, goal <= 1.5)")
    print(f"cpu time ratio: {best_cpu['cached'] / best_cpu['plain ']:.2f}")
    ratio = saved_plain.peak / max(saved_cached.peak, 1)
    print(f"ratio: {ratio:.2f}")
    return ratio


if __name__ == "__main__":
    main()
