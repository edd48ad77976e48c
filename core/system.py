"""The one training LightningModule: a :class:`System` composed of injected parts.

::

    batch (polymodal.contracts.Batch: inputs per column, targets, meta)
      -> Step: per column, its tower's Features and pooled embedding, computed once, on demand
      -> objectives (weighted sum = the loss)      heads read pooled embeddings of named columns
      -> metrics (torchmetrics, gathered over the whole split on every device)

A system from a paper is a composition written in YAML: which towers encode which columns (``routes``),
how they are pooled, which heads sit on top, which objectives are minimised with which weights, which
metrics are logged, which parameters stay frozen, and how the optimiser is scheduled. The presets in
:mod:`polymodal.presets` are factories that only fill these arguments.

Logged names: ``train/loss`` and, with several objectives, ``train/<objective>``; in validation and test
``<stage>/loss``, ``<stage>/<objective>`` and every metric key (``val/spearman``, ``test/c2i_r1``, ...).
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, cast

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.cli import OptimizerCallable
from torch import Tensor, nn

from polymodal.checkpoint import SafeCheckpointLoading
from polymodal.contracts import Batch
from polymodal.features import Features
from polymodal.heads import Head
from polymodal.metrics.step import StepMetric
from polymodal.modality import Encoder, Processor
from polymodal.objectives.base import EmbeddingLoss, Objective
from polymodal.objectives.heads import HeadLoss
from polymodal.poolers import MeanPooler, Pooler

__all__ = ["Step", "System"]

log = logging.getLogger(__name__)

SHARED = "shared"
Schedule = Literal["linear", "cosine", "constant"]


def _adamw(params: Any) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=2e-5, weight_decay=0.01)


class Step:
    """Per-step context shared by every objective and metric of one batch.

    Each column's features and pooled embedding are computed once, on first use. Objectives that drive the
    towers themselves (GradCache mini-batches, per-layer features) pass their own ``inputs`` and get
    uncached results. Columns may be given by name or by position.

    Attributes:
        system: the :class:`System`.
        batch: the :class:`~polymodal.contracts.Batch`.
        stage: ``"train"``, ``"val"``, ``"test"`` or ``"predict"``.
        records: values objectives leave for metrics (``records["lm/nll"] = (nll_sum, tokens)``).
    """

    def __init__(self, system: System, batch: Batch, stage: str) -> None:
        self.system, self.batch, self.stage = system, batch, stage
        self.records: dict[str, tuple[Tensor, ...]] = {}
        self._features: dict[str, Features] = {}
        self._embeddings: dict[str, Tensor] = {}
        self._heads: dict[str, Tensor] = {}
        self._memo: dict[str, Any] = {}

    # ------------------------------------------------------------------ batch
    @property
    def training(self) -> bool:
        return self.stage == "train"

    @property
    def columns(self) -> list[str]:
        return self.batch.columns

    @property
    def num_columns(self) -> int:
        return len(self.batch.inputs)

    @property
    def inputs(self) -> list[dict[str, Any]]:
        """Processed inputs of every column, in column order."""
        return list(self.batch.inputs.values())

    def column(self, column: str | int) -> str:
        if isinstance(column, int):
            return self.columns[column]
        if column not in self.batch.inputs:
            raise KeyError(f"the batch has no input column {column!r} (columns: {self.columns})")
        return column

    def only_column(self) -> str:
        if len(self.columns) != 1:
            raise ValueError(f"name the input column: the batch has {self.columns}")
        return self.columns[0]

    def inputs_of(self, column: str | int) -> dict[str, Any]:
        return self.batch.inputs[self.column(column)]

    def target_name(self, name: str | None = None) -> str | None:
        if name is not None:
            return name
        if len(self.batch.targets) == 1:
            return next(iter(self.batch.targets))
        return None

    def target(self, name: str | None = None, required: bool = True) -> Tensor | None:
        """The named target (default: the batch's only one); ``None`` when absent and not ``required``."""
        key = self.target_name(name)
        if key is None or key not in self.batch.targets:
            if not required:
                return None
            have = list(self.batch.targets) or "none"
            raise ValueError(f"the batch has no target {name!r} (targets: {have}); set data.target")
        return self.batch.targets[key]

    def has(self, columns: Sequence[str], targets: Sequence[str]) -> bool:
        return all(c in self.batch.inputs for c in columns) and all(t in self.batch.targets for t in targets)

    def row_ids(self) -> list[int]:
        if not self.batch.rows:
            raise ValueError("the batch carries no row numbers; give the metric a group target")
        return list(self.batch.rows)

    # ------------------------------------------------------------- features
    def encode(self, inputs: dict[str, Any], column: str | int) -> Features:
        """Features of ``inputs`` with ``column``'s tower (no caching)."""
        return self.system.tower_for(self.column(column))(inputs)

    def pool(self, features: Features, column: str | int = 0) -> Tensor:
        """``column``'s pooler (and normalisation) applied to ``features``: ``(B, D)``."""
        return self.system.pool(features, self.column(column))

    def features(self, column: str | int, inputs: dict[str, Any] | None = None) -> Features:
        name = self.column(column)
        if inputs is not None:
            return self.encode(inputs, name)
        if name not in self._features:
            self._features[name] = self.encode(self.batch.inputs[name], name)
        return self._features[name]

    def embed(self, column: str | int, inputs: dict[str, Any] | None = None) -> Tensor:
        """Pooled (and, if configured, L2-normalised) embedding ``(B, D)`` of one column."""
        name = self.column(column)
        if inputs is not None:
            return self.pool(self.encode(inputs, name), name)
        if name not in self._embeddings:
            self._embeddings[name] = self.pool(self.features(name), name)
        return self._embeddings[name]

    def embeddings(self, columns: Sequence[str | int] | None = None) -> list[Tensor]:
        return [self.embed(c) for c in (self.columns if columns is None else columns)]

    def head(self, name: str) -> Tensor:
        """The named head's output on its columns' embeddings (computed once)."""
        if name not in self._heads:
            if name not in self.system.heads:
                raise KeyError(f"no head {name!r}; heads: {sorted(self.system.heads)}")
            head = cast(Head, self.system.heads[name])
            columns = head.columns if head.columns is not None else self.columns  # None: every input column
            if getattr(head, "reads", "pooled") == "sequence":  # token-level heads read Features
                self._heads[name] = head([self.features(c) for c in columns])
            else:
                self._heads[name] = head(self.embeddings(columns))
        return self._heads[name]

    # ---------------------------------------------------------------- sharing
    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """Compute a value once per step and share it (e.g. image prefix tokens used by two objectives)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def record(self, key: str, *values: Tensor) -> None:
        """Leave values for metrics (e.g. a token-weighted NLL for :class:`~polymodal.metrics.Perplexity`)."""
        self.records[key] = values


def _named(parts: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    out = dict(parts or {})
    for name in out:
        if not isinstance(name, str) or not name or "/" in name or "." in name:
            raise ValueError(f"{what} names must be non-empty strings without '/' or '.', got {name!r}")
    return out


class System(SafeCheckpointLoading, pl.LightningModule):
    """Towers, poolers, heads, objectives and metrics, injected.

    Args:
        tower: one tower shared by every input column (a siamese bi-encoder); or give ``towers``.
        towers: named towers (encoders of any modality, or other modules such as a causal LM).
        routes: input column -> tower name. Default: every column to the single tower, else the tower named
            like the column.
        pooler: one pooler for every tower (default mean pooling); or ``poolers`` per tower name.
        poolers: tower name -> pooler.
        normalize: L2-normalise pooled embeddings (before objectives, metrics and in exported models).
        use_encoder_pooled: use a tower's own ``Features.pooled`` (an RNN's last state, a CNN's global
            pool) when it returns one, instead of the pooler.
        heads: named heads (:mod:`polymodal.heads`); sized from the towers' widths.
        loss: a single objective (named ``loss``); or give ``objectives``.
        objectives: name -> objective (:mod:`polymodal.objectives`). A plain pooled-embedding loss
            (``loss(embeddings, target)``) is wrapped in :class:`~polymodal.objectives.EmbeddingLoss`.
        metrics: name -> :class:`~polymodal.metrics.StepMetric` (computed over the whole val / test split).
        processors: input column (or tower name) -> processor, overriding the tower's (e.g. a pair tokenizer).
        frozen: parameter-name globs kept fixed (``"towers.text.*"``); fully frozen modules stay in eval mode
            while training (no dropout, no batch-norm updates).
        trainable: globs re-enabled after ``frozen`` (``"towers.lm.model.layers.29.*"``).
        save_frozen: keep frozen parameters in checkpoints (``False``: checkpoints hold only what trains and
            the frozen parts are rebuilt from their sources when a checkpoint is loaded).
        init_from: a checkpoint whose weights initialise the matching parameters (names and shapes must
            match; read with ``weights_only=True``).
        optimizer: optimizer factory (``class_path: torch.optim.AdamW`` in YAML); default AdamW(lr=2e-5,
            weight_decay=0.01). Only trainable parameters are given to it.
        lr_groups: parameter-name glob -> learning rate (e.g. a smaller rate for a pretrained tower).
        schedule: ``"linear"`` (warm-up then linear decay to 0, sentence-transformers'), ``"cosine"`` (warm-up
            then cosine to ``min_lr_ratio``) or ``"constant"``.
        warmup_ratio: fraction of steps with linear warm-up.
        min_lr_ratio: final learning-rate fraction of the cosine schedule.
    """

    def __init__(
        self,
        tower: Encoder | nn.Module | None = None,
        towers: dict[str, Encoder | nn.Module] | None = None,
        routes: dict[str, str] | None = None,
        pooler: Pooler | None = None,
        poolers: dict[str, Pooler] | None = None,
        normalize: bool = False,
        use_encoder_pooled: bool = False,
        heads: dict[str, Head] | None = None,
        loss: nn.Module | None = None,
        objectives: dict[str, nn.Module] | None = None,
        metrics: dict[str, StepMetric] | None = None,
        processors: dict[str, Processor] | None = None,
        frozen: list[str] | None = None,
        trainable: list[str] | None = None,
        save_frozen: bool = True,
        init_from: str | None = None,
        optimizer: OptimizerCallable | None = None,
        lr_groups: dict[str, float] | None = None,
        schedule: Schedule = "linear",
        warmup_ratio: float = 0.1,
        min_lr_ratio: float = 0.0,
    ) -> None:
        super().__init__()
        if (tower is None) == (towers is None):
            raise ValueError("give exactly one of tower (shared by every column) or towers (named)")
        self.towers = nn.ModuleDict({SHARED: tower} if tower is not None else _named(towers, "tower"))
        if not self.towers:
            raise ValueError("towers is empty")
        self.routes = dict(routes or {})
        unknown = sorted(set(self.routes.values()) - set(self.towers))
        if unknown:
            raise ValueError(f"routes name unknown tower(s) {unknown}; towers: {sorted(self.towers)}")
        if pooler is not None and poolers is not None:
            raise ValueError("give pooler (one for all towers) or poolers (per tower), not both")
        self.pooler = pooler if pooler is not None else (None if poolers else MeanPooler())
        self.poolers = nn.ModuleDict(_named(poolers, "pooler"))
        missing = sorted(set(self.poolers) - set(self.towers))
        if missing:
            raise ValueError(f"poolers name unknown tower(s) {missing}; towers: {sorted(self.towers)}")
        self.normalize = bool(normalize)
        self.use_encoder_pooled = bool(use_encoder_pooled)
        self.processor_overrides = dict(processors or {})
        self.heads = nn.ModuleDict(_named(heads, "head"))
        for name, head in self.heads.items():
            if not isinstance(head, Head):
                raise TypeError(f"head {name!r} must be a polymodal.heads.Head, got {type(head).__name__}")
            if not head.built:
                head.build(self._head_widths(head))
        if loss is not None and objectives is not None:
            raise ValueError("give loss (one objective) or objectives (named), not both")
        raw = {"loss": loss} if loss is not None else _named(objectives, "objective")
        if not raw:
            raise ValueError("a System needs at least one objective (loss or objectives)")
        self.objectives = nn.ModuleDict(
            {k: v if isinstance(v, Objective) else EmbeddingLoss(v) for k, v in raw.items()}
        )
        for name, objective in self._objectives():
            objective.name = name
            if isinstance(objective, HeadLoss) and objective.head not in self.heads:
                raise ValueError(f"objective {name!r} reads head {objective.head!r}; heads: {sorted(self.heads)}")
        self.metrics = nn.ModuleDict(_named(metrics, "metric"))
        for name, metric in self.metrics.items():
            if not isinstance(metric, StepMetric):
                raise TypeError(f"metric {name!r} must be a polymodal.metrics.StepMetric, got {type(metric).__name__}")
        self.frozen, self.trainable = list(frozen or []), list(trainable or [])
        self._apply_freezing()
        self.save_frozen = bool(save_frozen)
        self.strict_loading = self.save_frozen
        self.optimizer_factory = optimizer if optimizer is not None else _adamw
        self.lr_groups = dict(lr_groups or {})
        if schedule not in ("linear", "cosine", "constant"):
            raise ValueError(f"schedule must be linear, cosine or constant, got {schedule!r}")
        if not 0.0 <= warmup_ratio < 1.0 or not 0.0 <= min_lr_ratio <= 1.0:
            raise ValueError(
                f"need 0 <= warmup_ratio < 1 and 0 <= min_lr_ratio <= 1, got {warmup_ratio}, {min_lr_ratio}"
            )
        self.schedule, self.warmup_ratio, self.min_lr_ratio = schedule, float(warmup_ratio), float(min_lr_ratio)
        self._columns: list[str] | None = None
        self.results: dict[str, dict[str, float]] = {}
        self.init_from = init_from
        if init_from:
            self.load_weights(init_from)

    # ------------------------------------------------------------------ parts
    def _objectives(self) -> list[tuple[str, Objective]]:
        return [(k, cast(Objective, v)) for k, v in self.objectives.items()]

    def _metric_items(self) -> list[tuple[str, StepMetric]]:
        return [(k, cast(StepMetric, v)) for k, v in self.metrics.items()]

    # ---------------------------------------------------------------- routing
    def tower_name(self, column: str) -> str:
        if len(self.towers) == 1 and SHARED in self.towers:
            return SHARED
        name = self.routes.get(column, column)
        if name not in self.towers:
            raise KeyError(f"no tower for input column {column!r}: add it to routes (towers: {sorted(self.towers)})")
        return name

    def tower_for(self, column: str) -> nn.Module:
        return self.towers[self.tower_name(column)]

    def pooler_for(self, column: str) -> Pooler:
        name = self.tower_name(column)
        if name in self.poolers:
            return self.poolers[name]  # type: ignore[return-value]
        if self.pooler is None:
            raise KeyError(f"no pooler for tower {name!r}: add it to poolers")
        return self.pooler

    def _tower_width(self, name: str) -> int:
        dim = getattr(self.towers[name], "output_dim", None)
        if not isinstance(dim, int):
            raise ValueError(
                f"tower {name!r} ({type(self.towers[name]).__name__}) has no output_dim for a head to read"
            )
        return dim

    def _head_widths(self, head: Head) -> list[int]:
        """Input widths of a head: its columns' towers; without columns, every input column, i.e. the
        shared tower ``head.num_inputs`` times, or each named tower once in order."""
        if head.columns is not None:
            return [self._tower_width(self.tower_name(c)) for c in head.columns]
        if SHARED in self.towers:
            return [self._tower_width(SHARED)] * head.num_inputs
        return [self._tower_width(name) for name in self.towers]

    def pool(self, features: Features, column: str) -> Tensor:
        if self.use_encoder_pooled and features.pooled is not None:
            emb = features.pooled
        else:
            emb = self.pooler_for(column)(features)  # (B, D)
        return F.normalize(emb, dim=-1) if self.normalize else emb

    # ------------------------------------------------------ data contract
    def processors_for(self, columns: Sequence[str]) -> list[Processor]:
        """One processor per input column: an override from ``processors`` or the column's tower's."""
        self._columns = list(columns)
        out = []
        for c in columns:
            override = self.processor_overrides.get(c, self.processor_overrides.get(self.tower_name(c)))
            if override is not None:
                out.append(override)
                continue
            tower = self.tower_for(c)
            offered = getattr(tower, "processor", None)
            if not isinstance(tower, Encoder) and isinstance(offered, Processor):
                out.append(offered)  # a tower that is no Encoder but brings its processor (a causal LM)
                continue
            if not isinstance(tower, Encoder):
                raise TypeError(
                    f"input column {c!r}: tower {self.tower_name(c)!r} ({type(tower).__name__}) is not a polymodal "
                    "Encoder and has no processor; give one in processors"
                )
            out.append(tower.processor)
        return out

    def fit_input_statistics(self, columns: Sequence[str], values: Sequence[Sequence[Any]]) -> list[str]:
        """Fit input normalisers on the training split's raw values (each tower once)."""
        fitted, seen = [], set()
        for column, vals in zip(columns, values):
            name = self.tower_name(column)
            tower = self.towers[name]
            if name in seen or not isinstance(tower, Encoder):
                continue
            seen.add(name)
            if tower.fit_statistics(vals):
                fitted.append(column)
        return fitted

    def inference_model(self, column: str | None = None, *, tower: str | None = None, head: str | None = None) -> Any:
        """The inference model of one tower: an :class:`~polymodal.model.EmbeddingModel` (tower, its pooler,
        normalisation), or with ``head`` a cross-encoder scoring model (tower + linear head). A tower that is
        not an :class:`~polymodal.modality.Encoder` (a :class:`~polymodal.PrefixLM`) is its own inference
        model."""
        from polymodal.model import EmbeddingModel

        if tower is None:
            col = column or (self._columns[0] if self._columns else None)
            tower = self.tower_name(col) if col is not None else next(iter(self.towers))
        if tower not in self.towers:
            raise KeyError(f"no tower {tower!r}; towers: {sorted(self.towers)}")
        encoder = self.towers[tower]
        if not isinstance(encoder, Encoder):
            if head is not None:
                raise ValueError(f"tower {tower!r} ({type(encoder).__name__}) is its own inference model; no head")
            return encoder  # a model of its own (e.g. polymodal.PrefixLM, which saves itself)
        pooler = self.poolers[tower] if tower in self.poolers else self.pooler
        if head is not None:
            from polymodal.plugins.text.cross_encoder import CrossEncoder

            return CrossEncoder.from_head(encoder, pooler, self.heads[head], self._activation(head))
        return EmbeddingModel(encoder, pooler, self.normalize)

    embedding_model = inference_model

    def _activation(self, head: str) -> str:
        kinds = {o.kind for o in self.objectives.values() if isinstance(o, HeadLoss) and o.head == head}
        if kinds & {"binary", "soft"}:
            return "sigmoid"
        if "multiclass" in kinds:
            return "softmax"
        return "identity"

    # --------------------------------------------------------------- freezing
    def _apply_freezing(self) -> None:
        if not self.frozen and not self.trainable:
            return
        hit: set[str] = set()
        for name, p in self.named_parameters():
            if any(fnmatch.fnmatch(name, g) for g in self.frozen):
                p.requires_grad_(False)
                hit.add(name)
            if any(fnmatch.fnmatch(name, g) for g in self.trainable):
                p.requires_grad_(True)
        for pattern in self.frozen:
            if not any(fnmatch.fnmatch(n, pattern) for n in hit):
                raise ValueError(
                    f"frozen pattern {pattern!r} matches no parameter (e.g. {next(iter(self.state_dict()), '')})"
                )

    def _frozen_modules(self) -> list[nn.Module]:
        """Top-most submodules whose every parameter is frozen."""
        return [module for _, module in self._frozen_named()]

    def _frozen_named(self) -> list[tuple[str, nn.Module]]:
        out: list[tuple[str, nn.Module]] = []
        for name, module in self.named_modules():
            if not name or any(name.startswith(c + ".") for c, _ in out):
                continue
            params = list(module.parameters())
            if params and not any(p.requires_grad for p in params):
                out.append((name, module))
        return out

    def train(self, mode: bool = True) -> System:
        super().train(mode)
        if mode:
            for module in self._frozen_modules():
                module.eval()
        return self

    def on_train_epoch_start(self) -> None:
        # Lightning does not call train() itself: a fully frozen tower is put in eval mode here (no dropout, no
        # batch-norm statistic updates); validation loops restore exactly these modes afterwards.
        for module in self._frozen_modules():
            module.eval()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.save_frozen:
            return
        keep = self._trained_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}

    def _trained_keys(self) -> set[str]:
        """State-dict keys a ``save_frozen=False`` checkpoint keeps: trainable parameters and the persistent
        buffers of modules that are not fully frozen (a frozen backbone's batch-norm statistics are rebuilt
        from its source; non-persistent buffers such as rotary tables are never in a state dict)."""
        keys = {n for n, p in self.named_parameters() if p.requires_grad}
        frozen = {id(m) for m in self._frozen_modules()}
        skip = tuple(f"{n}." for n, m in self.named_modules() if id(m) in frozen)
        params = {n for n, _ in self.named_parameters(remove_duplicate=False)}
        for name in self.state_dict():
            if name not in params and not name.startswith(skip):
                keys.add(name)
        return keys

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.save_frozen:
            return
        missing = sorted(self._trained_keys() - set(checkpoint.get("state_dict", {})))
        if missing:
            raise ValueError(f"checkpoint lacks {len(missing)} trained tensor(s) of this System, e.g. {missing[0]!r}")

    def load_weights(self, path: str) -> list[str]:
        """Initialise matching parameters from a checkpoint (``weights_only``); returns the keys loaded."""
        from polymodal.checkpoint import AtomicCheckpointIO

        file = Path(path).expanduser()
        if not file.is_file():
            raise FileNotFoundError(f"init_from checkpoint not found: {file}")
        state = AtomicCheckpointIO().load_checkpoint(str(file), map_location="cpu").get("state_dict")
        if not isinstance(state, dict) or not state:
            raise ValueError(f"{file}: holds no state_dict")
        own = self.state_dict()
        unknown = [k for k in state if k not in own]
        if unknown:
            raise ValueError(f"{file}: {len(unknown)} tensor(s) do not fit this System, e.g. {unknown[0]!r}")
        for k, v in state.items():
            if tuple(own[k].shape) != tuple(v.shape):
                raise ValueError(f"{file}: {k} has shape {tuple(v.shape)}, this System {tuple(own[k].shape)}")
        self.load_state_dict(state, strict=False)
        log.info("initialised %d tensors from %s", len(state), file)
        return list(state)

    # ------------------------------------------------------------------ steps
    def _objectives_for(self, step: Step) -> list[Objective]:
        out = []
        for _, objective in self._objectives():
            if step.stage not in objective.stages:
                continue
            columns, targets = objective.requires()
            if step.stage != "train" and not step.has(columns, targets):
                continue  # e.g. an STS validation split under an NLI-triplet objective
            out.append(objective)
        return out

    def _loss(self, step: Step) -> tuple[Tensor | None, dict[str, Tensor]]:
        parts: dict[str, Tensor] = {}
        total: Tensor | None = None
        for objective in self._objectives_for(step):
            value = objective(step)
            parts[objective.name] = value
            total = objective.weight * value if total is None else total + objective.weight * value
        return total, parts

    def _log_losses(self, stage: str, total: Tensor | None, parts: dict[str, Tensor], size: int) -> None:
        if total is None:
            return
        sync = stage != "train"
        self.log(f"{stage}/loss", total.detach(), prog_bar=True, batch_size=size, sync_dist=sync)
        if len(self.objectives) > 1:
            for name, value in parts.items():
                self.log(f"{stage}/{name}", value.detach(), batch_size=size, sync_dist=sync)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        step = Step(self, batch, "train")
        total, parts = self._loss(step)
        if total is None:
            raise ValueError("no objective runs in training (check each objective's stages)")
        self._log_losses("train", total, parts, len(batch))
        for metric in self._metrics_for(step):
            metric.update(step)
        return total

    def _eval_step(self, batch: Batch, stage: str) -> None:
        step = Step(self, batch, stage)
        total, parts = self._loss(step)
        self._log_losses(stage, total, parts, len(batch))
        for metric in self._metrics_for(step):
            metric.update(step)

    def validation_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, "test")

    def predict_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Tensor] | list[Tensor]:
        """Head outputs by head name (activated: sigmoid / softmax as their objectives imply) when the System
        has heads, else the pooled embedding of every input column, a list in column order (what
        :class:`~polymodal.callbacks.PredictionWriter` writes as one ``(columns, rows, dim)`` ``.npy``)."""
        step = Step(self, batch, "predict")
        if self.heads:
            out = {}
            for name in self.heads:
                y = step.head(name).float()
                act = self._activation(name)
                out[name] = (torch.sigmoid(y) if act == "sigmoid" else y.softmax(-1) if act == "softmax" else y).cpu()
            return out
        return [e.float().cpu() for e in step.embeddings()]

    # ---------------------------------------------------------------- metrics
    def _metrics_for(self, step: Step) -> list[StepMetric]:
        out = []
        for _, metric in self._metric_items():
            if step.stage in metric.stages and metric.applies(step):
                out.append(metric)
        return out

    def _log_metrics(self, stage: str) -> None:
        results: dict[str, float] = {}
        for name, metric in self._metric_items():
            if stage not in metric.stages or metric.update_count == 0:
                continue
            values = metric.compute()
            metric.reset()
            for key, value in values.items():
                full = f"{metric.prefix}{key}"
                if full in results:
                    raise ValueError(
                        f"metric {name!r} logs {stage}/{full}, which another metric logs too; set a prefix"
                    )
                results[full] = float(value)
        for key, value in results.items():
            if value == value:  # NaN (undefined, e.g. one class only) is not logged
                # every rank computed the same gathered value, so no further sync is needed
                self.log(f"{stage}/{key}", value, prog_bar=key in ("spearman", "accuracy", "f1", "rsum"))
        self.results[stage] = results

    def on_train_epoch_end(self) -> None:
        self._log_metrics("train")

    def on_validation_epoch_start(self) -> None:
        for _, metric in self._metric_items():
            metric.reset()

    on_test_epoch_start = on_validation_epoch_start

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def on_train_start(self) -> None:
        loader = self.trainer.train_dataloader
        dataset = getattr(loader, "dataset", None)
        pairs = any(isinstance(o, EmbeddingLoss) for o in self.objectives.values())
        if pairs and dataset is not None and hasattr(dataset, "__len__") and len(dataset) < 2:
            raise ValueError(
                f"the training split has {len(dataset)} row(s): an embedding loss compares rows of a batch and "
                "needs at least 2"
            )

    # -------------------------------------------------------------- optimizers
    def configure_optimizers(self) -> Any:
        from polymodal.schedules import with_warmup_cosine, with_warmup_linear_decay

        named = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("the System has no trainable parameters (check frozen / trainable)")
        groups: dict[float | None, list[nn.Parameter]] = {}
        for name, p in named:
            lr = next((lr for g, lr in self.lr_groups.items() if fnmatch.fnmatch(name, g)), None)
            groups.setdefault(lr, []).append(p)
        if len(groups) == 1 and None in groups:
            params: Any = groups[None]
        else:
            params = [{"params": ps, **({} if lr is None else {"lr": lr})} for lr, ps in groups.items()]
        optimizer = self.optimizer_factory(params)
        total = self.trainer.estimated_stepping_batches
        if self.schedule == "constant":
            return optimizer
        if self.schedule == "cosine":
            return with_warmup_cosine(optimizer, total, self.warmup_ratio, self.min_lr_ratio)
        return with_warmup_linear_decay(optimizer, total, self.warmup_ratio)
