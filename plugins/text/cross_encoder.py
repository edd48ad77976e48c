"""Cross-encoders: one transformer reads both sentences of a pair and outputs a score.

A cross-encoder attends across the two texts, so it is usually more accurate than a bi-encoder
(two independent embeddings compared by cosine) but must run once per *pair*: scoring N
candidates costs N forward passes instead of one per new text. It is the teacher of Distilled
Sentence Embedding (``recipes/distilled``), whose bi-encoder student regresses its scores.

* :class:`PairTextProcessor` tokenises ``(a, b)`` pairs with the tokenizer's pair template
  (``[CLS] a [SEP] b [SEP]`` for BERT, with segment ids), truncating the longer text first.
* :class:`CrossEncoder` is an :class:`~polymodal.model.EmbeddingModel` (encoder + pooler) with a
  linear head; it saves to and loads from the same safetensors + JSON folder format
  (``CrossEncoder.from_folder(path)`` or ``polymodal.load(path)``), and :meth:`CrossEncoder.predict`
  scores pairs in length-sorted batches.
* Training: the :func:`polymodal.presets.CrossEncoderSystem` preset (``polymodal fit``), exported with
  ``ExportModel(head="score")``.

Reference: Barkan et al., "Scalable Attentive Sentence-Pair Modeling via Distilled Sentence
Embedding" (AAAI 2020), https://arxiv.org/abs/1908.05161.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from polymodal.model import EmbeddingModel, cpu_streams, eval_for_call
from polymodal.plugins.text.encoder import TextEncoder
from polymodal.plugins.text.processor import TextProcessor
from polymodal.poolers import ClsPooler, Pooler

__all__ = ["CrossEncoder", "PairTextProcessor", "pair_processor"]


class PairTextProcessor(TextProcessor):
    """Tokenise ``(a, b)`` text pairs into one sequence with segment ids.

    Uses the tokenizer's own pair template (its post-processor), so BERT-style models get
    ``[CLS] a [SEP] b [SEP]`` with ``token_type_ids`` 0/1. Pairs longer than ``max_length``
    are truncated longest-first (the longer text loses tokens first).
    """

    def validate(self, value: Any) -> None:
        if not (isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, str) for v in value)):
            raise ValueError(f"expected a pair of strings, got {value!r:.60}")

    def lengths(self, values: Sequence[Any]) -> list[int]:
        return [sum(len(v) for v in pair) if isinstance(pair, (tuple, list)) else 0 for pair in values]

    def __call__(self, values: Sequence[Any]) -> dict[str, Tensor]:
        pairs = []
        for pair in values:
            self.validate(pair)
            a, b = self._texts(pair)
            pairs.append((a, b))
        encodings = self.tokenizer.encode_batch(pairs, add_special_tokens=True)
        T = max((len(e.ids) for e in encodings), default=1)
        ids = np.full((len(encodings), T), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), T), dtype=np.int64)
        types = np.zeros((len(encodings), T), dtype=np.int64)
        for i, e in enumerate(encodings):
            n = len(e.ids)
            ids[i, :n], mask[i, :n], types[i, :n] = e.ids, 1, e.type_ids
            self.truncated += bool(e.overflowing)
        return {
            "input_ids": torch.from_numpy(ids),
            "attention_mask": torch.from_numpy(mask),
            "token_type_ids": torch.from_numpy(types),
        }


def pair_processor(encoder: TextEncoder) -> PairTextProcessor:
    """The pair processor sharing ``encoder``'s tokenizer, length limit and padding id."""
    single = encoder.processor
    return PairTextProcessor(single.tokenizer, single.max_length, single.pad_id)


class CrossEncoder(EmbeddingModel):
    """Encoder + pooler + linear head: ``score = head(pool(encoder([a; b])))``.

    Args:
        encoder: a :class:`~polymodal.plugins.text.TextEncoder` (any HF encoder).
        pooler: reduces the pair's token states; ``[CLS]`` by default.
        normalize: unused by the head; kept for the folder format.
        num_labels: outputs of the head (1: a similarity score).
        activation: ``"sigmoid"`` maps the score to (0, 1) (trained with BCE on scores scaled
            to [0, 1]); ``"softmax"`` gives class probabilities (``num_labels > 1``, e.g. NLI);
            ``"identity"`` returns raw values.
    """

    def __init__(
        self,
        encoder: TextEncoder,
        pooler: Pooler | None = None,
        normalize: bool = False,
        num_labels: int = 1,
        activation: Literal["sigmoid", "softmax", "identity"] = "sigmoid",
    ) -> None:
        super().__init__(encoder, pooler if pooler is not None else ClsPooler(), normalize)
        if activation not in ("sigmoid", "softmax", "identity"):
            raise ValueError(f"activation must be 'sigmoid', 'softmax' or 'identity', got {activation!r}")
        self.num_labels = int(num_labels)
        self.activation = activation
        self.head = nn.Linear(encoder.output_dim, self.num_labels)
        self.pairs = pair_processor(encoder)

    def model_args(self) -> dict[str, Any]:
        return {"num_labels": self.num_labels, "activation": self.activation}

    def logits(self, inputs: dict[str, Tensor]) -> Tensor:
        """Raw head outputs ``(B,)`` (``(B, num_labels)`` when ``num_labels > 1``)."""
        out = self.head(self.pooler(self.encoder(inputs)))  # (B, L)
        return out.squeeze(-1) if self.num_labels == 1 else out

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        logits = self.logits(inputs)
        if self.activation == "sigmoid":
            return torch.sigmoid(logits)
        return logits.softmax(-1) if self.activation == "softmax" else logits

    @classmethod
    def from_head(cls, encoder: TextEncoder, pooler: Pooler | None, head: nn.Module, activation: str) -> CrossEncoder:
        """A cross-encoder from a trained System's pair tower, pooler and linear head (a
        :class:`~polymodal.heads.LinearHead` without hidden layer)."""
        linear = getattr(head, "linear", None)
        if not isinstance(linear, nn.Linear):
            raise ValueError("a cross-encoder export needs a LinearHead with hidden=0")
        model = cls(encoder, pooler, num_labels=linear.out_features, activation=activation)  # type: ignore[arg-type]
        model.head.load_state_dict(linear.state_dict())
        return model

    def predict(self, pairs: Sequence[tuple[str, str]], batch_size: int = 32, streams: int | None = None) -> np.ndarray:
        """Scores ``(N,)`` for ``N`` pairs, in input order (length-sorted batches inside).

        ``streams``: on CPU, batches scored at once by one-thread streams (default: one per torch thread, as in
        :meth:`~polymodal.model.EmbeddingModel.encode`; ``1``: one batch at a time on all threads). The scores
        do not depend on it."""
        if isinstance(pairs, tuple) and len(pairs) == 2 and all(isinstance(p, str) for p in pairs):
            raise TypeError("predict() takes a list of pairs; wrap a single pair in a list")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        pairs = list(pairs)
        for i, pair in enumerate(pairs):
            try:
                self.pairs.validate(pair)
            except ValueError as exc:
                raise ValueError(f"pair {i}: {exc}") from None
        device = self._device()
        order = np.argsort([-n for n in self.pairs.lengths(pairs)], kind="stable")
        out = np.empty((len(pairs),) if self.num_labels == 1 else (len(pairs), self.num_labels), dtype=np.float32)
        batches = [order[start : start + batch_size] for start in range(0, len(pairs), batch_size)]
        threads = torch.get_num_threads()
        concurrent = bool(getattr(self.encoder, "concurrent_forward", False))
        n_streams = cpu_streams(streams, device, concurrent, threads, len(pairs), batch_size)

        def score(idx: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                inputs = {k: v.to(device) for k, v in self.pairs([pairs[i] for i in idx]).items()}
                return self(inputs).float().cpu().numpy()

        with eval_for_call(self):
            if n_streams > 1:
                from concurrent.futures import ThreadPoolExecutor

                torch.set_num_threads(1)
                try:
                    with ThreadPoolExecutor(n_streams, thread_name_prefix="polymodal-predict") as pool:
                        for idx, scores in zip(batches, pool.map(score, batches)):
                            out[idx] = scores
                finally:
                    torch.set_num_threads(threads)
            else:
                for idx in batches:
                    out[idx] = score(idx)
        return out

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: int | None = None,
        batch_size: int = 32,
        return_documents: bool = False,
    ) -> list[dict[str, Any]]:
        """Score ``query`` against every document and return them best first (sentence-transformers' ``rank``).

        Args:
            query: the query text.
            documents: candidate texts.
            top_k: keep the best ``top_k`` (default: all).
            batch_size: pairs per forward pass.
            return_documents: add each document's ``"text"``.

        Returns:
            ``[{"corpus_id": i, "score": s}, ...]`` sorted by descending score (ties keep input order).

        Example:
            >>> reranker.rank("a cat", ["a dog", "a kitten", "a car"], top_k=2)
            [{'corpus_id': 1, 'score': 0.93}, {'corpus_id': 0, 'score': 0.41}]
        """
        if not isinstance(query, str):
            raise TypeError(f"query must be a string, got {type(query).__name__}")
        if isinstance(documents, str):
            raise TypeError("rank() takes a list of documents; wrap a single string in a list")
        documents = list(documents)
        if not documents:
            raise ValueError("rank() needs at least one document, got an empty list")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}")
        for i, doc in enumerate(documents):
            if not isinstance(doc, str):
                raise ValueError(f"document {i}: expected a string, got {type(doc).__name__}")
        scores = self.predict([(query, d) for d in documents], batch_size=batch_size)
        if scores.ndim != 1:
            raise ValueError(f"rank() needs a one-label cross-encoder, this one has {self.num_labels} labels")
        order = np.argsort(-scores, kind="stable")[: top_k or len(documents)]
        hits = [{"corpus_id": int(i), "score": float(scores[i])} for i in order]
        if return_documents:
            for hit in hits:
                hit["text"] = documents[hit["corpus_id"]]
        return hits

    def encode(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("a CrossEncoder scores pairs (predict); it does not embed single inputs")

    iter_encode = encode
