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

Both use the same images (the first ``--n`` of the Flickr8k subset by name), batch size,
workers and torch threads; runs alternate ours/peer ``--repeats`` times and the best pass of
each counts. Before timing, the two feature matrices are compared (max abs difference; the
resize implementations could differ, PIL's vs torchvision's on PIL images; measured: identical).
A decode + preprocess + collate pass without the network is printed too, for information; the
ratio is on the full pipeline.

    python benchmarks/image_pipeline.py [--images DIR] [--n 192] [--batch-size 32] [--workers 2] [--threads 1]

Ends with ``ratio: X`` = ours / peer in images per second (X > 1: ours is faster).
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
        RowsDataset([paths], None),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=Collator([model.encoder.processor], ["image"], "benchmark"),
    )
    out = []
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in loader:
            x = batch["inputs"][0]
            out.append(model(x) if forward else x["pixel_values"].mean((2, 3)))  # (B, 1280) | (B, 3)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default=str(DEFAULT))
    ap.add_argument("--n", type=int, default=192, help="images per pass (first N by name)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the main process")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import timm

    from polymodal.model import EmbeddingModel
    from polymodal.plugins.image import ImageEncoder
    from polymodal.poolers import MeanPooler

    paths = [str(p) for p in sorted(Path(args.images).glob("*.jpg"))[: args.n]]
    if not paths:
        raise SystemExit(f"no .jpg images in {args.images}")
    ours = EmbeddingModel(ImageEncoder("efficientnet-lite0"), MeanPooler()).eval()
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0).eval()
    net.load_state_dict(ours.encoder.net.state_dict(), strict=True)
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=net))

    # same features? (and a warm-up of both paths)
    _, a = run_ours(ours, paths[: args.batch_size], args.batch_size, 0)
    _, b = run_peer(net, transform, paths[: args.batch_size], args.batch_size, 0)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    print(f"features of {len(a)} images: max |ours - peer| = {np.abs(a - b).max():.4f}, min cosine = {cos.min():.5f}")

    load = os.getloadavg()
    print(
        f"{len(paths)} images, batch {args.batch_size}, {args.workers} workers, {args.threads} torch thread(s), "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    pre = {"ours": 0.0, "peer": 0.0}
    for _ in range(args.repeats):  # decode + preprocess + collate alone (no network), for information
        pre["ours"] = max(pre["ours"], run_ours(ours, paths, args.batch_size, args.workers, forward=False)[0])
        pre["peer"] = max(pre["peer"], run_peer(net, transform, paths, args.batch_size, args.workers, False)[0])
    print(f"  decode+preprocess only: ours {pre['ours']:.1f} images/s, peer {pre['peer']:.1f} images/s")
    best = {"ours": 0.0, "peer": 0.0}
    for r in range(args.repeats):
        for name in ("ours", "peer") if r % 2 == 0 else ("peer", "ours"):
            if name == "ours":
                speed, _ = run_ours(ours, paths, args.batch_size, args.workers)
            else:
                speed, _ = run_peer(net, transform, paths, args.batch_size, args.workers)
            best[name] = max(best[name], speed)
            print(f"  pass {r + 1} {name:4s} {speed:7.2f} images/s")
    print(f"ours (polymodal ImageProcessor + ImageEncoder): {best['ours']:.2f} images/s")
    print(f"peer (PIL + torchvision transforms + timm):     {best['peer']:.2f} images/s")
    print(f"ratio: {best['ours'] / best['peer']:.3f}")


if __name__ == "__main__":
    main()
