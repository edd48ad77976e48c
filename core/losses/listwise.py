"""Listwise soft-label distillation: the student's similarity distribution over each query's candidates is
pulled toward a teacher's score distribution (KL divergence).

References: LG-ANNA-Embedding (2024) trains with soft labels from a teacher over mined candidates; ULLME's
generation-augmented representation learning (GRL) aligns the
same student distribution with the LM's own generation likelihoods; RocketQAv2 (Ren et al. 2021,
https://arxiv.org/abs/2110.07367 ) is the listwise KL form used here::

    loss = mean_i KL( softmax(t_i / tau_t) || softmax(s_i / tau_s) ),   s_ik = cos(q_i, c_ik)

where ``c_i1..c_iK`` are query ``i``'s own candidates (its positive and hard negatives, one input column each)
and ``t_ik`` the teacher's scores for them (one target each, e.g. cross-encoder logits or LM log-likelihoods).
The teacher is a constant.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from polymodal.objectives.base import STAGES, Objective

if TYPE_CHECKING:  # pragma: no cover
    from polymodal.system import Step

__all__ = ["GenerationAugmentedLoss", "ListwiseDistillationLoss", "dpo_loss", "listwise_kl_loss"]


def listwise_kl_loss(
    queries: Tensor,
    candidates: Tensor,
    teacher: Tensor,
    temperature: float = 0.05,
    teacher_temperature: float = 1.0,
) -> Tensor:
    """``mean_i KL(softmax(teacher_i / tau_t) || softmax(cos(q_i, c_ik) / tau_s))``.

    Args:
        queries: ``(B, D)``.
        candidates: ``(B, K, D)``, each query's own candidates.
        teacher: ``(B, K)`` teacher scores (higher = more relevant).
    """
    if candidates.dim() != 3 or teacher.shape != candidates.shape[:2] or queries.shape[0] != candidates.shape[0]:
        raise ValueError(
            f"listwise_kl_loss: queries (B, D), candidates (B, K, D), teacher (B, K); got "
            f"{tuple(queries.shape)}, {tuple(candidates.shape)}, {tuple(teacher.shape)}"
        )
    sims = torch.einsum("bd,bkd->bk", F.normalize(queries, dim=-1), F.normalize(candidates, dim=-1))  # (B, K)
    log_student = F.log_softmax(sims / temperature, dim=-1)
    target = F.softmax(teacher.detach().to(sims.dtype) / teacher_temperature, dim=-1)
    return F.kl_div(log_student, target, reduction="batchmean")


class ListwiseDistillationLoss(Objective):
    """Objective: listwise KL between the student's cosine distribution over candidate columns and teacher scores.

    Args:
        columns: ``[query, candidate_1, ..., candidate_K]`` input columns.
        teacher: ``K`` target names holding the teacher's score of each candidate (same order).
        temperature: student softmax temperature.
        teacher_temperature: teacher softmax temperature.
        contrastive_weight: also add this times InfoNCE of the query against every candidate of the batch
            (the first candidate column is the positive; LG-ANNA combines soft labels with in-batch negatives).
        weight: weight in the System's total loss.
        stages: where it runs.

    Example (YAML, ``objectives:``)::

        soft:
          class_path: polymodal.losses.ListwiseDistillationLoss
          init_args: {columns: [anchor, positive, negative], teacher: [t_positive, t_negative]}
    """

    def __init__(
        self,
        columns: Sequence[str],
        teacher: Sequence[str],
        temperature: float = 0.05,
        teacher_temperature: float = 1.0,
        contrastive_weight: float = 0.0,
        weight: float = 1.0,
        stages: Sequence[str] = STAGES,
    ) -> None:
        super().__init__(weight, stages)
        if contrastive_weight < 0:
            raise ValueError(f"contrastive_weight must be >= 0, got {contrastive_weight}")
        self.contrastive_weight = float(contrastive_weight)
        self.columns, self.teacher = [str(c) for c in columns], [str(t) for t in teacher]
        if len(self.columns) < 3 or len(self.teacher) != len(self.columns) - 1:
            raise ValueError(
                f"ListwiseDistillationLoss: columns [query, c_1..c_K] (K >= 2) and K teacher targets, got "
                f"{len(self.columns)} columns and {len(self.teacher)} teacher targets"
            )
        if temperature <= 0 or teacher_temperature <= 0:
            raise ValueError(f"temperatures must be > 0, got {temperature}, {teacher_temperature}")
        self.temperature, self.teacher_temperature = float(temperature), float(teacher_temperature)

    def requires(self) -> tuple[list[str], list[str]]:
        return list(self.columns), list(self.teacher)

    def forward(self, step: Step) -> Tensor:
        query, *cands = step.embeddings(self.columns)
        scores = torch.stack([step.target(name) for name in self.teacher], dim=1)  # (B, K)
        loss = listwise_kl_loss(query, torch.stack(cands, dim=1), scores, self.temperature, self.teacher_temperature)
        if self.contrastive_weight:
            from polymodal.losses.infonce import info_nce_loss

            labels = torch.arange(query.shape[0], device=query.device)
            loss = loss + self.contrastive_weight * info_nce_loss(query, torch.cat(cands), labels, self.temperature)
        return loss


def dpo_loss(chosen: Tensor, rejected: Tensor, beta: float = 0.1) -> Tensor:
    """Reference-free sigmoid DPO: ``mean(-log sigmoid(beta * (chosen - rejected)))`` over ``(B,)`` sequence
    log-likelihoods (Rafailov et al. 2023 without a reference model, as ULLME's GRL uses it)."""
    return -F.logsigmoid(beta * (chosen - rejected)).mean()


class GenerationAugmentedLoss(Objective):
    """ULLME's generation-augmented representation learning (GRL; Man et al. 2024,
    https://arxiv.org/abs/2408.03402, official code ``nlp-uoregon/ullme``), the part beside the contrastive loss.

    The decoder tower scores each query's candidates twice: by representation (cosine of the pooled embeddings)
    and by generation (the LM's log-likelihood of ``"{instruction}. Query:\n{query}\n\n{candidate}\n"``,
    whole sequence, as the official collator builds it). The objective is::

        dpo_weight * DPO(logp_sum(positive), logp_sum(first negative))     # trains generation to rank
      + kl_weight  * KL(softmax(logp_mean) || softmax(cos / temperature))  # representation follows generation

    with the generation distribution a constant in the KL (the official ``KLLoss`` detaches it). The contrastive
    term is the System's other objective (``loss:`` of ``ContrastiveSystem``). The raw texts come from the
    batch's ``meta`` (list the columns in the data's ``meta``; ``eval_meta: []`` when validation has others).

    Args:
        tower: the decoder tower (needs ``sequence_logprobs``: :class:`~polymodal.plugins.text.DecoderTextEncoder`
            with tied embeddings); ``shared`` for ``ContrastiveSystem(encoder=...)``.
        columns: ``[query, positive, negative_1, ...]`` input columns (also meta columns).
        instruction: the alignment instruction of the generation prompt.
        temperature: of the representation softmax.
        beta: DPO temperature.
        dpo_weight, kl_weight: weights of the two terms.
        weight, stages: as for every objective (default: training only).
    """

    def __init__(
        self,
        tower: str = "shared",
        columns: Sequence[str] = ("anchor", "positive", "negative"),
        instruction: str = "Given a premise, write a sentence that it entails",
        temperature: float = 0.05,
        beta: float = 0.1,
        max_length: int | None = 128,
        dpo_weight: float = 1.0,
        kl_weight: float = 1.0,
        weight: float = 1.0,
        stages: Sequence[str] = ("train",),
    ) -> None:
        super().__init__(weight, stages)
        self.tower, self.columns, self.instruction = str(tower), [str(c) for c in columns], str(instruction)
        if len(self.columns) < 3:
            raise ValueError(f"GenerationAugmentedLoss: columns [query, positive, negative, ...], got {self.columns}")
        if temperature <= 0 or beta <= 0 or dpo_weight < 0 or kl_weight < 0:
            raise ValueError(
                f"GenerationAugmentedLoss: need temperature > 0, beta > 0, weights >= 0; got {temperature}, {beta}, "
                f"{dpo_weight}, {kl_weight}"
            )
        self.temperature, self.beta = float(temperature), float(beta)
        self.dpo_weight, self.kl_weight = float(dpo_weight), float(kl_weight)
        self.max_length = None if max_length is None else int(max_length)

    def requires(self) -> tuple[list[str], list[str]]:
        return list(self.columns), []

    def prompts(self, queries: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[str]:
        """The generation sequences, query-major: ``B x K`` strings for ``K`` candidate columns."""
        return [f"{self.instruction}. Query:\n{q}\n\n{k[i]}\n" for i, q in enumerate(queries) for k in candidates]

    def forward(self, step: Step) -> Tensor:
        model = step.system.towers[self.tower] if self.tower in step.system.towers else None
        if model is None or not callable(getattr(model, "sequence_logprobs", None)):
            raise TypeError(
                f"objective {self.name!r}: tower {self.tower!r} has no sequence_logprobs() (a DecoderTextEncoder); "
                f"towers: {sorted(step.system.towers)}"
            )
        missing = [c for c in self.columns if c not in step.batch.meta]
        if missing:
            raise ValueError(f"objective {self.name!r} needs the raw text of {missing}: add them to data.meta")
        query, *cands = step.embeddings(self.columns)  # (B, D) each
        texts = [[str(t) for t in step.batch.meta[c]] for c in self.columns]
        total, mean = model.sequence_logprobs(self.prompts(texts[0], texts[1:]), self.max_length)  # (B * K,)
        k = len(cands)
        total, mean = total.view(-1, k), mean.view(-1, k)  # (B, K)
        loss = query.new_zeros(())
        if self.dpo_weight:
            loss = loss + self.dpo_weight * dpo_loss(total[:, 0], total[:, 1], self.beta)
        if self.kl_weight:
            loss = loss + self.kl_weight * listwise_kl_loss(query, torch.stack(cands, dim=1), mean, self.temperature)
        return loss
