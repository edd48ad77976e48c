"""The tasks of ``polymodal bench``: MMTEB task types over the team's offline data, each with a task card.

Every task reads one data folder (``<data root>/<folder>``, the layout of ``../shared/data``), scores a
model with the metric MTEB uses for its type, and states where its data comes from, which split, how
big it is, and which recipes train on that data (``trained_by``; such a task is *in-domain* for those
recipes and kept out of the leaderboard's main average). The metric math lives in
:mod:`polymodal.metrics.functional`; the evaluators of :mod:`polymodal.evaluation` are reused where
they fit.

Task types (MMTEB taxonomy) and main scores:

==================  ==========================================================  ===================
type                what is scored                                              main score
==================  ==========================================================  ===================
STS                 cosine of each pair vs gold similarity                      Spearman
PairClassification  cosine of each pair, positive vs negative pairs             average precision
Classification      logistic regression on frozen embeddings (MTEB protocol)    accuracy
Clustering          (mini-batch) k-means with k = number of gold labels         V-measure
Retrieval           queries rank a corpus by cosine                             nDCG@10
Reranking           queries rank their own candidate lists by cosine            MAP
ImageTextRetrieval  captions rank images and images rank captions (two towers)  nDCG@10 (mean)
==================  ==========================================================  ===================
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from polymodal.data.text import read_choi
from polymodal.metrics.functional import (
    cosine_matrix,
    kmeans_v_measure,
    mean_average_precision,
    multiclass_metrics,
    pair_classification_ap,
    retrieval_metrics,
)

__all__ = [
    "LITE_TASKS",
    "TASKS",
    "TASK_TYPES",
    "Task",
    "TaskCard",
    "TaskType",
    "default_data_root",
    "get_tasks",
    "sample_data_root",
]

TaskType = Literal[
    "STS", "PairClassification", "Classification", "Clustering", "Retrieval", "Reranking", "ImageTextRetrieval"
]
#: Task types in leaderboard order.
TASK_TYPES: tuple[str, ...] = (
    "STS",
    "PairClassification",
    "Classification",
    "Clustering",
    "Retrieval",
    "Reranking",
    "ImageTextRetrieval",
)


def default_data_root() -> Path:
    """``$POLYMODAL_DATA`` if set, else ``../shared/data`` (the team's data, relative to the repository)."""
    return Path(os.environ.get("POLYMODAL_DATA", "../shared/data")).expanduser()


def sample_data_root() -> Path:
    """The small samples shipped with the package (``polymodal/bench/data``; see its SOURCE.md)."""
    return Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class TaskCard:
    """What a task is: its data, split, size, metric and which recipes train on its data.

    Attributes:
        name: the task's name on the command line (``"stsb"``).
        type: MMTEB task type.
        description: one line.
        folder: data folder under the data root (``"stsb"``).
        files: the files read, relative to ``folder``.
        source: where the data comes from (dataset, paper), as its SOURCE.md states.
        split: which split is used.
        size: how many items are scored, on the full data.
        metric: key of the main score in the result.
        modalities: modalities the model needs (``("text",)``, ``("text", "image")``).
        trained_by: recipes that train on this data; non-empty means *in-domain* for them.
        version: bumped whenever the task's definition changes (invalidates cached results).
    """

    name: str
    type: TaskType
    description: str
    folder: str
    files: tuple[str, ...]
    source: str
    split: str
    size: str
    metric: str
    modalities: tuple[str, ...] = ("text",)
    trained_by: tuple[str, ...] = ()
    version: int = 1

    @property
    def in_domain(self) -> bool:
        return bool(self.trained_by)


@dataclass(frozen=True)
class Task:
    """A task card with its loader and scorer.

    ``load(folder) -> data`` reads the task's data folder; ``score(model, data) -> metrics`` encodes with
    ``model.encode(values, batch_size=..., modality=...)`` and returns ``{name: value}`` holding
    ``card.metric``.
    """

    card: TaskCard
    load: Callable[[Path], Any] = field(repr=False)
    score: Callable[[Any, Any, int], dict[str, float]] = field(repr=False)

    @property
    def name(self) -> str:
        return self.card.name

    def folder(self, data_root: str | os.PathLike[str]) -> Path:
        """The task's data folder; a one-line ``FileNotFoundError`` when it or a file is missing."""
        folder = Path(data_root).expanduser() / self.card.folder
        if not folder.is_dir():
            raise FileNotFoundError(
                f"task {self.name}: data folder not found: {folder} (set --data-root or $POLYMODAL_DATA)"
            )
        for name in self.card.files:
            if not (folder / name).is_file():
                raise FileNotFoundError(f"task {self.name}: data file not found: {folder / name}")
        return folder

    def data_digest(self, data_root: str | os.PathLike[str]) -> str:
        """SHA-256 over the task's files (name and bytes): a cached result is only reused for the same data."""
        folder = self.folder(data_root)
        h = hashlib.sha256(f"{self.name}:{self.card.version}".encode())
        for name in self.card.files:
            h.update(name.encode())
            h.update(hashlib.sha256((folder / name).read_bytes()).digest())
        return h.hexdigest()


# --------------------------------------------------------------------------------------------- readers
def _bad(path: Path, row: int | None, what: str) -> ValueError:
    where = f"{path}" + (f", row {row}" if row is not None else "")
    return ValueError(f"{where}: {what}")


def _read_tsv(path: Path, header: bool = True, columns: Sequence[str] = ()) -> list[dict[str, str]]:
    """A tab-separated file (optionally gzip'd) as dicts; checks required ``columns`` and field counts."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        lines = fh.read().splitlines()
    if not lines:
        raise _bad(path, None, "empty file")
    if header:
        names, body, first = lines[0].split("\t"), lines[1:], 2
    else:
        names, body, first = list(columns), lines, 1
    missing = [c for c in columns if c not in names]
    if missing:
        raise _bad(path, 1, f"missing column(s) {missing}; found {names}")
    rows = []
    for i, line in enumerate(body, start=first):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < len(names):
            raise _bad(path, i, f"expected {len(names)} tab-separated fields, found {len(parts)}")
        rows.append(dict(zip(names, parts)))
    return rows


def _float(path: Path, row: int, name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise _bad(path, row, f"column {name!r}: expected a number, got {value!r:.40}") from None


def _stsb(folder: Path) -> dict[str, Any]:
    path = folder / "sts-dev.csv.gz"
    names = ["genre", "filename", "year", "sid", "score", "sentence1", "sentence2"]
    rows = _read_tsv(path, header=False, columns=names)
    scores = [_float(path, i + 1, "score", r["score"]) for i, r in enumerate(rows)]
    return {"s1": [r["sentence1"] for r in rows], "s2": [r["sentence2"] for r in rows], "score": scores}


#: The SNLI tasks use the pairs of the first this many distinct premises of the test file (file order).
SNLI_PREMISES = 1500


def _snli(folder: Path, file: str = "snli_1.0_test.tsv.gz") -> list[dict[str, str]]:
    path = folder / file
    rows = _read_tsv(path, columns=["premise", "hypothesis", "label"])
    labels = {"entailment", "neutral", "contradiction"}
    for i, r in enumerate(rows, start=2):
        if r["label"] not in labels:
            raise _bad(path, i, f"column 'label': expected one of {sorted(labels)}, got {r['label']!r:.40}")
    keep = set(list(dict.fromkeys(r["premise"] for r in rows))[:SNLI_PREMISES])
    return [r for r in rows if r["premise"] in keep]


def _snli_pairs(folder: Path) -> dict[str, Any]:
    rows = [r for r in _snli(folder) if r["label"] != "neutral"]
    return {
        "s1": [r["premise"] for r in rows],
        "s2": [r["hypothesis"] for r in rows],
        "label": np.array([r["label"] == "entailment" for r in rows], dtype=np.int64),
    }


def _snli_by_premise(folder: Path) -> dict[str, list[tuple[str, str]]]:
    by_premise: dict[str, list[tuple[str, str]]] = {}
    for r in _snli(folder):
        by_premise.setdefault(r["premise"], []).append((r["hypothesis"], r["label"]))
    return by_premise


def _snli_retrieval(folder: Path) -> dict[str, Any]:
    by_premise = _snli_by_premise(folder)
    corpus = list(dict.fromkeys(h for hyps in by_premise.values() for h, _ in hyps))
    position = {h: i for i, h in enumerate(corpus)}
    queries, relevant = [], []
    for premise, hyps in by_premise.items():
        rel = {position[h] for h, label in hyps if label == "entailment"}
        if rel:
            queries.append(premise)
            relevant.append(rel)
    return {"queries": queries, "corpus": corpus, "relevant": relevant}


def _snli_reranking(folder: Path) -> dict[str, Any]:
    queries, candidates, relevance = [], [], []
    for premise, hyps in _snli_by_premise(folder).items():
        unique = dict.fromkeys(h for h, _ in hyps)
        positive = {h for h, label in hyps if label == "entailment"}
        if positive and len(positive) < len(unique):  # at least one positive and one negative
            queries.append(premise)
            candidates.append(list(unique))
            relevance.append(np.array([h in positive for h in unique], dtype=np.int64))
    return {"queries": queries, "candidates": candidates, "relevance": relevance}


def _fin_phrasebank(folder: Path) -> dict[str, Any]:
    path = folder / "fpb_sentences_50Agree.tsv.gz"
    rows = _read_tsv(path, columns=["sentence", "label"])
    return {"texts": [r["sentence"] for r in rows], "labels": [r["label"] for r in rows]}


def _wassa_emotion(folder: Path) -> dict[str, Any]:
    train_path = folder / "messages_train_ready_for_WS.tsv.gz"
    train = _read_tsv(train_path, columns=["essay", "emotion"])
    dev = _read_tsv(folder / "messages_dev_features_ready_for_WS_2022.tsv.gz", columns=["essay"])
    gold_path = folder / "goldstandard_dev_2022.tsv.gz"
    gold = _read_tsv(gold_path, header=False, columns=["empathy", "distress", "emotion"])
    if len(gold) != len(dev):
        raise _bad(gold_path, None, f"{len(gold)} gold rows but {len(dev)} dev essays (files must be row-aligned)")
    return {
        "train_texts": [r["essay"] for r in train],
        "train_labels": [r["emotion"] for r in train],
        "test_texts": [r["essay"] for r in dev],
        "test_labels": [r["emotion"] for r in gold],
    }


def _choi_sentences(folder: Path) -> dict[str, Any]:
    """Sentences of Choi groups 1-2, labelled by the Brown text they come from.

    A Choi segment is the first ``n`` sentences of a Brown-corpus text, so segments that open with the
    same sentence come from the same text; the union of their sentences is that text's sentence set.
    """
    texts: dict[str, dict[str, None]] = {}
    for doc in read_choi(folder / "choi.jsonl.gz"):
        if doc.group not in ("1", "2"):
            continue
        for segment in doc.segments:
            if segment:
                texts.setdefault(segment[0], {}).update(dict.fromkeys(segment))
    seen: set[str] = set()
    sentences, labels = [], []
    for label, (_, sents) in enumerate(texts.items()):
        for s in sents:
            if s not in seen:  # a sentence shared by two texts keeps its first label
                seen.add(s)
                sentences.append(s)
                labels.append(label)
    return {"texts": sentences, "labels": labels}


#: URL section -> topic for the labelled part of the Bitcoin news (BBC, CNN, NYT URLs carry a section).
_BTC_TOPICS = {
    "technology": "technology",
    "tech": "technology",
    "business": "business",
    "dealbook": "business",
    "companies": "business",
    "economy": "business",
    "smallbusiness": "business",
    "investing": "markets",
    "your-money": "markets",
    "pf": "markets",
    "world": "world",
    "uk": "world",
    "us": "world",
    "politics": "world",
    "africa": "world",
    "europe": "world",
    "asia": "world",
    "middleeast": "world",
    "americas": "world",
    "china": "world",
    "opinion": "opinion",
    "opinions": "opinion",
}


def btc_url_section(url: str) -> str | None:
    """The site section a BBC / CNN / NYT article URL names (``None`` for other URLs, e.g. Reuters)."""
    m = re.search(r"bbc\.co\.uk/news/([a-z]+)", url)
    if m:
        return m.group(1)
    m = re.search(r"cnn\.com/\d{4}/\d{2}/\d{2}/([a-z]+)(?:/([a-z]+))?", url)
    if m:
        return m.group(2) if m.group(1) == "news" and m.group(2) else m.group(1)
    if "dealbook.nytimes.com" in url:
        return "dealbook"
    m = re.search(r"nytimes\.com/\d{4}/\d{2}/\d{2}/([a-z\-]+)/", url)
    return m.group(1) if m else None


def _btc_news(folder: Path) -> dict[str, Any]:
    import csv

    path = folder / "btc_news_2011_2019.csv.gz"
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("headline", "url") if c not in (reader.fieldnames or [])]
        if missing:
            raise _bad(path, 1, f"missing column(s) {missing}; found {reader.fieldnames}")
        rows = list(reader)
    texts, labels = [], []
    for r in rows:
        topic = _BTC_TOPICS.get(btc_url_section(r["url"]) or "")
        if topic is not None and r["headline"].strip():
            texts.append(r["headline"].strip())
            labels.append(topic)
    return {"texts": texts, "labels": labels}


def _captions(folder: Path) -> dict[str, list[tuple[int, str]]]:
    path = folder / "captions.tsv"
    by_image: dict[str, list[tuple[int, str]]] = {}
    for i, r in enumerate(_read_tsv(path, columns=["image", "caption_idx", "caption"]), start=2):
        try:
            idx = int(r["caption_idx"])
        except ValueError:
            raise _bad(path, i, f"column 'caption_idx': expected an integer, got {r['caption_idx']!r:.20}") from None
        by_image.setdefault(r["image"], []).append((idx, r["caption"]))
    return {k: sorted(v) for k, v in by_image.items()}


def _caption_retrieval(folder: Path) -> dict[str, Any]:
    queries: list[str] = []
    corpus: list[str] = []
    relevant: list[set[int]] = []
    for caps in _captions(folder).values():
        if len(caps) < 2:
            continue
        queries.append(caps[0][1])
        start = len(corpus)
        corpus.extend(c for _, c in caps[1:])
        relevant.append(set(range(start, len(corpus))))
    return {"queries": queries, "corpus": corpus, "relevant": relevant}


def _image_text(folder: Path) -> dict[str, Any]:
    images, captions, owner = [], [], []
    for image, caps in _captions(folder).items():
        path = folder / "images" / image
        if not path.is_file():
            raise FileNotFoundError(f"{folder / 'captions.tsv'}: image file not found: {path}")
        images.append(str(path))
        for _, c in caps:
            captions.append(c)
            owner.append(len(images) - 1)
    return {"images": images, "captions": captions, "owner": owner}


# --------------------------------------------------------------------------------------------- scorers
def _encode(model: Any, values: Sequence[Any], batch_size: int, modality: str = "text") -> np.ndarray:
    return np.asarray(model.encode(list(values), batch_size=batch_size, modality=modality), dtype=np.float32)


def _encode_union(model: Any, lists: Sequence[Sequence[str]], batch_size: int) -> list[np.ndarray]:
    """Encode the distinct values of several lists once; return one array per list."""
    unique = list(dict.fromkeys(v for values in lists for v in values))
    emb = _encode(model, unique, batch_size)
    index = {v: i for i, v in enumerate(unique)}
    return [emb[[index[v] for v in values]] for values in lists]


def _score_sts(model: Any, data: dict[str, Any], batch_size: int) -> dict[str, float]:
    from polymodal.evaluation.sts import STSEvaluator

    e1, e2 = _encode_union(model, [data["s1"], data["s2"]], batch_size)
    res = STSEvaluator.score(e1, e2, np.asarray(data["score"], dtype=np.float64))
    return {"spearman": res.spearman, "pearson": res.pearson, "n": float(res.n)}


def _score_pairs(model: Any, data: dict[str, Any], batch_size: int) -> dict[str, float]:
    e1, e2 = _encode_union(model, [data["s1"], data["s2"]], batch_size)
    return {"ap": pair_classification_ap(e1, e2, data["label"]), "n": float(len(data["label"]))}


#: MTEB's classification protocol (``mteb.abstasks.classification``): ``LogisticRegression(max_iter=100)``
#: fitted ``CLASSIFICATION_EXPERIMENTS`` times on ``SAMPLES_PER_LABEL`` training examples of each label
#: (a fresh seeded draw each time), scored on the whole test split; accuracy and macro-F1 averaged.
CLASSIFICATION_EXPERIMENTS = 10
SAMPLES_PER_LABEL = 8


def _undersampled_probe(
    train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray, n_classes: int, seed: int = 42
) -> dict[str, float]:
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise ImportError("classification tasks need scikit-learn: pip install 'polymodal[eval]'") from None
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    rng = np.random.RandomState(seed)
    order = np.arange(len(y_train))
    accs, f1s = [], []
    for _ in range(CLASSIFICATION_EXPERIMENTS):
        rng.shuffle(order)
        taken: dict[int, int] = {}
        picked = []
        for i in order:
            if taken.get(int(y_train[i]), 0) < SAMPLES_PER_LABEL:
                taken[int(y_train[i])] = taken.get(int(y_train[i]), 0) + 1
                picked.append(i)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter=100 as MTEB: may stop early
            clf = LogisticRegression(max_iter=100).fit(train[picked], y_train[picked])
        prob = np.zeros((len(y_test), n_classes))
        prob[:, clf.classes_] = clf.predict_proba(test)
        res = multiclass_metrics(y_test, prob)
        accs.append(res["accuracy"])
        f1s.append(res["macro_f1"])
    return {"accuracy": float(np.mean(accs)), "f1": float(np.mean(f1s)), "accuracy_std": float(np.std(accs))}


def _label_index(labels: Sequence[str]) -> dict[str, int]:
    return {c: i for i, c in enumerate(sorted(set(labels)))}


def _score_probe_heldout(model: Any, data: dict[str, Any], batch_size: int) -> dict[str, float]:
    """No official split: a stratified 80/20 split (seed 0) gives the train pool and the test split."""
    (emb,) = _encode_union(model, [data["texts"]], batch_size)
    index = _label_index(data["labels"])
    y = np.array([index[c] for c in data["labels"]])
    rng = np.random.RandomState(0)
    test_mask = np.zeros(len(y), dtype=bool)
    for c in range(len(index)):
        members = np.flatnonzero(y == c)
        rng.shuffle(members)
        test_mask[members[: max(1, round(0.2 * len(members)))]] = True
    res = _undersampled_probe(emb[~test_mask], y[~test_mask], emb[test_mask], y[test_mask], len(index))
    return {**res, "n": float(test_mask.sum())}


def _score_probe_split(model: Any, data: dict[str, Any], batch_size: int) -> dict[str, float]:
    """The train split is the pool MTEB draws training examples from; scored on the test split."""
    train, test = _encode_union(model, [data["train_texts"], data["test_texts"]], batch_size)
    index = _label_index(data["train_labels"])
    unknown = sorted(set(data["test_labels"]) - set(index))
    if unknown:
        raise ValueError(f"test labels {unknown} never occur in the train split")
    y_train = np.array([index[c] for c in data["train_labels"]])
    y_test = np.array([index[c] for c in data["test_labels"]])
    return {**_undersampled_probe(train, y_train, test, y_test, len(index)), "n": float(len(y_test))}


def _score_clustering(model: Any, data: dict[str, Any], batch_size: int) -> dict[str, float]:
    (emb,) = _encode_union(model, [data["texts"]], batch_size)
    labels = np.asarray(data["labels"])
    return {"v_measure": kmeans_v_measure(emb, labels, seed=0), "n": float(len(labels))}


def _score_retrieval(model: Any, data: dict[str, Any], batch_size: int) -> dict[str, float]:
    q, c = _encode_union(model, [data["queries"], data["corpus"]], batch_size)
    res = retrieval_metrics(cosine_matrix(q, c), data["relevant"], ks=(1, 5, 10))
    return {**res.metrics, "n": float(res.n)}


def _score_reranking(model: Any, data: dict[str, Any], batch_size: int) -> dict[str, float]:
    flat = [c for cands in data["candidates"] for c in cands]
    q, c = _encode_union(model, [data["queries"], flat], batch_size)
    scores, start = [], 0
    for i, cands in enumerate(data["candidates"]):
        cos = cosine_matrix(q[i : i + 1], c[start : start + len(cands)])[0]
        scores.append(cos)
        start += len(cands)
    return {"map": mean_average_precision(data["relevance"], scores), "n": float(len(scores))}


def _score_image_text(model: Any, data: dict[str, Any], batch_size: int) -> dict[str, float]:
    text = _encode(model, data["captions"], batch_size, modality="text")
    image = _encode(model, data["images"], batch_size, modality="image")
    if text.shape[1] != image.shape[1]:
        raise ValueError(
            f"image-text retrieval needs towers of one width: text gives {text.shape[1]}, image {image.shape[1]}"
        )
    owner = np.asarray(data["owner"])
    t2i = retrieval_metrics(cosine_matrix(text, image), [{int(o)} for o in owner], ks=(1, 5, 10))
    i2t_rel = [set(np.flatnonzero(owner == i).tolist()) for i in range(len(image))]
    i2t = retrieval_metrics(cosine_matrix(image, text), i2t_rel, ks=(1, 5, 10))
    out = {f"t2i_{k}": v for k, v in t2i.metrics.items()}
    out.update({f"i2t_{k}": v for k, v in i2t.metrics.items()})
    out["ndcg@10"] = (t2i["ndcg@10"] + i2t["ndcg@10"]) / 2
    out["n"] = float(len(image))
    return out


# --------------------------------------------------------------------------------------------- tasks
_STSB = "STS Benchmark (Cer et al. 2017), official release files; gold scores CC BY-SA 4.0"
_SNLI = "SNLI 1.0 (Bowman et al. 2015) via the e-SNLI repository, gold-labelled pairs; CC BY-SA 4.0"
_SNLI_TRAINERS = ("sbert_two_stage", "pixel_linguist", "distilled", "llm_embedder")  # YAMLs train on snli dev/test
_FLICKR = "Flickr8k (Hodosh et al. 2013), 1,000-image subset with 5 captions each; research use only"
_FLICKR_TRAINERS = ("grounded_sentence", "cg_vlm")

TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task(
            TaskCard(
                "stsb",
                "STS",
                "STS-B dev: Spearman of pair cosine with the gold similarity (0-5)",
                "stsb",
                ("sts-dev.csv.gz",),
                _STSB,
                "dev (recipes validate on it; none trains on it)",
                "1,500 pairs",
                "spearman",
            ),
            _stsb,
            _score_sts,
        ),
        Task(
            TaskCard(
                "snli-pairs",
                "PairClassification",
                "SNLI test pairs: average precision of cosine for entailment (1) vs contradiction (0)",
                "nli",
                ("snli_1.0_test.tsv.gz",),
                _SNLI,
                "test, first 1,500 premises (file order); neutral pairs left out",
                "2,963 pairs",
                "ap",
                trained_by=_SNLI_TRAINERS,
            ),
            _snli_pairs,
            _score_pairs,
        ),
        Task(
            TaskCard(
                "fin-phrasebank",
                "Classification",
                "Financial PhraseBank sentiment (negative/neutral/positive): MTEB's undersampled logistic regression",
                "fin_sentiment",
                ("fpb_sentences_50Agree.tsv.gz",),
                "Financial PhraseBank v1.0 (Malo et al. 2014), 50%-agreement level; CC BY-NC-SA 3.0",
                "no official split: stratified 80/20 (seed 0); 8 train examples per label x 10 draws, as MTEB",
                "970 test sentences (pool of 3,876)",
                "accuracy",
                trained_by=("prebit",),
                version=2,
            ),
            _fin_phrasebank,
            _score_probe_heldout,
        ),
        Task(
            TaskCard(
                "wassa-emotion",
                "Classification",
                "WASSA 2022 essay emotion (7 classes): MTEB's undersampled logistic regression, train -> dev",
                "wassa22",
                (
                    "messages_train_ready_for_WS.tsv.gz",
                    "messages_dev_features_ready_for_WS_2022.tsv.gz",
                    "goldstandard_dev_2022.tsv.gz",
                ),
                "WASSA 2022 shared task (NewsEmpathy v2, Buechel et al. 2018); licence not stated",
                "train (1,860 essays) as the pool of 8 examples per label x 10 draws, as MTEB; scored on dev "
                "(the test gold is not public)",
                "270 dev essays",
                "accuracy",
                trained_by=("wassa_empathy",),
                version=2,
            ),
            _wassa_emotion,
            _score_probe_split,
        ),
        Task(
            TaskCard(
                "choi-clustering",
                "Clustering",
                "Choi groups 1-2: sentences clustered by the Brown-corpus text they come from (k = 124)",
                "topicseg_choi",
                ("choi.jsonl.gz",),
                "Choi (2000) segmentation data built from the Brown corpus; licence not stated",
                "groups 1-2 (Brown ca**/cj** texts); every distinct sentence once",
                "1,353 sentences, 124 texts",
                "v_measure",
                trained_by=("topic_segmentation",),
            ),
            _choi_sentences,
            _score_clustering,
        ),
        Task(
            TaskCard(
                "btc-news-clustering",
                "Clustering",
                "Bitcoin news headlines clustered by the site section of their URL (5 topics)",
                "btc_text",
                ("btc_news_2011_2019.csv.gz",),
                "BBC/CNN/NYT/Reuters Bitcoin news 2011-2019 (alextruesdale/bitcoin-news-sentiment-analysis); "
                "research use",
                "all rows whose URL names a section (BBC, CNN, NYT); Reuters URLs carry none and are left out",
                "1,216 headlines",
                "v_measure",
                trained_by=("prebit",),
            ),
            _btc_news,
            _score_clustering,
        ),
        Task(
            TaskCard(
                "flickr8k-caption-retrieval",
                "Retrieval",
                "Flickr8k: each image's first caption retrieves its other 4 captions among all 4,000 others",
                "captions",
                ("captions.tsv",),
                _FLICKR,
                "all 1,000 images (the recipes' own splits are of the same images)",
                "1,000 queries, 4,000 documents",
                "ndcg@10",
                trained_by=_FLICKR_TRAINERS,
            ),
            _caption_retrieval,
            _score_retrieval,
        ),
        Task(
            TaskCard(
                "snli-premise-retrieval",
                "Retrieval",
                "SNLI test: a premise retrieves its entailed hypotheses among all hypotheses",
                "nli",
                ("snli_1.0_test.tsv.gz",),
                _SNLI,
                "test, first 1,500 premises (file order)",
                "1,383 queries, 4,382 documents",
                "ndcg@10",
                trained_by=_SNLI_TRAINERS,
            ),
            _snli_retrieval,
            _score_retrieval,
        ),
        Task(
            TaskCard(
                "snli-reranking",
                "Reranking",
                "SNLI test: a premise reranks its own hypotheses; entailed ones are relevant (hard negatives)",
                "nli",
                ("snli_1.0_test.tsv.gz",),
                _SNLI,
                "test, first 1,500 premises; those with an entailed and a non-entailed hypothesis",
                "1,379 queries, 2.98 candidates each on average",
                "map",
                trained_by=_SNLI_TRAINERS,
            ),
            _snli_reranking,
            _score_reranking,
        ),
        Task(
            TaskCard(
                "flickr8k-image-text",
                "ImageTextRetrieval",
                "Flickr8k: captions retrieve their image and images their 5 captions (text + image towers)",
                "captions",
                ("captions.tsv",),
                _FLICKR,
                "all 1,000 images",
                "1,000 images, 5,000 captions",
                "ndcg@10",
                modalities=("text", "image"),
                trained_by=_FLICKR_TRAINERS,
            ),
            _image_text,
            _score_image_text,
        ),
    ]
}

#: ``--lite``: the tasks kept by MMTEB's greedy selection (:func:`polymodal.bench.select_tasks`, ``polymodal bench
#: --select``, threshold 0.9, every task type keeps a task) over 13 text models (bundled MiniLM, its layer 1-5 and
#: 128/32-dim variants, the sbert / matryoshka_2d / CoSENT recipe exports; docs/results.md "Task selection"):
#: snli-premise-retrieval, choi-clustering and fin-phrasebank dropped, ranking Spearman vs the full suite 0.967.
#: The image <-> text task had no aligned tower pair on that board and stays (the only task of its type).
LITE_TASKS: tuple[str, ...] = (
    "stsb",
    "snli-pairs",
    "wassa-emotion",
    "btc-news-clustering",
    "flickr8k-caption-retrieval",
    "snli-reranking",
    "flickr8k-image-text",
)


def get_tasks(names: Sequence[str] | None = None, lite: bool = False) -> list[Task]:
    """Tasks by name (all, or the ``--lite`` subset); an unknown name is a one-line error listing the known."""
    if names:
        unknown = [n for n in names if n not in TASKS]
        if unknown:
            raise ValueError(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(TASKS)}")
        chosen = list(dict.fromkeys(names))
        return [TASKS[n] for n in chosen if not lite or n in LITE_TASKS]
    return [TASKS[n] for n in (LITE_TASKS if lite else TASKS)]
