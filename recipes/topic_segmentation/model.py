"""Siamese multi-task segmenter over adjacent sentence pairs (Lee et al., 2023).

Both sentences of a pair go through the *same* tower (siamese): a frozen sentence embedding
(cached) followed by a trainable :class:`~polymodal.vector.FeatureMLP`,
giving ``u`` and ``v``. Heads:

* **STP** (same-topic prediction, binary): on ``[u, v, |u - v|, u * v]`` — are the two adjacent
  sentences in the same segment?
* **NSP** (next-sentence prediction, binary): on the same pair features — is ``v`` the sentence
  that follows ``u`` (negatives: a random sentence of another document)?
* **TC** (topic classification, multiclass): on ``u`` alone — which topic (on Choi: which source
  text) does the sentence belong to?

The losses are summed with the tasks' weights (:class:`PredictionSystem`'s multi-task loss); a
pair's missing labels (NaN: STP of an NSP negative, TC of an unseen topic) are left out of that
task. At inference the boundary score of a gap is ``1 - P(same topic)`` from STP; ablations
that drop STP use ``1 - P(next)`` (NSP) or the topic-change probability
``1 - sum_c p(c | u) p(c | v)`` (TC), and ``combine="mean"`` averages the available scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from pytorch_lightning.cli import OptimizerCallable
from torch import Tensor, nn

from polymodal.modality import Encoder, Processor
from polymodal.poolers import Pooler
from polymodal.systems.prediction import PredictionSystem, Task

__all__ = [
    "HEADS",
    "TARGET_COLUMNS",
    "IndexedVectorProcessor",
    "SiameseSegmenter",
    "boundary_scores",
    "gap_sides",
]

HEADS = ("stp", "nsp", "tc")
#: Column of each head's target in the data module's ``(B, 3)`` target matrix.
TARGET_COLUMNS = {"stp": 0, "nsp": 1, "tc": 2}
_PAIR_TASKS = ("stp", "nsp")


class IndexedVectorProcessor(Processor):
    """Rows of a fixed ``(S, D)`` feature matrix by sentence index -> ``{"x": (B, D)}``."""

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = np.asarray(matrix, dtype=np.float32)

    def validate(self, value: Any) -> None:
        if not isinstance(value, (int, np.integer)) or not 0 <= int(value) < len(self.matrix):
            raise ValueError(f"expected a sentence index in [0, {len(self.matrix)}), got {value!r}")

    def __call__(self, values: Sequence[Any]) -> dict[str, Tensor]:
        return {"x": torch.from_numpy(self.matrix[np.asarray(values, dtype=np.int64)])}  # (B, D)


class SiameseSegmenter(PredictionSystem):
    """:class:`PredictionSystem` with pair-interaction features for STP/NSP and a per-sentence TC head.

    Args:
        encoder: the siamese tower, shared by both sentences of a pair.
        tasks: heads to train, named ``stp``/``nsp`` (binary) or ``tc`` (multiclass); default STP only.
        pooler, head_hidden, dropout, freeze_encoder, optimizer, warmup_ratio, threshold: as for
            :class:`PredictionSystem`.
    """

    def __init__(
        self,
        encoder: Encoder,
        tasks: list[Task] | None = None,
        pooler: Pooler | None = None,
        head_hidden: int = 0,
        dropout: float = 0.0,
        freeze_encoder: bool = False,
        optimizer: OptimizerCallable | None = None,
        warmup_ratio: float = 0.0,
        threshold: float = 0.5,
    ) -> None:
        tasks = [Task(name="stp", kind="binary")] if not tasks else list(tasks)
        for t in tasks:  # the data module's target columns are [stp, nsp, tc]
            if t.target_index is None and t.name in TARGET_COLUMNS:
                t.target_index = TARGET_COLUMNS[t.name]
        super().__init__(
            encoder=encoder,
            num_inputs=2,
            pooler=pooler,
            tasks=tasks,
            head_hidden=head_hidden,
            dropout=dropout,
            freeze_encoder=freeze_encoder,
            optimizer=optimizer,
            warmup_ratio=warmup_ratio,
            threshold=threshold,
        )
        expected = {"stp": "binary", "nsp": "binary", "tc": "multiclass"}
        for t in self.tasks:
            if t.name not in expected:
                raise ValueError(f"task {t.name!r}: SiameseSegmenter tasks are {list(HEADS)}")
            if t.kind != expected[t.name]:
                raise ValueError(f"task {t.name!r} must be {expected[t.name]}, got {t.kind!r}")
        dim = int(self.encoders["shared"].output_dim)
        self.heads = nn.ModuleDict(
            {t.name: self._head(4 * dim if t.name in _PAIR_TASKS else dim, head_hidden, t.out_dim) for t in self.tasks}
        )

    def pair_features(self, inputs: Sequence[dict[str, Tensor]]) -> tuple[Tensor, Tensor]:
        """Siamese tower outputs ``u, v`` (each ``(B, H)``)."""
        if len(inputs) != 2:
            raise ValueError(f"SiameseSegmenter takes sentence pairs (2 inputs), got {len(inputs)}")
        encoder = self.encoders["shared"]
        u, v = (self._pool(encoder(x)) for x in inputs)  # (B, H) each
        return u, v

    def forward(self, inputs: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        u, v = self.pair_features(inputs)
        pair = self.dropout(torch.cat([u, v, (u - v).abs(), u * v], dim=-1))  # (B, 4H)
        out = {}
        for t in self.tasks:
            if t.name == "tc":
                out[t.name] = self.heads[t.name](self.dropout(u))  # (B, C)
            else:
                out[t.name] = self.heads[t.name](pair).squeeze(-1)  # (B,)
        return out

    @torch.inference_mode()
    def head_scores(self, left: Tensor, right: Tensor) -> dict[str, Tensor]:
        """Boundary scores in ``[0, 1]`` per head for ``(G, D)`` left/right sentence features."""
        u = self._pool(self.encoders["shared"]({"x": left}))
        v = self._pool(self.encoders["shared"]({"x": right}))
        pair = torch.cat([u, v, (u - v).abs(), u * v], dim=-1)
        scores = {}
        for t in self.tasks:
            if t.name == "tc":
                pu, pv = self.heads["tc"](u).softmax(-1), self.heads["tc"](v).softmax(-1)
                scores["tc"] = 1.0 - (pu * pv).sum(-1)  # P(different topics)
            else:
                scores[t.name] = 1.0 - torch.sigmoid(self.heads[t.name](pair).squeeze(-1))
        return scores


def gap_sides(embeddings: np.ndarray, context: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Left/right inputs of every gap ``(N - 1, D)`` each: the mean of the ``context`` sentences
    before and after the gap (``context=1``: the two adjacent sentences, the paper's setting)."""
    if context < 1:
        raise ValueError(f"context must be >= 1, got {context}")
    x = np.asarray(embeddings, dtype=np.float32)
    if context == 1:
        return x[:-1], x[1:]
    n = len(x)
    csum = np.vstack([np.zeros((1, x.shape[1]), dtype=np.float64), np.cumsum(x, axis=0, dtype=np.float64)])
    g = np.arange(n - 1)
    lo, hi = np.maximum(0, g + 1 - context), np.minimum(n, g + 1 + context)
    left = (csum[g + 1] - csum[lo]) / (g + 1 - lo)[:, None]
    right = (csum[hi] - csum[g + 1]) / (hi - g - 1)[:, None]
    return left.astype(np.float32), right.astype(np.float32)


def boundary_scores(
    model: SiameseSegmenter,
    embeddings: np.ndarray,
    combine: Literal["stp", "nsp", "tc", "mean", "auto"] = "auto",
    context: int = 1,
) -> np.ndarray:
    """``(N - 1,)`` boundary scores of one document from its ``(N, D)`` sentence features.

    ``auto``: STP when the model has it, else NSP, else TC. ``mean``: average of every head's score.
    ``context``: sentences averaged on each side of a gap (as the model was trained).
    """
    was_training = model.training
    model.eval()
    try:
        left, right = (torch.as_tensor(a) for a in gap_sides(embeddings, context))
        scores = {k: v.numpy() for k, v in model.head_scores(left, right).items()}
    finally:
        model.train(was_training)
    if combine == "auto":
        combine = next(h for h in HEADS if h in scores)  # type: ignore[assignment]
    if combine == "mean":
        return np.mean(np.stack(list(scores.values())), axis=0)
    if combine not in scores:
        raise ValueError(f"the model has no {combine!r} head; heads: {sorted(scores)}")
    return scores[combine]
