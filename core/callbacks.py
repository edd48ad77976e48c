"""Lightning callbacks polymodal recipes use."""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl

from polymodal.io import resolve_path

__all__ = ["ExportModel", "LoadEncoderWeights", "StepSeeder", "StepTimer"]

log = logging.getLogger(__name__)


class ExportModel(pl.Callback):
    """Save the trained inference model (safetensors + JSON, see :mod:`polymodal.model`) when
    fitting ends, ready for ``polymodal.load(dirpath)`` and ``polymodal evaluate``.

    Args:
        dirpath: target folder; default ``<trainer.default_root_dir>/model``.
        column: which input column's tower to export (multi-tower systems).
        best: when a ``ModelCheckpoint`` monitors a metric, export the weights of its best
            checkpoint (and leave them loaded in the module) rather than the last step's.
    """

    def __init__(self, dirpath: str | None = None, column: str | None = None, best: bool = True) -> None:
        self.dirpath = dirpath
        self.column = column
        self.best = best

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not hasattr(pl_module, "embedding_model") and not hasattr(pl_module, "inference_model"):
            name = type(pl_module).__name__
            raise TypeError(f"ExportModel needs a system with embedding_model() or inference_model(), got {name}")
        if trainer.limit_train_batches == 0 or trainer.num_training_batches == 0 or trainer.global_step == 0:
            raise ValueError(
                "ExportModel: the fit ran 0 training batches; refusing to export an untrained model "
                f"(check the training table and batch_size; limit_train_batches={trainer.limit_train_batches}, "
                f"max_steps={trainer.max_steps}, max_epochs={trainer.max_epochs})"
            )
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
            export = getattr(pl_module, "inference_model", None) or pl_module.embedding_model
            export(self.column).save(target)
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
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        if getattr(trainer, "ckpt_path", None):  # resuming: the checkpoint already holds the (further trained) weights
            return

        folder = resolve_path(self.path, what="exported model folder")
        file = Path(folder) / "model.safetensors"
        if not file.is_file():
            raise FileNotFoundError(f"LoadEncoderWeights: {folder} holds no model.safetensors (not an exported model)")
        try:
            weights = load_file(str(file))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ValueError(f"LoadEncoderWeights: {file}: corrupt or truncated weights file ({exc})") from None
        state = {k[len("encoder.") :]: v for k, v in weights.items() if k.startswith("encoder.")}
        if not state:
            raise ValueError(f"{folder}: model.safetensors holds no encoder.* weights")
        encoders = getattr(pl_module, "encoders", None)
        if encoders is None or len(encoders) != 1:
            raise ValueError("LoadEncoderWeights needs a system with exactly one encoder")
        encoder = next(iter(encoders.values()))
        own = encoder.state_dict()
        wrong = [
            (k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items() if k in own and v.shape != own[k].shape
        ]
        if wrong:
            k, got, want = wrong[0]
            raise ValueError(
                f"LoadEncoderWeights: {file}: tensor encoder.{k} has shape {list(got)}, the system's encoder expects "
                f"{list(want)} ({len(wrong)} tensor(s) differ): the folder holds another architecture"
            )
        try:
            missing, unexpected = encoder.load_state_dict(state, strict=self.strict)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            detail = " ".join(line.strip() for line in first[1:3]) or first[0]
            raise ValueError(f"LoadEncoderWeights: {file}: weights do not match the encoder ({detail[:200]})") from None
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
        inputs = batch["inputs"] if isinstance(batch, dict) and "inputs" in batch else None
        size = 0
        if inputs:
            first = next(iter(inputs[0].values()))
            size = len(first)
        self.sizes.append(size)

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
