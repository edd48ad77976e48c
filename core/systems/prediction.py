"""Supervised prediction on any modality: regression / classification heads on pooled features.

One or more input columns are encoded (any modality's encoder), pooled to ``(B, D)``,
concatenated, and fed to one head per :class:`Task`. Several tasks train together with a
weighted sum of their losses (multi-task). The encoder can be frozen (linear probing /
feature extraction) or fine-tuned, optionally with its own learning rate.

Metrics are computed over the *whole* validation/test set (gathered from every rank) at the
end of each epoch and logged as ``<stage>/<metric>`` (one task) or ``<stage>/<task>/<metric>``:

* binary: accuracy, precision, recall, F1 (positive class, threshold 0.5), ROC-AUC, PR-AUC
  (average precision);
* multiclass: accuracy, macro-F1;
* regression: MSE, MAE, Pearson, Spearman.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.cli import OptimizerCallable
from torch import Tensor, nn

from polymodal.distributed import gather_concat
from polymodal.metrics.functional import binary_metrics, multiclass_metrics, regression_metrics
from polymodal.modality import Encoder, Processor
from polymodal.model import EmbeddingModel
from polymodal.poolers import MeanPooler, Pooler
from polymodal.schedules import with_warmup_linear_decay
from polymodal.systems.routing import route_encoder

__all__ = ["PredictionSystem", "Task"]


@dataclass
class Task:
    """One prediction target.

    Attributes:
        name: used in metric names and in ``predict`` outputs.
        kind: ``"binary"`` (one logit, BCE), ``"multiclass"`` (``num_classes`` logits, cross
            entropy; targets are class indices), or ``"regression"`` (one value, MSE).
        num_classes: classes of a multiclass task.
        target_index: column of a ``(B, K)`` target matrix; ``None`` uses a ``(B,)`` target.
        weight: weight of this task's loss in the sum.
        pos_weight: binary only: weight of positive examples (``neg / pos`` balances classes).
    """

    name: str = "target"
    kind: Literal["binary", "multiclass", "regression"] = "regression"
    num_classes: int = 2
    target_index: int | None = None
    weight: float = 1.0
    pos_weight: float | None = None

    @property
    def out_dim(self) -> int:
        return self.num_classes if self.kind == "multiclass" else 1


def _adamw(params):
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)


# ----------------------------------------------------------------------- system
class PredictionSystem(pl.LightningModule):
    """Encoder(s) + pooler + one head per task.

    Inputs: with one ``encoder``, every input column shares it and the pooled vectors of the
    ``num_inputs`` columns are concatenated; with ``encoders`` (a dict), ``routes`` maps each
    column to an encoder key (default: the column's own name) and every encoder takes one
    column, concatenated in the dict's order (feature-level fusion of several modalities).

    Args:
        encoder: one encoder shared by all input columns.
        encoders: named encoders, one per input column.
        routes: input column -> encoder key.
        num_inputs: number of input columns for a shared ``encoder`` (e.g. 2 for pairs).
        pooler: features -> ``(B, D)``; mean pooling by default.
        use_encoder_pooled: use the encoder's own ``Features.pooled`` (e.g. an RNN's last
            state) when it provides one, instead of the pooler.
        tasks: what to predict; default one regression target.
        head_hidden: width of a hidden layer in each head (0: a linear head).
        dropout: dropout before the heads.
        freeze_encoder: keep encoder weights fixed (and in eval mode); only heads train.
        encoder_lr: learning rate of the encoder parameters (default: the optimizer's).
        optimizer: optimizer factory (``class_path: torch.optim.AdamW`` in YAML); AdamW(lr=1e-3,
            weight_decay=0.01) by default.
        warmup_ratio: linear warm-up fraction then linear decay; 0 keeps a constant rate.
        threshold: probability threshold for binary precision/recall/F1.
    """

    def __init__(
        self,
        encoder: Encoder | None = None,
        encoders: dict[str, Encoder] | None = None,
        routes: dict[str, str] | None = None,
        num_inputs: int = 1,
        pooler: Pooler | None = None,
        use_encoder_pooled: bool = False,
        tasks: list[Task] | None = None,
        head_hidden: int = 0,
        dropout: float = 0.0,
        freeze_encoder: bool = False,
        encoder_lr: float | None = None,
        optimizer: OptimizerCallable | None = None,
        warmup_ratio: float = 0.0,
        threshold: float = 0.5,
    ) -> None:
        super().__init__()
        if (encoder is None) == (encoders is None):
            raise ValueError("give exactly one of encoder (shared) or encoders (one per input column)")
        self.shared = encoder is not None
        self.encoders = nn.ModuleDict({"shared": encoder} if encoder is not None else dict(encoders or {}))
        if not self.encoders:
            raise ValueError("encoders is empty")
        self.routes = dict(routes or {})
        unknown = sorted(set(self.routes.values()) - set(self.encoders))
        if unknown:
            raise ValueError(f"routes name unknown encoder(s) {unknown}; encoders: {sorted(self.encoders)}")
        if num_inputs < 1:
            raise ValueError(f"num_inputs must be >= 1, got {num_inputs}")
        self.num_inputs = num_inputs if self.shared else len(self.encoders)
        self.pooler = pooler if pooler is not None else MeanPooler()
        self.use_encoder_pooled = use_encoder_pooled
        self.tasks = list(tasks) if tasks else [Task()]
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        for t in self.tasks:
            if t.kind not in ("binary", "multiclass", "regression"):
                raise ValueError(f"task {t.name!r}: kind must be binary, multiclass or regression, got {t.kind!r}")
            if t.kind == "multiclass" and t.num_classes < 2:
                raise ValueError(f"task {t.name!r}: num_classes must be >= 2")
        dim = sum(int(e.output_dim) for e in self.encoders.values()) if not self.shared else 0
        if self.shared:
            dim = int(self.encoders["shared"].output_dim) * self.num_inputs
        self.in_dim = dim
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({t.name: self._head(dim, head_hidden, t.out_dim) for t in self.tasks})
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            for p in self.encoders.parameters():
                p.requires_grad_(False)
        self.encoder_lr = encoder_lr
        self.optimizer_factory = optimizer if callable(optimizer) else _adamw
        if not 0.0 <= warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {warmup_ratio}")
        self.warmup_ratio = warmup_ratio
        self.threshold = threshold
        self._columns: list[str] | None = None
        self._outputs: list[tuple[dict[str, Tensor], Tensor]] = []
        self.metrics_: dict[str, dict[str, float]] = {}

    @staticmethod
    def _head(dim: int, hidden: int, out: int) -> nn.Module:
        if hidden <= 0:
            return nn.Linear(dim, out)
        return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, out))

    # ---------------------------------------------------------------- routing
    def encoder_for(self, column: str) -> Encoder:
        return route_encoder(self.encoders, self.routes, column)

    def _ordered_columns(self, columns: Sequence[str]) -> list[str]:
        if self.shared:
            if len(columns) != self.num_inputs:
                raise ValueError(f"the model was built for num_inputs={self.num_inputs} column(s), got {list(columns)}")
            return list(columns)
        keys = [self.routes.get(c, c) for c in columns]
        if sorted(keys) != sorted(self.encoders):
            raise ValueError(
                f"input columns {list(columns)} route to encoders {keys}; every encoder "
                f"({sorted(self.encoders)}) needs exactly one column"
            )
        return list(columns)

    def processors_for(self, columns: Sequence[str]) -> list[Processor]:
        """One processor per input column (the data module's collate uses them)."""
        self._columns = self._ordered_columns(columns)
        return [self.encoder_for(c).processor for c in self._columns]

    def fit_input_statistics(self, columns: Sequence[str], values: Sequence[Sequence[Any]]) -> list[str]:
        """Fit input normalisers (e.g. time-series statistics) on *training* values only.

        Data modules call this once with the training split's raw values per column; encoders
        that have ``fit_normalizer`` and are not fitted yet are fitted. Returns the columns fitted.
        """
        fitted = []
        for column, vals in zip(columns, values):
            enc = self.encoder_for(column)
            if hasattr(enc, "fit_normalizer") and not getattr(enc, "normalizer_fitted", False):
                enc.fit_normalizer(vals)
                fitted.append(column)
        return fitted

    def embedding_model(self, column: str | None = None) -> EmbeddingModel:
        """The inference embedding model of one column's encoder (for ``ExportModel``)."""
        col = column or (self._columns[0] if self._columns else next(iter(self.encoders)))
        return EmbeddingModel(self.encoder_for(col), self.pooler)

    # ---------------------------------------------------------------- forward
    def _pool(self, features) -> Tensor:
        if self.use_encoder_pooled and features.pooled is not None:
            return features.pooled
        return self.pooler(features)

    def features(self, inputs: Sequence[dict[str, Tensor]]) -> Tensor:
        """Concatenated pooled features of every input column ``(B, sum D)``."""
        columns = self._columns or (
            [str(i) for i in range(len(inputs))] if self.shared else list(self.encoders)[: len(inputs)]
        )
        if len(inputs) != len(columns):
            raise ValueError(f"expected {len(columns)} input column(s), got {len(inputs)}")
        pooled = [self._pool(self.encoder_for(c)(x)) for x, c in zip(inputs, columns)]  # each (B, D_i)
        return torch.cat(pooled, dim=-1)

    def forward(self, inputs: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        """Raw head outputs per task: ``(B,)`` logits/values or ``(B, C)`` class logits."""
        h = self.dropout(self.features(inputs))  # (B, D)
        out = {}
        for t in self.tasks:
            y = self.heads[t.name](h)
            out[t.name] = y if t.kind == "multiclass" else y.squeeze(-1)
        return out

    def _target(self, task: Task, target: Tensor) -> Tensor:
        if task.target_index is None:
            if target.dim() != 1:
                raise ValueError(f"task {task.name!r}: target is {tuple(target.shape)}; set target_index")
            return target
        if target.dim() != 2 or task.target_index >= target.shape[1]:
            raise ValueError(
                f"task {task.name!r}: target_index {task.target_index} not in target {tuple(target.shape)}"
            )
        return target[:, task.target_index]

    def loss(self, outputs: dict[str, Tensor], target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Weighted sum of per-task losses; rows whose target is NaN are left out of a task."""
        parts: dict[str, Tensor] = {}
        total = outputs[self.tasks[0].name].new_zeros(())
        for t in self.tasks:
            y, out = self._target(t, target), outputs[t.name]
            keep = ~torch.isnan(y)
            if not bool(keep.any()):
                continue
            y, out = y[keep], out[keep]
            if t.kind == "binary":
                pw = None if t.pos_weight is None else out.new_tensor(t.pos_weight)
                part = F.binary_cross_entropy_with_logits(out, y.float(), pos_weight=pw)
            elif t.kind == "multiclass":
                part = F.cross_entropy(out, y.long())
            else:
                part = F.mse_loss(out, y.float())
            parts[t.name] = part
            total = total + t.weight * part
        return total, parts

    def probabilities(self, outputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Sigmoid for binary, softmax for multiclass, identity for regression."""
        out = {}
        for t in self.tasks:
            y = outputs[t.name].float()
            out[t.name] = torch.sigmoid(y) if t.kind == "binary" else (y.softmax(-1) if t.kind == "multiclass" else y)
        return out

    # --------------------------------------------------------------- training
    def on_train_epoch_start(self) -> None:
        if self.freeze_encoder:
            self.encoders.eval()  # frozen encoders keep dropout/batch-norm in inference mode

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        if batch["target"] is None:
            raise ValueError("PredictionSystem needs targets: set data.target")
        outputs = self(batch["inputs"])
        loss, parts = self.loss(outputs, batch["target"])
        B = batch["target"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=B)
        if len(parts) > 1:
            for name, part in parts.items():
                self.log(f"train/{name}/loss", part, batch_size=B)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        outputs = self(batch["inputs"])
        if batch["target"] is None:
            return
        loss, _ = self.loss(outputs, batch["target"])
        self.log(f"{self._stage()}/loss", loss, sync_dist=True, batch_size=batch["target"].shape[0])
        probs = {k: v.detach().float() for k, v in self.probabilities(outputs).items()}
        self._outputs.append((probs, batch["target"].detach().float()))

    def _stage(self) -> str:
        trainer = self._trainer
        return "test" if trainer is not None and trainer.testing else "val"

    def on_validation_epoch_start(self) -> None:
        self._outputs = []

    def on_validation_epoch_end(self) -> None:
        self._log_metrics(self._stage())

    test_step = validation_step
    on_test_epoch_start = on_validation_epoch_start
    on_test_epoch_end = on_validation_epoch_end

    def _log_metrics(self, stage: str) -> None:
        if not self._outputs:
            return
        target = gather_concat(torch.cat([t for _, t in self._outputs])).cpu()
        results: dict[str, dict[str, float]] = {}
        for t in self.tasks:
            prob = gather_concat(torch.cat([o[t.name] for o, _ in self._outputs])).cpu().numpy()
            y = self._target(t, target).numpy()
            keep = ~np.isnan(y)
            y, prob = y[keep], prob[keep]
            if not len(y):
                continue
            if t.kind == "binary":
                m = binary_metrics(y, prob, self.threshold)
            elif t.kind == "multiclass":
                m = multiclass_metrics(y, prob)
            else:
                m = regression_metrics(y, prob)
            results[t.name] = m
            prefix = f"{stage}/" if len(self.tasks) == 1 else f"{stage}/{t.name}/"
            for key, value in m.items():
                if math.isfinite(value):
                    # Every rank holds the full gathered arrays, so every rank logs the same number.
                    self.log(prefix + key, value, prog_bar=key in ("f1", "accuracy", "spearman"))
        self._outputs = []
        self.metrics_[stage] = (
            results.get(self.tasks[0].name, {})
            if len(self.tasks) == 1
            else {f"{k}/{m}": v for k, d in results.items() for m, v in d.items()}
        )

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Tensor]:
        return {k: v.float().cpu() for k, v in self.probabilities(self(batch["inputs"])).items()}

    # ------------------------------------------------------------- optimizers
    def configure_optimizers(self) -> Any:
        head_params = [p for n, p in self.named_parameters() if not n.startswith("encoders.") and p.requires_grad]
        enc_params = [p for p in self.encoders.parameters() if p.requires_grad]
        if self.encoder_lr is not None and enc_params:
            groups: Any = [{"params": enc_params, "lr": self.encoder_lr}, {"params": head_params}]
        else:
            groups = enc_params + head_params
        optimizer = self.optimizer_factory(groups)
        return with_warmup_linear_decay(optimizer, self.trainer.estimated_stepping_batches, self.warmup_ratio)
