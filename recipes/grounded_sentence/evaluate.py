"""Evaluate a trained grounded sentence encoder: caption<->image Recall@k on the held-out images and
STS-B Spearman of the caption encoder, next to the same architecture with random weights.

Usage::

    python -m polymodal.recipes.grounded_sentence.evaluate --run runs/grounded-sentence \\
        --captions ../shared/data/captions/captions.tsv --images ../shared/data/captions/images \\
        --stsb ../shared/data/stsb/sts-dev.csv.gz --control-seeds 0 1 2

``--run`` is the ``default_root_dir`` of a fit with the ``ExportModel`` (caption, ``model/``) and
``ExportTower`` (image, ``image_model/``) callbacks. The control keeps the pretrained frozen image
backbone but draws the caption encoder and the image projection afresh (one per seed): what the
numbers would be without any grounded training. Prints one JSON line per model.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["evaluate_models", "main", "random_control"]


def _split(captions: str, images: str, split: Sequence[int], which: str) -> tuple[list[str], list[str], np.ndarray]:
    from polymodal.recipes.grounded_sentence.data import CaptionsDataModule

    dm = CaptionsDataModule(captions, images, split=tuple(split))
    ds = dm.load_split(which)
    texts, paths = ds.columns
    return list(texts), list(paths), np.asarray(ds.target).round().astype(np.int64)


def evaluate_models(
    caption_model: Any,
    image_model: Any,
    texts: list[str],
    paths: list[str],
    image_ids: np.ndarray,
    sts: tuple[list[str], list[str], list[float]] | None = None,
    batch_size: int = 64,
) -> dict[str, float]:
    """Recall@k (caption<->image) over ``texts``/``paths`` and, with ``sts``, STS cosine correlations."""
    from polymodal.evaluation import STSEvaluator
    from polymodal.recipes.grounded_sentence.system import recall_at_k

    distinct, first, index = np.unique(image_ids, return_index=True, return_inverse=True)
    cap = caption_model.encode(texts, batch_size=batch_size, normalize=True)
    img = image_model.encode([paths[i] for i in first], batch_size=32, normalize=True)
    out = recall_at_k(cap, img, index)
    out["images"], out["captions"] = float(len(distinct)), float(len(texts))
    if sts is not None:
        result = STSEvaluator(*sts, batch_size=batch_size)(caption_model)
        out["sts_spearman"], out["sts_pearson"] = result.spearman, result.pearson
    return out


def random_control(caption_model: Any, image_model: Any, seed: int) -> tuple[Any, Any]:
    """Same architectures, caption encoder and image projection re-drawn at random (backbone kept)."""
    import copy

    from polymodal.model import EmbeddingModel

    torch.manual_seed(seed)
    enc = type(caption_model.encoder).from_config(caption_model.encoder.get_config(), Path("."))
    device = next(caption_model.parameters()).device
    caption = EmbeddingModel(enc, caption_model.pooler, normalize=True).to(device).eval()
    image = copy.deepcopy(image_model).eval()
    nn.init.xavier_uniform_(image.encoder.proj.weight)
    nn.init.zeros_(image.encoder.proj.bias)
    return caption, image


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(prog="python -m polymodal.recipes.grounded_sentence.evaluate", description=__doc__)
    p.add_argument("--run", required=True, help="fit default_root_dir holding model/ and image_model/")
    p.add_argument("--captions", default="../shared/data/captions/captions.tsv")
    p.add_argument("--images", default="../shared/data/captions/images")
    p.add_argument("--split", type=int, nargs=3, default=[800, 100, 100], help="train val test image counts")
    p.add_argument("--which", default="test", choices=["train", "val", "test"])
    p.add_argument("--stsb", default="../shared/data/stsb/sts-dev.csv.gz", help="STS table ('' to skip)")
    p.add_argument("--control-seeds", type=int, nargs="*", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu", help="torch device for encoding (cpu, cuda)")
    p.add_argument("--json", default=None, help="also write the records to this file")
    ns = p.parse_args(argv)
    torch.set_num_threads(ns.threads)

    import polymodal
    from polymodal.cli.evaluate import load_pairs as _load_pairs
    from polymodal.plugins_manager import load_plugins

    load_plugins()
    run = Path(ns.run)
    caption_model = polymodal.load(run / "model").to(ns.device)
    image_model = polymodal.load(run / "image_model").to(ns.device)
    texts, paths, ids = _split(ns.captions, ns.images, ns.split, ns.which)
    sts = _load_pairs(ns.stsb, None, None) if ns.stsb else None
    records = []
    models = [("trained", caption_model, image_model)]
    models += [(f"random-init seed {s}", *random_control(caption_model, image_model, s)) for s in ns.control_seeds]
    for name, cap, img in models:
        start = time.perf_counter()
        metrics = evaluate_models(cap, img, texts, paths, ids, sts, ns.batch_size)
        record = {"model": name, "run": str(run), "split": ns.which, **{k: round(v, 4) for k, v in metrics.items()}}
        record["seconds"] = round(time.perf_counter() - start, 1)
        print(json.dumps(record), flush=True)
        records.append(record)
    if ns.json:
        Path(ns.json).write_text(json.dumps(records, indent=2))
    return records


if __name__ == "__main__":  # pragma: no cover
    main()
