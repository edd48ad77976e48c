"""The siamese multi-task segmenter of Lee et al. (2023) as a preset: it only fills System arguments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pytorch_lightning.cli import OptimizerCallable

from polymodal.heads import LinearHead, PairHead
from polymodal.metrics.segmentation import Segmentation
from polymodal.modality import Encoder
from polymodal.objectives import HeadLoss
from polymodal.poolers import Pooler
from polymodal.system import System

__all__ = ["SiameseSegmenter"]

HEADS = ("stp", "nsp", "tc")


def SiameseSegmenter(  # noqa: N802 - a preset reads like the class it builds
    tower: Encoder,
    heads: Sequence[Literal["stp", "nsp", "tc"]] = HEADS,
    num_topics: int = 400,
    dropout: float = 0.0,
    optimizer: OptimizerCallable | None = None,
    pooler: Pooler | None = None,
    lr_groups: dict[str, float] | None = None,
    warmup_ratio: float = 0.0,
) -> System:
    """Both sentences of a gap through one ``tower`` (``u``, ``v``); STP (same topic) and NSP (next
    sentence) are binary :class:`~polymodal.heads.PairHead` s on ``[u, v, |u-v|, u*v]``, TC (topic of the
    left sentence) a ``num_topics``-way :class:`~polymodal.heads.LinearHead` on ``u``; losses summed.
    Metrics: Pk / WindowDiff scored by the first head of STP, NSP, TC present (``val/pk``, ...) and, with
    several heads, by the mean of their scores (``val/mean/pk``, ...).

    The ``tower`` is either a feature network over cached frozen sentence embeddings (``FeatureMLP``, its
    own pooled output) or a sentence encoder trained through the three objectives (``TextEncoder``, pooled
    by ``pooler``, default mean); ``lr_groups`` (glob -> lr) gives the heads a larger rate than a pretrained
    encoder."""
    heads = [h for h in HEADS if h in heads]
    if not heads or len(heads) != len(set(heads)):
        raise ValueError(f"heads must be a non-empty subset of {list(HEADS)}")
    pair = ["left", "right"]
    built = {
        h: LinearHead(pair[:1], num_topics, dropout=dropout) if h == "tc" else PairHead(pair, 1, dropout=dropout)
        for h in heads
    }
    metrics = {"segmentation": Segmentation(heads[:1])}
    if len(heads) > 1:
        metrics["segmentation_mean"] = Segmentation(heads, prefix="mean/")
    return System(
        tower=tower,
        use_encoder_pooled=True,
        heads=built,
        objectives={h: HeadLoss(h, "multiclass" if h == "tc" else "binary", target=h) for h in heads},
        metrics=metrics,
        optimizer=optimizer,
        pooler=pooler,
        lr_groups=lr_groups,
        warmup_ratio=warmup_ratio,
    )
