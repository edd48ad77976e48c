"""IF-WRANER prompts: instruction + the domain's label set + the top-k retrieved examples + the sentence.

What is this recipe's own (everything generic lives in the core and the text plugin):

* the answer format, one ``type: span`` line per entity in sentence order (``none`` without entities), and its
  tolerant parser :func:`parse_answer` (a malformed line is counted as an error, never raised);
* :class:`RetrievalPrompts`, a data source that turns CoNLL sentences into ``(prompt, answer)`` rows, retrieving
  each query's in-prompt examples from a pool (the query's own domain only) by word-level MaxSim
  (:class:`polymodal.search.MaxSimReranker` over :class:`polymodal.plugins.text.WordEmbedder` vectors: the paper's
  word-embedding retrieval), by sentence-embedding cosine (the baseline), or at random; every embedding goes through
  the one :class:`polymodal.data.cache.FeatureCache`.

Regularisation while fine-tuning (the paper's abstract credits "regularization techniques used during LLM finetuning"
without naming them; what we implement): NEFTune noise on the input embeddings (``CausalLM(neftune_alpha=5)``), the
label set presented in a fresh random order in every training prompt (``shuffle_types``), and a random number of
in-prompt examples per training prompt (``k_choices``), so the model reads the label set and the examples instead of
memorising one layout.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from polymodal.data.conll import ConllSource
from polymodal.data.sources import Source
from polymodal.metrics.functional import Span, bio_entities

__all__ = ["RetrievalPrompts", "build_prompt", "format_answer", "parse_answer"]

log = logging.getLogger(__name__)

NONE = "none"
INSTRUCTION = (
    "Extract the named entities from the sentence. Entity types: {types}.\n"
    'Answer with one "type: entity" line per entity, in the order they appear, or "none" if there is none.'
)


def format_answer(tokens: Sequence[str], tags: Sequence[str]) -> str:
    """The target answer: ``type: span`` lines in sentence order, or ``none``."""
    spans = bio_entities(list(tags))
    if not spans:
        return NONE
    return "\n".join(f"{kind}: {' '.join(tokens[a : b + 1])}" for kind, a, b in spans)


def build_prompt(
    tokens: Sequence[str], types: Sequence[str], examples: Sequence[tuple[Sequence[str], Sequence[str]]]
) -> str:
    """Instruction, label set, examples (``Sentence:`` / ``Entities:`` blocks), then the query sentence."""
    parts = [INSTRUCTION.format(types=", ".join(types))]
    for ex_tokens, ex_tags in examples:
        parts.append(f"Sentence: {' '.join(ex_tokens)}\nEntities:\n{format_answer(ex_tokens, ex_tags)}")
    parts.append(f"Sentence: {' '.join(tokens)}\nEntities:")
    return "\n\n".join(parts)


def _find(words: list[str], tokens: Sequence[str], used: set[tuple[int, int]]) -> tuple[int, int] | None:
    n = len(words)
    for fold in (False, True):
        ws = [w.lower() for w in words] if fold else words
        for i in range(len(tokens) - n + 1):
            window = [t.lower() for t in tokens[i : i + n]] if fold else list(tokens[i : i + n])
            if window == ws and (i, i + n - 1) not in used:
                return i, i + n - 1
    return None


_LINE = re.compile(r"^\s*(?:[-*\u2022]\s*)?([A-Za-z][A-Za-z _-]*?)\s*[:=]\s*(.+?)\s*$")


def parse_answer(text: str, tokens: Sequence[str], types: Sequence[str]) -> tuple[set[Span], int, int]:
    """Spans of a generated answer, tolerantly.

    Each non-empty line should read ``type: span``; the type is matched case- and space-insensitively against
    ``types``, the span against the sentence's words (exactly, then case-insensitively; the first unused occurrence).
    A ``none`` answer is no entity. Anything else is counted, never raised.

    Returns:
        ``(spans, malformed, lines)``: the ``(type, first, last)`` spans, how many lines could not be used (no
        ``type: span`` shape, unknown type, span not in the sentence) and how many lines there were.
    """
    canon = {re.sub(r"[\s_-]", "", t.lower()): t for t in types}
    lines = [line for line in str(text).splitlines() if line.strip()]
    if len(lines) == 1 and lines[0].strip().strip(".").lower() in (NONE, "no entities", "no entity"):
        return set(), 0, 1
    spans: set[Span] = set()
    used: set[tuple[int, int]] = set()
    bad = 0
    for line in lines:
        m = _LINE.match(line)
        kind = canon.get(re.sub(r"[\s_-]", "", m.group(1).lower())) if m else None
        if m is None or kind is None:
            bad += 1
            continue
        value = m.group(2).strip().strip("\"'`").strip()
        pieces = [value] if _find(value.split(), tokens, used) else [p.strip() for p in re.split(r";|,", value)]
        found = False
        for piece in pieces:
            where = _find(piece.split(), tokens, used) if piece else None
            if where is not None:
                used.add(where)
                spans.add((kind, where[0], where[1]))
                found = True
        bad += 0 if found else 1
    return spans, bad, len(lines)


def _types_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    return sorted({t[2:] for r in rows for t in r["tags"] if t != "O"})


class RetrievalPrompts(Source):
    """``(prompt, answer)`` rows for instruction tuning and evaluation, with retrieved in-prompt examples.

    Columns: ``prompt``, ``answer``, ``tokens``, ``tags``, ``domain``, ``types`` (the label set shown), ``examples``
    (pool row numbers used, most similar last) and ``coverage`` (share of the query's gold entity types that occur in
    its examples: a retrieval-quality figure that needs no LM; NaN for a query without entities or with k=0).

    Args:
        queries: the sentences to tag (a :class:`~polymodal.data.conll.ConllSource`).
        pool: where examples come from (e.g. each target domain's train split); ``None``: the queries themselves
            (the query itself and identical sentences are never its own example). Only examples of the query's own
            domain are retrieved.
        k: examples per prompt (evaluation).
        k_choices: training: each prompt draws its k from these (seeded), overriding ``k``.
        retrieval: ``"word"`` (MaxSim over word vectors), ``"sentence"`` (cosine of mean-pooled sentence embeddings)
            or ``"random"``.
        encoder: the retrieval encoder (``model`` of a TextEncoder: ``"minilm-l6"``).
        tokenizer: its tokenizer spec, for architectures (``"bytes"``).
        cache: FeatureCache directory for the retrieval embeddings (``None``: memory only).
        types: domain -> label set shown (default: the entity types of the domain's pool, else of its queries).
        shuffle_types: show the label set in a random order per prompt (training regularisation).
        seed: seed of ``k_choices``, ``shuffle_types`` and random retrieval.
    """

    def __init__(
        self,
        queries: ConllSource,
        pool: ConllSource | None = None,
        k: int = 3,
        k_choices: list[int] | None = None,
        retrieval: Literal["word", "sentence", "random"] = "word",
        encoder: str = "minilm-l6",
        tokenizer: str | None = None,
        cache: str | None = None,
        types: dict[str, list[str]] | None = None,
        shuffle_types: bool = False,
        seed: int = 0,
    ) -> None:
        if retrieval not in ("word", "sentence", "random"):
            raise ValueError(f"retrieval must be 'word', 'sentence' or 'random', got {retrieval!r}")
        if k < 0 or any(c < 0 for c in k_choices or []):
            raise ValueError(f"k and k_choices must be >= 0, got {k}, {k_choices}")
        self.queries, self.pool = queries, pool
        self.k, self.k_choices = int(k), [int(c) for c in k_choices] if k_choices else None
        self.retrieval, self.encoder, self.tokenizer, self.cache = retrieval, encoder, tokenizer, cache
        self.types = {str(d): [str(t) for t in ts] for d, ts in (types or {}).items()}
        self.shuffle_types, self.seed = bool(shuffle_types), int(seed)

    def describe(self) -> str:
        return f"{self.queries.describe()} (prompts, {self.retrieval} retrieval)"

    # ------------------------------------------------------------ retrieval
    def _scores(self, query_rows: list[dict[str, Any]], pool_rows: list[dict[str, Any]]) -> np.ndarray:
        """Similarity ``(Q, P)`` of queries to pool sentences under the chosen retrieval."""
        if self.retrieval == "random":
            return np.random.default_rng(self.seed).random((len(query_rows), len(pool_rows)))
        from polymodal.data.cache import FeatureCache
        from polymodal.model import EmbeddingModel
        from polymodal.plugins.text import TextEncoder, WordEmbedder
        from polymodal.poolers import MeanPooler
        from polymodal.search import MaxSimReranker

        encoder = TextEncoder(model=self.encoder, tokenizer=self.tokenizer)
        if self.retrieval == "word":
            reranker = MaxSimReranker(WordEmbedder(encoder), cache=self.cache)
            return reranker.scores([r["tokens"] for r in query_rows], [r["tokens"] for r in pool_rows])
        cached = FeatureCache(EmbeddingModel(encoder, MeanPooler(), normalize=True), self.cache, options="sentence")
        q = cached.encode([r["text"] for r in query_rows], normalize=True)
        p = cached.encode([r["text"] for r in pool_rows], normalize=True)
        return q @ p.T

    def read(self) -> Any:
        import pandas as pd

        queries = self.queries.frame().to_dict("records")
        pool = self.pool.frame().to_dict("records") if self.pool is not None else queries
        rng = random.Random(self.seed)
        ks = [rng.choice(self.k_choices) if self.k_choices else self.k for _ in queries]
        by_domain_q: dict[str, list[int]] = {}
        for i, q in enumerate(queries):
            by_domain_q.setdefault(q["domain"], []).append(i)
        chosen: list[list[int]] = [[] for _ in queries]
        for domain, qi in by_domain_q.items():
            pi = [j for j, p in enumerate(pool) if p["domain"] == domain]
            if not pi and max(ks[i] for i in qi) > 0:
                raise ValueError(f"{self.describe()}: the pool has no sentence of domain {domain!r} to retrieve from")
            if not pi or max(ks[i] for i in qi) == 0:
                continue
            scores = self._scores([queries[i] for i in qi], [pool[j] for j in pi])  # (Q_d, P_d)
            for row, i in enumerate(qi):
                order = np.argsort(-scores[row], kind="stable")
                picked = [pi[int(o)] for o in order if pool[pi[int(o)]]["text"] != queries[i]["text"]][: ks[i]]
                chosen[i] = picked[::-1]  # most similar last, next to the query
        domain_types = {}
        for domain, qi in by_domain_q.items():
            rows = [p for p in pool if p["domain"] == domain] or [queries[i] for i in qi]
            domain_types[domain] = self.types.get(domain) or _types_of(rows)
        out = []
        for i, q in enumerate(queries):
            types = list(domain_types[q["domain"]])
            if self.shuffle_types:
                rng.shuffle(types)
            examples = [(pool[j]["tokens"], pool[j]["tags"]) for j in chosen[i]]
            gold = {t[2:] for t in q["tags"] if t != "O"}
            seen = {t[2:] for j in chosen[i] for t in pool[j]["tags"] if t != "O"}
            out.append(
                {
                    "prompt": build_prompt(q["tokens"], types, examples),
                    "answer": format_answer(q["tokens"], q["tags"]),
                    "tokens": q["tokens"],
                    "tags": q["tags"],
                    "domain": q["domain"],
                    "types": types,
                    "examples": [int(j) + 1 for j in chosen[i]],
                    "coverage": len(gold & seen) / len(gold) if gold and chosen[i] else float("nan"),
                }
            )
        log.info("%s: %d prompts", self.describe(), len(out))
        return pd.DataFrame(out)
