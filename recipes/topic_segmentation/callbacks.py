"""Score the trained segmenter on whole documents at the end of fit (Pk / WindowDiff)."""

from __future__ import annotations

import json
from pathlib import Path

import pytorch_lightning as pl

__all__ = ["SegmentationReport"]


class SegmentationReport(pl.Callback):
    """At the end of fit, segment the data module's val and test documents and write
    ``segmentation_metrics.json``: mean per-document Pk / WindowDiff (%) on test, with the
    boundary threshold tuned on val and with the known number of boundaries.

    Args:
        combine: which head scores gaps (``auto``: STP, else NSP, else TC; ``mean``: all heads).
        dirpath: output folder (default: ``trainer.default_root_dir``).
    """

    def __init__(self, combine: str = "auto", dirpath: str | None = None) -> None:
        self.combine = combine
        self.dirpath = dirpath
        self.metrics: dict[str, float] = {}

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from polymodal.io import atomic_path, ensure_writable_dir
        from polymodal.recipes.topic_segmentation.model import boundary_scores
        from polymodal.recipes.topic_segmentation.segment import evaluate, tune_threshold

        dm = trainer.datamodule
        if not hasattr(dm, "document_features"):
            raise TypeError("SegmentationReport needs the ChoiPairDataModule")
        scores = {
            split: [
                boundary_scores(pl_module, dm.document_features(d), self.combine, getattr(dm, "context", 1))
                for d in dm.docs[split]
            ]
            for split in ("val", "test")
        }
        threshold = tune_threshold(scores["val"], [d.boundaries for d in dm.docs["val"]])
        self.metrics = {
            "threshold": threshold,
            **evaluate(scores["test"], [d.boundaries for d in dm.docs["test"]], threshold),
            "test_documents": len(dm.docs["test"]),
        }
        folder = ensure_writable_dir(self.dirpath or trainer.default_root_dir, what="report directory")
        with atomic_path(Path(folder) / "segmentation_metrics.json") as tmp:
            Path(tmp).write_text(json.dumps(self.metrics, indent=2) + "\n")
        print("Choi test: " + "  ".join(f"{k} {v:.2f}" for k, v in self.metrics.items() if k != "test_documents"))
