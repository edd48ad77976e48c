"""Lightning callbacks polymodal recipes use."""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl

from polymodal.io import resolve_path

__all__ = ["ExportModel", "KeepBest", "LoadEncoderWeights", "StepSeeder", "StepTimer"]

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


class KeepBest(pl.Callback):
    """Keep the weights of the best validation epoch in memory and load them back when fitting ends.

    Unlike ``ModelCheckpoint`` nothing is written to disk: for small models trained many times (a head on
    cached features in a sweep) whose ``test`` should score the best epoch. After fit the best value is
    also in ``trainer.callback_metrics`` as ``<monitor>_best`` (and its epoch as ``<monitor>_best_epoch``).

    Args:
        monitor: logged metric to watch (e.g. ``val/pearson_avg``).
        mode: ``"max"`` or ``"min"``.
    """

    def __init__(self, monitor: str, mode: str = "max") -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.monitor, self.mode = monitor, mode
        self.best: float | None = None
        self.best_epoch: int | None = None
        self._state: dict | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        if value != value:  # NaN never wins
            return
        if self.best is None or (value > self.best if self.mode == "max" else value < self.best):
            self.best, self.best_epoch = value, trainer.current_epoch
            self._state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._state is None:
            log.warning("KeepBest: %s was never logged; keeping the last weights", self.monitor)
            return
        pl_module.load_state_dict(self._state)
        import torch

        trainer.callback_metrics[f"{self.monitor}_best"] = torch.tensor(self.best)
        trainer.callback_metrics[f"{self.monitor}_best_epoch"] = torch.tensor(float(self.best_epoch or 0))
        log.info("KeepBest: restored epoch %d (%s=%.4f)", self.best_epoch, self.monitor, self.best)


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
