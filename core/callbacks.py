"""Lightning callbacks polymodal recipes use."""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl

from polymodal.io import resolve_path

__all__ = ["EvaluateSTS", "ExportModel", "LoadEncoderWeights", "StepSeeder", "StepTimer"]

log = logging.getLogger(__name__)


class ExportModel(pl.Callback):
    """Save the trained inference model (safetensors + JSON, see :mod:`polymodal.model`) when
    fitting ends, ready for ``polymodal.load(dirpath)`` and ``polymodal evaluate``.

    Args:
        dirpath: target folder; default ``<trainer.default_root_dir>/<name>``.
        column: export the tower of this input column (multi-tower systems; default the first column's).
        tower: export this tower (by name) instead.
        head: export a scoring model: the tower with this linear head (a cross-encoder).
        best: when a ``ModelCheckpoint`` monitors a metric, export the weights of its best
            checkpoint (and leave them loaded in the module) rather than the last step's.
        name: sub-folder of ``default_root_dir`` used when ``dirpath`` is not given (e.g. ``image_model``
            for the second tower of a two-tower system, so each run of a sweep exports into its own folder).
    """

    def __init__(
        self,
        dirpath: str | None = None,
        column: str | None = None,
        tower: str | None = None,
        head: str | None = None,
        best: bool = True,
        name: str = "model",
    ) -> None:
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"ExportModel name must be a plain folder name, got {name!r}")
        self.dirpath = dirpath
        self.name = name
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
            target = Path(self.dirpath or Path(trainer.default_root_dir) / self.name)
            pl_module.inference_model(self.column, tower=self.tower, head=self.head).save(target)
            log.info("exported model (%s) to %s", which, target)
            print(f"polymodal: exported model ({which}) to {target}")


class EvaluateSTS(pl.Callback):
    """Log the STS correlation of one tower's embedding model at the end of ``test`` (or validation).

    For towers trained on something else (e.g. a caption encoder trained only on image-caption
    retrieval), so that ``polymodal test`` and ``polymodal sweep`` report the transfer to sentence
    similarity next to the system's own metrics. Uses only ``pl_module.embedding_model(column)``.

    Args:
        data: a table with two sentence columns and a score (STS-B dev: ``sts-dev.csv.gz``).
        column: the input column whose tower is evaluated (default: the system's first column).
        columns: ``"sentence1,sentence2,score"`` column names of ``data``.
        prefix: key prefix: logs ``<stage>/<prefix>spearman`` and ``<stage>/<prefix>pearson``.
        stages: ``test`` and/or ``val``.
        batch_size: encoding batch size.
    """

    def __init__(
        self,
        data: str,
        column: str | None = None,
        columns: str = "sentence1,sentence2,score",
        prefix: str = "sts_",
        stages: list[str] | None = None,
        batch_size: int = 64,
    ) -> None:
        self.data, self.column, self.columns, self.prefix = data, column, columns, prefix
        self.stages = list(stages or ["test"])
        unknown = sorted(set(self.stages) - {"val", "test"})
        if unknown:
            raise ValueError(f"EvaluateSTS stages must be val and/or test, got {unknown}")
        self.batch_size = batch_size
        self._pairs: tuple[list[str], list[str], list[float]] | None = None

    def _evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        from polymodal.data.tables import check_columns, read_table
        from polymodal.evaluation.sts import STSEvaluator

        if stage not in self.stages or trainer.sanity_checking:
            return
        if self._pairs is None:
            df = read_table(self.data)
            s1, s2, score = self.columns.split(",")
            check_columns(df, [s1, s2, score], self.data)
            self._pairs = (df[s1].astype(str).tolist(), df[s2].astype(str).tolist(), df[score].astype(float).tolist())
        model = pl_module.embedding_model(self.column)  # type: ignore[operator]
        result = STSEvaluator(*self._pairs, batch_size=self.batch_size)(model)
        pl_module.log(f"{stage}/{self.prefix}spearman", result.spearman)
        pl_module.log(f"{stage}/{self.prefix}pearson", result.pearson)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._evaluate(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._evaluate(trainer, pl_module, "test")


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
