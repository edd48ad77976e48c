"""Lightning callbacks polymodal recipes use."""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only

__all__ = ["ExportModel", "StepSeeder"]

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


class StepSeeder(pl.Callback):
    """Reseed torch's RNG before every training step from ``(seed, global_step)``.

    Dropout masks and any other random draws then depend only on the step number, so a run
    resumed from a checkpoint (which does not restore RNG states) continues exactly as an
    uninterrupted run would (the approach fairseq takes). Costs microseconds per step.

    Args:
        seed: base seed; default the ``PL_GLOBAL_SEED`` set by ``seed_everything`` (0 when unset).
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        import os

        import torch

        base = self.seed if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))
        torch.manual_seed((base * 1_000_003 + trainer.global_step) % (2**63 - 1))
