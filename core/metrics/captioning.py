"""Caption metrics as a training-time metric: BLEU-1..4 and CIDEr-D of greedy generations of a prefix LM.

The scores are :func:`polymodal.evaluation.captioning.caption_scores` (the coco-caption definitions). Texts
travel in torchmetrics states as padded UTF-8 byte tensors, so under DDP every rank's generations and
references are gathered before scoring and the result is that of the whole split.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torchmetrics.utilities import dim_zero_cat

from polymodal.metrics.step import StepMetric

if TYPE_CHECKING:  # pragma: no cover
    from polymodal.system import Step

__all__ = ["CaptionMetrics", "exact_match_scores", "texts_from_bytes", "texts_to_bytes"]


def texts_to_bytes(texts: Sequence[str], width: int, device: Any = None) -> Tensor:
    """Strings -> ``(N, width)`` uint8 UTF-8 bytes, zero-padded (longer texts are cut at a character boundary)."""
    out = torch.zeros((len(texts), width), dtype=torch.uint8)
    for i, text in enumerate(texts):
        data = text.encode("utf-8")[:width].decode("utf-8", "ignore").encode("utf-8")
        out[i, : len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else out[i, :0]
    return out.to(device) if device is not None else out


def texts_from_bytes(data: Tensor) -> list[str]:
    """Inverse of :func:`texts_to_bytes`."""
    return [bytes(row[row != 0].tolist()).decode("utf-8") for row in data.cpu()]


class CaptionMetrics(StepMetric):
    """Greedy captions of each distinct prefix (image) scored against all of its references.

    For every batch, each image id not captioned yet in this epoch is captioned once from the Step's prefix
    tokens (shared with the objectives) under the batch's prompt; the references are the ``references`` meta
    values of all rows of that image. Keys: ``bleu1`` ... ``bleu4`` and ``cider`` (CIDEr-D), in [0, 1] and
    coco-caption units (CIDEr-D x 10 is not applied twice: the value is coco-caption's). With
    ``exact_match`` also ``exact`` (share of generations equal to one of their references after whitespace
    normalisation) and ``cer`` (torchmetrics character error rate against the first reference).

    Args:
        tower: the :class:`~polymodal.prefix_lm.PrefixLM` tower.
        column: the prefix input column.
        references: meta column with the reference caption of each row.
        group: target holding each row's image id (default: every row its own image).
        max_new_tokens: generation length cap.
        prompt: meta column with the prompt of each row (the first row's prompt is used for the batch);
            ``None``: no prompt.
        width: bytes kept per text.
        exact_match: also report ``exact`` and ``cer`` (reconstruction metrics of a sentence autoencoder).
    """

    def __init__(
        self,
        tower: str = "vlm",
        column: str = "image",
        references: str = "caption",
        group: str | None = "image_id",
        max_new_tokens: int = 24,
        prompt: str | None = "prompt",
        width: int = 512,
        exact_match: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("stages", ("test",))
        super().__init__(**kwargs)
        self.tower, self.column, self.references, self.group = tower, column, references, group
        self.max_new_tokens, self.prompt, self.width = int(max_new_tokens), prompt, int(width)
        self.exact_match = bool(exact_match)
        for name in ("hyp", "hyp_id", "ref", "ref_id"):
            self.add_state(name, default=[], dist_reduce_fx="cat")
        self._done: set[int] = set()

    def requires(self) -> tuple[list[str], list[str]]:
        return [self.column], [self.group] if self.group else []

    def applies(self, step: Step) -> bool:
        return super().applies(step) and self.references in step.batch.meta

    def reset(self) -> None:
        super().reset()
        self._done = set()

    def update(self, step: Step) -> None:
        refs = [str(r) for r in step.batch.meta[self.references]]
        ids = step.target(self.group).round().long().tolist() if self.group else step.row_ids()
        device = step.features(self.column).sequence.device
        self.ref.append(texts_to_bytes(refs, self.width, device))
        self.ref_id.append(torch.tensor(ids, dtype=torch.long, device=device))
        rows = {}
        for row, image in enumerate(ids):
            if image not in self._done and image not in rows:
                rows[image] = row
        if not rows:
            return
        self._done.update(rows)
        prompt = str(step.batch.meta[self.prompt][0]) if self.prompt and self.prompt in step.batch.meta else ""
        tokens = step.features(self.column).sequence[list(rows.values())].detach()  # (b, N, D)
        texts = step.system.towers[self.tower].generate_from_prefix(tokens, prompt, self.max_new_tokens)
        self.hyp.append(texts_to_bytes(texts, self.width, device))
        self.hyp_id.append(torch.tensor(list(rows), dtype=torch.long, device=device))

    def compute(self) -> dict[str, float]:
        from polymodal.evaluation.captioning import caption_scores

        if not self.hyp:
            return {}
        hyps: dict[int, str] = {}
        for image, text in zip(dim_zero_cat(self.hyp_id).tolist(), texts_from_bytes(dim_zero_cat(self.hyp))):
            hyps.setdefault(image, text)  # an image captioned on two ranks: keep one
        refs: dict[int, list[str]] = {}
        for image, text in zip(dim_zero_cat(self.ref_id).tolist(), texts_from_bytes(dim_zero_cat(self.ref))):
            refs.setdefault(image, []).append(text)
        hyps = {k: v for k, v in hyps.items() if k in refs}
        scores = caption_scores(hyps, refs).as_dict()
        if self.exact_match and hyps:
            scores.update(exact_match_scores(hyps, refs))
        return scores


def _normal(text: str) -> str:
    return " ".join(text.split())


def exact_match_scores(hyps: dict[int, str], refs: dict[int, list[str]]) -> dict[str, float]:
    """``exact``: share of ids whose hypothesis equals one of its references (whitespace-normalised);
    ``cer``: torchmetrics character error rate of the hypotheses against each id's first reference."""
    from torchmetrics.functional.text import char_error_rate

    ids = sorted(hyps)
    exact = sum(_normal(hyps[i]) in {_normal(r) for r in refs[i]} for i in ids) / len(ids)
    cer = float(char_error_rate([_normal(hyps[i]) for i in ids], [_normal(refs[i][0]) for i in ids]))
    return {"exact": float(exact), "cer": cer}
