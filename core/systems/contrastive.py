"""Contrastive / alignment training of one or more encoders (bi-encoders, CLIP-style towers)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.cli import OptimizerCallable
from torch import Tensor, nn

from polymodal.distributed import gather_concat
from polymodal.features import Features
from polymodal.losses import InfoNCELoss
from polymodal.losses.context import BatchContext
from polymodal.metrics.functional import pearson, spearman
from polymodal.modality import Encoder, Processor
from polymodal.model import EmbeddingModel
from polymodal.poolers import MeanPooler, Pooler
from polymodal.schedules import with_warmup_linear_decay
from polymodal.systems.routing import route_encoder

__all__ = ["ContrastiveSystem"]


def _adamw(params):
    return torch.optim.AdamW(params, lr=2e-5, weight_decay=0.01)


class ContrastiveSystem(pl.LightningModule):
    """Encoders + pooler + a loss over the embeddings of several input columns.

    Columns are routed to encoders: with one ``encoder`` every column shares it (a siamese
    bi-encoder); with ``encoders`` (a dict) ``routes`` maps column name -> encoder key.

    Validation: when the validation batches carry a target and two input columns, the cosine
    of each pair is correlated with the target over the *whole* validation set (gathered from
    every rank) and logged as ``val/spearman`` and ``val/pearson``; ``val/loss`` is always logged.

    Args:
        encoder: one encoder shared by every input column.
        encoders: named encoders (use with ``routes``) for multi-tower models.
        routes: input column -> encoder key (required with several encoders).
        pooler: features -> embedding; mean pooling by default.
        loss: loss over ``[emb_col0, emb_col1, ...]`` and the target; InfoNCE by default.
        normalize: L2-normalise embeddings before the loss and in the exported model.
        optimizer: optimizer factory (``class_path: torch.optim.AdamW`` in YAML); default AdamW,
            lr 2e-5, weight decay 0.01.
        warmup_ratio: fraction of steps with linear warm-up, followed by linear decay to 0
            (the sentence-transformers schedule); 0 disables the schedule.
    """

    def __init__(
        self,
        encoder: Encoder | None = None,
        encoders: dict[str, Encoder] | None = None,
        routes: dict[str, str] | None = None,
        pooler: Pooler | None = None,
        loss: nn.Module | None = None,
        normalize: bool = False,
        optimizer: OptimizerCallable | None = None,
        warmup_ratio: float = 0.1,
    ) -> None:
        super().__init__()
        if (encoder is None) == (encoders is None):
            raise ValueError("give exactly one of encoder (shared) or encoders (named towers)")
        self.encoders = nn.ModuleDict({"shared": encoder} if encoder is not None else dict(encoders or {}))
        if not self.encoders:
            raise ValueError("encoders is empty")
        self.routes = dict(routes or {})
        unknown = sorted(set(self.routes.values()) - set(self.encoders))
        if unknown:
            raise ValueError(f"routes name unknown encoder(s) {unknown}; encoders: {sorted(self.encoders)}")
        self.pooler = pooler if pooler is not None else MeanPooler()
        self.loss_fn = loss if loss is not None else InfoNCELoss()
        self.normalize = normalize
        self.optimizer_factory = optimizer if optimizer is not None else _adamw
        if not 0.0 <= warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {warmup_ratio}")
        self.warmup_ratio = warmup_ratio
        self._columns: list[str] | None = None
        self._val: list[tuple[Tensor, Tensor]] = []

    # ---------------------------------------------------------------- routing
    def encoder_for(self, column: str) -> Encoder:
        return route_encoder(self.encoders, self.routes, column)

    def processors_for(self, columns: Sequence[str]) -> list[Processor]:
        """One processor per input column (the data module's collate uses them)."""
        self._columns = list(columns)
        return [self.encoder_for(c).processor for c in columns]

    def embed(self, inputs: dict[str, Tensor], column: str) -> Tensor:
        emb = self.pooler(self.encoder_for(column)(inputs))  # (B, D)
        return F.normalize(emb, dim=-1) if self.normalize else emb

    def embedding_model(self, column: str | None = None) -> EmbeddingModel:
        """The inference model for one column's tower (the first column by default)."""
        col = column or (self._columns[0] if self._columns else next(iter(self.encoders)))
        return EmbeddingModel(self.encoder_for(col), self.pooler, self.normalize)

    # --------------------------------------------------------------- training
    def _embeddings(self, batch: dict[str, Any]) -> list[Tensor]:
        columns = self._columns or [str(i) for i in range(len(batch["inputs"]))]
        return [self.embed(x, c) for x, c in zip(batch["inputs"], columns)]

    def batch_context(self, batch: dict[str, Any]) -> BatchContext:
        """What a loss that drives the forward pass itself needs (GradCache, 2DMSE, distillation)."""
        columns = self._columns or [str(i) for i in range(len(batch["inputs"]))]

        def encode(inputs: dict[str, Tensor], j: int) -> Features:
            return self.encoder_for(columns[j])(inputs)

        def pool(features: Features) -> Tensor:
            emb = self.pooler(features)  # (B, D)
            return F.normalize(emb, dim=-1) if self.normalize else emb

        return BatchContext(inputs=list(batch["inputs"]), target=batch["target"], encode=encode, pool=pool)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        if getattr(self.loss_fn, "uses_context", False):
            # Losses with uses_context=True (CachedInfoNCELoss, Matryoshka2DLoss, EmbeddingDistillationLoss)
            # run the encoders themselves; validation still uses the plain loss(embeddings, target) path.
            loss = self.loss_fn.loss_from_context(self.batch_context(batch))
            B = int(next(iter(batch["inputs"][0].values())).shape[0])
            self.log("train/loss", loss.detach(), prog_bar=True, batch_size=B)
            return loss
        embeddings = self._embeddings(batch)
        loss = self.loss_fn(embeddings, batch["target"])
        self.log("train/loss", loss, prog_bar=True, batch_size=embeddings[0].shape[0])
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        embeddings = self._embeddings(batch)
        B = embeddings[0].shape[0]
        try:
            loss = self.loss_fn(embeddings, batch["target"])
            self.log("val/loss", loss, sync_dist=True, batch_size=B)
        except ValueError:
            pass  # e.g. a val set without the columns the loss needs
        if batch["target"] is not None and len(embeddings) == 2:
            cos = F.cosine_similarity(embeddings[0].float(), embeddings[1].float(), dim=-1)
            self._val.append((cos.detach(), batch["target"].detach().float()))

    def on_validation_epoch_start(self) -> None:
        self._val = []

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        cos = gather_concat(torch.cat([c for c, _ in self._val])).cpu().numpy()
        gold = gather_concat(torch.cat([t for _, t in self._val])).cpu().numpy()
        self._val = []
        if len(cos) < 2:
            return
        # Every rank holds the full gathered arrays, so every rank logs the same number.
        self.log("val/spearman", spearman(cos, gold), prog_bar=True)
        self.log("val/pearson", pearson(cos, gold))

    test_step = validation_step
    on_test_epoch_start = on_validation_epoch_start

    def on_test_epoch_end(self) -> None:
        if not self._val:
            return
        cos = gather_concat(torch.cat([c for c, _ in self._val])).cpu().numpy()
        gold = gather_concat(torch.cat([t for _, t in self._val])).cpu().numpy()
        self._val = []
        self.log("test/spearman", spearman(cos, gold))
        self.log("test/pearson", pearson(cos, gold))

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[Tensor]:
        return [e.float().cpu() for e in self._embeddings(batch)]

    # ------------------------------------------------------------- optimizers
    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        return with_warmup_linear_decay(optimizer, self.trainer.estimated_stepping_batches, self.warmup_ratio)
