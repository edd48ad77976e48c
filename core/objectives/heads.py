"""Losses on head outputs: regression, binary, multiclass and soft-score targets, with label checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from polymodal.objectives.base import STAGES, Objective

if TYPE_CHECKING:  # pragma: no cover
    from polymodal.system import Step

__all__ = ["HeadLoss", "TaskKind", "check_labels"]

TaskKind = Literal["regression", "binary", "multiclass", "soft"]


def check_labels(y: Tensor, kind: TaskKind, num_classes: int, what: str) -> None:
    """Raise a one-line ``ValueError`` naming ``what`` when labels do not fit the task kind.

    ``binary``: 0 or 1; ``multiclass``: integers in ``[0, num_classes)``; ``soft``: in ``[0, 1]``
    (after scaling); ``regression``: finite. NaN rows are left out before this check (missing labels).
    """
    if kind == "regression":
        bad = ~torch.isfinite(y)
    elif kind == "binary":
        bad = (y != 0) & (y != 1)
    elif kind == "soft":
        bad = (y < 0) | (y > 1) | ~torch.isfinite(y)
    else:
        bad = (y != y.round()) | (y < 0) | (y >= num_classes)
    if bool(bad.any()):
        value = float(y[bad][0])
        expected = {
            "regression": "a finite number",
            "binary": "0 or 1",
            "soft": "a score in [0, 1] after dividing by scale",
            "multiclass": f"an integer class index in [0, {num_classes})",
        }[kind]
        raise ValueError(f"{what}: label {value:g} is not {expected} ({int(bad.sum())} such label(s) in the batch)")


class HeadLoss(Objective):
    """Loss on one head's output against one target.

    Args:
        head: the head's name (a key of the System's ``heads``).
        kind: ``"regression"`` (MSE on ``target / scale``), ``"binary"`` (BCE with logits; labels 0/1),
            ``"multiclass"`` (cross-entropy; labels are class indices), or ``"soft"`` (BCE with logits on
            soft labels ``target / scale`` in [0, 1], the sentence-transformers cross-encoder loss).
        target: target name (default: the batch's only target); for ``regression`` / ``soft``, a list of K
            target names is one ``(B, K)`` target for a head with K outputs (e.g. a teacher's K class logits,
            the Distilled Sentence Embedding student's regression target).
        weight: weight in the total loss.
        pos_weight: binary only: weight of positives (``neg / pos`` balances classes).
        scale: targets are divided by it (regression and soft).
        label_smoothing: multiclass only.
        stages: where it runs.

    Rows whose target is NaN are left out (a multi-task table with missing labels); a label that does not
    fit the kind is a one-line error, never a silent cast.
    """

    def __init__(
        self,
        head: str,
        kind: TaskKind = "regression",
        target: str | Sequence[str] | None = None,
        weight: float = 1.0,
        pos_weight: float | None = None,
        scale: float = 1.0,
        label_smoothing: float = 0.0,
        stages: Sequence[str] = STAGES,
    ) -> None:
        super().__init__(weight, stages)
        if kind not in ("regression", "binary", "multiclass", "soft"):
            raise ValueError(f"kind must be regression, binary, multiclass or soft, got {kind!r}")
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.targets: list[str] | None = None
        if target is not None and not isinstance(target, str):
            self.targets = [str(t) for t in target]
            if kind not in ("regression", "soft") or not self.targets:
                raise ValueError(
                    f"a list of targets needs kind regression or soft and >= 1 name, got {kind!r}, {target}"
                )
            target = None
        self.head, self.kind, self.target = head, kind, target
        self.pos_weight = pos_weight
        self.scale = float(scale)
        self.label_smoothing = float(label_smoothing)

    def requires(self) -> tuple[list[str], list[str]]:
        if self.targets:
            return [], list(self.targets)
        return [], [self.target] if self.target else []

    def forward(self, step: Step) -> Tensor:
        out = step.head(self.head)  # (B,) or (B, C)
        if self.targets:
            return self._vector(step, out)
        y = step.target(self.target)
        if y.dim() != 1:
            raise ValueError(f"objective {self.name!r}: target must be (B,), got {tuple(y.shape)}")
        keep = ~torch.isnan(y)
        if not bool(keep.any()):
            return out.sum() * 0.0  # no label in this batch: a zero that keeps the graph
        y, out = y[keep].float(), out[keep].float()
        what = f"objective {self.name!r} (head {self.head!r}, target {step.target_name(self.target)!r})"
        if self.kind in ("regression", "soft"):
            y = y / self.scale
        num_classes = out.shape[-1] if out.dim() == 2 else 1
        check_labels(y, self.kind, num_classes, what)
        if self.kind == "multiclass":
            if out.dim() != 2:
                raise ValueError(f"{what}: a multiclass head needs out_dim >= 2")
            return F.cross_entropy(out, y.long(), label_smoothing=self.label_smoothing)
        if self.kind == "regression":
            return F.mse_loss(out, y)
        pw = None if self.pos_weight is None else out.new_tensor(self.pos_weight)
        return F.binary_cross_entropy_with_logits(out, y, pos_weight=pw)

    def _vector(self, step: Step, out: Tensor) -> Tensor:
        """MSE (regression) or BCE (soft) of a ``(B, K)`` head output against K stacked target columns."""
        assert self.targets is not None
        what = f"objective {self.name!r} (head {self.head!r}, targets {self.targets})"
        y = torch.stack([step.target(t) for t in self.targets], dim=-1).float() / self.scale  # (B, K)
        if out.dim() != 2 or out.shape[-1] != y.shape[-1]:
            raise ValueError(
                f"{what}: the head gives {tuple(out.shape)}, expected (B, {y.shape[-1]}): one output per target"
            )
        keep = ~torch.isnan(y).any(dim=-1)
        if not bool(keep.any()):
            return out.sum() * 0.0
        y, out = y[keep], out[keep].float()
        check_labels(y, self.kind, 1, what)
        if self.kind == "regression":
            return F.mse_loss(out, y)
        return F.binary_cross_entropy_with_logits(out, y)
