"""Metric math, one implementation each: correlation, classification, retrieval, entity spans.

Plain numpy functions over whole arrays. Evaluators (:mod:`polymodal.evaluation`), the benchmark
(``polymodal bench``) and the training-time metrics of :class:`polymodal.System` (torchmetrics classes in
:mod:`polymodal.metrics`, synced across devices) all call these, so a number means the same everywhere.

Conventions: ranks are 1-based with ties averaged (scipy's ``"average"``); retrieval ranks corpus items by
descending score with ties kept in corpus order (a stable sort), binary relevance, BEIR/MTEB definitions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "RetrievalResult",
    "average_precision",
    "filtered_ranks",
    "binary_metrics",
    "bio_entities",
    "cosine_matrix",
    "kmeans_v_measure",
    "mean_average_precision",
    "multiclass_metrics",
    "pair_classification_ap",
    "pair_cosine",
    "paired_bootstrap",
    "pearson",
    "rank_metrics",
    "rankdata",
    "regression_metrics",
    "retrieval_metrics",
    "roc_auc",
    "span_prf",
    "spearman",
    "tag_f1",
    "v_measure",
]


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks starting at 1 with ties given their average rank (scipy's ``method="average"``)."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # Boundaries of runs of equal values.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_x)) + 1]
    ends = np.r_[starts[1:], len(x)]
    avg = (starts + ends - 1) / 2.0 + 1.0
    ranks_sorted = np.repeat(avg, ends - starts)
    ranks = np.empty_like(ranks_sorted)
    ranks[order] = ranks_sorted
    return ranks


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r; raises if either input is constant or lengths differ."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"pearson needs two 1-D arrays of equal length, got {x.shape} and {y.shape}")
    if len(x) < 2:
        raise ValueError("pearson needs at least 2 points")
    xc, yc = x - x.mean(), y - y.mean()
    denom = np.sqrt((xc * xc).sum() * (yc * yc).sum())
    if denom == 0:
        return float("nan")
    return float((xc * yc).sum() / denom)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho: Pearson on average ranks."""
    return pearson(rankdata(x), rankdata(y))


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half); NaN with one class only."""
    y = np.asarray(y).astype(bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(score, dtype=np.float64))
    return float((ranks[y].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def average_precision(y: np.ndarray, score: np.ndarray) -> float:
    """PR-AUC as average precision (the step-wise sum sklearn uses); NaN without positives."""
    y = np.asarray(y).astype(bool)
    if not y.any():
        return float("nan")
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(-score, kind="mergesort")
    s, t = score[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
    tp = np.cumsum(t)[last]
    fp = (last + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def binary_metrics(y: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, precision, recall, F1 of the positive class at ``threshold``; ROC-AUC; PR-AUC."""
    y = np.asarray(y).astype(bool)
    pred = np.asarray(prob) >= threshold
    tp, fp, fn = int((pred & y).sum()), int((pred & ~y).sum()), int((~pred & y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": float((pred == y).mean()) if len(y) else float("nan"),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": roc_auc(y, prob),
        "pr_auc": average_precision(y, prob),
        "positive_rate": float(y.mean()) if len(y) else float("nan"),
    }


def multiclass_metrics(y: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-F1 over the classes present in ``y`` or predicted."""
    y = np.asarray(y).astype(np.int64)
    pred = np.asarray(prob).argmax(axis=1)
    f1s = []
    for c in np.union1d(y, pred):
        tp = int(((pred == c) & (y == c)).sum())
        denom = int((pred == c).sum()) + int((y == c).sum())
        f1s.append(2 * tp / denom if denom else 0.0)
    return {"accuracy": float((pred == y).mean()), "macro_f1": float(np.mean(f1s))}


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MSE, MAE, Pearson and Spearman correlation."""
    y, pred = np.asarray(y, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    err = pred - y
    out = {"mse": float((err**2).mean()), "mae": float(np.abs(err).mean())}
    if len(y) > 1 and y.std() > 0 and pred.std() > 0:
        out.update(pearson=pearson(pred, y), spearman=spearman(pred, y))
    return out


@dataclass(frozen=True)
class RetrievalResult:
    """Averaged metrics (keys like ``"recall@10"``, ``"mrr@10"``, ``"ndcg@10"``) and query count."""

    metrics: dict[str, float]
    n: int = 0
    per_query: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def __getitem__(self, key: str) -> float:
        return self.metrics[key]


def retrieval_metrics(
    scores: np.ndarray, relevant: Sequence[set[int]], ks: Sequence[int] = (1, 5, 10), hits: bool = False
) -> RetrievalResult:
    """Metrics from a ``(Q, N)`` score matrix and each query's set of relevant corpus indices.

    Always: ``recall@k`` (share of the query's relevant documents in the top k), ``mrr@10``, ``ndcg@10``.
    With ``hits``: also ``hit@k`` (1 when *any* relevant document is in the top k: the image->caption
    convention of Flickr/COCO) and ``median_rank`` (median over queries of the rank of the first relevant
    document, 1 = first). Ranking is by descending score; ties keep corpus order (a stable sort).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != len(relevant):
        raise ValueError(f"{scores.shape[0] if scores.ndim else 0} score rows but {len(relevant)} relevance sets")
    n_docs = scores.shape[1]
    depth = n_docs if hits else min(max(max(ks), 10), n_docs)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :depth]  # (Q, depth)
    is_rel = np.zeros(order.shape, dtype=bool)
    n_rel = np.empty(len(relevant))
    for i, rel in enumerate(relevant):
        if not rel:
            raise ValueError(f"query {i} has no relevant document")
        is_rel[i] = np.isin(order[i], np.fromiter(rel, dtype=np.int64, count=len(rel)))
        n_rel[i] = len(rel)
    per: dict[str, Any] = {}
    for k in ks:
        per[f"recall@{k}"] = is_rel[:, :k].sum(axis=1) / n_rel
    top10 = is_rel[:, :10]
    first10 = np.where(top10.any(axis=1), top10.argmax(axis=1), -1)
    per["mrr@10"] = np.where(first10 >= 0, 1.0 / np.maximum(first10 + 1, 1), 0.0)  # no 1/0 for misses
    discounts = 1.0 / np.log2(np.arange(2, top10.shape[1] + 2))
    dcg = (top10 * discounts).sum(axis=1)
    ideal = np.array([discounts[: min(int(r), 10, depth)].sum() for r in n_rel])
    per["ndcg@10"] = np.asarray(dcg / ideal)
    if hits:
        for k in ks:
            per[f"hit@{k}"] = is_rel[:, :k].any(axis=1).astype(np.float64)
        first = is_rel.argmax(axis=1)  # every query has a relevant document somewhere in the full ranking
        per["median_rank"] = (first + 1).astype(np.float64)
    metrics = {k: float(np.median(v) if k == "median_rank" else v.mean()) for k, v in per.items()}
    return RetrievalResult(metrics, len(relevant), per)


def filtered_ranks(scores: np.ndarray, answers: np.ndarray, known: np.ndarray | None = None) -> np.ndarray:
    """Filtered rank of each query's answer among all candidates (link prediction, Bordes et al. 2013).

    Candidates in ``known`` (other true answers of the same query, e.g. from train/valid/test) are removed
    before ranking, except the answer itself. Ties are ranked "realistically" (PyKEEN's default): the mean of
    the optimistic rank ``1 + #(better)`` and the pessimistic rank ``1 + #(better or equal)``.

    Args:
        scores: ``(Q, N)`` candidate scores, higher is better.
        answers: ``(Q,)`` index of each query's answer.
        known: ``(Q, N)`` bool, True for candidates to filter out (the answer's own entry is ignored).

    Returns:
        ``(Q,)`` float ranks, 1 = best.
    """
    s = np.asarray(scores, dtype=np.float64)
    a = np.asarray(answers, dtype=np.int64)
    if s.ndim != 2 or a.shape != (s.shape[0],):
        raise ValueError(f"filtered_ranks needs (Q, N) scores and (Q,) answers, got {s.shape} and {a.shape}")
    if len(a) and (a.min() < 0 or a.max() >= s.shape[1]):
        raise ValueError(f"answer indices must lie in [0, {s.shape[1]}), got {a.min()}..{a.max()}")
    rows = np.arange(len(a))
    target = s[rows, a][:, None]  # (Q, 1)
    keep = np.ones_like(s, dtype=bool)
    if known is not None:
        keep &= ~np.asarray(known, dtype=bool)
    keep[rows, a] = False  # the answer is not its own competitor
    better = ((s > target) & keep).sum(axis=1)
    equal = ((s == target) & keep).sum(axis=1)
    return 1.0 + better + equal / 2.0


def rank_metrics(ranks: np.ndarray, ks: Sequence[int] = (1, 3, 10)) -> dict[str, float]:
    """``mrr`` (mean reciprocal rank), ``mr`` (mean rank) and ``hits@k`` (share of ranks <= k) of 1-based ranks."""
    r = np.asarray(ranks, dtype=np.float64)
    if r.ndim != 1 or not len(r):
        raise ValueError(f"rank_metrics needs a non-empty 1-D array of ranks, got shape {r.shape}")
    out = {"mrr": float((1.0 / r).mean()), "mr": float(r.mean())}
    for k in ks:
        out[f"hits@{k}"] = float((r <= k).mean())
    return out


# ----------------------------------------------------------------------------- embedding-task metrics
def pair_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two ``(N, D)`` arrays, computed in float64 -> ``(N,)``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"pair_cosine needs two arrays of equal shape, got {a.shape} and {b.shape}")
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return num / np.maximum(den, 1e-12)


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of every row of ``a`` ``(Q, D)`` with every row of ``b`` ``(N, D)`` -> ``(Q, N)``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    return a @ b.T


def pair_classification_ap(a: np.ndarray, b: np.ndarray, labels: np.ndarray) -> float:
    """MTEB pair classification: average precision of the pairs' cosine similarity for ``labels`` (1 = positive).

    Args:
        a: first items' embeddings ``(N, D)``.
        b: second items' embeddings ``(N, D)``.
        labels: ``(N,)`` 1 for a positive pair (e.g. entailment), 0 for a negative one (contradiction).
    """
    labels = np.asarray(labels)
    if labels.shape != (len(a),):
        raise ValueError(f"{len(a)} pairs but labels of shape {labels.shape}")
    return average_precision(labels, pair_cosine(a, b))


def mean_average_precision(relevance: Sequence[np.ndarray], scores: Sequence[np.ndarray]) -> float:
    """Reranking MAP: the mean over queries of the average precision of each query's candidate scores.

    Args:
        relevance: per query, a ``(C_q,)`` array of 0/1 labels over its own candidates.
        scores: per query, the ``(C_q,)`` scores of the same candidates (higher ranks first).

    Raises:
        ValueError: lengths differ, or a query has no relevant candidate.
    """
    if len(relevance) != len(scores):
        raise ValueError(f"{len(relevance)} relevance lists but {len(scores)} score lists")
    aps = []
    for i, (rel, score) in enumerate(zip(relevance, scores)):
        rel, score = np.asarray(rel), np.asarray(score)
        if rel.shape != score.shape:
            raise ValueError(f"query {i}: {rel.shape} labels but {score.shape} scores")
        if not rel.astype(bool).any():
            raise ValueError(f"query {i} has no relevant candidate")
        aps.append(average_precision(rel, score))
    return float(np.mean(aps)) if aps else float("nan")


def hamming_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(Q, N)`` Hamming distances between packed binary codes ``(Q, bytes)`` and ``(N, bytes)`` (uint8, as
    ``numpy.packbits`` / faiss binary indexes store them)."""
    a, b = np.asarray(a, dtype=np.uint8), np.asarray(b, dtype=np.uint8)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"packed codes must be (Q, bytes) and (N, bytes) of equal width, got {a.shape}, {b.shape}")
    out = np.empty((len(a), len(b)), dtype=np.int64)
    for i in range(0, len(a), 256):  # (256, N, bytes) at a time
        out[i : i + 256] = np.bitwise_count(a[i : i + 256, None, :] ^ b[None, :, :]).sum(-1, dtype=np.int64)
    return out


def group_precision_map(
    distances: np.ndarray,
    query_groups: np.ndarray,
    doc_groups: np.ndarray,
    ks: Sequence[int] = (1, 10),
    exclude_self: bool = False,
) -> dict[str, float]:
    """Precision@k and MAP of a ranking by ascending distance, where a document is relevant to a query when
    both carry the same group id (e.g. segments cut from the same source text).

    Ties keep corpus order (a stable sort), so equal Hamming distances rank deterministically. With
    ``exclude_self`` (leave-one-out over one collection: ``distances`` is ``(N, N)``) each query's own row is
    left out of its ranking. Queries without any relevant document are skipped (their count is returned as
    ``no_relevant``).

    Returns:
        ``p@{k}`` per cut-off, ``map`` (mean over queries of the average precision over the full ranking),
        ``queries`` and ``no_relevant``.
    """
    d = np.asarray(distances, dtype=np.float64)
    qg, dg = np.asarray(query_groups), np.asarray(doc_groups)
    if d.shape != (len(qg), len(dg)):
        raise ValueError(f"distances of shape {d.shape} for {len(qg)} queries and {len(dg)} documents")
    if exclude_self:
        if d.shape[0] != d.shape[1]:
            raise ValueError("exclude_self needs a square (N, N) distance matrix")
        d = d.copy()
        np.fill_diagonal(d, np.inf)
    order = np.argsort(d, axis=1, kind="stable")
    if exclude_self:
        order = order[:, :-1]  # the query itself ranks last
    rel = dg[order] == qg[:, None]  # (Q, N') relevance in rank order
    n_rel = rel.sum(1)
    keep = n_rel > 0
    rel, n_rel = rel[keep], n_rel[keep]
    out: dict[str, float] = {}
    for k in ks:
        out[f"p@{k}"] = float(rel[:, :k].mean(1).mean()) if len(rel) else float("nan")
    hits = np.cumsum(rel, axis=1)
    precision = hits / np.arange(1, rel.shape[1] + 1)
    ap = (precision * rel).sum(1) / n_rel
    out["map"] = float(ap.mean()) if len(ap) else float("nan")
    out["queries"] = float(len(rel))
    out["no_relevant"] = float((~keep).sum())
    return out


def v_measure(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """V-measure (harmonic mean of homogeneity and completeness; scikit-learn's ``v_measure_score``)."""
    try:
        from sklearn.metrics import v_measure_score
    except ImportError:
        raise ImportError("v_measure needs scikit-learn: pip install 'polymodal[eval]'") from None
    return float(v_measure_score(np.asarray(labels_true), np.asarray(labels_pred)))


def kmeans_v_measure(
    embeddings: np.ndarray, labels: np.ndarray, seed: int = 0, batch_size: int = 512, minibatch: bool = True
) -> float:
    """MTEB clustering: V-measure of (mini-batch) k-means with ``k`` = number of gold labels.

    Args:
        embeddings: ``(N, D)``.
        labels: ``(N,)`` gold cluster labels (any hashable values).
        seed: k-means random state.
        batch_size: mini-batch size (MTEB uses 500-ish).
        minibatch: ``MiniBatchKMeans`` (as MTEB) or full ``KMeans``.
    """
    try:
        from sklearn.cluster import KMeans, MiniBatchKMeans
    except ImportError:
        raise ImportError("clustering needs scikit-learn: pip install 'polymodal[eval]'") from None
    X = np.asarray(embeddings, dtype=np.float64)
    y = np.asarray(labels)
    if X.shape[0] != len(y):
        raise ValueError(f"{X.shape[0]} embeddings but {len(y)} labels")
    k = len(np.unique(y))
    if k < 2:
        raise ValueError("clustering needs at least two gold clusters")
    if minibatch:
        km = MiniBatchKMeans(n_clusters=k, batch_size=batch_size, n_init="auto", random_state=seed)
    else:
        km = KMeans(n_clusters=k, n_init="auto", random_state=seed)
    return v_measure(y, km.fit_predict(X))


# ----------------------------------------------------------------------------- entity spans (NER)
Span = tuple[str, int, int]


def bio_entities(tags: Sequence[str]) -> list[Span]:
    """Entity spans ``(type, first, last)`` (inclusive word indices) of one BIO tag sequence.

    seqeval's default (conlleval) semantics: an entity starts at ``B-x``, or at ``I-x`` after ``O`` or after an
    entity of another type; it ends before ``O``, before any ``B-``, and before an ``I-`` of another type. Tags
    other than ``B-*`` / ``I-*`` count as ``O``.
    """
    out: list[Span] = []
    start, kind = -1, ""
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, this = str(tag).partition("-")
        if prefix not in ("B", "I") or not this:
            prefix, this = "O", ""
        if start >= 0 and (prefix in ("O", "B") or this != kind):
            out.append((kind, start, i - 1))
            start = -1
        if prefix in ("B", "I") and start < 0:
            start, kind = i, this
    return out


def span_prf(gold: Sequence[set[Span]], pred: Sequence[set[Span]], by_type: bool = False) -> dict[str, float]:
    """Micro precision / recall / F1 of exactly matching spans, sentence by sentence.

    Args:
        gold: per sentence, its gold spans ``(type, first, last)``.
        pred: per sentence, the predicted spans.
        by_type: also ``f1/<type>`` for every type in gold or predictions.

    Returns:
        ``precision``, ``recall``, ``f1`` (0 when undefined, as seqeval), ``gold`` and ``predicted`` span counts.
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted ones")

    def prf(tp: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
        p = tp / n_pred if n_pred else 0.0
        r = tp / n_gold if n_gold else 0.0
        return p, r, (2 * p * r / (p + r) if p + r else 0.0)

    tp = sum(len(set(g) & set(p)) for g, p in zip(gold, pred))
    n_gold = sum(len(g) for g in gold)
    n_pred = sum(len(p) for p in pred)
    precision, recall, f1 = prf(tp, n_pred, n_gold)
    out = {"precision": precision, "recall": recall, "f1": f1, "gold": float(n_gold), "predicted": float(n_pred)}
    if by_type:
        types = sorted({s[0] for spans in (*gold, *pred) for s in spans})
        for kind in types:
            t = sum(len({s for s in g if s[0] == kind} & {s for s in p if s[0] == kind}) for g, p in zip(gold, pred))
            ng = sum(1 for g in gold for s in g if s[0] == kind)
            npred = sum(1 for p in pred for s in p if s[0] == kind)
            out[f"f1/{kind}"] = prf(t, npred, ng)[2]
    return out


def tag_f1(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], by_type: bool = False) -> dict[str, float]:
    """Entity-level micro precision / recall / F1 of BIO tag sequences (``seqeval.metrics.f1_score`` semantics).

    Raises:
        ValueError: a sentence's predicted tags are not as many as its gold tags.
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted ones")
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted tags")
    return span_prf([set(bio_entities(g)) for g in gold], [set(bio_entities(p)) for p in pred], by_type)


def paired_bootstrap(
    target: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    metric: Any = None,
    samples: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Paired bootstrap over evaluation items of ``metric(target, pred_b) - metric(target, pred_a)``.

    The items (e.g. STS pairs) are resampled with replacement ``samples`` times, the same resample for both
    systems. Returns ``delta`` (on all items), its 95 % percentile interval ``low`` / ``high`` and a two-sided
    ``p``: twice the share of resamples whose delta has the other sign (or is zero), capped at 1 (Koehn 2004,
    "Statistical significance tests for machine translation evaluation"). ``metric`` defaults to Spearman.
    """
    metric = spearman if metric is None else metric
    t, a, b = (np.asarray(v, dtype=np.float64) for v in (target, pred_a, pred_b))
    if not (t.shape == a.shape == b.shape and t.ndim == 1):
        raise ValueError(
            f"paired_bootstrap: target and predictions must be equal-length 1-D, got {t.shape}, {a.shape}, {b.shape}"
        )
    if len(t) < 3 or samples < 1:
        raise ValueError(f"paired_bootstrap: need >= 3 items and samples >= 1, got {len(t)} items, {samples} samples")
    rows = np.random.default_rng(seed).integers(0, len(t), size=(int(samples), len(t)))  # (S, N)
    deltas = np.array([metric(t[r], b[r]) - metric(t[r], a[r]) for r in rows])  # (S,)
    deltas = deltas[np.isfinite(deltas)]
    delta = float(metric(t, b) - metric(t, a))
    other = deltas <= 0 if delta > 0 else deltas >= 0
    low, high = np.quantile(deltas, [0.025, 0.975]) if len(deltas) else (float("nan"), float("nan"))
    p = min(1.0, 2.0 * float(other.mean())) if len(deltas) else float("nan")
    return {"delta": delta, "low": float(low), "high": float(high), "p": p}
