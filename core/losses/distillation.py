"""Distillation into a bi-encoder: from teacher embeddings, or from a cross-encoder's scores.

References:
    Reimers & Gurevych, "Making Monolingual Sentence Embeddings Multilingual using Knowledge
    Distillation" (2020), https://arxiv.org/abs/2004.09813 (MSE to teacher embeddings;
    sentence-transformers' ``MSELoss``).
    Barkan et al., "Scalable Attentive Sentence-Pair Modeling via Distilled Sentence Embedding"
    (AAAI 2020), https://arxiv.org/abs/1908.05161 (DSE: a siamese student regresses the
    cross-attentive teacher's pair scores).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.objectives.base import STAGES, Objective

if TYPE_CHECKING:  # pragma: no cover
    from polymodal.system import Step

__all__ = [
    "EmbeddingDistillationLoss",
    "ScoreDistillationLoss",
    "embedding_distillation_loss",
    "score_distillation_loss",
]


def embedding_distillation_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Mean squared error between student ``(B, D)`` and teacher ``(B, D)`` embeddings."""
    if student.shape != teacher.shape:
        raise ValueError(
            f"student {tuple(student.shape)} and teacher {tuple(teacher.shape)} embeddings differ in shape"
        )
    return F.mse_loss(student, teacher.detach())


def score_distillation_loss(a: Tensor, b: Tensor, teacher_scores: Tensor, scale: float = 1.0) -> Tensor:
    """MSE between the student's pair cosine ``(B,)`` and ``teacher_scores / scale`` ``(B,)``."""
    return F.mse_loss(F.cosine_similarity(a, b, dim=-1), teacher_scores.detach() / scale)


class EmbeddingDistillationLoss(Objective):
    """MSE from every input column's student embedding to a frozen teacher's embedding.

    The teacher runs on the same processed inputs, so it must share the student's
    preprocessing (same tokenizer: e.g. a 6-layer MiniLM teacher and a 3-layer student made
    from it). A ``projection`` maps student width to teacher width when they differ.

    Args:
        teacher: a saved model folder / short name, or an ``EmbeddingModel``.
        student_dim: the student's embedding width (adds a trainable linear projection when it
            differs from the teacher's).
        check_processor: verify at the first step that the student's token ids fit the teacher's vocabulary.
        weight: weight in the System's total loss.
        stages: where it runs.

    An objective of :class:`polymodal.System`: the teacher reads each column's processed inputs from the step.
    """

    def __init__(
        self,
        teacher: Any,
        student_dim: int | None = None,
        check_processor: bool = True,
        weight: float = 1.0,
        stages: Sequence[str] = STAGES,
    ) -> None:
        super().__init__(weight, stages)
        if isinstance(teacher, str):
            from polymodal.model import load

            teacher = load(teacher)
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        t_dim = int(self.teacher.dim)
        self.projection = nn.Linear(student_dim, t_dim) if student_dim and student_dim != t_dim else None
        self.check_processor = check_processor
        self._checked = False

    def train(self, mode: bool = True) -> EmbeddingDistillationLoss:
        super().train(mode)
        self.teacher.eval()  # the teacher never uses dropout
        return self

    def forward(self, step: Step) -> Tensor:
        return self.loss_from_context(step)

    def _check(self, context: Step) -> None:
        """The teacher reads the student's token ids: they must fit its vocabulary."""
        ids = context.inputs[0].get("input_ids")
        tok = getattr(self.teacher.encoder.processor, "tokenizer", None)
        if ids is not None and tok is not None and int(ids.max()) >= tok.get_vocab_size(with_added_tokens=True):
            raise ValueError(
                "EmbeddingDistillationLoss: the student's token ids exceed the teacher's vocabulary; "
                "teacher and student must share the tokenizer"
            )

    def loss_from_context(self, context: Step) -> Tensor:
        if self.check_processor and not self._checked:
            self._check(context)
            self._checked = True
        total = None
        for j in range(context.num_columns):
            student = context.embed(j)
            with torch.no_grad():
                teacher = self.teacher(context.inputs[j])
                if self.teacher.normalize:
                    teacher = F.normalize(teacher, dim=-1)
            if self.projection is not None:
                student = self.projection(student)
            term = embedding_distillation_loss(student, teacher.to(student.dtype))
            total = term if total is None else total + term
        assert total is not None
        return total / context.num_columns


class ScoreDistillationLoss(nn.Module):
    """DSE: regress the bi-encoder's pair cosine onto a cross-encoder teacher's scores.

    The teacher's scores are the target column (score the training pairs once with the
    teacher, e.g. ``polymodal.plugins.text.cross_encoder.CrossEncoder.predict``, and train on
    that table; augmented, unlabeled pairs work the same way).

    Args:
        scale: teacher scores are divided by it (e.g. 5 for STS-B-scaled teachers).

    Inputs:
        embeddings: ``[a, b]`` ``(B, D)`` each; target: teacher scores ``(B,)``.
    """

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.scale = scale

    def forward(self, embeddings: Sequence[Tensor], target: Tensor | None = None) -> Tensor:
        if len(embeddings) != 2 or target is None:
            raise ValueError("ScoreDistillationLoss needs two input columns and a teacher-score column")
        return score_distillation_loss(embeddings[0], embeddings[1], target.to(embeddings[0].dtype), self.scale)
