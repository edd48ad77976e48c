"""Contextual word embeddings: a text encoder's token states averaged over each word's sub-word tokens.

The token-level counterpart of a sentence embedding, used for late-interaction scoring
(:class:`polymodal.search.MaxSimReranker`: mean over query words of the best cosine to a document's words) and for
the word-level example retrieval of IF-WRANER. Values are sentences given as lists of words (or strings, split on
whitespace); ``encode`` returns one ``(W_i, D)`` array per sentence, so it plugs into
:class:`~polymodal.data.cache.FeatureCache` with ``ragged=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from polymodal.plugins.text.encoder import TextEncoder
from polymodal.plugins.text.processor import WordProcessor

__all__ = ["WordEmbedder"]


class WordEmbedder(nn.Module):
    """Word vectors of sentences from any text encoder.

    Args:
        encoder: a :class:`~polymodal.plugins.text.TextEncoder`, or its ``model`` argument (``"minilm-l6"``).
        max_length: sub-word tokens per sentence (longer sentences lose their last words' vectors).

    Example:
        >>> words = WordEmbedder("minilm-l6").encode([["Paris", "is", "nice"]])  # [(3, 384) array]
    """

    def __init__(self, encoder: TextEncoder | str = "minilm-l6", max_length: int = 256) -> None:
        super().__init__()
        self.encoder = TextEncoder(model=encoder, max_length=max_length) if isinstance(encoder, str) else encoder
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_str(self.encoder.processor.tokenizer.to_str())  # a copy: own truncation
        self.processor = WordProcessor(tokenizer, max_length, pad_id=self.encoder.processor.pad_id)
        self.max_length = int(max_length)

    @property
    def dim(self) -> int:
        return int(self.encoder.output_dim)

    @staticmethod
    def words(value: Any) -> list[str]:
        """A sentence as its words (a string is split on whitespace)."""
        if isinstance(value, str):
            return value.split()
        return [str(w) for w in value]

    def forward_words(self, sentences: Sequence[Sequence[str]]) -> list[torch.Tensor]:
        """Word vectors ``(W_i, D)`` of a batch (mean of each word's sub-word states; untokenised words left out)."""
        inputs = self.processor([list(s) for s in sentences])
        device = next(self.encoder.parameters()).device
        states = self.encoder({k: v.to(device) for k, v in inputs.items()}).sequence  # (B, T, D)
        word_ids = inputs["word_ids"].to(device)
        out = []
        for i in range(states.shape[0]):
            keep = word_ids[i] >= 0
            ids, vecs = word_ids[i][keep], states[i][keep].float()  # (T_i,), (T_i, D)
            if not len(ids):
                out.append(states.new_zeros((0, states.shape[-1]), dtype=torch.float32))
                continue
            n = int(ids.max()) + 1
            sums = vecs.new_zeros((n, vecs.shape[-1])).index_add_(0, ids, vecs)
            counts = torch.bincount(ids, minlength=n).clamp_min(1).unsqueeze(-1)
            present = torch.bincount(ids, minlength=n) > 0
            out.append((sums / counts)[present])  # (W_i, D)
        return out

    def encode(
        self, values: Sequence[Any], batch_size: int = 32, normalize: bool | None = True, **_: Any
    ) -> list[np.ndarray]:
        """One float32 ``(W_i, D)`` array per sentence, in input order (L2-normalised rows by default).

        Raises:
            ValueError: a sentence without words (naming its position).
        """
        sentences = [self.words(v) for v in values]
        for i, s in enumerate(sentences):
            if not s:
                raise ValueError(f"sentence {i + 1}: empty sentence (no words)")
        order = np.argsort([-len(s) for s in sentences], kind="stable")
        out: list[np.ndarray | None] = [None] * len(sentences)
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(order), batch_size):
                    idx = order[start : start + batch_size]
                    for i, vecs in zip(idx, self.forward_words([sentences[j] for j in idx])):
                        if normalize or normalize is None:
                            vecs = F.normalize(vecs, dim=-1)
                        out[int(i)] = vecs.cpu().numpy().astype(np.float32)
        finally:
            self.train(was_training)
        return out  # type: ignore[return-value]
