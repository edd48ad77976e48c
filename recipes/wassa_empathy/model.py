"""The WASSA model pieces: a feed-forward "encoder" over precomputed feature vectors, a
:class:`PredictionSystem` that also logs the mean Pearson r of its regression tasks, and a
callback that keeps the best validation weights in memory.

The FFN is :class:`~polymodal.vector.FeatureMLP` (re-exported here), an encoder whose input is a
feature vector (sentence embedding, lexicon scores, ...); :class:`PredictionSystem` puts one
linear head per target on top, so the trunk is shared between empathy and distress (multi-task).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor

from polymodal.systems.prediction import PredictionSystem
from polymodal.vector import FeatureMLP, VectorProcessor  # moved to the core; kept importable here

__all__ = ["DevReport", "EmpathySystem", "FeatureMLP", "KeepBest", "VectorProcessor", "predict_split"]


class EmpathySystem(PredictionSystem):
    """:class:`PredictionSystem` that also logs ``<stage>/pearson_avg``, the mean Pearson r of
    its regression tasks (the WASSA 2022 empathy track's ranking metric)."""

    def _log_metrics(self, stage: str) -> None:
        super()._log_metrics(stage)
        metrics = self.metrics_.get(stage, {})
        names = [t.name for t in self.tasks if t.kind == "regression"]
        keys = [f"{n}/pearson" for n in names] if len(self.tasks) > 1 else ["pearson"]
        values = [metrics[k] for k in keys if k in metrics]
        if values and len(values) == len(keys):
            avg = float(np.mean(values))
            metrics["pearson_avg"] = avg
            self.log(f"{stage}/pearson_avg", avg, prog_bar=True)


class KeepBest(pl.Callback):
    """Keep the weights of the best validation epoch in memory and restore them at the end of fit.

    Args:
        monitor: logged metric to watch.
        mode: ``"max"`` or ``"min"``.
    """

    def __init__(self, monitor: str = "val/pearson_avg", mode: str = "max") -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.monitor, self.mode = monitor, mode
        self.best: float | None = None
        self.best_epoch: int | None = None
        self._state: dict[str, Tensor] | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        v = float(value)
        better = self.best is None or (v > self.best if self.mode == "max" else v < self.best)
        if better:
            self.best, self.best_epoch = v, trainer.current_epoch
            self._state = copy.deepcopy(pl_module.state_dict())

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._state is not None:
            pl_module.load_state_dict(self._state)


class DevReport(pl.Callback):
    """At the end of fit, predict the data module's ``test`` split (WASSA dev with gold labels) and
    write ``dev_predictions.csv`` and ``dev_metrics.json`` (Pearson r per target and their mean).

    Put it after :class:`KeepBest` in the callback list so the best weights are used.

    Args:
        dirpath: output folder (default: ``trainer.default_root_dir``).
    """

    def __init__(self, dirpath: str | None = None) -> None:
        self.dirpath = dirpath
        self.metrics: dict[str, float] = {}

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import json

        import pandas as pd

        from polymodal.io import atomic_path, ensure_writable_dir
        from polymodal.metrics.functional import pearson

        dm = trainer.datamodule
        if not hasattr(dm, "loader"):
            raise TypeError("DevReport needs the WassaDataModule")
        preds = predict_split(pl_module, dm.loader("test"))
        frame = dm.frames["test"]
        out: dict[str, float] = {}
        for j, task in enumerate(pl_module.tasks):
            out[f"{task.name}_pearson"] = pearson(preds[:, j], frame[task.name].to_numpy(np.float64))
        out["pearson_avg"] = float(np.mean(list(out.values())))
        self.metrics = out
        folder = ensure_writable_dir(self.dirpath or trainer.default_root_dir, what="report directory")
        table = pd.DataFrame({f"pred_{t.name}": preds[:, j] for j, t in enumerate(pl_module.tasks)})
        with atomic_path(Path(folder) / "dev_predictions.csv") as tmp:
            table.to_csv(tmp, index=False)
        with atomic_path(Path(folder) / "dev_metrics.json") as tmp:
            Path(tmp).write_text(json.dumps(out, indent=2) + "\n")
        print("WASSA dev: " + "  ".join(f"{k} {v:.4f}" for k, v in out.items()))


def predict_split(model: PredictionSystem, loader) -> np.ndarray:
    """``(N, tasks)`` predictions of a regression system over a loader, in loader order."""
    was_training = model.training
    model.eval()
    rows = []
    try:
        with torch.inference_mode():
            for batch in loader:
                inputs = [{k: v.to(model.device) for k, v in x.items()} for x in batch["inputs"]]
                out = model.predict_step({"inputs": inputs, "target": None}, 0)
                rows.append(np.stack([out[t.name].numpy() for t in model.tasks], axis=1))
    finally:
        model.train(was_training)
    return np.concatenate(rows).astype(np.float64)
