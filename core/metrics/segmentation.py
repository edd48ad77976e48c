"""Text segmentation from pair heads: Pk and WindowDiff over whole documents, as a step metric.

A segmentation split holds one row per *gap* of every document (sentence ``j`` | sentence ``j + 1``), with
the document id, the gap's position and the reference boundary (1: a new segment starts after the gap) in
``batch.meta``. :class:`Segmentation` turns head outputs into a boundary score per gap, reassembles every
document (gathered over devices), and reports mean per-document Pk / WindowDiff in %
(:mod:`polymodal.evaluation.segmentation`) for two decodings: boundaries above a threshold and the true
number of boundaries (``*_known_k``). The threshold is tuned on the validation documents (lowest Pk) and
kept for ``test``, so test figures never see test labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics.utilities import dim_zero_cat

from polymodal.evaluation.segmentation import score_segmentations, tune_threshold
from polymodal.metrics.step import StepMetric

if TYPE_CHECKING:  # pragma: no cover
    from polymodal.system import Step

__all__ = ["Segmentation"]


class Segmentation(StepMetric):
    """Pk / WindowDiff of boundaries scored by heads over a pair of columns.

    The boundary score of a gap is the mean over ``heads`` of: for a one-output head, ``1 - sigmoid``
    (a "same topic" or "is next" logit); for a multi-class head (topic classification of one column),
    ``1 - sum_c p(c | left) p(c | right)``, the probability that the two sides differ in topic.

    Args:
        heads: the heads scoring each gap.
        columns: the (left, right) input columns, the two sides of a gap.
        document: meta column with each row's document id.
        position: meta column with the gap's index in its document.
        boundary: meta column with the reference (1: boundary after the gap, 0: none).

    Keys: ``pk``, ``windowdiff`` (threshold tuned on val), ``pk_known_k``, ``windowdiff_known_k``,
    ``threshold``, ``documents``.
    """

    def __init__(
        self,
        heads: Sequence[str],
        columns: Sequence[str] = ("left", "right"),
        document: str = "doc",
        position: str = "gap",
        boundary: str = "boundary",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.heads = [str(h) for h in heads]
        if not self.heads or len(columns) != 2:
            raise ValueError(f"Segmentation needs at least one head and two columns, got {heads}, {columns}")
        self.columns = [str(c) for c in columns]
        self.meta = (document, position, boundary)
        self.threshold: float | None = None
        self._stage = "val"
        for name in ("score", "doc", "pos", "ref"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def requires(self) -> tuple[list[str], list[str]]:
        return self.columns, []

    def applies(self, step: Step) -> bool:
        return super().applies(step) and all(m in step.batch.meta for m in self.meta)

    def _score(self, step: Step, head: str) -> Tensor:
        out = step.head(head).float()  # (B,) or (B, C)
        if out.dim() == 1:
            return 1.0 - torch.sigmoid(out)
        module = step.system.heads[head]
        left, right = (module([step.embed(c)]).float().softmax(-1) for c in self.columns)  # (B, C) each
        return 1.0 - (left * right).sum(-1)

    def update(self, step: Step) -> None:
        self._stage = step.stage
        score = torch.stack([self._score(step, h) for h in self.heads]).mean(0).detach()  # (B,)
        document, position, boundary = (step.batch.meta[m] for m in self.meta)
        self.score.append(score)
        for state, values in ((self.doc, document), (self.pos, position), (self.ref, boundary)):
            state.append(torch.as_tensor(np.asarray(values, dtype=np.float64), device=score.device))

    def documents(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per-document (scores, reference boundaries) in gap order, from everything gathered."""
        score, doc, pos, ref = (
            dim_zero_cat(s).double().cpu().numpy() for s in (self.score, self.doc, self.pos, self.ref)
        )
        scores, refs = [], []
        for d in np.unique(doc):
            rows = np.flatnonzero(doc == d)
            rows = rows[np.argsort(pos[rows], kind="stable")]
            if len(rows) >= 2:
                scores.append(score[rows])
                refs.append(ref[rows].round().astype(np.int64))
        return scores, refs

    def compute(self) -> dict[str, float]:
        scores, refs = self.documents()
        if not scores:
            return {}
        if self._stage != "test":  # tune on validation documents, keep for test
            self.threshold = tune_threshold(scores, refs)
        out = score_segmentations(scores, refs, self.threshold)
        if self.threshold is not None:
            out["threshold"] = self.threshold
        out["documents"] = float(len(scores))
        return out
