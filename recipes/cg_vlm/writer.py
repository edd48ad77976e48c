"""Print (and optionally save) the captions that ``polymodal predict`` generates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import BasePredictionWriter

__all__ = ["CaptionWriter", "StepStats"]


class CaptionWriter(BasePredictionWriter):
    """Print ``image<TAB>text`` for every prediction and, with ``output``, write JSON lines.

    Args:
        output: optional ``.jsonl`` file (``{"image", "prompt", "text"}`` per line).
        quiet: do not print.
    """

    def __init__(self, output: str | None = None, quiet: bool = False) -> None:
        super().__init__(write_interval="batch")
        self.output = output
        self.quiet = quiet
        self._started = False

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        rows = list(prediction or [])
        if not self.quiet:
            for r in rows:
                print(f"{r['image']}\t{r['text']}")
        if self.output:
            path = Path(self.output)
            path.parent.mkdir(parents=True, exist_ok=True)
            mode = "a" if self._started else "w"
            self._started = True
            with open(path, mode, encoding="utf-8") as fh:
                for r in rows:
                    fh.write(json.dumps(r) + "\n")


class StepStats(pl.Callback):
    """Wall time per training step and peak resident memory, written as JSON at the end of fit.

    Args:
        output: JSON file (default ``<default_root_dir>/step_stats.json``).
        skip: first steps left out of the mean (warm-up).
    """

    def __init__(self, output: str | None = None, skip: int = 1) -> None:
        self.output = output
        self.skip = skip
        self.times: list[float] = []
        self._t0 = 0.0

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int):
        import time

        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx):
        import time

        self.times.append(time.perf_counter() - self._t0)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import resource

        import torch

        timed = self.times[self.skip :] or self.times
        stats = {
            "steps": len(self.times),
            "mean_step_s": sum(timed) / max(len(timed), 1),
            "step_s": [round(t, 3) for t in self.times],
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "threads": torch.get_num_threads(),
            "batch_size": getattr(trainer.datamodule, "batch_size", None),
            "steps_per_epoch": trainer.num_training_batches,
        }
        path = Path(self.output or Path(trainer.default_root_dir) / "step_stats.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stats, indent=2) + "\n")
        print(f"cg_vlm: {stats['mean_step_s']:.2f} s/step, peak RSS {stats['peak_rss_gib']:.2f} GiB -> {path}")
