"""Caption metrics: corpus BLEU-1..4 and CIDEr-D, computed as the coco-caption toolkit does.

Both follow ``pycocoevalcap`` (Chen et al. 2015, "Microsoft COCO Captions: Data Collection and
Evaluation Server") line by line, in pure Python, so no Java is needed:

* **BLEU** (Papineni et al. 2002) as in ``bleu_scorer.py``: clipped n-gram counts summed over
  the corpus, geometric mean of the 1..n precisions, brevity penalty against the *closest*
  reference length per hypothesis (ties: the shorter), and coco-caption's smoothing of
  ``(correct + 1e-15) / (guess + 1e-9)`` per order (so a zero count gives ~0, not an error).
* **CIDEr-D** (Vedantam et al. 2015) as in ``cider_scorer.py``: TF-IDF n-gram vectors (n = 1..4)
  with document frequencies over the *evaluated set's* references, clipped cosine similarity,
  a Gaussian length penalty (sigma = 6), mean over references and orders, times 10. As in the
  reference code, the "length" in the penalty counts the bigrams of a sentence.

Tokenisation approximates coco-caption's PTBTokenizer: lower-case, split off punctuation, drop
the punctuation tokens that PTBTokenizer removes. Scores are in [0, 1] for BLEU (not percent).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["CaptionScores", "bleu", "caption_scores", "cider_d", "tokenize_caption"]

# punctuation PTBTokenizer output that coco-caption removes before scoring
_PUNCT = {"''", "'", "``", "`", "-lrb-", "-rrb-", "-lcb-", "-rcb-", ".", "?", "!", ",", ":", "-", "--", "...", ";"}
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|'[a-z]+|\.\.\.|--|[^\sa-z0-9]")

NGram = tuple[str, ...]


def tokenize_caption(text: str) -> list[str]:
    """Lower-cased word tokens with punctuation removed (coco-caption's PTBTokenizer, approximately)."""
    return [t for t in _TOKEN.findall(text.lower()) if t not in _PUNCT]


def _ngrams(words: Sequence[str], n: int) -> Counter[NGram]:
    counts: Counter[NGram] = Counter()
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            counts[tuple(words[i : i + k])] += 1
    return counts


def _as_tokens(texts: Sequence[str] | Sequence[Sequence[str]]) -> list[list[str]]:
    return [tokenize_caption(t) if isinstance(t, str) else list(t) for t in texts]


def _check(hyps: Sequence, refs: Sequence) -> None:
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} reference sets")
    for i, r in enumerate(refs):
        if isinstance(r, str) or len(r) == 0:
            raise ValueError(f"reference set {i} must be a non-empty list of captions")


def bleu(
    hypotheses: Sequence[str] | Sequence[Sequence[str]],
    references: Sequence[Sequence[str]] | Sequence[Sequence[Sequence[str]]],
    n: int = 4,
) -> list[float]:
    """Corpus BLEU-1..n (coco-caption's ``Bleu(n)``, option ``closest``).

    Args:
        hypotheses: one caption per image (a string, tokenised here, or a token list).
        references: per image, a list of reference captions (strings or token lists).
        n: highest n-gram order.

    Returns:
        ``[BLEU-1, ..., BLEU-n]`` in [0, 1].
    """
    _check(hypotheses, references)
    tiny, small = 1e-15, 1e-9
    guess = [0] * n
    correct = [0] * n
    test_len = ref_len = 0
    for hyp, refs in zip(_as_tokens(hypotheses), [_as_tokens(r) for r in references]):
        max_ref: dict[NGram, int] = {}
        for r in refs:
            for g, c in _ngrams(r, n).items():
                max_ref[g] = max(max_ref.get(g, 0), c)
        counts = _ngrams(hyp, n)
        L = len(hyp)
        test_len += L
        ref_len += min((abs(len(r) - L), len(r)) for r in refs)[1]
        for k in range(n):
            guess[k] += max(L - k, 0)
        for g, c in counts.items():
            correct[len(g) - 1] += min(max_ref.get(g, 0), c)
    scores = []
    product = 1.0
    for k in range(n):
        product *= (correct[k] + tiny) / (guess[k] + small)
        scores.append(product ** (1.0 / (k + 1)))
    ratio = (test_len + tiny) / (ref_len + small)
    if ratio < 1:
        scores = [s * math.exp(1 - 1 / ratio) for s in scores]
    return scores


def cider_d(
    hypotheses: Sequence[str] | Sequence[Sequence[str]],
    references: Sequence[Sequence[str]] | Sequence[Sequence[Sequence[str]]],
    n: int = 4,
    sigma: float = 6.0,
) -> tuple[float, list[float]]:
    """CIDEr-D (coco-caption's ``Cider``): corpus mean and per-image scores.

    Document frequencies come from the references of the images scored together, so a
    corpus score depends on the whole set (as in the reference implementation).
    """
    _check(hypotheses, references)
    hyp_counts = [_ngrams(h, n) for h in _as_tokens(hypotheses)]
    ref_counts = [[_ngrams(r, n) for r in _as_tokens(refs)] for refs in references]
    df: dict[NGram, float] = defaultdict(float)
    for refs in ref_counts:
        for g in {g for r in refs for g in r}:
            df[g] += 1
    log_n = math.log(float(len(ref_counts)))

    def vec(counts: Counter[NGram]) -> tuple[list[dict[NGram, float]], list[float], int]:
        v: list[dict[NGram, float]] = [defaultdict(float) for _ in range(n)]
        norm = [0.0] * n
        length = 0
        for g, tf in counts.items():
            k = len(g) - 1
            v[k][g] = float(tf) * (log_n - math.log(max(1.0, df[g])))
            norm[k] += v[k][g] ** 2
            if k == 1:  # the reference code's "length" counts bigrams
                length += tf
        return v, [math.sqrt(x) for x in norm], length

    def sim(vh, vr, nh, nr, lh, lr) -> list[float]:
        delta = float(lh - lr)
        val = [0.0] * n
        for k in range(n):
            for g, c in vh[k].items():
                val[k] += min(c, vr[k].get(g, 0.0)) * vr[k].get(g, 0.0)
            if nh[k] != 0 and nr[k] != 0:
                val[k] /= nh[k] * nr[k]
            val[k] *= math.exp(-(delta**2) / (2 * sigma**2))
        return val

    scores = []
    for hc, refs in zip(hyp_counts, ref_counts):
        vh, nh, lh = vec(hc)
        total = [0.0] * n
        for rc in refs:
            vr, nr, lr = vec(rc)
            total = [a + b for a, b in zip(total, sim(vh, vr, nh, nr, lh, lr))]
        scores.append(sum(total) / n / len(refs) * 10.0)
    return (sum(scores) / len(scores) if scores else 0.0), scores


@dataclass(frozen=True)
class CaptionScores:
    """BLEU-1..4 and CIDEr-D of a set of generated captions."""

    bleu: tuple[float, float, float, float]
    cider: float
    n: int

    def as_dict(self) -> dict[str, float]:
        out = {f"bleu{k + 1}": float(v) for k, v in enumerate(self.bleu)}
        out["cider"] = float(self.cider)
        return out


def caption_scores(hypotheses: Mapping[str, str] | Sequence[str], references: Mapping[str, Sequence[str]] | Sequence):
    """BLEU-1..4 and CIDEr-D; ``hypotheses`` and ``references`` keyed by image id (or aligned lists)."""
    if isinstance(hypotheses, Mapping):
        if not isinstance(references, Mapping):
            raise TypeError("references must be a mapping when hypotheses is one")
        missing = [k for k in hypotheses if k not in references]
        if missing:
            raise ValueError(f"no references for {missing[:3]}")
        keys = list(hypotheses)
        hyps = [hypotheses[k] for k in keys]
        refs = [list(references[k]) for k in keys]
    else:
        hyps, refs = list(hypotheses), [list(r) for r in references]
    b = bleu(hyps, refs, 4)
    c, _ = cider_d(hyps, refs)
    return CaptionScores(bleu=(b[0], b[1], b[2], b[3]), cider=c, n=len(hyps))
