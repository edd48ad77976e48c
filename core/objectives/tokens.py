"""Token classification (BIO tagging): cross-entropy of a token head on the first sub-word of every word."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from polymodal.objectives.base import STAGES, Objective

if TYPE_CHECKING:  # pragma: no cover
    from polymodal.heads import TokenHead
    from polymodal.system import Step

__all__ = ["TokenClassificationLoss", "word_labels"]

IGNORE = -100


def word_labels(step: Step, head: TokenHead, tags: str = "tags") -> Tensor:
    """Class index ``(B, T)`` of every first sub-word token from the batch's per-word tags, ``-100`` elsewhere.

    The tags are the raw per-word strings of the ``tags`` meta column (``data.meta: [tags]``); the alignment is
    the ``word_ids`` / ``first`` of the head's column (:class:`~polymodal.plugins.text.WordProcessor`).

    Raises:
        ValueError: no ``tags`` meta column, a sentence whose tag count differs from its word count, or a tag that
            is not one of the head's labels (naming the source row and word).
    """
    inputs = step.inputs_of(head.column)
    if "word_ids" not in inputs or "first" not in inputs:
        raise ValueError(
            f"column {head.column!r} has no word alignment (word_ids / first): give it a WordProcessor in "
            "model.processors"
        )
    if tags not in step.batch.meta:
        raise ValueError(f"the batch has no {tags!r} meta column: set data.meta: [{tags}] (the per-word BIO tags)")
    word_ids, first = inputs["word_ids"], inputs["first"]
    labels = torch.full(word_ids.shape, IGNORE, dtype=torch.long)
    rows = step.batch.rows or list(range(1, len(word_ids) + 1))
    words_cpu, first_cpu = word_ids.cpu(), first.cpu()
    num_words = inputs.get("num_words")
    for i, sentence in enumerate(step.batch.meta[tags]):
        sentence = list(sentence)
        if num_words is not None and len(sentence) != int(num_words[i]):
            raise ValueError(f"row {rows[i]}: {len(sentence)} tags for {int(num_words[i])} words")
        for t in torch.nonzero(first_cpu[i]).flatten().tolist():
            w = int(words_cpu[i, t])
            tag = str(sentence[w])
            if tag not in head.index:
                raise ValueError(
                    f"row {rows[i]}, word {w + 1}: tag {tag!r} is not one of the head's labels {head.labels}"
                )
            labels[i, t] = head.index[tag]
    return labels.to(word_ids.device)


class TokenClassificationLoss(Objective):
    """Mean cross-entropy of a :class:`~polymodal.heads.TokenHead` over the words of the batch.

    Each word is read at its first sub-word token (the other sub-words, special tokens and padding are ignored),
    the standard alignment of BERT taggers.

    Args:
        head: the token head's name.
        tags: the meta column holding each sentence's per-word tags.
        label_smoothing: cross-entropy label smoothing.
        weight: weight in the total loss.
        stages: where it runs.
    """

    def __init__(
        self,
        head: str = "tags",
        tags: str = "tags",
        label_smoothing: float = 0.0,
        weight: float = 1.0,
        stages: Sequence[str] = STAGES,
    ) -> None:
        super().__init__(weight, stages)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.head, self.tags, self.label_smoothing = head, tags, float(label_smoothing)

    def forward(self, step: Step) -> Tensor:
        head = step.system.heads[self.head]
        logits = step.head(self.head)  # (B, T, C)
        labels = step.memo(f"word_labels/{self.head}", lambda: word_labels(step, head, self.tags))  # (B, T)
        keep = labels != IGNORE
        if not bool(keep.any()):
            return logits.sum() * 0.0
        return F.cross_entropy(logits[keep].float(), labels[keep], label_smoothing=self.label_smoothing)
