"""Training-time metrics of :class:`polymodal.System`: torchmetrics classes fed by the per-step context.

Each metric accumulates what it needs per batch (``update(step)``) in torchmetrics states with
``dist_reduce_fx="cat"`` or ``"sum"``, so ``compute()`` sees the whole split gathered from every device
(torchmetrics syncs states under DDP); the math is :mod:`polymodal.metrics.functional`, the same functions
the evaluators and ``polymodal bench`` use. ``compute()`` returns ``{key: value}``; the System logs each as
``<stage>/<prefix><key>``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from polymodal.metrics import functional as fn

if TYPE_CHECKING:  # pragma: no cover
    from polymodal.system import Step

__all__ = [
    "CodeRetrieval",
    "ElasticSimilarity",
    "HeadMean",
    "HeadMetrics",
    "PairSimilarity",
    "Perplexity",
    "Retrieval",
    "SpanF1",
    "StepMetric",
    "grouped_retrieval",
]

EVAL_STAGES = ("val", "test")


class StepMetric(Metric):
    """Base class: ``update(step)`` reads the step context; ``compute()`` returns ``{key: float}``.

    Args:
        prefix: prepended to every key when logged (``"empathy/"`` -> ``val/empathy/pearson``).
        stages: where the metric runs (``val``, ``test``; ``train`` works for cheap metrics).
    """

    full_state_update = False
    higher_is_better = None

    def __init__(self, prefix: str = "", stages: Sequence[str] = EVAL_STAGES, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        unknown = sorted(set(stages) - {"train", "val", "test"})
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; choose from train, val, test")
        self.prefix = prefix
        self.stages = tuple(stages)

    def requires(self) -> tuple[list[str], list[str]]:
        """``(input columns, target names)`` a batch must hold for this metric."""
        return [], []

    def applies(self, step: Step) -> bool:
        """Whether this batch has what the metric reads (metrics skip batches that do not)."""
        return step.has(*self.requires())


def _np(x: Any) -> np.ndarray:
    return dim_zero_cat(x).detach().double().cpu().numpy() if isinstance(x, list) else x.detach().double().cpu().numpy()


class PairSimilarity(StepMetric):
    """Spearman and Pearson correlation of the cosine of two columns' embeddings with a target (STS).

    Args:
        columns: the two input columns (default: the batch's first two).
        target: target name (default: the batch's only target).
    """

    cos: list[Tensor]
    gold: list[Tensor]

    def __init__(self, columns: Sequence[str] | None = None, target: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.columns = None if columns is None else [str(c) for c in columns]
        self.target = target
        self.add_state("cos", default=[], dist_reduce_fx="cat")
        self.add_state("gold", default=[], dist_reduce_fx="cat")

    def applies(self, step: Step) -> bool:
        columns = self.columns or step.columns[:2]
        target = step.target_name(self.target)
        return len(columns) == 2 and step.has(columns, [target] if target else ["<none>"])

    def update(self, step: Step) -> None:
        a, b = step.embeddings(self.columns or step.columns[:2])
        self.cos.append(F.cosine_similarity(a.float(), b.float(), dim=-1).detach())
        self.gold.append(step.target(self.target).detach().float())

    def compute(self) -> dict[str, float]:
        cos, gold = _np(self.cos), _np(self.gold)
        if len(cos) < 2:
            return {}
        return {"spearman": fn.spearman(cos, gold), "pearson": fn.pearson(cos, gold)}


class ElasticSimilarity(PairSimilarity):
    """STS Spearman of two columns' cosine at every (layer, dim) cell: the embedding an encoder gives when it
    stops after ``layer`` layers and keeps the first ``dim`` dimensions (2D Matryoshka evaluation).

    Args:
        layers: 1-based layers (the tower must return ``hidden_states``); ``-1`` is the last layer.
        dims: embedding prefix lengths.
        columns: the two input columns (default: the batch's first two).
        target: target name (default: the batch's only target).

    Keys: ``l{layer}_d{dim}`` (Spearman), e.g. ``test/l4_d48``.
    """

    def __init__(
        self,
        layers: Sequence[int] = (-1,),
        dims: Sequence[int] = (),
        columns: Sequence[str] | None = None,
        target: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(columns=columns, target=target, **kwargs)
        if not layers or not dims or any(d < 1 for d in dims):
            raise ValueError(f"ElasticSimilarity needs layers and positive dims, got {list(layers)}, {list(dims)}")
        self.layers, self.dims = [int(x) for x in layers], [int(d) for d in dims]
        self.cells = [(layer, d) for layer in self.layers for d in self.dims]
        for layer, d in self.cells:
            self.add_state(f"cos_{layer}_{d}".replace("-", "m"), default=[], dist_reduce_fx="cat")

    def update(self, step: Step) -> None:
        columns = self.columns or step.columns[:2]
        self.gold.append(step.target(self.target).detach().float())
        for layer in self.layers:
            pair = []
            for c in columns:
                f = step.features(c)
                pair.append(step.pool(f if layer == -1 else f.at_layer(layer), c).detach().float())
            for d in self.dims:
                if d > pair[0].shape[-1]:
                    raise ValueError(f"ElasticSimilarity: dim {d} exceeds the embedding width {pair[0].shape[-1]}")
                cos = F.cosine_similarity(pair[0][:, :d], pair[1][:, :d], dim=-1)
                getattr(self, f"cos_{layer}_{d}".replace("-", "m")).append(cos)

    def compute(self) -> dict[str, float]:
        gold = _np(self.gold)
        if len(gold) < 2:
            return {}
        out = {}
        for layer, d in self.cells:
            cos = _np(getattr(self, f"cos_{layer}_{d}".replace("-", "m")))
            out[f"l{'last' if layer == -1 else layer}_d{d}"] = fn.spearman(cos, gold)
        return out


class HeadMetrics(StepMetric):
    """Task metrics of a head's predictions over the whole split.

    Args:
        head: the head's name.
        kind: ``"binary"`` (accuracy, precision, recall, F1, ROC-AUC, PR-AUC of ``sigmoid``),
            ``"multiclass"`` (accuracy, macro-F1), ``"regression"`` (MSE, MAE, Pearson, Spearman of
            ``output`` vs ``target / scale``), ``"soft"`` (Spearman / Pearson of ``sigmoid`` vs the target).
        target: target name (default: the batch's only target).
        threshold: binary decision threshold.
        scale: regression / soft targets are divided by it (as in :class:`~polymodal.objectives.HeadLoss`).
    """

    pred: list[Tensor]
    gold: list[Tensor]

    def __init__(
        self,
        head: str,
        kind: str = "regression",
        target: str | None = None,
        threshold: float = 0.5,
        scale: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if kind not in ("binary", "multiclass", "regression", "soft"):
            raise ValueError(f"kind must be binary, multiclass, regression or soft, got {kind!r}")
        self.head, self.kind, self.target = head, kind, target
        self.threshold, self.scale = float(threshold), float(scale)
        self.add_state("pred", default=[], dist_reduce_fx="cat")
        self.add_state("gold", default=[], dist_reduce_fx="cat")

    def applies(self, step: Step) -> bool:
        target = step.target_name(self.target)
        return step.has([], [target] if target else ["<none>"])

    def update(self, step: Step) -> None:
        out = step.head(self.head).detach().float()
        if self.kind in ("binary", "soft"):
            out = torch.sigmoid(out)
        elif self.kind == "multiclass":
            out = out.softmax(-1)
        self.pred.append(out)
        self.gold.append(step.target(self.target).detach().float())

    def compute(self) -> dict[str, float]:
        pred, gold = _np(self.pred), _np(self.gold)
        keep = ~np.isnan(gold)
        pred, gold = pred[keep], gold[keep]
        if not len(gold):
            return {}
        if self.kind == "binary":
            return fn.binary_metrics(gold, pred, self.threshold)
        if self.kind == "multiclass":
            return fn.multiclass_metrics(gold, pred)
        gold = gold / self.scale
        if self.kind == "regression":
            return fn.regression_metrics(gold, pred)
        return {"spearman": fn.spearman(pred, gold), "pearson": fn.pearson(pred, gold)} if len(gold) > 1 else {}


def grouped_retrieval(
    queries: np.ndarray,
    documents: np.ndarray,
    groups: np.ndarray,
    ks: Sequence[int] = (1, 5, 10),
    names: tuple[str, str] = ("q", "d"),
    similarity: str = "cosine",
) -> dict[str, float]:
    """Retrieval in both directions between aligned rows grouped by id (image + its captions).

    Row ``i`` pairs ``queries[i]`` with ``documents[i]``; rows with the same ``groups`` id share one
    document (the first occurrence is kept: e.g. one image with five captions). Query -> document: each
    query's one relevant document is its group's. Document -> query: each distinct document retrieves all
    queries; its relevant set is its group's queries and a hit at ``k`` means *any* of them ranks in the top
    ``k`` (the Flickr/COCO image->caption convention). Ranking is by cosine (``similarity="dot"``: by the
    dot product of the vectors as given), ties kept in corpus order.

    Returns:
        ``{q}2{d}_r{k}`` and ``{d}2{q}_r{k}`` (hit rates), ``{q}2{d}_mrr``, ``{d}2{q}_mrr`` (MRR@10),
        ``{q}2{d}_medr`` / ``{d}2{q}_medr`` (median rank of the first hit, 1 = first) and ``rsum`` (sum of
        all hit rates, in %).
    """
    q = np.asarray(queries, dtype=np.float64)
    d = np.asarray(documents, dtype=np.float64)
    g = np.asarray(groups)
    if similarity not in ("cosine", "dot"):
        raise ValueError(f"unknown similarity {similarity!r}; choose cosine or dot")
    if similarity == "cosine":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    ids, first, inverse = np.unique(g, return_index=True, return_inverse=True)
    docs = d[first]  # (M, D) one per group
    qn, dn = names
    out: dict[str, float] = {}
    forward = fn.retrieval_metrics(q @ docs.T, [{int(j)} for j in inverse], ks, hits=True)
    members: list[set[int]] = [set() for _ in ids]
    for row, j in enumerate(inverse):
        members[int(j)].add(row)
    backward = fn.retrieval_metrics(docs @ q.T, members, ks, hits=True)
    for direction, res in ((f"{qn}2{dn}", forward), (f"{dn}2{qn}", backward)):
        for k in ks:
            out[f"{direction}_r{k}"] = res.metrics[f"hit@{k}"]
        out[f"{direction}_mrr"] = res.metrics["mrr@10"]
        out[f"{direction}_medr"] = res.metrics["median_rank"]
    out["rsum"] = 100.0 * sum(v for key, v in out.items() if "_r" in key and not key.endswith(("mrr", "medr")))
    return out


class Retrieval(StepMetric):
    """Grouped retrieval between two columns over the whole split (see :func:`grouped_retrieval`).

    Args:
        query: the query column (e.g. ``caption``).
        document: the document column (e.g. ``image``).
        group: target holding each row's group id (e.g. the image id); default: every row its own group.
        ks: hit-rate cut-offs.
        names: short names used in the keys (default: first letters of the columns, ``c2i_r1``).
        similarity: ranking score, ``cosine`` or ``dot`` (see :func:`grouped_retrieval`).
    """

    q: list[Tensor]
    d: list[Tensor]
    g: list[Tensor]

    def __init__(
        self,
        query: str,
        document: str,
        group: str | None = None,
        ks: Sequence[int] = (1, 5, 10),
        names: Sequence[str] | None = None,
        similarity: str = "cosine",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if similarity not in ("cosine", "dot"):
            raise ValueError(f"unknown similarity {similarity!r}; choose cosine or dot")
        self.query, self.document, self.group, self.similarity = query, document, group, similarity
        self.ks = tuple(int(k) for k in ks)
        self.names = tuple(names) if names is not None else (query[:1], document[:1])
        if len(self.names) != 2 or self.names[0] == self.names[1]:
            raise ValueError(f"names must be two different short names, got {self.names}")
        self.add_state("q", default=[], dist_reduce_fx="cat")
        self.add_state("d", default=[], dist_reduce_fx="cat")
        self.add_state("g", default=[], dist_reduce_fx="cat")

    def requires(self) -> tuple[list[str], list[str]]:
        return [self.query, self.document], [self.group] if self.group else []

    def update(self, step: Step) -> None:
        q, d = step.embeddings([self.query, self.document])
        self.q.append(q.detach().float())
        self.d.append(d.detach().float())
        if self.group is not None:
            self.g.append(step.target(self.group).detach().double())
        else:
            self.g.append(torch.as_tensor(step.row_ids(), dtype=torch.float64, device=q.device))

    def compute(self) -> dict[str, float]:
        q = dim_zero_cat(self.q).cpu().numpy()
        if len(q) < 2:
            return {}
        d = dim_zero_cat(self.d).cpu().numpy()
        g = dim_zero_cat(self.g).cpu().numpy().round().astype(np.int64)
        return grouped_retrieval(q, d, g, self.ks, (self.names[0], self.names[1]), self.similarity)


class CodeRetrieval(StepMetric):
    """Leave-one-out retrieval within the split by one column's embeddings: each row queries every other row,
    ranked by Hamming distance of binary codes (``binary``: values > 0.5 are 1, as
    :class:`~polymodal.plugins.text.static.BinaryParagraphVector` emits) or by cosine; a row is relevant when
    it shares the query's group id (:func:`polymodal.metrics.functional.group_precision_map`).

    Args:
        column: the input column whose pooled embedding is the code.
        group: the target holding each row's group id (e.g. the source text of a segment).
        ks: precision cut-offs.
        binary: rank by Hamming distance of the thresholded codes (else by cosine).

    Logged keys: ``p@{k}``, ``map``.
    """

    e: list[Tensor]
    g: list[Tensor]

    def __init__(
        self, column: str, group: str, ks: Sequence[int] = (1, 10), binary: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.column, self.group, self.ks, self.binary = column, group, tuple(int(k) for k in ks), bool(binary)
        self.add_state("e", default=[], dist_reduce_fx="cat")
        self.add_state("g", default=[], dist_reduce_fx="cat")

    def requires(self) -> tuple[list[str], list[str]]:
        return [self.column], [self.group]

    def update(self, step: Step) -> None:
        self.e.append(step.embed(self.column).detach().float())
        self.g.append(step.target(self.group).detach().double())

    def compute(self) -> dict[str, float]:
        e = dim_zero_cat(self.e).cpu().numpy()
        if len(e) < 2:
            return {}
        g = dim_zero_cat(self.g).cpu().numpy().round().astype(np.int64)
        if self.binary:
            packed = np.packbits(e > 0.5, axis=1)
            dist = fn.hamming_distances(packed, packed).astype(np.float64)
        else:
            dist = -fn.cosine_matrix(e, e)
        out = fn.group_precision_map(dist, g, g, self.ks, exclude_self=True)
        return {k: v for k, v in out.items() if k.startswith("p@") or k == "map"}


class Perplexity(StepMetric):
    """Token-weighted loss and perplexity of a language-model objective over the whole split.

    Args:
        objective: the name of a :class:`~polymodal.objectives.CausalLMLoss` (or any objective recording
            ``<name>/nll``) in the System.

    Keys: ``token_loss`` (mean NLL per predicted token) and ``ppl`` (its exponential).
    """

    nll: Tensor
    tokens: Tensor

    def __init__(self, objective: str = "lm", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.objective = objective
        self.add_state("nll", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("tokens", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, step: Step) -> None:
        record = step.records.get(f"{self.objective}/nll")
        if record is None:
            raise ValueError(f"Perplexity: no objective {self.objective!r} recorded a token NLL in this step")
        nll, tokens = record
        self.nll += nll.to(self.nll.device)
        self.tokens += tokens.to(self.tokens.device)

    def compute(self) -> dict[str, float]:
        if float(self.tokens) <= 0:
            return {}
        loss = float(self.nll / self.tokens)
        return {"token_loss": loss, "ppl": math.exp(min(loss, 50.0))}


class HeadMean(StepMetric):
    """The mean over several heads of one :class:`HeadMetrics` key (e.g. the mean Pearson r of two
    regression targets, the WASSA empathy track's ranking metric).

    Args:
        heads: the heads' names.
        key: the per-head metric to average (``pearson``, ``f1``, ...).
        kind: the heads' task kind (as for :class:`HeadMetrics`).
        targets: each head's target name (default: the head's name).
        name: the logged key (default ``<key>_avg``).

    Returns nothing when any head's value is undefined (NaN or missing).
    """

    def __init__(
        self,
        heads: Sequence[str],
        key: str = "pearson",
        kind: str = "regression",
        targets: Sequence[str] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        heads = [str(h) for h in heads]
        targets = heads if targets is None else [str(t) for t in targets]
        if not heads or len(targets) != len(heads):
            raise ValueError(f"HeadMean needs heads and one target per head, got {heads} and {targets}")
        self.key, self.name = key, name or f"{key}_avg"
        self.parts = torch.nn.ModuleList([HeadMetrics(h, kind, target=t) for h, t in zip(heads, targets)])

    def _parts(self) -> list[HeadMetrics]:
        return [p for p in self.parts if isinstance(p, HeadMetrics)]

    def requires(self) -> tuple[list[str], list[str]]:
        return [], [part.target for part in self._parts() if part.target]

    def update(self, step: Step) -> None:
        for part in self._parts():
            part.update(step)

    def compute(self) -> dict[str, float]:
        values = [part.compute().get(self.key, float("nan")) for part in self._parts()]
        if any(v != v for v in values):
            return {}
        return {self.name: float(np.mean(values))}

    def reset(self) -> None:
        super().reset()
        for part in self._parts():
            part.reset()


class SpanF1(StepMetric):
    """Entity-level micro precision / recall / F1 of a token head's BIO tags (seqeval semantics), per group.

    Gold spans come from the raw per-word tags of the ``tags`` meta column, so gold entities of types the head
    cannot predict (zero-shot transfer to a new label set) count as misses instead of being dropped. A word is
    tagged at its first sub-word token; words cut off by truncation are tagged ``O``. Only span counts are
    accumulated (sum states), so the figures are those of the whole split on every device.

    Args:
        head: the :class:`~polymodal.heads.TokenHead`'s name.
        tags: meta column with each sentence's per-word gold tags.
        group: optional meta column naming each row's group (e.g. ``domain``); then ``<group>/f1`` ... too.
        groups: the group names, in the order reported (required with ``group``).
        average: the groups whose F1 ``avg_f1`` averages (default: all), e.g. the target domains only.

    Keys: ``precision``, ``recall``, ``f1`` (micro over every sentence), with groups also ``<g>/precision``,
    ``<g>/recall``, ``<g>/f1`` and ``avg_f1`` (the mean of the groups' F1, the cross-domain NER average).

    Subclasses producing spans another way (a generative tagger) call :meth:`add`.
    """

    tp: Tensor
    n_pred: Tensor
    n_gold: Tensor
    sentences: Tensor

    def __init__(
        self,
        head: str = "tags",
        tags: str = "tags",
        group: str | None = None,
        groups: Sequence[str] | None = None,
        average: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (group is None) != (not groups):
            raise ValueError("SpanF1: give both group (a meta column) and groups (its values), or neither")
        self.head, self.tags, self.group = head, tags, group
        self.groups = [str(g) for g in groups] if groups else []
        if len(set(self.groups)) != len(self.groups):
            raise ValueError(f"SpanF1: groups must be distinct, got {self.groups}")
        self.average = [str(g) for g in average] if average is not None else list(self.groups)
        if set(self.average) - set(self.groups):
            raise ValueError(f"SpanF1: average names {sorted(set(self.average) - set(self.groups))}, not in groups")
        n = max(len(self.groups), 1)
        for name in ("tp", "n_pred", "n_gold", "sentences"):
            self.add_state(name, default=torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")

    def applies(self, step: Step) -> bool:
        return self.tags in step.batch.meta and (self.group is None or self.group in step.batch.meta)

    def _group_index(self, step: Step) -> list[int]:
        n = len(step.batch.meta[self.tags])
        if self.group is None:
            return [0] * n
        out = []
        for i, g in enumerate(step.batch.meta[self.group]):
            if str(g) not in self.groups:
                rows = step.batch.rows or list(range(1, n + 1))
                raise ValueError(f"SpanF1: row {rows[i]}: {self.group} {g!r} is not one of the groups {self.groups}")
            out.append(self.groups.index(str(g)))
        return out

    def add(self, gold: Sequence[set], pred: Sequence[set], groups: Sequence[int]) -> None:
        """Count one batch: per sentence its gold and predicted ``(type, first, last)`` spans and group index."""
        for g, p, k in zip(gold, pred, groups):
            self.tp[k] += len(set(g) & set(p))
            self.n_pred[k] += len(p)
            self.n_gold[k] += len(g)
            self.sentences[k] += 1

    def predicted_tags(self, step: Step) -> list[list[str]]:
        """Per sentence, the head's tag for every word (``O`` for words without a token)."""
        head: Any = step.system.heads[self.head]  # a TokenHead: column, labels
        inputs = step.inputs_of(head.column)
        best = step.head(self.head).argmax(-1).cpu()  # (B, T)
        first, word_ids, num_words = inputs["first"].cpu(), inputs["word_ids"].cpu(), inputs["num_words"].cpu()
        out = []
        for i in range(best.shape[0]):
            tags = ["O"] * int(num_words[i])
            for t in torch.nonzero(first[i]).flatten().tolist():
                tags[int(word_ids[i, t])] = head.labels[int(best[i, t])]
            out.append(tags)
        return out

    def update(self, step: Step) -> None:
        gold = [set(fn.bio_entities(list(t))) for t in step.batch.meta[self.tags]]
        pred = [set(fn.bio_entities(t)) for t in self.predicted_tags(step)]
        self.add(gold, pred, self._group_index(step))

    def compute(self) -> dict[str, float]:
        def prf(tp: float, n_pred: float, n_gold: float) -> tuple[float, float, float]:
            p = tp / n_pred if n_pred else 0.0
            r = tp / n_gold if n_gold else 0.0
            return p, r, (2 * p * r / (p + r) if p + r else 0.0)

        tp, n_pred, n_gold = (x.double().cpu().numpy() for x in (self.tp, self.n_pred, self.n_gold))
        if float(self.sentences.sum()) == 0:
            return {}
        p, r, f = prf(float(tp.sum()), float(n_pred.sum()), float(n_gold.sum()))
        out = {"precision": p, "recall": r, "f1": f}
        if self.groups:
            f1s = []
            for k, name in enumerate(self.groups):
                if float(self.sentences[k]) == 0:
                    continue
                gp, gr, gf = prf(float(tp[k]), float(n_pred[k]), float(n_gold[k]))
                out.update({f"{name}/precision": gp, f"{name}/recall": gr, f"{name}/f1": gf})
                if name in self.average:
                    f1s.append(gf)
            out["avg_f1"] = float(np.mean(f1s)) if f1s else float("nan")
        return out
