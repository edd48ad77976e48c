"""Write a PreBit run's validation/test predictions (the input of the ensemble and backtest)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_only

from polymodal.io import atomic_path, ensure_writable_dir

__all__ = ["SavePredictions"]

log = logging.getLogger(__name__)


class SavePredictions(pl.Callback):
    """At the end of fit, predict the validation and test periods and write
    ``predictions.csv`` (date, split, close, next_return, labels, ``p_<task>``),
    ``metrics.json`` (per task and split) and ``data.json`` (thresholds, fill report).

    Args:
        dirpath: output folder; default ``trainer.default_root_dir``.
    """

    def __init__(self, dirpath: str | None = None) -> None:
        self.dirpath = dirpath

    @rank_zero_only
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import pandas as pd

        from polymodal.metrics.functional import binary_metrics

        dm = trainer.datamodule
        if not hasattr(dm, "frames"):
            raise TypeError("SavePredictions needs the PreBitDataModule")
        out_dir = ensure_writable_dir(self.dirpath or trainer.default_root_dir, what="prediction directory")
        was_training = pl_module.training
        pl_module.eval()
        frames, metrics = [], {}
        try:
            for split in ("val", "test"):
                probs: dict[str, list[np.ndarray]] = {}
                with torch.inference_mode():
                    for batch in dm._loader(split, False):
                        inputs = [{k: v.to(pl_module.device) for k, v in x.items()} for x in batch["inputs"]]
                        for name, p in pl_module.predict_step({"inputs": inputs, "target": None}, 0).items():
                            probs.setdefault(name, []).append(p.numpy())
                frame = dm.frames[split].copy()
                frame.insert(1, "split", split)
                metrics[split] = {}
                for name, chunks in probs.items():
                    p = np.concatenate(chunks)
                    frame[f"p_{name}"] = p
                    label = f"extreme_{name}"
                    if label in frame:
                        metrics[split][name] = binary_metrics(frame[label].to_numpy(), p)
                frames.append(frame)
        finally:
            pl_module.train(was_training)
        table = pd.concat(frames, ignore_index=True)
        with atomic_path(out_dir / "predictions.csv") as tmp:
            table.to_csv(tmp, index=False, float_format="%.8g")
        with atomic_path(out_dir / "metrics.json") as tmp:
            tmp.write_text(json.dumps(metrics, indent=2))
        dm.save_metadata(out_dir)
        for split, per_task in metrics.items():
            for name, m in per_task.items():
                print(
                    f"prebit {Path(out_dir).name} {split} {name}: "
                    + " ".join(f"{k}={v:.4f}" for k, v in m.items() if k != "accuracy")
                )
        print(f"polymodal: wrote {out_dir / 'predictions.csv'}")
