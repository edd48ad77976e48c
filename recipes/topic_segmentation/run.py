"""Reproduce the Choi segmentation table: TextTiling-style baseline and the siamese multi-task
segmenter with every combination of its STP / NSP / TC heads, on two protocols.

    python -m polymodal.recipes.topic_segmentation.run [--data ../shared/data/topicseg_choi/choi.jsonl.gz]
        [--features minilm-mean] [--epochs 4] [--threads 1] [--protocols document text-disjoint]
        [--ablations stp stp+nsp+tc] [--context 1] [--hidden 256] [--dropout 0.1] [--lr 1e-3]
        [--out runs/topicseg/results.json]

Protocols: ``document`` = the fixed document-level split (train 630 / val 108 / test 182
documents); ``text-disjoint`` = training documents with every held-out source text cut out, and
Choi-style documents built from held-out texts for val (threshold) and test. Thresholds and the
TextTiling window are tuned on val; test figures are mean per-document Pk / WindowDiff (%),
for the tuned threshold ("unknown # segments") and for the true number of boundaries ("known").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
import warnings
from itertools import combinations
from pathlib import Path

__all__ = ["ABLATIONS", "fit_segmenter", "main", "texttiling_rows"]

DEFAULT_DATA = Path(os.environ.get("POLYMODAL_SHARED_DATA", "../shared/data")) / "topicseg_choi" / "choi.jsonl.gz"
ABLATIONS = [list(c) for n in (1, 2, 3) for c in combinations(("stp", "nsp", "tc"), n)]


def texttiling_rows(dm, windows=(1, 2, 3, 4, 5, 6, 8)) -> list[dict]:
    """TextTiling on the data module's sentence features; window and threshold tuned on val."""
    from polymodal.evaluation.segmentation import segmentation_scores
    from polymodal.recipes.topic_segmentation.segment import (
        depth_scores,
        evaluate,
        hearst_boundaries,
        tune_threshold,
        window_similarities,
    )

    def scores(split, w):
        return [depth_scores(window_similarities(dm.document_features(d), w)) for d in dm.docs[split]]

    val_refs = [d.boundaries for d in dm.docs["val"]]
    test_refs = [d.boundaries for d in dm.docs["test"]]
    best = None
    for w in windows:
        s = scores("val", w)
        thr = tune_threshold(s, val_refs, peaks=True)
        pk = evaluate(s, val_refs, thr, peaks=True)["pk"]
        if best is None or pk < best[0]:
            best = (pk, w, thr)
    _, w, thr = best
    test_scores = scores("test", w)
    tuned = evaluate(test_scores, test_refs, thr, peaks=True)
    hearst = segmentation_scores(test_refs, [hearst_boundaries(s) for s in test_scores])
    return [
        {"method": f"TextTiling on embeddings (w={w}, threshold tuned on val)", **tuned},
        {
            "method": f"TextTiling on embeddings (w={w}, Hearst cutoff mean - sd/2)",
            "pk": 100 * hearst["pk"],
            "windowdiff": 100 * hearst["windowdiff"],
            "pk_known_k": tuned["pk_known_k"],
            "windowdiff_known_k": tuned["windowdiff_known_k"],
        },
    ]


def fit_segmenter(
    dm, heads: list[str], epochs: int, seed: int = 0, hidden: int = 256, lr: float = 1e-3, dropout: float = 0.1
):
    """Train a :class:`SiameseSegmenter` with these heads on ``dm`` (a prepared ChoiPairDataModule)."""
    import pytorch_lightning as pl
    import torch

    from polymodal.recipes.topic_segmentation.model import SiameseSegmenter
    from polymodal.systems.prediction import Task
    from polymodal.vector import FeatureMLP

    pl.seed_everything(seed, workers=True, verbose=False)
    kinds = {"stp": "binary", "nsp": "binary", "tc": "multiclass"}
    tasks = [Task(name=h, kind=kinds[h], num_classes=max(dm.num_topics, 2)) for h in heads]
    model = SiameseSegmenter(
        encoder=FeatureMLP(dm.feature_dim, hidden, layers=1, dropout=dropout),
        tasks=tasks,
        dropout=dropout,
        optimizer=lambda params: torch.optim.AdamW(params, lr=lr, weight_decay=0.01),
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    trainer.fit(model, datamodule=dm)
    return model


def model_rows(dm, model, heads: list[str]) -> list[dict]:
    from polymodal.recipes.topic_segmentation.model import boundary_scores
    from polymodal.recipes.topic_segmentation.segment import evaluate, tune_threshold

    combines = ["auto"] + (["mean"] if len(heads) > 1 else [])
    rows = []
    for combine in combines:

        def scores(split, combine=combine):
            return [boundary_scores(model, dm.document_features(d), combine, dm.context) for d in dm.docs[split]]

        val_refs = [d.boundaries for d in dm.docs["val"]]
        thr = tune_threshold(scores("val"), val_refs)
        res = evaluate(scores("test"), [d.boundaries for d in dm.docs["test"]], thr)
        used = next(h for h in ("stp", "nsp", "tc") if h in heads) if combine == "auto" else "mean of heads"
        rows.append({"method": f"siamese {'+'.join(h.upper() for h in heads)} (score: {used})", **res})
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--features", default="minilm-mean")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=256, help="siamese tower width")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--context", type=int, default=1, help="sentences averaged on each side of a gap")
    parser.add_argument("--protocols", nargs="+", default=["document", "text-disjoint"])
    parser.add_argument("--ablations", nargs="*", help="head sets like stp stp+nsp stp+nsp+tc (default: all 7)")
    parser.add_argument("--cache-dir", default="/tmp/polymodal_cache/topicseg")
    parser.add_argument("--max-docs", type=int, default=None)
    parser.add_argument("--out", default="runs/topicseg/results.json")
    args = parser.parse_args(argv)

    import torch

    from polymodal.recipes.topic_segmentation.data import overlap_report
    from polymodal.recipes.topic_segmentation.datamodule import ChoiPairDataModule

    torch.set_num_threads(args.threads)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    ablations = [a.split("+") for a in args.ablations] if args.ablations else ABLATIONS
    start = time.perf_counter()
    results: dict = {"args": vars(args), "protocols": {}}
    for protocol in args.protocols:
        dm = ChoiPairDataModule(
            args.data, args.features, ["stp", "nsp", "tc"], protocol, cache_dir=args.cache_dir, max_docs=args.max_docs
        )
        dm.prepare()
        info = {k: len(v) for k, v in dm.docs.items()}
        info.update(overlap_report(dm.docs["train"], dm.docs["test"]))
        rows = texttiling_rows(dm)
        print(f"[{protocol}] {info}", flush=True)
        for heads in ablations:
            sub = ChoiPairDataModule(
                args.data,
                args.features,
                heads,
                protocol,
                cache_dir=args.cache_dir,
                max_docs=args.max_docs,
                context=args.context,
            )
            model = fit_segmenter(sub, heads, args.epochs, hidden=args.hidden, lr=args.lr, dropout=args.dropout)
            new = model_rows(sub, model, heads)
            rows += new
            for r in new:
                print(
                    f"[{protocol}] {r['method']:48s} Pk {r['pk']:.2f}  WD {r['windowdiff']:.2f}  "
                    f"(known k: Pk {r['pk_known_k']:.2f})  {time.perf_counter() - start:.0f} s",
                    flush=True,
                )
        results["protocols"][protocol] = {"data": info, "rows": rows}
    for protocol, block in results["protocols"].items():
        print(f"\n### protocol: {protocol}  {block['data']}")
        print("| method | Pk % | WindowDiff % | Pk % (known #) | WindowDiff % (known #) |")
        print("|---|---|---|---|---|")
        for r in block["rows"]:
            print(
                f"| {r['method']} | {r['pk']:.2f} | {r['windowdiff']:.2f} | {r['pk_known_k']:.2f} | "
                f"{r['windowdiff_known_k']:.2f} |"
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out}  ({time.perf_counter() - start:.0f} s)")
    return results


if __name__ == "__main__":
    main()
