"""Causal language modelling of any model that maps ``input_ids`` (and ``labels``) to a loss."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import OptimizerCallable
from torch import Tensor, nn

from polymodal.distributed import gather_concat
from polymodal.schedules import with_warmup_cosine

__all__ = ["LanguageModelSystem"]


def _adamw(params):
    return torch.optim.AdamW(params, lr=3e-4, weight_decay=0.1, betas=(0.9, 0.95))


class LanguageModelSystem(pl.LightningModule):
    """Next-token prediction with a Hugging Face style causal LM.

    The model is called as ``model(input_ids=..., attention_mask=..., labels=...)`` and must
    return an object with ``.loss`` (mean cross-entropy over predicted tokens; Hugging Face
    shifts the labels itself) -- every ``transformers`` ``*ForCausalLM`` does. Batches are dicts
    with ``input_ids`` ``(B, T)`` and optionally ``attention_mask`` and ``labels`` (``-100`` =
    ignored); labels default to the inputs.

    Logged: ``train/loss`` per step; ``val/loss`` (token-weighted over the whole validation set,
    gathered from every rank) and ``val/ppl = exp(val/loss)`` per validation run. Parameters
    with ``requires_grad=False`` (a frozen embedding table) are left out of the optimizer.

    Args:
        model: the causal LM.
        optimizer: optimizer factory (``class_path: torch.optim.AdamW`` in YAML).
        warmup_ratio: fraction of steps with linear warm-up.
        min_lr_ratio: cosine decay after warm-up ends at this fraction of the peak rate; set
            ``warmup_ratio=0`` and ``min_lr_ratio=1`` for a constant rate.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerCallable = _adamw,
        warmup_ratio: float = 0.05,
        min_lr_ratio: float = 0.1,
    ) -> None:
        super().__init__()
        if not 0.0 <= warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {warmup_ratio}")
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
        self.model = model
        self.optimizer_factory = optimizer
        self.warmup_ratio = warmup_ratio
        self.min_lr_ratio = min_lr_ratio
        self._val: list[tuple[Tensor, Tensor]] = []

    def _loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        ids = batch["input_ids"]
        labels = batch.get("labels", ids)
        out = self.model(input_ids=ids, attention_mask=batch.get("attention_mask"), labels=labels)
        loss = out.loss if hasattr(out, "loss") else out["loss"]
        if loss is None:
            raise ValueError(f"{type(self.model).__name__} returned no loss; it must accept labels=")
        n_tokens = (labels[:, 1:] != -100).sum()
        return loss, n_tokens

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, _ = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val = []

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        loss, n = self._loss(batch)
        self._val.append((loss.detach().double() * n, n.detach().double()))

    def _log_loss(self, stage: str) -> None:
        """Token-weighted loss and perplexity over the whole split (gathered from every rank)."""
        if not self._val:
            return
        total = gather_concat(torch.stack([s for s, _ in self._val])).sum()
        count = gather_concat(torch.stack([n for _, n in self._val])).sum()
        self._val = []
        loss = float(total / count.clamp(min=1))
        self.log(f"{stage}/loss", loss, prog_bar=stage == "val")
        self.log(f"{stage}/ppl", math.exp(min(loss, 50.0)))

    def on_validation_epoch_end(self) -> None:
        self._log_loss("val")

    test_step = validation_step
    on_test_epoch_start = on_validation_epoch_start

    def on_test_epoch_end(self) -> None:
        self._log_loss("test")

    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters")
        optimizer = self.optimizer_factory(params)
        return with_warmup_cosine(
            optimizer, self.trainer.estimated_stepping_batches, self.warmup_ratio, self.min_lr_ratio
        )
