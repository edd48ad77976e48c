"""Evaluation of the generative tagger: greedy answers parsed into spans, entity-level F1 per domain.

:class:`GeneratedSpans` is a :class:`polymodal.metrics.step.SpanF1` whose predictions come from the LM tower's
greedy decoding of each row's prompt instead of a token head; malformed answer lines are counted
(``malformed_rate``), never raised. It also averages the prompts' retrieval ``coverage`` (share of the query's gold
entity types present in its examples), which needs no generation (``generate=False`` reports only that).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from polymodal.metrics import functional as fn
from polymodal.metrics.step import SpanF1
from polymodal.recipes.if_wraner.prompts import parse_answer

if TYPE_CHECKING:  # pragma: no cover
    from polymodal.system import Step

__all__ = ["GeneratedSpans"]


class GeneratedSpans(SpanF1):
    """Span P/R/F1 of generated ``type: span`` answers (test stage by default).

    Args:
        tower: the causal LM tower's name.
        groups: the domains reported (``<domain>/f1``); ``avg_f1`` averages them.
        generate: decode (``False``: report only the retrieval ``coverage``).
        max_new_tokens: longest answer.
        batch_size: prompts decoded together.
        answers: a JSON-lines file that receives every decoded answer at the end of the stage (``domain``,
            ``sentence``, ``answer``, ``gold`` and ``parsed`` spans as ``type: words``, ``malformed`` lines), replaced
            whole; ``None``: not written. On several devices each rank writes ``<name>.rank<k>``.
        stages: where it runs (generation is slow: ``test`` only by default).

    Meta columns read: ``prompt``, ``tokens``, ``tags``, ``types``, ``domain`` and ``coverage``
    (:class:`~polymodal.recipes.if_wraner.prompts.RetrievalPrompts` provides them).

    Keys: those of :class:`SpanF1` plus ``malformed_rate`` (unusable answer lines / all lines), ``coverage`` and
    ``<domain>/coverage``.
    """

    def __init__(
        self,
        tower: str = "lm",
        groups: Sequence[str] = ("politics", "science", "music", "literature", "ai"),
        generate: bool = True,
        max_new_tokens: int = 48,
        batch_size: int = 8,
        answers: str | None = None,
        stages: Sequence[str] = ("test",),
        **kwargs: Any,
    ) -> None:
        super().__init__(head="", tags="tags", group="domain", groups=groups, stages=stages, **kwargs)
        self.tower, self.do_generate = tower, bool(generate)
        self.answers_path = answers
        self._answers: list[dict[str, Any]] = []
        self.max_new_tokens, self.batch_size = int(max_new_tokens), int(batch_size)
        n = len(self.groups)
        for name in ("lines", "malformed", "coverage_sum", "coverage_n"):
            self.add_state(name, default=torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")

    def applies(self, step: Step) -> bool:
        return all(c in step.batch.meta for c in ("prompt", "tokens", "tags", "types", "domain", "coverage"))

    def update(self, step: Step) -> None:
        meta = step.batch.meta
        groups = self._group_index(step)
        for k, cov in zip(groups, meta["coverage"]):
            if cov == cov:  # not NaN
                self.coverage_sum[k] += float(cov)
                self.coverage_n[k] += 1
        if not self.do_generate:
            return
        answers = step.system.towers[self.tower].generate(list(meta["prompt"]), self.max_new_tokens, self.batch_size)
        gold, pred = [], []
        for k, answer, tokens, tags, types in zip(groups, answers, meta["tokens"], meta["tags"], meta["types"]):
            spans, bad, lines = parse_answer(answer, list(tokens), list(types))
            if self.answers_path:
                words = list(tokens)

                def show(found: Any, words: list[str] = words) -> list[str]:
                    return [f"{t}: {' '.join(words[a : b + 1])}" for t, a, b in sorted(found)]

                self._answers.append(
                    {
                        "domain": self.groups[int(k)],
                        "sentence": " ".join(words),
                        "answer": answer,
                        "gold": show(fn.bio_entities(list(tags))),
                        "parsed": show(spans),
                        "malformed": bad,
                    }
                )
            self.malformed[k] += bad
            self.lines[k] += lines
            gold.append(set(fn.bio_entities(list(tags))))
            pred.append(spans)
        self.add(gold, pred, groups)

    def reset(self) -> None:
        super().reset()
        self._answers = []

    def _write_answers(self) -> None:
        import json

        from polymodal.io import atomic_path

        dist = torch.distributed
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        path = f"{self.answers_path}.rank{rank}" if rank else str(self.answers_path)
        with atomic_path(path) as tmp:
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self._answers), encoding="utf-8")

    def compute(self) -> dict[str, float]:
        if self.answers_path and self._answers:
            self._write_answers()
        out = super().compute() if float(self.sentences.sum()) else {}
        if float(self.lines.sum()):
            out["malformed_rate"] = float(self.malformed.sum() / self.lines.sum())
        if float(self.coverage_n.sum()):
            out["coverage"] = float(self.coverage_sum.sum() / self.coverage_n.sum())
            for k, name in enumerate(self.groups):
                if float(self.coverage_n[k]):
                    out[f"{name}/coverage"] = float(self.coverage_sum[k] / self.coverage_n[k])
        return out
