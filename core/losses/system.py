"""A ContrastiveSystem that lets context-aware losses drive the forward pass.

With an ordinary loss it behaves exactly like
:class:`~polymodal.systems.contrastive.ContrastiveSystem`. With a loss that has
``uses_context = True`` (``CachedInfoNCELoss``, ``Matryoshka2DLoss``,
``EmbeddingDistillationLoss``) the training step builds a
:class:`~polymodal.losses.context.BatchContext` and calls ``loss_from_context``; validation
still uses the plain ``loss(embeddings, target)`` path.

YAML: ``class_path: polymodal.losses.system.BatchLossSystem`` with the same arguments as
``ContrastiveSystem``.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from polymodal.features import Features
from polymodal.losses.context import BatchContext
from polymodal.systems.contrastive import ContrastiveSystem

__all__ = ["BatchLossSystem"]


class BatchLossSystem(ContrastiveSystem):
    """:class:`ContrastiveSystem` + support for losses that need the batch context."""

    def batch_context(self, batch: dict[str, Any]) -> BatchContext:
        columns = self._columns or [str(i) for i in range(len(batch["inputs"]))]

        def encode(inputs: dict[str, Tensor], j: int) -> Features:
            return self.encoder_for(columns[j])(inputs)

        def pool(features: Features) -> Tensor:
            emb = self.pooler(features)  # (B, D)
            return F.normalize(emb, dim=-1) if self.normalize else emb

        return BatchContext(inputs=list(batch["inputs"]), target=batch["target"], encode=encode, pool=pool)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        if not getattr(self.loss_fn, "uses_context", False):
            return super().training_step(batch, batch_idx)
        context = self.batch_context(batch)
        loss = self.loss_fn.loss_from_context(context)
        B = int(next(iter(batch["inputs"][0].values())).shape[0])
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=B)
        return loss
