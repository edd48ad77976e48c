"""Image pipeline speed: decode + preprocess + EfficientNet-lite0 features through a DataLoader.

Ours: the training data path. ``RowsDataset`` of image paths, ``Collator`` running the
``ImageEncoder``'s ``ImageProcessor`` (load/convert, resize, centre crop, normalise, stack) in
the DataLoader workers, then ``EmbeddingModel(ImageEncoder("efficientnet-lite0"), MeanPooler())``
under ``torch.inference_mode``.

Peer: the plain timm/torchvision way. A ``Dataset`` returning
``timm.data.create_transform(**resolve_data_config(model))(PIL.Image.open(p).convert("RGB"))``
(torchvision ``Resize(256, bicubic)``, ``CenterCrop(224)``, ``ToTensor``, ``Normalize``), the
default collate, and ``timm.create_model("tf_efficientnet_lite0", num_classes=0)`` holding the
same weights, under ``torch.inference_mode``.

Forward variants (issue 22), each with the same data path of its side and the same weights:

* peers: timm eager NCHW (the default), timm ``channels_last`` (model and input in NHWC), plain ONNX
  Runtime on a TorchScript export of the trunk (one session, ``--threads`` intra-op threads), plain
  OpenVINO fp32 (explicit precision hint, throughput hint, ``AsyncInferQueue`` with ``--threads`` jobs).
* ours: ``model.set_backend(name)`` for ``torch``, ``channels_last``, ``onnx``, ``openvino`` and ``auto``
  (:mod:`polymodal.plugins.image.backends`: a batch runs as ``--threads`` one-thread parts), through the
  hook ``encode`` uses (``pooler(backend(inputs))``).

Both use the same images (the first ``--n`` of the Flickr8k subset by name), batch size,
workers and torch threads; rows alternate ``--repeats`` times, min / median printed with the load
average; every row's features are compared with ours (torch) and must agree to 1e-4 (the resize
implementations could differ, PIL's vs torchvision's on PIL images; measured: identical).
A decode + preprocess + collate pass without the network is printed too, for information; the
ratio is on the full pipeline.

    python benchmarks/image_pipeline.py [--images DIR] [--n 192] [--batch-size 32] [--workers 2] [--threads 1]

Ends with ``ratio: X`` = ours (``auto``) / the fastest peer in images per second (X > 1: ours is faster);
``ratio default:`` compares the two eager NCHW rows as before.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "captions" / "images"


class PlainImages(Dataset):
    """PIL open + RGB + a torchvision transform: the usual timm data path."""

    def __init__(self, paths: list[str], transform) -> None:
        self.paths = paths
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from PIL import Image

        with Image.open(self.paths[i]) as img:
            return self.transform(img.convert("RGB"))


def run_ours(model, paths: list[str], batch_size: int, workers: int, forward: bool = True) -> tuple[float, np.ndarray]:
    from polymodal.data.datamodule import Collator, RowsDataset

    loader = DataLoader(
        RowsDataset({"image": paths}),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=Collator({"image": model.encoder.processor}, "benchmark"),
    )
    out = []
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in loader:
            x = batch.inputs["image"]
            if not forward:
                out.append(x["pixel_values"].mean((2, 3)))  # (B, 3)
            elif model.backend is None:
                out.append(model(x))  # (B, 1280)
            else:
                out.append(model.pooler(model.backend(x)))  # the hook EmbeddingModel.encode uses
    seconds = time.perf_counter() - start
    return len(paths) / seconds, torch.cat(out).numpy()


def run_peer(
    net, transform, paths: list[str], batch_size: int, workers: int, forward: bool = True
) -> tuple[float, np.ndarray]:
    loader = DataLoader(PlainImages(paths, transform), batch_size=batch_size, num_workers=workers)
    out = []
    start = time.perf_counter()
    with torch.inference_mode():
        for x in loader:
            out.append(net(x) if forward else x.mean((2, 3)))  # (B, 1280) | (B, 3)
    seconds = time.perf_counter() - start
    return len(paths) / seconds, torch.cat(out).numpy()


def channels_last_net(net):
    """timm model in NHWC, as a skilled user runs it (the input is converted per batch)."""
    import copy

    cl = copy.deepcopy(net).to(memory_format=torch.channels_last)
    return lambda x: cl(x.contiguous(memory_format=torch.channels_last))


def ort_net(graph: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(graph), so, providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(["features"], {"pixel_values": x.numpy()})[0]).mean((2, 3))


def openvino_net(graph: Path, threads: int):
    """OpenVINO's throughput API: a batch is split over ``threads`` async jobs (one stream each)."""
    import openvino as ov

    core = ov.Core()
    config = {
        "PERFORMANCE_HINT": "THROUGHPUT",
        "NUM_STREAMS": str(threads),
        "INFERENCE_NUM_THREADS": str(threads),
        "INFERENCE_PRECISION_HINT": "f32",
    }
    compiled = core.compile_model(core.read_model(str(graph)), "CPU", config)
    jobs = ov.AsyncInferQueue(compiled, threads)

    def run(x):
        parts = np.array_split(x.numpy(), threads)
        out: list = [None] * len(parts)

        def done(request, k):
            out[k] = np.array(request.get_output_tensor(0).data).mean((2, 3))

        jobs.set_callback(done)
        for k, part in enumerate(parts):
            jobs.start_async({"pixel_values": np.ascontiguousarray(part)}, userdata=k)
        jobs.wait_all()
        return torch.from_numpy(np.concatenate(out))

    return run


def main() -> None:
    import statistics

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default=str(DEFAULT))
    ap.add_argument("--n", type=int, default=192, help="images per pass (first N by name)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="threads of the forward (torch / ORT / OpenVINO)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import timm

    from polymodal.model import EmbeddingModel
    from polymodal.plugins.image import ImageEncoder
    from polymodal.plugins.image.backends import _graph
    from polymodal.poolers import MeanPooler

    paths = [str(p) for p in sorted(Path(args.images).glob("*.jpg"))[: args.n]]
    if not paths:
        raise SystemExit(f"no .jpg images in {args.images}")
    ours = EmbeddingModel(ImageEncoder("efficientnet-lite0"), MeanPooler()).eval()
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0).eval()
    net.load_state_dict(ours.encoder.net.state_dict(), strict=True)
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=net))
    graph = _graph(ours.encoder, None)  # the same TorchScript export for the plain peers

    T, W = args.threads, args.workers
    peers = {"timm NCHW": (net, f"1 x {T} threads"), "timm channels_last": (channels_last_net(net), f"1 x {T}")}
    for name, build, note in (
        ("plain onnxruntime", ort_net, f"1 session x {T} threads"),
        ("plain openvino", openvino_net, f"f32, {T} async jobs x 1 thread"),
    ):
        try:
            peers[name] = (build(graph, T), note)
        except ImportError as exc:
            print(f"{name}: unavailable ({exc})")
    rows = {
        f"peer {k}": (lambda p, f=f: run_peer(f, transform, p, args.batch_size, W), n) for k, (f, n) in peers.items()
    }
    models = {}
    for name in ("torch", "channels_last", "onnx", "openvino", "auto"):
        model = EmbeddingModel(ImageEncoder("efficientnet-lite0"), MeanPooler()).eval()
        try:
            model.set_backend(name, streams=T)
        except ImportError as exc:
            print(f"ours {name}: unavailable ({exc})")
            continue
        models[name] = model
        note = f"{T} one-thread parts" + (f", picked {model.backend.name!r}" if name == "auto" else "")
        rows[f"ours {name}"] = (lambda p, m=model: run_ours(m, p, args.batch_size, W), note)
    rows["ours default"] = (lambda p: run_ours(ours, p, args.batch_size, W), f"no backend, 1 x {T} threads")

    # same features? (and a warm-up of every row)
    ref = run_ours(ours, paths[: args.batch_size], args.batch_size, 0)[1]
    diffs = {}
    for name, (fn, _) in rows.items():
        diffs[name] = float(np.abs(fn(paths[: args.batch_size])[1] - ref).max())
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{len(paths)} images, batch {args.batch_size}, {W} DataLoader workers, forward threads {T} on every side")
    pre = {"ours": 0.0, "peer": 0.0}
    for _ in range(args.repeats):  # decode + preprocess + collate alone (no network), for information
        pre["ours"] = max(pre["ours"], run_ours(ours, paths, args.batch_size, W, forward=False)[0])
        pre["peer"] = max(pre["peer"], run_peer(net, transform, paths, args.batch_size, W, False)[0])
    print(f"  decode+preprocess only: ours {pre['ours']:.1f} images/s, peer {pre['peer']:.1f} images/s")
    speeds: dict[str, list[float]] = {k: [] for k in rows}
    for _ in range(args.repeats):
        for name, (fn, _) in rows.items():
            speeds[name].append(fn(paths)[0])
    print(f"load average after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'row':26s} {'best img/s':>10s} {'median':>8s} {'max|diff|':>10s}  threads / streams")
    for name, (_, note) in rows.items():
        v = speeds[name]
        print(f"{name:26s} {max(v):10.2f} {statistics.median(v):8.2f} {diffs[name]:10.2e}  {note}")
        if diffs[name] > 1e-4:
            raise SystemExit(f"{name}: features differ from ours (torch) by {diffs[name]:.2e}")
    best_peer = max((k for k in speeds if k.startswith("peer")), key=lambda k: max(speeds[k]))
    ours_best = max(speeds["ours auto"]) if "ours auto" in speeds else max(speeds["ours default"])
    print(f"fastest peer: {best_peer} ({max(speeds[best_peer]):.2f} images/s)")
    print(f"ratio default: {max(speeds['ours default']) / max(speeds['peer timm NCHW']):.3f}")
    print(f"ratio: {ours_best / max(speeds[best_peer]):.3f}")


if __name__ == "__main__":
    main()
