"""Lightning callbacks polymodal recipes use."""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import BasePredictionWriter

from polymodal.io import resolve_path

__all__ = [
    "ClozeProbe",
    "EvaluateSTS",
    "ExportModel",
    "KeepBest",
    "LoadEncoderWeights",
    "MetricsReport",
    "ModelSoup",
    "PredictionWriter",
    "ProgressLog",
    "StepSeeder",
    "StepTimer",
    "draw_curves",
    "read_metrics",
    "summary_table",
    "weights_source",
]

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
            monitor, score = getattr(ckpt, "monitor", None), float(getattr(ckpt, "best_model_score", float("nan")))
            which = f"best checkpoint {Path(best_path).name} ({monitor}={score:.4f})"
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


class ClozeProbe(pl.Callback):
    """Score a causal-LM tower on a word-cloze multiple-choice probe built from a text corpus.

    The items are made deterministically from the corpus's held-out part (:func:`polymodal.evaluation.cloze.
    cloze_items`: each item a line with its last word removed, the answer among distractors of the same token
    count and the nearest training frequency) and scored by the summed log-likelihood of each option. Logs
    ``<stage>/<prefix>accuracy``, ``<prefix>chance`` (``1 / n_options``) and ``<prefix>unigram`` (the accuracy
    of picking the most frequent option: how much word frequency alone gives).

    Args:
        corpus: the UTF-8 text file (``.gz`` allowed), cut like the data module's (``val_fraction``).
        tower: the LM tower (needs ``.tokenizer.encode`` and an HF-style ``forward(...).logits``).
        n_items, n_options, min_words, min_count, context_lines, neighbours, seed, val_fraction: see
            :func:`~polymodal.evaluation.cloze.cloze_items`.
        max_length: tokens per scored sequence (the model's context).
        batch_size: sequences per forward pass.
        prefix: key prefix.
        stages: ``val`` and/or ``test``.
        final_only: inside a fit, score only at the last validation (``trainer.max_steps`` reached); a
            ``polymodal validate`` / ``test`` run always scores.
    """

    def __init__(
        self,
        corpus: str,
        tower: str = "lm",
        n_items: int = 1000,
        n_options: int = 4,
        min_words: int = 5,
        min_count: int = 5,
        context_lines: int = 3,
        neighbours: int = 20,
        seed: int = 0,
        val_fraction: float = 0.1,
        max_length: int = 128,
        batch_size: int = 64,
        prefix: str = "probe_",
        stages: list[str] | None = None,
        final_only: bool = True,
    ) -> None:
        self.corpus, self.tower, self.prefix = corpus, tower, prefix
        self.options = dict(
            val_fraction=val_fraction,
            n_items=n_items,
            n_options=n_options,
            min_words=min_words,
            min_count=min_count,
            context_lines=context_lines,
            neighbours=neighbours,
            seed=seed,
        )
        self.max_length, self.batch_size, self.final_only = max_length, batch_size, final_only
        self.stages = list(stages or ["val"])
        unknown = sorted(set(self.stages) - {"val", "test"})
        if unknown:
            raise ValueError(f"ClozeProbe stages must be val and/or test, got {unknown}")
        self.items: list[Any] | None = None
        self.unigram = 0.0
        self.last: dict[str, float] = {}

    def _evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        import gzip

        import numpy as np
        from pytorch_lightning.trainer.states import TrainerFn

        from polymodal.evaluation.cloze import choice_logprobs, cloze_items, unigram_accuracy

        if stage not in self.stages or trainer.sanity_checking:
            return
        if self.final_only and trainer.state.fn == TrainerFn.FITTING:
            if not trainer.max_steps or trainer.max_steps < 0 or trainer.global_step < trainer.max_steps:
                return
        towers = getattr(pl_module, "towers", None)
        if towers is None or self.tower not in towers:
            raise ValueError(f"ClozeProbe: the system has no tower {self.tower!r}")
        lm = towers[self.tower]
        tokenizer = getattr(lm, "tokenizer", None)
        if tokenizer is None or not hasattr(tokenizer, "encode"):
            raise ValueError(f"ClozeProbe: tower {self.tower!r} has no .tokenizer.encode (not a causal LM tower)")
        if self.items is None:
            file = resolve_path(self.corpus, what="cloze corpus")
            raw = file.read_bytes()
            raw = gzip.decompress(raw) if file.name.endswith(".gz") else raw
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{file}: not UTF-8 text (byte {exc.start})") from None
            self.items, counts = cloze_items(text, tokenizer.encode, **self.options)  # type: ignore[arg-type]
            self.unigram = unigram_accuracy(self.items, counts)
        model = getattr(lm, "model", lm)
        scores = choice_logprobs(
            model,
            tokenizer.encode,
            self.items,
            max_length=self.max_length,
            vocab_size=getattr(tokenizer, "vocab_size", None),
            batch_size=self.batch_size,
        )  # (N, K)
        answers = np.asarray([it.answer for it in self.items])
        accuracy = float((scores.argmax(1) == answers).mean())
        self.last = {
            "accuracy": accuracy,
            "chance": 1.0 / int(self.options["n_options"]),
            "unigram": self.unigram,
            "items": float(len(self.items)),
        }
        for key, value in self.last.items():
            pl_module.log(f"{stage}/{self.prefix}{key}", value)
        print(f"polymodal: cloze probe ({len(self.items)} items) {stage} accuracy {accuracy:.4f}")

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._evaluate(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._evaluate(trainer, pl_module, "test")


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

    Several folders load their **uniform weight average** (a model soup of exports, as Pixel-Linguist's
    ``tools/ensemble.py`` averages its four stage-0 checkpoints before the next stage): every folder must hold
    the same encoder tensors (names and shapes); floating-point tensors are averaged in float32, integer
    buffers are taken from the first folder. Averaging is meaningful for runs that share their initialisation
    (e.g. the same seed with different data or augmentations).

    Args:
        path: the exported model folder (``.../model``), or a list of them to average.
        strict: every encoder weight must match (names and shapes).

    When the fit resumes from a checkpoint (``--ckpt_path``), nothing is loaded: the
    checkpoint's weights win. Under ``polymodal validate`` / ``test`` (no fit) the weights are loaded when the
    evaluation starts, so the loaded (or averaged) encoder can be scored without training.
    """

    def __init__(self, path: str | list[str], strict: bool = True) -> None:
        paths = [path] if isinstance(path, str) else [str(p) for p in path]
        if not paths:
            raise ValueError("LoadEncoderWeights: path lists no exported model folder")
        self.path = path
        self.paths = paths
        self.strict = strict
        self._loaded = False

    @staticmethod
    def _read(path: str) -> tuple[Path, dict[str, Any]]:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = resolve_path(path, what="exported model folder")
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
        return file, state

    def averaged_state(self) -> tuple[Path, dict[str, Any]]:
        """The encoder state of ``path`` (the uniform average when several folders are given) and its first file."""
        import torch

        first, state = self._read(self.paths[0])
        if len(self.paths) == 1:
            return first, state
        total = {k: v.float().clone() if v.is_floating_point() else v for k, v in state.items()}
        for path in self.paths[1:]:
            file, other = self._read(path)
            if set(other) != set(state):
                diff = sorted(set(other) ^ set(state))
                raise ValueError(
                    f"LoadEncoderWeights: {file}: encoder tensors differ from {first} ({len(diff)} name(s), e.g. "
                    f"{diff[0]!r}): only exports of the same architecture can be averaged"
                )
            for k, v in other.items():
                if v.shape != state[k].shape:
                    raise ValueError(
                        f"LoadEncoderWeights: {file}: tensor encoder.{k} has shape {list(v.shape)}, {first} has "
                        f"{list(state[k].shape)}: only exports of the same architecture can be averaged"
                    )
                if v.is_floating_point():
                    total[k] += v.float()
        n = len(self.paths)
        with torch.no_grad():
            averaged = {k: (t / n).to(state[k].dtype) if state[k].is_floating_point() else t for k, t in total.items()}
        return first, averaged

    def _load(self, pl_module: pl.LightningModule) -> None:
        file, state = self.averaged_state()
        towers = getattr(pl_module, "towers", None)
        if towers is None or len(towers) != 1:
            raise ValueError("LoadEncoderWeights needs a System with exactly one tower")
        encoder = next(iter(towers.values()))
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
        n = len(self.paths)
        what = self.paths[0] if n == 1 else f"the average of {n} exports ({', '.join(self.paths)})"
        print(f"polymodal: loaded {len(state)} encoder tensors from {what}")
        if missing or unexpected:
            print(f"polymodal: missing {missing}, unexpected {unexpected}")
        self._loaded = True

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if getattr(trainer, "ckpt_path", None):  # resuming: the checkpoint already holds the (further trained) weights
            return
        self._load(pl_module)

    def _evaluation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from pytorch_lightning.trainer.states import TrainerFn

        if self._loaded or trainer.state.fn not in (TrainerFn.VALIDATING, TrainerFn.TESTING):
            return  # inside a fit the weights were loaded at fit start (and have trained since)
        if getattr(trainer, "ckpt_path", None):
            return
        self._load(pl_module)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._evaluation_start(trainer, pl_module)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._evaluation_start(trainer, pl_module)


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


# ----------------------------------------------------------------------------- progress in logs
def _fmt_seconds(s: float) -> str:
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")


def _scalar(value: Any) -> float | None:
    try:
        out = float(value.detach().cpu().item() if hasattr(value, "detach") else value)
    except (TypeError, ValueError, RuntimeError):
        return None
    return out if math.isfinite(out) else None


def _total_batches(value: Any) -> int | None:
    if isinstance(value, list | tuple):
        value = sum(v for v in value if isinstance(v, int | float) and math.isfinite(v))
    return int(value) if isinstance(value, int | float) and math.isfinite(value) and value > 0 else None


class ProgressLog(pl.Callback):
    """One plain progress line every ``every_s`` seconds, for logs (``... | tee log``, CI, nohup).

    Lightning's bars redraw one terminal line with ``\\r``; written to a file they show nothing
    for minutes and then everything at once. This callback prints ordinary lines instead:
    ``polymodal: fit epoch 1/3 batch 120/400 (30%) step 120 | train/loss 0.4213 | 3.1 it/s |
    elapsed 38s, eta 1m30s`` plus one line per validation with its metrics. A timer thread prints
    them on the clock, so a batch slower than ``every_s`` still shows the run is alive
    (``every_s <= 0`` prints after every batch instead). The CLI adds it to every run and turns
    the bar off when stdout is not a terminal.

    Args:
        every_s: seconds between lines (``POLYMODAL_PROGRESS_SECONDS`` overrides the default 10).
        when: ``"auto"`` prints when stdout is not a terminal or the run has no progress bar;
            ``"always"`` / ``"never"``.
    """

    def __init__(self, every_s: float | None = None, when: str = "auto") -> None:
        if when not in ("auto", "always", "never"):
            raise ValueError(f"ProgressLog when: expected auto, always or never, got {when!r}")
        self.every_s = float(every_s if every_s is not None else os.environ.get("POLYMODAL_PROGRESS_SECONDS", 10))
        self.when = when
        self.lines = 0
        self._start = 0.0
        self._seen = 0
        self._pos: tuple[str, int, Any] | None = None  # (stage, batch index, total batches) of the last batch
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    def _active(self, trainer: pl.Trainer) -> bool:
        if self.when != "auto":
            return self.when == "always" and trainer.is_global_zero
        tty = bool(getattr(sys.stdout, "isatty", lambda: False)())
        return trainer.is_global_zero and (not tty or trainer.progress_bar_callback is None)

    def _emit(self, text: str) -> None:
        self.lines += 1
        print(f"polymodal: {text}", flush=True)

    def _begin(self, trainer: pl.Trainer, stage: str, total: Any) -> None:
        self._end()
        self._start = time.monotonic()
        self._seen, self._pos = 0, None
        if not self._active(trainer):
            return
        n = _total_batches(total)
        self._emit(f"{stage} started" + (f": {n} batches" + (" per epoch" if stage == "fit" else "") if n else ""))
        if self.every_s > 0:
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._clock, args=(trainer,), name="polymodal-progress", daemon=True)
            self._thread.start()

    def _clock(self, trainer: pl.Trainer) -> None:
        assert self._stop is not None
        while not self._stop.wait(self.every_s):
            if self._pos is not None:
                try:
                    self._emit(self._line(trainer))
                except Exception:  # noqa: BLE001 - a progress line must never break training
                    continue

    def _end(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._stop = self._thread = None

    def _tick(self, trainer: pl.Trainer, stage: str, batch_idx: int, total: Any) -> None:
        self._seen += 1
        self._pos = (stage, batch_idx, total)
        if self.every_s <= 0 and self._active(trainer):
            self._emit(self._line(trainer))

    def _line(self, trainer: pl.Trainer) -> str:
        assert self._pos is not None
        stage, batch_idx, total = self._pos
        elapsed = time.monotonic() - self._start
        n = _total_batches(total)
        parts = [stage]
        if stage == "fit":
            max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
            parts.append(f"epoch {trainer.current_epoch + 1}" + (f"/{max_epochs}" if max_epochs else ""))
        parts.append(f"batch {batch_idx + 1}" + (f"/{n} ({100 * (batch_idx + 1) / n:.0f}%)" if n else ""))
        if stage == "fit":
            parts.append(f"step {trainer.global_step}")
            if getattr(trainer, "validating", False) or getattr(trainer, "sanity_checking", False):
                parts.append("(validating)")
        line = " ".join(parts)
        if metrics := self._metrics(trainer, "train" if stage == "fit" else stage):
            line += f" | {metrics}"
        rate = self._seen / elapsed if elapsed > 0 else 0.0
        line += f" | {rate:.2f} it/s | elapsed {_fmt_seconds(elapsed)}"
        if n and rate > 0:
            left = n - batch_idx - 1
            if stage == "fit" and trainer.max_epochs and trainer.max_epochs > 0:
                left += n * (trainer.max_epochs - trainer.current_epoch - 1)
            if stage == "fit" and trainer.max_steps and trainer.max_steps > 0:
                left = min(left, trainer.max_steps - trainer.global_step)
            eta = max(left, 0) / rate
            timer = next((cb for cb in trainer.callbacks if type(cb).__name__ == "Timer"), None)  # type: ignore[attr-defined]
            remaining = timer.time_remaining() if timer is not None else None  # --trainer.max_time
            if remaining is not None:
                eta = min(eta, max(remaining, 0.0))
            line += f", eta {_fmt_seconds(eta)}"
        return line

    @staticmethod
    def _metrics(trainer: pl.Trainer, prefix: str) -> str:
        out = []
        for key, value in sorted(dict(trainer.callback_metrics).items()):
            if key.startswith(prefix) and (v := _scalar(value)) is not None:
                out.append(f"{key} {v:.4g}")
        return ", ".join(out[:6])

    # fit
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._begin(trainer, "fit", trainer.num_training_batches)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._tick(trainer, "fit", batch_idx, trainer.num_training_batches)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not self._active(trainer) or trainer.state.fn != "fit":
            return
        metrics = self._metrics(trainer, "val")
        self._emit(f"validation at step {trainer.global_step}" + (f": {metrics}" if metrics else ""))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._end()
        if self._active(trainer):
            self._emit(f"fit done: {trainer.global_step} steps in {_fmt_seconds(time.monotonic() - self._start)}")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._end()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._end()

    # evaluation / prediction
    def on_predict_start(self, trainer, pl_module) -> None:
        self._begin(trainer, "predict", trainer.num_predict_batches)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0):
        self._tick(trainer, "predict", batch_idx, trainer.num_predict_batches)

    def on_predict_end(self, trainer, pl_module) -> None:
        self._end()

    def on_test_start(self, trainer, pl_module) -> None:
        self._begin(trainer, "test", trainer.num_test_batches)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0):
        self._tick(trainer, "test", batch_idx, trainer.num_test_batches)

    def on_test_end(self, trainer, pl_module) -> None:
        self._end()

    def on_validation_start(self, trainer, pl_module) -> None:
        if trainer.state.fn == "validate":
            self._begin(trainer, "validate", trainer.num_val_batches)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0):
        if trainer.state.fn == "validate":
            self._tick(trainer, "validate", batch_idx, trainer.num_val_batches)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.state.fn == "validate":
            self._end()


# ----------------------------------------------------------------------------- metrics, curves, summary
#: Substrings of metric names where larger is better; everything else (loss, ppl, mse, ...) is minimised.
_HIGHER_IS_BETTER = (
    "spearman", "pearson", "acc", "f1", "recall", "precision", "mrr", "ndcg", "map", "auc", "r2",
    "bleu", "cider", "rouge", "meteor", "score", "kappa", "corr", "hit", "p@", "r@", "rsum", "measure",
)  # fmt: skip


def higher_is_better(name: str) -> bool:
    """Whether the metric called ``name`` improves upwards (``val/spearman``) or downwards (``val/loss``)."""
    low = name.lower()
    if any(k in low for k in ("loss", "ppl", "perplexity", "mse", "mae", "rmse", "error", "wer", "cer")):
        return False
    if re.search(r"(^|[/_])[a-z]2[a-z]_r\d+$", low):  # grouped retrieval hit rates: c2i_r1, i2c_r10
        return True
    return any(k in low for k in _HIGHER_IS_BETTER)


def read_metrics(path: str | os.PathLike[str]):
    """A ``metrics.csv`` (ours or Lightning's CSVLogger's: ``epoch``, ``step`` and one column per
    metric, sparse rows) as a DataFrame sorted by step.

    Raises:
        FileNotFoundError / ValueError: one line naming the file.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metrics file not found: {path}")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a metrics CSV: {str(exc).splitlines()[0]}") from None
    if "step" not in frame.columns:
        raise ValueError(f"{path}: no 'step' column (expected epoch, step and one column per metric)")
    metrics = [c for c in frame.columns if c not in ("epoch", "step")]
    if not metrics:
        raise ValueError(f"{path}: no metric columns")
    for c in metrics:
        frame[c] = pd.to_numeric(frame[c], errors="coerce")
    return frame.sort_values("step", kind="stable").reset_index(drop=True)


def summary_table(frame) -> str:
    """Best (with its step) and last value of every metric, as a fixed-width text table."""
    rows = [("metric", "best", "at step", "last", "points")]
    for col in [c for c in frame.columns if c not in ("epoch", "step")]:
        series = frame[["step", col]].dropna()
        if series.empty:
            continue
        idx = series[col].idxmax() if higher_is_better(col) else series[col].idxmin()
        arrow = "max" if higher_is_better(col) else "min"
        rows.append(
            (
                col,
                f"{series[col][idx]:.4f} ({arrow})",
                str(int(series["step"][idx])),
                f"{series[col].iloc[-1]:.4f}",
                str(len(series)),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def draw_curves(frame, target: str | os.PathLike[str], title: str = "") -> Path:
    """Draw train loss and every validation metric against the optimizer step into a PNG.

    Panel 1 holds the losses (every ``*loss`` column: train per step, val per validation); every
    other metric gets its own panel. Axes are labelled (``optimizer step`` and the metric name).

    Raises:
        ImportError: matplotlib is missing (``pip install 'polymodal[plots]'``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'polymodal[plots]'") from None
    from polymodal.io import atomic_path

    metrics = [c for c in frame.columns if c not in ("epoch", "step") and frame[c].notna().any()]
    losses = [c for c in metrics if "loss" in c.lower() and c.count("/") <= 1]
    others = [c for c in metrics if c not in losses and "loss" not in c.lower()]
    panels = ([losses] if losses else []) + [[c] for c in others]
    if not panels:
        raise ValueError("no metric values to plot")
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    for ax, group in zip(axes.flat, panels):
        for col in group:
            series = frame[["step", col]].dropna()
            many = len(series) > 30
            ax.plot(series["step"], series[col], marker=None if many else "o", markersize=3, linewidth=1.2, label=col)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(0, max(1.0, float(frame["step"].max())) * 1.04)  # one step axis for every panel
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss" if group is losses else group[0])
        ax.set_title(", ".join(group) if len(group) <= 3 else "losses")
        ax.grid(alpha=0.3)
        if len(group) > 1:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    target = Path(target)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return target


def _run_dir(trainer: pl.Trainer) -> Path:
    """The folder the exported model goes into (its parent), else the trainer's root dir."""
    for cb in trainer.callbacks:  # type: ignore[attr-defined]
        if isinstance(cb, ExportModel) and cb.dirpath:
            return Path(cb.dirpath).parent
    return Path(trainer.default_root_dir)


class MetricsReport(pl.Callback):
    """Record every logged metric of a fit and, when it ends, leave something to look at.

    Writes ``metrics.csv`` (``epoch``, ``step``, one column per metric: train metrics every step,
    val metrics at every validation; Lightning CSVLogger layout, so ``polymodal plot`` reads both)
    and ``curves.png`` (train loss and every val metric against the step, labelled axes) beside
    the exported model, and prints a one-screen table of the best and last value of each metric.
    Independent of the configured logger, so a ``logger: false`` config still gets it. The CLI
    adds it to every ``fit``.

    Args:
        dirpath: output folder; default the exported model's parent (``trainer.default_root_dir``).
        plot: draw the PNG (needs matplotlib; without it a one-line hint is printed).
    """

    def __init__(self, dirpath: str | None = None, plot: bool = True) -> None:
        self.dirpath = dirpath
        self.plot = plot
        self.rows: list[dict[str, Any]] = []
        self.written: dict[str, Path] = {}

    def _record(self, trainer: pl.Trainer, keep) -> None:
        # Keep the (detached, on-device) scalars as they are: converting with .item() here would
        # synchronise the GPU every step. They become floats once, in frame().
        row: dict[str, Any] = {}
        for key, value in trainer.callback_metrics.items():
            if keep(key) and getattr(value, "numel", lambda: 1)() == 1:
                row[key] = value.detach().clone() if hasattr(value, "detach") else value
        if row:
            self.rows.append({"epoch": float(trainer.current_epoch), "step": float(trainer.global_step), **row})

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.rows, self.written = [], {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._record(trainer, lambda k: k.startswith("train") and not k.endswith("_epoch"))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._record(trainer, lambda k: not k.startswith("train"))

    def frame(self):
        import pandas as pd

        rows = [{k: (v if k in ("epoch", "step") else _scalar(v)) for k, v in r.items()} for r in self.rows]
        frame = pd.DataFrame(rows)
        if frame.empty:
            return frame
        metrics = sorted(c for c in frame.columns if c not in ("epoch", "step"))
        frame = frame[["epoch", "step", *metrics]]
        frame[["epoch", "step"]] = frame[["epoch", "step"]].astype(int)
        return frame

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        frame = self.frame()
        if frame.empty:
            print("polymodal: no metrics were logged during this fit (nothing to plot)")
            return
        from polymodal.io import atomic_path

        out = Path(self.dirpath) if self.dirpath else _run_dir(trainer)
        csv_path = out / "metrics.csv"
        with atomic_path(csv_path) as tmp:
            frame.to_csv(tmp, index=False)
        self.written["metrics"] = csv_path
        print(f"polymodal: metrics of {trainer.global_step} steps -> {csv_path}")
        if self.plot:
            try:
                self.written["curves"] = draw_curves(frame, out / "curves.png", title=str(out))
                print(f"polymodal: curves -> {self.written['curves']}  (redraw: polymodal plot {out})")
            except ImportError as exc:
                print(f"polymodal: no curves.png: {exc}")
        print(summary_table(frame))


# ----------------------------------------------------------------------------- predictions
def _config_strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _config_strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _config_strings(v)
    elif hasattr(value, "__dict__") and type(value).__name__ == "Namespace":
        yield from _config_strings(vars(value))


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")


def weights_source(trainer: pl.Trainer, model_config: Any, ckpt_path: str | None) -> str | None:
    """Where the weights of a ``predict`` run come from, or ``None`` for random initialisation.

    The rule (documented in the README): weights count as loaded when ``--ckpt_path`` is given;
    or a callback loads them (:class:`LoadEncoderWeights`, or any callback with a true
    ``loads_weights`` attribute); or the model config names a pretrained model anywhere in its
    arguments: a registered short name (``minilm-l6``), a folder holding ``config.json`` /
    ``model.safetensors``, or a weights file (``.safetensors``, ``.bin``, ``.pt``, ``.pth``,
    ``.ckpt``, ``.gguf``). Anything else is a random model.
    """
    if ckpt_path:
        return f"checkpoint {ckpt_path}"
    for cb in trainer.callbacks:  # type: ignore[attr-defined]
        if isinstance(cb, LoadEncoderWeights) or getattr(cb, "loads_weights", False):
            return f"{type(cb).__name__}({getattr(cb, 'path', '')})"
    try:
        from polymodal.plugins_manager import pretrained_names

        named = set(pretrained_names())
    except Exception:  # noqa: BLE001 - a broken plugin must not hide a checkpoint decision
        named = set()
    for text in _config_strings(model_config):
        if text in named:
            return f"pretrained model {text!r}"
        if len(text) > 4096 or "\n" in text:
            continue
        path = Path(text).expanduser()
        try:
            if path.is_dir() and any((path / f).is_file() for f in ("config.json", "model.safetensors")):
                return f"pretrained model folder {text}"
            if path.is_file() and path.suffix in _WEIGHT_SUFFIXES:
                return f"weights file {text}"
        except OSError:
            continue
    return None


class PredictionWriter(BasePredictionWriter):
    """Write what ``predict_step`` returns to one file and say where.

    By type of the per-batch output: a tensor -> ``.npy`` (rows concatenated); a list/tuple of
    tensors (one per input column, e.g. a bi-encoder System's embeddings) -> one ``.npy`` holding
    ``(K, N, D)`` when the shapes agree, else ``.npz`` with ``output_0``...; a dict of tensors
    (a System with heads: probabilities or values per head) -> a table, ``.csv`` or ``.parquet``
    (chosen by ``output``'s suffix), one column per head (``head_0``, ``head_1``... for vectors), after the
    batch's ``meta`` columns (ids, dates, reference values: :class:`~polymodal.contracts.Batch`).

    Args:
        output: the file; default ``<trainer.default_root_dir>/predictions.<ext>``.
        after_fit: also predict the data module's ``predict`` split when fitting ends, with the weights the fit
            ended with (``polymodal sweep`` only fits; the file then lies in each run's folder).
    """

    def __init__(self, output: str | None = None, after_fit: bool = False) -> None:
        super().__init__(write_interval="batch")
        self.output = output
        self.after_fit = after_fit
        self.parts: list[Any] = []
        self.metas: list[dict[str, list[Any]]] = []
        self.path: Path | None = None

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.parts, self.metas, self.path = [], [], None

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        self.parts.append(prediction)
        self.metas.append(dict(getattr(batch, "meta", None) or {}))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.after_fit:
            return
        import torch

        loader = trainer.datamodule.predict_dataloader()  # type: ignore[attr-defined]
        was_training = pl_module.training
        pl_module.eval()
        self.on_predict_start(trainer, pl_module)
        try:
            with torch.inference_mode():
                for i, batch in enumerate(loader):
                    batch = pl_module.transfer_batch_to_device(batch, pl_module.device, 0)
                    self.write_on_batch_end(trainer, pl_module, pl_module.predict_step(batch, i), None, batch, i, 0)
        finally:
            pl_module.train(was_training)
        self.on_predict_end(trainer, pl_module)

    def _target(self, trainer: pl.Trainer, ext: str) -> Path:
        if self.output:
            return Path(self.output)
        return Path(trainer.default_root_dir) / f"predictions{ext}"

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        if not self.parts:
            print("polymodal: predict produced no batches; nothing written")
            return
        import numpy as np
        import torch

        from polymodal.io import atomic_path

        first = self.parts[0]

        def is_array(x: Any) -> bool:
            return isinstance(x, torch.Tensor | np.ndarray)

        def cat(items: list[Any]) -> np.ndarray:
            return torch.cat([torch.as_tensor(t).detach().float().cpu().reshape(len(t), -1) for t in items]).numpy()

        if not isinstance(first, Mapping) and not is_array(first):
            if isinstance(first, list | tuple) and first and all(is_array(t) for t in first):
                pass  # one tensor per input column: handled below
            else:  # rows of plain values (strings, numbers, records): one table row each
                flat = [row for part in self.parts for row in (part if isinstance(part, list | tuple) else [part])]
                self.parts = [{"prediction": [r if not isinstance(r, Mapping) else dict(r) for r in flat]}]
                first = self.parts[0]
        if isinstance(first, Mapping):
            import pandas as pd

            keys = list(self.metas[0]) if len(self.metas) == len(self.parts) and self.metas else []
            columns: dict[str, Any] = {m: [v for meta in self.metas for v in meta[m]] for m in keys}
            for key in first:
                values = [p[key] for p in self.parts]
                if all(is_array(v) for v in values):
                    arr = cat(values)
                    if arr.shape[1] == 1 and torch.as_tensor(values[0]).ndim <= 1:
                        columns[key] = arr[:, 0]
                    else:
                        for j in range(arr.shape[1]):
                            columns[f"{key}_{j}"] = arr[:, j]
                else:  # strings or other per-row values
                    columns[key] = [v for part in values for v in (part if isinstance(part, list | tuple) else [part])]
            frame = pd.DataFrame(columns)
            target = self._target(trainer, ".csv")
            with atomic_path(target) as tmp:
                if target.suffix == ".parquet":
                    frame.to_parquet(tmp, index=False)
                else:
                    frame.to_csv(tmp, index=False)
            what = f"{len(frame)} rows x {len(frame.columns)} columns ({', '.join(list(frame.columns)[:6])})"
        else:
            if isinstance(first, list | tuple):
                arrays = [cat([p[i] for p in self.parts]) for i in range(len(first))]
            else:
                arrays = [cat(self.parts)]
            same = len({a.shape for a in arrays}) == 1
            target = self._target(trainer, ".npy" if same else ".npz")
            with atomic_path(target) as tmp:
                with open(tmp, "wb") as fh:
                    if same:
                        data = arrays[0] if len(arrays) == 1 else np.stack(arrays)
                        np.save(fh, data)
                        what = f"array {tuple(data.shape)}"
                        what += " (one slice per input column)" if len(arrays) > 1 else ""
                    else:
                        np.savez(fh, **{f"output_{i}": a for i, a in enumerate(arrays)})  # type: ignore[arg-type]
                        what = ", ".join(f"output_{i} {tuple(a.shape)}" for i, a in enumerate(arrays))
        self.path = target
        print(f"polymodal: wrote predictions, {what}, to {target}")


class ModelSoup(pl.Callback):
    """Model soup (KaLM-Embedding-V2): the trainable weights become the uniform average of several sets.

    The ingredients are the final weights of this run, snapshots taken every ``every_n_steps`` optimizer steps
    from ``start_step`` on, and the parameters of other runs' Lightning checkpoints (other seeds or stages of
    the same System, read with ``weights_only=True``). The average replaces the module's trainable parameters
    when training ends (``on_train_end``), so a later :class:`ExportModel` (``on_fit_end``) exports the soup;
    metrics logged during training are those of the unaveraged weights (score the export, e.g. with
    ``polymodal bench``).

    Args:
        every_n_steps: snapshot period in optimizer steps (0: no snapshots, only final weights + ingredients).
        start_step: first step that may be snapshotted.
        ingredients: checkpoint files whose parameters of the same names and shapes join the average.

    Reference: Wortsman et al., "Model soups" (ICML 2022), https://arxiv.org/abs/2203.05482 (uniform soup);
    KaLM-Embedding-V2 (Zhao et al. 2025), https://arxiv.org/abs/2506.20923 ("model-soup parameter averaging").
    """

    def __init__(self, every_n_steps: int = 0, start_step: int = 0, ingredients: list[str] | None = None) -> None:
        if every_n_steps < 0 or start_step < 0:
            raise ValueError(f"ModelSoup: every_n_steps and start_step must be >= 0, got {every_n_steps}, {start_step}")
        self.every_n_steps, self.start_step = int(every_n_steps), int(start_step)
        self.ingredients = [str(p) for p in ingredients or []]
        self._sum: dict[str, Any] = {}
        self._count = 0
        self._last_step = -1

    @staticmethod
    def _trainable(pl_module: Any) -> dict[str, Any]:
        return {n: p for n, p in pl_module.named_parameters() if p.requires_grad}

    def _add(self, params: Mapping[str, Any]) -> None:
        for name, value in params.items():
            value = value.detach().float().cpu()
            self._sum[name] = value.clone() if name not in self._sum else self._sum[name] + value
        self._count += 1

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        step = int(trainer.global_step)
        due = self.every_n_steps and step >= max(self.start_step, 1) and step % self.every_n_steps == 0
        if due and step != self._last_step:  # several batches per step under gradient accumulation
            self._add(self._trainable(pl_module))
            self._last_step = step

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import torch

        params = self._trainable(pl_module)
        if self._last_step != int(trainer.global_step):
            self._add(params)  # the final weights, unless the last step was just snapshotted
        for file in self.ingredients:
            path = resolve_path(file)
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state) if isinstance(state, dict) else state
            for name, p in params.items():
                if name not in state:
                    raise ValueError(f"ModelSoup: {path} has no parameter {name!r} (not a checkpoint of this System)")
                if tuple(state[name].shape) != tuple(p.shape):
                    raise ValueError(
                        f"ModelSoup: {path}: {name!r} has shape {tuple(state[name].shape)}, expected {tuple(p.shape)}"
                    )
            self._add({name: state[name] for name in params})
        with torch.no_grad():
            for name, p in params.items():
                p.copy_((self._sum[name] / self._count).to(p.dtype))
        log.info("model soup: %d ingredients averaged over %d parameters", self._count, len(params))
        self._sum, self._count = {}, 0
