"""Lightning callbacks polymodal recipes use."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import BasePredictionWriter

from polymodal.io import resolve_path

__all__ = ["ExportModel", "LoadEncoderWeights", "PredictionWriter", "StepSeeder", "StepTimer"]

log = logging.getLogger(__name__)


class ExportModel(pl.Callback):
    """Save the trained inference model (safetensors + JSON, see :mod:`polymodal.model`) when
    fitting ends, ready for ``polymodal.load(dirpath)`` and ``polymodal evaluate``.

    Args:
        dirpath: target folder; default ``<trainer.default_root_dir>/model``.
        column: export the tower of this input column (multi-tower systems; default the first column's).
        tower: export this tower (by name) instead.
        head: export a scoring model: the tower with this linear head (a cross-encoder).
        best: when a ``ModelCheckpoint`` monitors a metric, export the weights of its best
            checkpoint (and leave them loaded in the module) rather than the last step's.
    """

    def __init__(
        self,
        dirpath: str | None = None,
        column: str | None = None,
        tower: str | None = None,
        head: str | None = None,
        best: bool = True,
    ) -> None:
        self.dirpath = dirpath
        self.column = column
        self.tower = tower
        self.head = head
        self.best = best

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from polymodal.contracts import SystemContract

        if not isinstance(pl_module, SystemContract):
            raise TypeError(f"ExportModel needs a polymodal System, got {type(pl_module).__name__}")
        which = "last step"
        ckpt = trainer.checkpoint_callback
        best_path = getattr(ckpt, "best_model_path", "") if self.best and getattr(ckpt, "monitor", None) else ""
        if best_path and Path(best_path).is_file():
            from polymodal.checkpoint import AtomicCheckpointIO

            state = AtomicCheckpointIO().load_checkpoint(best_path, map_location="cpu")["state_dict"]
            pl_module.load_state_dict(state)  # every rank, so they agree afterwards
            which = f"best checkpoint {Path(best_path).name} ({ckpt.monitor}={float(ckpt.best_model_score):.4f})"
        if trainer.is_global_zero:
            target = Path(self.dirpath or Path(trainer.default_root_dir) / "model")
            pl_module.inference_model(self.column, tower=self.tower, head=self.head).save(target)
            log.info("exported model (%s) to %s", which, target)
            print(f"polymodal: exported model ({which}) to {target}")


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


class LoadEncoderWeights(pl.Callback):
    """At the start of fitting, load the encoder weights of a model saved by ``ExportModel``
    (``polymodal.load`` format) into the system's encoder(s); optimizer and step start fresh.

    Args:
        path: the exported model folder (``.../model``).
        strict: every encoder weight must match (names and shapes).

    When the fit resumes from a checkpoint (``--ckpt_path``), nothing is loaded: the
    checkpoint's weights win.
    """

    def __init__(self, path: str, strict: bool = True) -> None:
        self.path = path
        self.strict = strict

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from safetensors.torch import load_file

        if getattr(trainer, "ckpt_path", None):  # resuming: the checkpoint already holds the (further trained) weights
            return

        folder = resolve_path(self.path, what="exported model folder")
        weights = load_file(str(Path(folder) / "model.safetensors"))
        state = {k[len("encoder.") :]: v for k, v in weights.items() if k.startswith("encoder.")}
        if not state:
            raise ValueError(f"{folder}: model.safetensors holds no encoder.* weights")
        towers = getattr(pl_module, "towers", None)
        if towers is None or len(towers) != 1:
            raise ValueError("LoadEncoderWeights needs a System with exactly one tower")
        encoder = next(iter(towers.values()))
        missing, unexpected = encoder.load_state_dict(state, strict=self.strict)
        print(f"polymodal: loaded {len(state)} encoder tensors from {folder}")
        if missing or unexpected:
            print(f"polymodal: missing {missing}, unexpected {unexpected}")


class StepTimer(pl.Callback):
    """Measure training throughput: wall time of every optimizer step (device synchronised).

    After fitting it prints steady-state steps/s and samples/s (the first ``skip`` steps, which
    include compilation and allocator warm-up, are left out) and keeps them in :attr:`summary`.

    Args:
        skip: warm-up steps left out of the figures.
    """

    def __init__(self, skip: int = 10) -> None:
        self.skip = skip
        self.times: list[float] = []
        self.sizes: list[int] = []
        self.summary: dict[str, float] = {}
        self._start = 0.0

    @staticmethod
    def _sync(pl_module: pl.LightningModule) -> None:
        import torch

        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        import time

        self._sync(pl_module)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        import time

        self._sync(pl_module)
        self.times.append(time.perf_counter() - self._start)
        self.sizes.append(len(batch) if hasattr(batch, "__len__") else 0)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        times, sizes = self.times[self.skip :], self.sizes[self.skip :]
        if not times:
            return
        total = sum(times)
        self.summary = {
            "steps": float(len(times)),
            "steps_per_s": len(times) / total,
            "samples_per_s": sum(sizes) / total,
            "ms_per_step": 1000 * total / len(times),
        }
        if trainer.is_global_zero:
            print(
                f"polymodal: {len(times)} timed steps: {self.summary['steps_per_s']:.2f} steps/s, "
                f"{self.summary['samples_per_s']:.1f} samples/s, {self.summary['ms_per_step']:.1f} ms/step"
            )


class PredictionWriter(BasePredictionWriter):
    """Write what ``predict_step`` returns to one file, one row per example, and say where.

    A dict of tensors (what a :class:`~polymodal.System` returns: per head its probabilities or values, or
    without heads per input column its embedding) becomes a table, ``.csv`` or ``.parquet`` by ``output``'s
    suffix: the batch's ``meta`` columns first (ids, dates, reference values), then one column per key
    (``<key>``; ``<key>_<j>`` for vectors). A tensor, or a list of them, becomes ``.npy`` holding ``(N, D)`` or
    ``(K, N, D)``. Writes are atomic. With several devices, rank 0 writes the rows it predicted.

    Args:
        output: the file; default ``<trainer.default_root_dir>/predictions.csv`` (``.npy`` for embeddings).
        after_fit: also predict the data module's ``predict`` split when fitting ends, with the weights the fit
            ended with (a ``polymodal sweep`` only fits; the file then sits beside the run).
    """

    def __init__(self, output: str | None = None, after_fit: bool = False) -> None:
        super().__init__(write_interval="batch")
        self.output, self.after_fit = output, after_fit
        self.parts: list[tuple[Any, dict[str, list[Any]]]] = []
        self.path: Path | None = None

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.parts = []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        self.parts.append((prediction, dict(getattr(batch, "meta", None) or {})))

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self.write(trainer)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.after_fit or not trainer.is_global_zero:
            return
        import torch

        loader = trainer.datamodule.predict_dataloader()  # type: ignore[attr-defined]
        was_training = pl_module.training
        pl_module.eval()
        self.parts = []
        try:
            with torch.inference_mode():
                for i, batch in enumerate(loader):
                    batch = pl_module.transfer_batch_to_device(batch, pl_module.device, 0)
                    self.write_on_batch_end(trainer, pl_module, pl_module.predict_step(batch, i), None, batch, i, 0)
        finally:
            pl_module.train(was_training)
        self.write(trainer)

    def write(self, trainer: pl.Trainer) -> Path | None:
        """Write the collected predictions; returns the file (``None`` when there were no batches)."""
        import numpy as np
        import torch

        from polymodal.io import atomic_path

        if not self.parts:
            print("polymodal: predict produced no batches; nothing written")
            return None

        def cat(items: list[Any]) -> np.ndarray:
            return torch.cat([torch.as_tensor(t).detach().float().cpu() for t in items]).numpy()

        first = self.parts[0][0]
        default = Path(trainer.default_root_dir) / "predictions"
        if isinstance(first, Mapping):
            import pandas as pd

            columns: dict[str, Any] = {m: [v for _, meta in self.parts for v in meta[m]] for m in self.parts[0][1]}
            for key in first:
                arr = cat([p[key] for p, _ in self.parts])
                flat = arr.reshape(len(arr), -1)
                if arr.ndim == 1:
                    columns[key] = arr
                else:
                    columns.update({f"{key}_{j}": flat[:, j] for j in range(flat.shape[1])})
            frame = pd.DataFrame(columns)
            target = Path(self.output) if self.output else default.with_suffix(".csv")
            with atomic_path(target) as tmp:
                if target.suffix == ".parquet":
                    frame.to_parquet(tmp, index=False)
                else:
                    frame.to_csv(tmp, index=False, float_format="%.8g")
            what = f"{len(frame)} rows x {len(frame.columns)} columns"
        else:
            arrays = (
                [cat([p[i] for p, _ in self.parts]) for i in range(len(first))]
                if isinstance(first, list | tuple)
                else [cat([p for p, _ in self.parts])]
            )
            data = arrays[0] if len(arrays) == 1 else np.stack(arrays)
            target = Path(self.output) if self.output else default.with_suffix(".npy")
            with atomic_path(target) as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, data)
            what = f"array {tuple(data.shape)}"
        self.path = target
        print(f"polymodal: wrote predictions, {what}, to {target}")
        return target
