"""Sentence-pair data for the siamese segmenter: adjacent pairs with STP/NSP/TC targets.

For every gap ``j`` of a document the pair ``(s_j, s_{j+1})`` has targets
``[same_topic, is_next=1, topic(s_j)]``. With NSP among the heads, each gap also yields a
negative ``(s_j, random sentence of another document)`` with targets ``[NaN, 0, topic(s_j)]``
(NaN: the pair's same-topic label is undefined and is left out of the STP loss). Topics are
source-text ids of the training documents; sentences of other texts get NaN.

Sentence features are computed once (deduplicated, cached on disk) by the WASSA recipe's
featurizers (``minilm-mean``, ``minilm-cls``, ``tiny-random``, ...).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from polymodal.data.datamodule import Collator, EpochShuffleSampler, RowsDataset
from polymodal.recipes.topic_segmentation.data import (
    Document,
    heldout_text_documents,
    load_choi,
    remove_texts,
    split_documents,
    text_split,
)

__all__ = ["ChoiPairDataModule"]

log = logging.getLogger(__name__)


class ChoiPairDataModule(pl.LightningDataModule):
    """Choi documents -> sentence-pair training data and per-document features for segmentation.

    Args:
        path: ``choi.jsonl.gz`` (or a ``package://`` sample).
        features: sentence featurizer name.
        heads: which targets to build pairs for (``stp``, ``nsp``, ``tc``); NSP negatives are only
            added when ``nsp`` is among them.
        protocol: ``"document"``: the fixed document-level split (train/val/test documents);
            ``"text-disjoint"``: training documents with every segment of held-out source texts
            cut out, val/test = new Choi-style documents built from held-out texts only.
        heldout_docs: text-disjoint protocol: documents generated for val and for test.
        batch_size: training batch size.
        cache_dir: feature cache folder.
        max_docs: read only the first N documents (quick runs).
        seed: NSP negative sampling and shuffling seed.
        context: sentences averaged on each side of a gap (1: the adjacent sentences, as in the
            paper; larger values test wider context).
    """

    def __init__(
        self,
        path: str = "../shared/data/topicseg_choi/choi.jsonl.gz",
        features: str = "minilm-mean",
        heads: list[str] | None = None,
        protocol: Literal["document", "text-disjoint"] = "document",
        heldout_docs: int = 200,
        batch_size: int = 256,
        cache_dir: str = "/tmp/polymodal_cache/topicseg",
        max_docs: int | None = None,
        seed: int = 0,
        context: int = 1,
    ) -> None:
        super().__init__()
        if context < 1:
            raise ValueError(f"context must be >= 1, got {context}")
        self.context = context
        heads = list(heads or ["stp", "nsp", "tc"])
        unknown = sorted(set(heads) - {"stp", "nsp", "tc"})
        if unknown:
            raise ValueError(f"unknown head(s) {unknown}; valid: ['nsp', 'stp', 'tc']")
        if protocol not in ("document", "text-disjoint"):
            raise ValueError(f"protocol must be 'document' or 'text-disjoint', got {protocol!r}")
        self.path, self.features, self.heads, self.protocol = path, features, heads, protocol
        self.heldout_docs, self.batch_size, self.cache_dir = heldout_docs, batch_size, cache_dir
        self.max_docs, self.seed = max_docs, seed
        self.docs: dict[str, list[Document]] = {}
        self.topics: dict[str, int] = {}
        self.index: dict[str, int] = {}
        self.matrix: np.ndarray | None = None
        self.pair_matrix: np.ndarray | None = None
        self._extra: list[np.ndarray] = []
        self._n_extra = 0
        self.datasets: dict[str, RowsDataset] = {}

    # ----------------------------------------------------------------- build
    def prepare(self) -> None:
        if self.datasets:
            return
        from polymodal.recipes.wassa_empathy.features import featurize

        docs = load_choi(self.path, self.max_docs)
        split = split_documents(docs)
        if self.protocol == "document":
            self.docs = split
        else:
            _, held = text_split(docs)
            self.docs = {
                "train": remove_texts(split["train"], held),
                "val": heldout_text_documents(docs, held, self.heldout_docs, seed=1),
                "test": heldout_text_documents(docs, held, self.heldout_docs, seed=2),
            }
        for name in ("train", "val", "test"):
            if not self.docs[name]:
                raise ValueError(f"{self.path}: the {name} split is empty (max_docs={self.max_docs} too small?)")
        # every sentence of the file (a superset of every split), so all protocols share one cache entry
        sentences = sorted({s for d in docs for s in d.sentences})
        self.index = {s: i for i, s in enumerate(sentences)}
        self.matrix = featurize(self.features, sentences, self.cache_dir).astype(np.float32)  # (S, D)
        self.topics = {t: i for i, t in enumerate(sorted({s for d in self.docs["train"] for s in d.sources}))}
        rng = np.random.default_rng(self.seed)
        for name in ("train", "val"):
            self.datasets[name] = self._pairs(self.docs[name], rng)
        # context > 1: the window means of every pair side were appended after the sentence rows
        self.pair_matrix = np.vstack([self.matrix, *self._extra]) if self._extra else self.matrix
        log.info(
            "Choi %s protocol: %s documents, %d unique sentences, %d topics; %d train pairs",
            self.protocol,
            {k: len(v) for k, v in self.docs.items()},
            len(sentences),
            len(self.topics),
            len(self.datasets["train"]),
        )

    def _pairs(self, docs: list[Document], rng: np.random.Generator) -> RowsDataset:
        from polymodal.recipes.topic_segmentation.model import gap_sides

        left, right, target = [], [], []
        nan = float("nan")
        c = self.context
        for k, d in enumerate(docs):
            ids = [self.index[s] for s in d.sentences]
            if c > 1:  # rows for window means, appended after the sentence rows of self.matrix
                lw, rw = gap_sides(self.matrix[ids], c)  # type: ignore[index]
                base = len(self.matrix) + self._n_extra  # type: ignore[arg-type]
                self._extra.append(np.vstack([lw, rw]))
                self._n_extra += 2 * len(lw)
                lid = list(range(base, base + len(lw)))
                rid = list(range(base + len(lw), base + 2 * len(lw)))
            else:
                lid, rid = ids[:-1], ids[1:]
            for j in range(len(ids) - 1):
                topic = float(self.topics[d.sources[j]]) if d.sources[j] in self.topics else nan
                left.append(lid[j])
                right.append(rid[j])
                target.append([1.0 - float(d.boundaries[j]), 1.0, topic])
                if "nsp" in self.heads and len(docs) > 1:
                    other = docs[(k + 1 + int(rng.integers(len(docs) - 1))) % len(docs)]  # another document
                    p = int(rng.integers(len(other.sentences)))
                    if other.sentences[p] == d.sentences[j + 1]:
                        continue  # a shared source text can make the "random" sentence the true next one
                    if c > 1:
                        window = self.matrix[[self.index[s] for s in other.sentences[p : p + c]]].mean(axis=0)
                        self._extra.append(window[None].astype(np.float32))
                        neg = len(self.matrix) + self._n_extra  # type: ignore[arg-type]
                        self._n_extra += 1
                    else:
                        neg = self.index[other.sentences[p]]
                    left.append(lid[j])
                    right.append(neg)
                    target.append([nan, 0.0, topic])
        return RowsDataset([left, right], target)

    @property
    def feature_dim(self) -> int:
        self.prepare()
        return int(self.matrix.shape[1])  # type: ignore[union-attr]

    @property
    def num_topics(self) -> int:
        self.prepare()
        return len(self.topics)

    def document_features(self, doc: Document) -> np.ndarray:
        """``(N, D)`` sentence features of one document."""
        self.prepare()
        return self.matrix[[self.index[s] for s in doc.sentences]]  # type: ignore[index]

    # ----------------------------------------------------------- lightning
    def setup(self, stage: str | None = None) -> None:
        self.prepare()
        model = self.trainer.lightning_module if self.trainer is not None else None
        if model is None:
            return
        encoder = model.encoders["shared"] if "shared" in model.encoders else None
        expected = getattr(encoder, "input_dim", None)
        if expected is not None and expected != self.feature_dim:
            raise ValueError(
                f"features {self.features!r} give {self.feature_dim} dims but the model's encoder expects "
                f"input_dim={expected}; set model.init_args.encoder.init_args.input_dim accordingly"
            )
        for t in model.tasks:
            if t.name == "tc" and t.num_classes < self.num_topics:
                raise ValueError(
                    f"the training documents have {self.num_topics} topics but the model's tc task has "
                    f"num_classes={t.num_classes}; set it to at least {self.num_topics}"
                )
            if t.name not in self.heads:
                raise ValueError(f"the model has a {t.name!r} head but data.heads is {self.heads}")

    def _collator(self) -> Collator:
        from polymodal.recipes.topic_segmentation.model import IndexedVectorProcessor

        proc = IndexedVectorProcessor(self.pair_matrix)
        return Collator([proc, proc], ["left", "right"], str(self.path))

    def _loader(self, split: str, train: bool) -> DataLoader:
        self.prepare()
        ds = self.datasets[split]
        sampler = EpochShuffleSampler(len(ds), self.seed) if train else None
        return DataLoader(
            ds, batch_size=self.batch_size if train else 1024, sampler=sampler, collate_fn=self._collator()
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def transfer_batch_to_device(self, batch: dict[str, Any], device: torch.device, dataloader_idx: int) -> Any:
        return {
            "inputs": [{k: v.to(device) for k, v in x.items()} for x in batch["inputs"]],
            "target": None if batch["target"] is None else batch["target"].to(device),
        }
