"""Lightning callbacks polymodal recipes use."""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only

__all__ = ["ExportModel"]

log = logging.getLogger(__name__)


class ExportModel(pl.Callback):
    """Save the trained inference model (safetensors + JSON, see :mod:`polymodal.model`) when
    fitting ends, ready for ``polymodal.load(dirpath)`` and ``polymodal evaluate``.

    Args:
        dirpath: target folder; default ``<trainer.default_root_dir>/model``.
        column: which input column's tower to export (multi-tower systems).
    """

    def __init__(self, dirpath: str | None = None, column: str | None = None) -> None:
        self.dirpath = dirpath
        self.column = column

    @rank_zero_only
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not hasattr(pl_module, "embedding_model"):
            raise TypeError(f"ExportModel needs a system with embedding_model(), got {type(pl_module).__name__}")
        target = Path(self.dirpath or Path(trainer.default_root_dir) / "model")
        pl_module.embedding_model(self.column).save(target)
        log.info("exported model to %s", target)
        print(f"polymodal: exported model to {target}")
