"""Export both towers at the end of fit."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl

from polymodal.callbacks import ExportModel

__all__ = ["ExportTower"]


class ExportTower(ExportModel):
    """:class:`~polymodal.callbacks.ExportModel` for one tower into ``<default_root_dir>/<name>``.

    ``ExportModel`` (caption column) writes ``<root>/model``, which ``polymodal evaluate``
    reads; add ``ExportTower(column="image")`` for ``<root>/image_model``, so that retrieval can
    be evaluated from the exported folders alone.

    Args:
        column: the input column whose tower is exported.
        name: sub-folder of the trainer's ``default_root_dir`` (default ``<column>_model``).
        best: export the best checkpoint's weights when a ``ModelCheckpoint`` monitors a metric.
    """

    def __init__(self, column: str, name: str | None = None, best: bool = True) -> None:
        super().__init__(dirpath=None, column=column, best=best)
        self.name = name or f"{column}_model"

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.dirpath = str(Path(trainer.default_root_dir) / self.name)
        super().on_fit_end(trainer, pl_module)
