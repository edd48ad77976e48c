"""Static word and document embeddings trained from scratch: Binary Paragraph Vector and Disambiguated Skip-gram.

Two small encoders of Grzegorczyk's dissertation "Vector representations of text data in deep learning" (2019):

* :class:`BinaryParagraphVector` — PV-DBOW (Le & Mikolov 2014) whose document embedding passes through a
  sigmoid code layer binarised with the straight-through estimator (Grzegorczyk & Kurdziel, "Binary Paragraph
  Vectors", RepL4NLP 2017, arXiv:1611.01116): ``doc -> sigmoid(e_doc) -> round (straight-through) -> softmax over
  the vocabulary`` predicts the document's words. Codes of unseen documents are inferred by gradient descent on
  a fresh embedding with the output layer frozen (as gensim's ``infer_vector``).
* :class:`SenseSkipGram` — Disambiguated Skip-gram (Grzegorczyk & Kurdziel, EMNLP 2018): ``K`` sense vectors per
  word and a disambiguation network that chooses a sense from the context; the context-prediction loss
  (skip-gram with negative sampling) is the expectation over the sense distribution, so the sense choice is
  differentiable end to end. An entropy term (weight ``entropy_weight``) pushes the choice towards one sense.

Both are :class:`~polymodal.modality.Encoder` towers of a :class:`polymodal.System`. The vocabulary (and, for
PV-DBOW, the table of training documents) is built from a :class:`~polymodal.data.sources.Source` when the encoder
is created; the self-supervised loss is the tower's :meth:`loss`, run by
:class:`polymodal.objectives.TowerLoss`.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.data.sources import Source
from polymodal.features import Features
from polymodal.modality import Encoder, Processor

__all__ = [
    "BinaryParagraphVector",
    "DocumentWordsProcessor",
    "SenseSkipGram",
    "Vocabulary",
    "WordIdsProcessor",
    "check_code_bits",
    "corpus_texts",
    "pack_codes",
    "sense_probabilities",
    "straight_through_binarize",
    "tokenize",
]

_WORD = re.compile(r"[a-z0-9]+(?:['_][a-z0-9]+)*")


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens (letters and digits; inner apostrophes and underscores kept)."""
    return _WORD.findall(text.lower())


def check_code_bits(bits: Any) -> int:
    """``bits`` as an int, or a one-line ``ValueError``: codes are packed into bytes, so the size must be a
    positive multiple of 8."""
    if isinstance(bits, bool) or not isinstance(bits, int) or bits <= 0 or bits % 8:
        raise ValueError(f"code_bits must be a positive multiple of 8 (codes are packed into bytes), got {bits!r}")
    return bits


def straight_through_binarize(probs: Tensor) -> Tensor:
    """Round probabilities to {0, 1} in the forward pass; pass the gradient through unchanged (the
    straight-through estimator of Bengio et al. 2013, as in Binary Paragraph Vectors).

    Args:
        probs: sigmoid outputs in [0, 1], any shape.

    Returns:
        A tensor equal to ``(probs > 0.5)`` whose gradient with respect to ``probs`` is the identity.
    """
    hard = (probs > 0.5).to(probs.dtype)
    return probs + (hard - probs).detach()


def pack_codes(codes: Tensor | Any) -> Any:
    """``(N, bits)`` 0/1 (or boolean, or sign: > 0 is 1) codes -> ``(N, bits / 8)`` uint8, the layout of
    faiss' binary indexes (``numpy.packbits``, most significant bit first)."""
    import numpy as np

    arr = codes.detach().cpu().numpy() if isinstance(codes, Tensor) else np.asarray(codes)
    if arr.ndim != 2:
        raise ValueError(f"codes must be (N, bits), got shape {arr.shape}")
    check_code_bits(int(arr.shape[1]))
    return np.packbits(arr > 0, axis=1)


def corpus_texts(source: Source, column: str) -> list[str]:
    """The ``column`` of a :class:`~polymodal.data.sources.Source` as strings; an empty (or missing) document is a
    one-line error naming the source, the row and the column."""
    frame = source.frame()
    if column not in frame.columns:
        raise ValueError(f"{source.describe()}: no column {column!r} (columns: {list(frame.columns)})")
    texts = []
    for i, value in enumerate(frame[column].tolist()):
        if not isinstance(value, str) or not tokenize(value):
            raise ValueError(
                f"{source.describe()}: row {i + 1}, column {column!r}: empty document (no word tokens: {value!r:.40})"
            )
        texts.append(value)
    if not texts:
        raise ValueError(f"{source.describe()}: the corpus has no documents")
    return texts


def doc_key(text: str) -> str:
    """A document's identity: the first 16 hex digits of the SHA-1 of its text."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


class Vocabulary:
    """Word <-> id, built from token counts (ids by descending count, ties alphabetical); unknown words are
    dropped, not mapped to an ``<unk>`` id.

    Args:
        words: the words, in id order.
        counts: their corpus counts (for negative sampling and sub-sampling).
    """

    def __init__(self, words: Sequence[str], counts: Sequence[int]) -> None:
        if len(words) != len(counts):
            raise ValueError(f"{len(words)} words but {len(counts)} counts")
        if not words:
            raise ValueError("the vocabulary is empty (lower min_count or give a larger corpus)")
        self.words = list(words)
        self.counts = [int(c) for c in counts]
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, texts: Sequence[str], min_count: int = 1, max_size: int | None = None) -> Vocabulary:
        counter: Counter[str] = Counter()
        for text in texts:
            counter.update(tokenize(text))
        items = sorted(((w, c) for w, c in counter.items() if c >= min_count), key=lambda wc: (-wc[1], wc[0]))
        items = items[:max_size] if max_size else items
        if not items:
            raise ValueError(f"no word occurs at least min_count={min_count} times in the corpus")
        return cls([w for w, _ in items], [c for _, c in items])

    def __len__(self) -> int:
        return len(self.words)

    def ids(self, text: str) -> list[int]:
        return [self.index[t] for t in tokenize(text) if t in self.index]


def _pad(rows: Sequence[Sequence[int]], width: int | None = None) -> tuple[Tensor, Tensor]:
    width = max([len(r) for r in rows] + [1]) if width is None else width
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, r in enumerate(rows):
        r = list(r)[:width]
        if r:
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = True
    return ids, mask


class DocumentWordsProcessor(Processor):
    """Document texts -> ``doc`` (index in the training table, -1 for an unseen document), ``words`` ``(B, W)``
    word ids and ``word_mask``. A training-table document keeps at most ``max_words`` words (sampled without
    replacement, anew each call); an unseen document keeps all its known words (its code is inferred from them).

    Args:
        vocabulary: the encoder's vocabulary.
        documents: doc key (:func:`doc_key`) -> row of the document table.
        max_words: words kept per training document and batch (a random subset when longer; all for ``None``).
    """

    def __init__(self, vocabulary: Vocabulary, documents: Mapping[str, int], max_words: int | None = 64) -> None:
        self.vocabulary, self.documents, self.max_words = vocabulary, dict(documents), max_words

    def validate(self, value: Any) -> None:
        if not isinstance(value, str) or not self.vocabulary.ids(value):
            raise ValueError(f"expected a document with at least one known word, got {value!r:.40}")

    def lengths(self, values: Sequence[Any]) -> list[int]:
        return [len(str(v)) for v in values]

    def __call__(self, values: Sequence[Any]) -> dict[str, Tensor]:
        doc = [self.documents.get(doc_key(str(v)), -1) for v in values]
        rows = []
        for v, d in zip(values, doc):
            ids = self.vocabulary.ids(str(v))
            # a training document predicts a fresh random subset each step; an unseen one's code is inferred from
            # all its words (deterministic: the same text always gets the same code)
            if d >= 0 and self.max_words is not None and len(ids) > self.max_words:
                pick = torch.randperm(len(ids))[: self.max_words].tolist()
                ids = [ids[j] for j in sorted(pick)]
            rows.append(ids)
        words, mask = _pad(rows)
        return {"doc": torch.tensor(doc, dtype=torch.long), "words": words, "word_mask": mask}


class BinaryParagraphVector(Encoder):
    """Binary PV-DBOW: a document's ``code_bits``-bit code predicts its words.

    ``forward`` returns the codes (0/1 floats, straight-through in training) as ``Features.pooled`` ``(B, bits)``
    (and as a one-position sequence). Documents of the training table use their trained embedding; any other
    document's embedding is inferred on the fly (``infer_steps`` Adam steps with lr ``infer_lr`` on its words,
    output layer frozen), so an exported model encodes new corpora (transfer).

    Args:
        corpus: the training documents (a :class:`~polymodal.data.sources.Source`, e.g. ``Table``): the
            vocabulary and the document table are built from its ``column`` when the encoder is created.
        column: the text column of ``corpus``.
        code_bits: code size, a positive multiple of 8 (32-128 in the paper).
        min_count: words seen fewer times are dropped.
        max_vocab: keep the most frequent words only.
        max_words: words predicted per training document and step (unseen documents use all their words).
        infer_steps: gradient steps to infer an unseen document's code.
        infer_lr: their learning rate.
        seed: initialisation seed (``None``: torch's global generator, seeded by ``seed_everything``).
        vocabulary: saved vocabulary ``[words, counts]`` (set by :meth:`from_config`; then ``corpus`` is not read).
        documents: saved document keys, in table order (set by :meth:`from_config`).
    """

    modality = "text"

    def __init__(
        self,
        corpus: Source | None = None,
        column: str = "text",
        code_bits: int = 64,
        min_count: int = 2,
        max_vocab: int | None = 30000,
        max_words: int | None = 64,
        infer_steps: int = 40,
        infer_lr: float = 0.1,
        seed: int | None = None,
        vocabulary: Sequence[Sequence[Any]] | None = None,
        documents: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.code_bits = check_code_bits(code_bits)
        if vocabulary is not None and documents is not None:
            self.vocabulary = Vocabulary(list(vocabulary[0]), list(vocabulary[1]))
            keys = list(documents)
        else:
            if corpus is None:
                raise ValueError("BinaryParagraphVector needs corpus (a Source of training documents)")
            texts = corpus_texts(corpus, column)
            self.vocabulary = Vocabulary.build(texts, min_count, max_vocab)
            keys = [doc_key(t) for t in texts]
        self.column, self.min_count, self.max_vocab = column, min_count, max_vocab
        self.max_words, self.infer_steps, self.infer_lr, self.seed = max_words, int(infer_steps), float(infer_lr), seed
        self.documents = {k: i for i, k in enumerate(dict.fromkeys(keys))}  # duplicates share one row
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.doc_embedding = nn.Parameter(torch.randn(len(self.documents), self.code_bits, generator=generator) * 0.1)
        self.output = nn.Linear(self.code_bits, len(self.vocabulary))
        with torch.no_grad():
            self.output.weight.normal_(0.0, 1.0 / math.sqrt(self.code_bits), generator=generator)
            self.output.bias.zero_()
        self._processor = DocumentWordsProcessor(self.vocabulary, self.documents, max_words)

    @property
    def processor(self) -> Processor:
        return self._processor

    @property
    def output_dim(self) -> int:
        return self.code_bits

    def codes(self, logits: Tensor) -> Tensor:
        """Binary codes ``(B, bits)`` of code-layer pre-activations (straight-through)."""
        return straight_through_binarize(torch.sigmoid(logits))

    def word_nll(self, codes: Tensor, words: Tensor, mask: Tensor) -> Tensor:
        """Per-document mean negative log-likelihood ``(B,)`` of its words under the softmax of the codes."""
        logp = F.log_softmax(self.output(codes), dim=-1)  # (B, V)
        picked = logp.gather(1, words) * mask  # (B, W)
        return -picked.sum(1) / mask.sum(1).clamp(min=1)

    def infer(self, words: Tensor, mask: Tensor) -> Tensor:
        """Code-layer pre-activations ``(B, bits)`` of unseen documents, fitted to their words with the output
        layer frozen (deterministic: zero start, full-batch Adam)."""
        frozen = [p.requires_grad for p in self.output.parameters()]
        for p in self.output.parameters():
            p.requires_grad_(False)
        try:
            # validation and encoding run under inference mode: leave it for these few optimiser steps
            with torch.inference_mode(False), torch.enable_grad():
                words, mask = words.clone(), mask.clone()
                logits = torch.zeros(words.shape[0], self.code_bits, device=words.device, requires_grad=True)
                opt = torch.optim.Adam([logits], lr=self.infer_lr)
                for _ in range(self.infer_steps):
                    opt.zero_grad()
                    self.word_nll(self.codes(logits), words, mask).sum().backward()
                    opt.step()
        finally:
            for p, flag in zip(self.output.parameters(), frozen):
                p.requires_grad_(flag)
        return logits.detach()

    def code_logits(self, inputs: Mapping[str, Tensor]) -> Tensor:
        doc = inputs["doc"]
        known = doc >= 0
        logits = self.doc_embedding[doc.clamp(min=0)]  # (B, bits)
        if not bool(known.all()):
            unseen = ~known
            inferred = self.infer(inputs["words"][unseen], inputs["word_mask"][unseen])
            logits = logits.clone()
            logits[unseen] = inferred.to(logits.dtype)
        return logits

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        codes = self.codes(self.code_logits(inputs))  # (B, bits)
        mask = torch.ones(codes.shape[0], 1, dtype=torch.bool, device=codes.device)
        return Features(sequence=codes[:, None, :], mask=mask, pooled=codes)

    #: :class:`~polymodal.objectives.TowerLoss` hands :meth:`loss` the Step's (shared) features of the column.
    loss_reads_features = True

    def loss(self, inputs: Mapping[str, Tensor], features: Features | None = None) -> Tensor:
        """PV-DBOW word prediction from the binary codes of the batch's documents (mean NLL per word)."""
        codes = (features if features is not None else self.forward(inputs)).pooled
        assert codes is not None
        return self.word_nll(codes, inputs["words"], inputs["word_mask"]).mean()

    def get_config(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "code_bits": self.code_bits,
            "min_count": self.min_count,
            "max_vocab": self.max_vocab,
            "max_words": self.max_words,
            "infer_steps": self.infer_steps,
            "infer_lr": self.infer_lr,
            "seed": self.seed,
            "vocabulary": [self.vocabulary.words, self.vocabulary.counts],
            "documents": list(self.documents),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], directory: Path) -> BinaryParagraphVector:
        del directory
        return cls(**config)


# ---------------------------------------------------------------------------------------- senses
def sense_probabilities(sense_keys: Tensor, context: Tensor, context_mask: Tensor, temperature: float = 1.0) -> Tensor:
    """The disambiguation network: a softmax over a word's senses of their match with its context.

    ``p(k | w, c) = softmax_k(<key[w, k], mean_j ctx[c_j]> / temperature)``.

    Args:
        sense_keys: ``(N, K, D)`` the disambiguation keys of each centre word's ``K`` senses.
        context: ``(N, C, D)`` the disambiguation embeddings of its context words.
        context_mask: ``(N, C)`` real context positions.
        temperature: softmax temperature (> 0).

    Returns:
        ``(N, K)`` sense probabilities (rows sum to 1).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    m = context_mask.to(context.dtype).unsqueeze(-1)  # (N, C, 1)
    mean = (context * m).sum(1) / m.sum(1).clamp(min=1)  # (N, D)
    scores = torch.einsum("nkd,nd->nk", sense_keys, mean) / temperature  # (N, K)
    return scores.softmax(-1)


def expected_skipgram_loss(
    senses: Tensor, probs: Tensor, positives: Tensor, positive_mask: Tensor, negatives: Tensor
) -> Tensor:
    """Negative-sampling skip-gram loss expected over the sense distribution, per centre word ``(N,)``.

    ``L = sum_k p_k * mean_j [ -log s(<v_k, u_j>) - sum_n log s(-<v_k, u_n>) ]`` over the real context words j.

    Args:
        senses: ``(N, K, D)`` sense vectors of the centre words.
        probs: ``(N, K)`` sense probabilities.
        positives: ``(N, C, D)`` output vectors of the context words.
        positive_mask: ``(N, C)`` real context positions.
        negatives: ``(N, C, M, D)`` output vectors of ``M`` negative samples per context word.
    """
    pos = F.logsigmoid(torch.einsum("nkd,ncd->nkc", senses, positives))  # (N, K, C)
    neg = F.logsigmoid(-torch.einsum("nkd,ncmd->nkcm", senses, negatives)).sum(-1)  # (N, K, C)
    m = positive_mask.to(senses.dtype).unsqueeze(1)  # (N, 1, C)
    per_sense = -((pos + neg) * m).sum(-1) / m.sum(-1).clamp(min=1)  # (N, K)
    return (probs * per_sense).sum(-1)


class WordIdsProcessor(Processor):
    """Texts -> ``ids`` ``(B, T)`` word ids (unknown words dropped, at most ``max_tokens``) and ``mask``."""

    def __init__(self, vocabulary: Vocabulary, max_tokens: int = 128) -> None:
        self.vocabulary, self.max_tokens = vocabulary, int(max_tokens)

    def validate(self, value: Any) -> None:
        if not isinstance(value, str) or not tokenize(value):
            raise ValueError(f"expected a text with word tokens, got {value!r:.40}")

    def lengths(self, values: Sequence[Any]) -> list[int]:
        return [len(str(v)) for v in values]

    def __call__(self, values: Sequence[Any]) -> dict[str, Tensor]:
        ids, mask = _pad([self.vocabulary.ids(str(v))[: self.max_tokens] for v in values])
        return {"ids": ids, "mask": mask}


class SenseSkipGram(Encoder):
    """Disambiguated Skip-gram: ``senses`` vectors per word, chosen from the context by a softmax.

    Each position of a text is a centre word; its context is the ``window`` words on each side. The sense
    distribution comes from :func:`sense_probabilities` (separate disambiguation embeddings of the context words
    and per-sense keys); the loss is :func:`expected_skipgram_loss` with ``negatives`` samples from the unigram
    distribution to the power 0.75, plus ``entropy_weight`` times the mean entropy of the sense choice.
    ``forward`` returns each token's expected sense vector ``(B, T, D)`` (the contextual, disambiguated word
    vector) and their mean as ``pooled``.

    Args:
        corpus: the training texts (a :class:`~polymodal.data.sources.Source`); the vocabulary is built from it.
        column: its text column.
        senses: ``K``, sense vectors per word.
        dim: vector width.
        window: context words on each side.
        negatives: negative samples per context word.
        min_count: words seen fewer times are dropped.
        max_vocab: keep the most frequent words only.
        max_tokens: words read per text.
        temperature: of the sense softmax.
        entropy_weight: weight of the sense-entropy penalty.
        subsample: word2vec's frequent-word sub-sampling threshold for centre words (0: off).
        seed: initialisation seed.
        vocabulary: saved ``[words, counts]`` (set by :meth:`from_config`).
    """

    modality = "text"

    def __init__(
        self,
        corpus: Source | None = None,
        column: str = "text",
        senses: int = 3,
        dim: int = 64,
        window: int = 4,
        negatives: int = 5,
        min_count: int = 5,
        max_vocab: int | None = 20000,
        max_tokens: int = 128,
        temperature: float = 1.0,
        entropy_weight: float = 0.1,
        subsample: float = 1e-3,
        seed: int | None = None,
        vocabulary: Sequence[Sequence[Any]] | None = None,
    ) -> None:
        super().__init__()
        if senses < 1 or dim < 1 or window < 1 or negatives < 1:
            raise ValueError(
                f"senses, dim, window and negatives must be >= 1, got {senses}, {dim}, {window}, {negatives}"
            )
        if vocabulary is not None:
            self.vocabulary = Vocabulary(list(vocabulary[0]), list(vocabulary[1]))
        else:
            if corpus is None:
                raise ValueError("SenseSkipGram needs corpus (a Source of training texts)")
            self.vocabulary = Vocabulary.build(corpus_texts(corpus, column), min_count, max_vocab)
        self.column, self.num_senses, self.dim, self.window, self.num_negatives = column, senses, dim, window, negatives
        self.min_count, self.max_vocab, self.max_tokens = min_count, max_vocab, max_tokens
        self.temperature, self.entropy_weight, self.subsample, self.seed = temperature, entropy_weight, subsample, seed
        V = len(self.vocabulary)
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        self.senses = nn.Parameter((torch.rand(V, senses, dim, generator=g) - 0.5) / dim)  # word2vec's init
        self.sense_keys = nn.Parameter(torch.randn(V, senses, dim, generator=g) * 0.1)
        self.disambiguation = nn.Parameter(torch.randn(V, dim, generator=g) * 0.1)
        self.context_out = nn.Parameter(torch.zeros(V, dim))
        counts = torch.tensor(self.vocabulary.counts, dtype=torch.double)
        self.register_buffer("noise", (counts**0.75 / (counts**0.75).sum()).float(), persistent=False)
        freq = counts / counts.sum()
        keep = (torch.sqrt(freq / subsample) + 1) * subsample / freq if subsample > 0 else torch.ones_like(freq)
        self.register_buffer("keep_prob", keep.clamp(max=1.0).float(), persistent=False)
        self._processor = WordIdsProcessor(self.vocabulary, max_tokens)

    @property
    def processor(self) -> Processor:
        return self._processor

    @property
    def output_dim(self) -> int:
        return self.dim

    def contexts(self, ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Context word ids ``(B, T, 2 * window)`` of every position and their mask."""
        B, T = ids.shape
        offsets = [o for o in range(-self.window, self.window + 1) if o]
        pos = torch.arange(T, device=ids.device)[:, None] + torch.tensor(offsets, device=ids.device)  # (T, C)
        inside = (pos >= 0) & (pos < T)
        pos = pos.clamp(0, T - 1)
        ctx = ids[:, pos]  # (B, T, C)
        ctx_mask = mask[:, pos] & inside[None] & mask[:, :, None]
        return ctx, ctx_mask

    def sense_choice(self, center: Tensor, ctx: Tensor, ctx_mask: Tensor) -> Tensor:
        """``(N, K)`` sense probabilities of centre words ``(N,)`` in their contexts ``(N, C)``."""
        return sense_probabilities(self.sense_keys[center], self.disambiguation[ctx], ctx_mask, self.temperature)

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        ids, mask = inputs["ids"], inputs["mask"]
        ctx, ctx_mask = self.contexts(ids, mask)
        B, T = ids.shape
        probs = self.sense_choice(ids.reshape(-1), ctx.reshape(B * T, -1), ctx_mask.reshape(B * T, -1))
        vectors = torch.einsum("nk,nkd->nd", probs, self.senses[ids.reshape(-1)]).reshape(B, T, self.dim)
        m = mask.to(vectors.dtype).unsqueeze(-1)
        pooled = (vectors * m).sum(1) / m.sum(1).clamp(min=1)
        return Features(sequence=vectors, mask=mask, pooled=pooled)

    loss_reads_features = False

    def loss(self, inputs: Mapping[str, Tensor], features: Features | None = None) -> Tensor:
        """Expected negative-sampling loss over the sense choice, plus the entropy penalty (mean per centre)."""
        ids, mask = inputs["ids"], inputs["mask"]
        ctx, ctx_mask = self.contexts(ids, mask)
        keep = mask & (ctx_mask.any(-1))
        if self.training and self.subsample > 0:
            keep &= torch.rand(ids.shape, device=ids.device) < self.keep_prob[ids]
        center, ctx, ctx_mask = ids[keep], ctx[keep], ctx_mask[keep]  # (N,), (N, C), (N, C)
        if center.numel() == 0:
            return self.senses.sum() * 0.0
        probs = self.sense_choice(center, ctx, ctx_mask)  # (N, K)
        N, C = ctx.shape
        neg = torch.multinomial(self.noise, N * C * self.num_negatives, replacement=True).view(N, C, -1)
        sg = expected_skipgram_loss(self.senses[center], probs, self.context_out[ctx], ctx_mask, self.context_out[neg])
        entropy = -(probs * probs.clamp(min=1e-12).log()).sum(-1)
        return (sg + self.entropy_weight * entropy).mean()

    @torch.no_grad()
    def neighbours(self, word: str, k: int = 8) -> list[list[tuple[str, float]]]:
        """Per sense of ``word``, the ``k`` nearest words by cosine (each word's senses compared, best sense
        kept)."""
        if word not in self.vocabulary.index:
            raise KeyError(f"{word!r} is not in the vocabulary")
        w = self.vocabulary.index[word]
        table = F.normalize(self.senses, dim=-1)  # (V, K, D)
        out = []
        for s in range(self.num_senses):
            sims = torch.einsum("vkd,d->vk", table, table[w, s]).amax(-1)  # (V,)
            sims[w] = -2.0
            top = sims.topk(k)
            out.append([(self.vocabulary.words[i], float(v)) for v, i in zip(top.values, top.indices)])
        return out

    def get_config(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "senses": self.num_senses,
            "dim": self.dim,
            "window": self.window,
            "negatives": self.num_negatives,
            "min_count": self.min_count,
            "max_vocab": self.max_vocab,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "entropy_weight": self.entropy_weight,
            "subsample": self.subsample,
            "seed": self.seed,
            "vocabulary": [self.vocabulary.words, self.vocabulary.counts],
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], directory: Path) -> SenseSkipGram:
        del directory
        return cls(**config)
