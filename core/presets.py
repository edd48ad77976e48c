"""Presets: factories that fill :class:`polymodal.System`'s arguments for common systems.

They define no training logic of their own (every step is the System's); they exist so that a recipe's
YAML stays short. In YAML ``class_path: ContrastiveSystem`` with ``init_args`` works as for a class.

* :func:`ContrastiveSystem` — bi-encoders / towers trained on a pooled-embedding loss, validated by the
  cosine correlation with a score (STS).
* :func:`PredictionSystem` — classification / regression heads on pooled features of any modality.
* :func:`CrossEncoderSystem` — a text pair read jointly by one transformer, a linear score head.
* :func:`LanguageModelSystem` — causal language modelling, validated by perplexity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from pytorch_lightning.cli import OptimizerCallable
from torch import nn

from polymodal.heads import LinearHead
from polymodal.metrics.step import HeadMetrics, PairSimilarity, Perplexity, StepMetric
from polymodal.modality import Encoder
from polymodal.objectives import CausalLMLoss, HeadLoss, Objective
from polymodal.poolers import ClsPooler, Pooler
from polymodal.system import System

__all__ = ["ContrastiveSystem", "CrossEncoderSystem", "LanguageModelSystem", "PredictionSystem", "Task"]


def ContrastiveSystem(  # noqa: N802 - a preset reads like the class it builds
    encoder: Encoder | None = None,
    encoders: dict[str, Encoder] | None = None,
    routes: dict[str, str] | None = None,
    pooler: Pooler | None = None,
    loss: nn.Module | None = None,
    normalize: bool = False,
    metrics: dict[str, StepMetric] | None = None,
    optimizer: OptimizerCallable | None = None,
    warmup_ratio: float = 0.1,
    init_from: str | None = None,
    objectives: dict[str, Objective] | None = None,
) -> System:
    """Encoder(s) + pooler + a loss over the embeddings of the input columns (default InfoNCE).

    ``objectives``: further named objectives summed with ``loss`` (logged as ``train/<name>``; e.g. ULLME's
    ``GenerationAugmentedLoss`` beside the contrastive loss); the loss is then named ``contrastive``.

    With one ``encoder`` every column shares it (a siamese bi-encoder); with ``encoders`` ``routes`` maps
    column -> encoder. Validation logs ``val/spearman`` / ``val/pearson`` of the two columns' cosine with
    the target whenever the validation split has two input columns and a target (``metrics`` replaces it).
    ``init_from``: a checkpoint whose matching tensors initialise the system (e.g. stage 2 from stage 1).
    """
    from polymodal.losses import InfoNCELoss

    base = loss if loss is not None else InfoNCELoss()
    return System(
        tower=encoder,
        towers=encoders,
        routes=routes,
        pooler=pooler,
        normalize=normalize,
        loss=None if objectives else base,
        objectives={"contrastive": base, **objectives} if objectives else None,
        metrics=metrics if metrics is not None else {"sts": PairSimilarity()},
        optimizer=optimizer,
        warmup_ratio=warmup_ratio,
        init_from=init_from,
    )


@dataclass
class Task:
    """One prediction target of :func:`PredictionSystem`.

    Attributes:
        name: used in metric names (``val/<name>/<metric>`` with several tasks) and ``predict`` outputs.
        kind: ``"binary"`` (one logit, BCE), ``"multiclass"`` (``num_classes`` logits, cross-entropy; targets
            are class indices) or ``"regression"`` (one value, MSE).
        num_classes: classes of a multiclass task.
        target: the target column (default: the data's only target).
        weight: weight of this task's loss in the sum.
        pos_weight: binary only: weight of positive examples (``neg / pos`` balances classes).
    """

    name: str = "target"
    kind: Literal["binary", "multiclass", "regression"] = "regression"
    num_classes: int = 2
    target: str | None = None
    weight: float = 1.0
    pos_weight: float | None = None


def _adamw_head(params) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)


def PredictionSystem(  # noqa: N802
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
    metrics: dict[str, StepMetric] | None = None,
) -> System:
    """Encoder(s) + pooler + one head per task on the concatenated pooled features of every input column.

    With one ``encoder`` shared by ``num_inputs`` columns, or ``encoders`` (one per column, concatenated in
    the dict's order: feature-level fusion of several modalities). Metrics over the whole split (gathered
    across devices): binary accuracy / precision / recall / F1 / ROC-AUC / PR-AUC; multiclass accuracy /
    macro-F1; regression MSE / MAE / Pearson / Spearman; logged ``<stage>/<metric>`` for one task and
    ``<stage>/<task>/<metric>`` for several. ``freeze_encoder`` keeps the encoders fixed (linear probing);
    ``encoder_lr`` gives them their own learning rate. Default optimizer AdamW(lr=1e-3, weight_decay=0.01).
    ``metrics`` adds step metrics to the per-task ones (e.g. a :class:`~polymodal.metrics.step.HeadMean`
    over the tasks).
    """
    extra = dict(metrics or {})
    tasks = list(tasks) if tasks else [Task()]
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"task names must be unique, got {names}")
    heads, objectives, metrics = {}, {}, {}
    for t in tasks:
        if t.kind not in ("binary", "multiclass", "regression"):
            raise ValueError(f"task {t.name!r}: kind must be binary, multiclass or regression, got {t.kind!r}")
        if t.kind == "multiclass" and t.num_classes < 2:
            raise ValueError(f"task {t.name!r}: num_classes must be >= 2")
        out = t.num_classes if t.kind == "multiclass" else 1
        heads[t.name] = LinearHead(None, out, hidden=head_hidden, dropout=dropout, num_inputs=num_inputs)
        objectives[t.name] = HeadLoss(t.name, t.kind, target=t.target, weight=t.weight, pos_weight=t.pos_weight)
        prefix = "" if len(tasks) == 1 else f"{t.name}/"
        metrics[t.name] = HeadMetrics(t.name, t.kind, target=t.target, threshold=threshold, prefix=prefix)
    clash = sorted(set(metrics) & set(extra))
    if clash:
        raise ValueError(f"metrics {clash} clash with task names; rename them")
    metrics.update(extra)
    return System(
        tower=encoder,
        towers=encoders,
        routes=routes,
        pooler=pooler,
        use_encoder_pooled=use_encoder_pooled,
        heads=heads,
        objectives=objectives,
        metrics=metrics,
        frozen=["towers.*"] if freeze_encoder else None,
        lr_groups={"towers.*": encoder_lr} if encoder_lr is not None else None,
        optimizer=optimizer if optimizer is not None else _adamw_head,
        warmup_ratio=warmup_ratio,
    )


def CrossEncoderSystem(  # noqa: N802
    encoder: Encoder,
    pooler: Pooler | None = None,
    score_scale: float = 5.0,
    optimizer: OptimizerCallable | None = None,
    warmup_ratio: float = 0.1,
    num_classes: int = 1,
) -> System:
    """A cross-encoder: the data's paired column (``inputs: [[sentence1, sentence2]]``) is tokenised as one
    pair and read by ``encoder``; a linear head on the ``[CLS]`` vector gives a score trained with BCE on
    ``score / score_scale`` (soft labels in [0, 1], sentence-transformers' default). Validation logs
    ``val/spearman`` / ``val/pearson`` of the sigmoid scores. Export with ``ExportModel(head="score")``: a
    :class:`~polymodal.plugins.text.cross_encoder.CrossEncoder` (``predict`` / ``rank``).

    ``num_classes > 1`` makes it a pair classifier instead (NLI three-way): ``num_classes`` logits trained
    with cross-entropy on class indices (``data.classes`` maps text labels), ``val/accuracy`` /
    ``val/macro_f1``; the export's ``predict`` gives class probabilities."""
    from polymodal.plugins.text.cross_encoder import pair_processor

    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1 (1: a score), got {num_classes}")
    kind = "soft" if num_classes == 1 else "multiclass"
    return System(
        tower=encoder,
        pooler=pooler if pooler is not None else ClsPooler(),
        processors={"shared": pair_processor(encoder)},
        heads={"score": LinearHead(None, num_classes)},
        objectives={"score": HeadLoss("score", kind, scale=score_scale if kind == "soft" else 1.0)},
        metrics={"score": HeadMetrics("score", kind, scale=score_scale if kind == "soft" else 1.0)},
        optimizer=optimizer,
        warmup_ratio=warmup_ratio,
    )


def _adamw_lm(params) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=3e-4, weight_decay=0.1, betas=(0.9, 0.95))


def LanguageModelSystem(  # noqa: N802
    model: nn.Module,
    optimizer: OptimizerCallable | None = None,
    warmup_ratio: float = 0.05,
    min_lr_ratio: float = 0.1,
    frozen: list[str] | None = None,
) -> System:
    """Next-token prediction with a Hugging Face style causal LM (tower ``lm``, input column ``text`` holding
    ``input_ids`` / ``attention_mask`` / ``labels``). Logs ``val/token_loss`` and ``val/ppl`` (token-weighted
    over the whole split); warm-up then cosine decay to ``min_lr_ratio``; default AdamW(lr=3e-4,
    weight_decay=0.1, betas=(0.9, 0.95)). Frozen parameters (e.g. a glyph embedding table with
    ``requires_grad=False``) are left out of the optimizer."""
    return System(
        towers={"lm": model},
        objectives={"lm": CausalLMLoss("lm")},
        metrics={"lm": Perplexity("lm")},
        frozen=frozen,
        optimizer=optimizer if optimizer is not None else _adamw_lm,
        schedule="cosine",
        warmup_ratio=warmup_ratio,
        min_lr_ratio=min_lr_ratio,
    )
