"""SESA (Bogdanova & Yazdani, 2017, arXiv:1708.03246): embeddings whose dimensions are explicit, named concepts.

A text (here: its frozen MiniLM vector) is mapped to one activation per concept of a fixed vocabulary
(:class:`SESAEncoder`: linear map + sigmoid, so dimension ``c`` reads "how much the text is about concept c");
two texts are compared by the cosine of their concept vectors. Training combines

* a supervised ranking objective on the concept vectors (InfoNCE over in-batch negatives: two captions of the
  same image must rank each other first), and
* concept supervision (:class:`ConceptSupervision`: binary cross-entropy of the concept logits against the
  concepts the text itself mentions),

so the dimensions keep their names while serving the ranking. :func:`explain` names the concepts two texts share
most; :class:`ConceptPrecision` measures interpretability as precision@k of a caption's top activated concepts
against the words of the *other* captions of its image (held-out text about the same picture).

The concept vocabulary stands in for the paper's LinkedIn skills: the K most frequent content words of the
training captions (:func:`derive_concepts`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.utilities import dim_zero_cat

from polymodal.features import Features
from polymodal.io import atomic_path, resolve_path
from polymodal.metrics.step import StepMetric
from polymodal.modality import Encoder
from polymodal.objectives.base import STAGES, Objective
from polymodal.vector import VectorProcessor

if TYPE_CHECKING:  # pragma: no cover
    from polymodal.system import Step

__all__ = [
    "ConceptPrecision",
    "ConceptSupervision",
    "ExplainMatches",
    "SESAEncoder",
    "concept_words",
    "derive_concepts",
    "explain",
    "read_concepts",
]

_WORD = re.compile(r"[a-z]+")
#: Function words and caption fillers that are never concepts (scikit-learn's English list plus a few).
EXTRA_STOP = {"s", "t", "near", "front", "top", "side", "background", "looking", "wearing", "stand", "standing"}


def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) | EXTRA_STOP


def _fold(word: str) -> str:
    """Plural folding: ``dogs`` -> ``dog`` (not ``grass``, ``bus``)."""
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def concept_words(text: str, stop: frozenset[str] | None = None) -> list[str]:
    """Content words of a text: lower-case letters only, stop words removed, plurals folded."""
    stop = _stop_words() if stop is None else stop
    return [_fold(w) for w in _WORD.findall(str(text).lower()) if w not in stop and len(w) > 2]


def derive_concepts(texts: Sequence[str], k: int) -> list[str]:
    """The ``k`` most frequent content words of ``texts`` (document frequency; ties by word), the concept names."""
    stop = _stop_words()
    counts = Counter(w for t in texts for w in set(concept_words(t, stop)))
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def read_concepts(path: str) -> list[str]:
    """One concept per line (``#`` comments and blank lines ignored); duplicates are an error naming the line."""
    file = resolve_path(path, what="concept list")
    out: list[str] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        word = line.split("#", 1)[0].strip()
        if not word:
            continue
        if word in seen:
            raise ValueError(f"{path}: line {n}: concept {word!r} already on line {seen[word]}")
        seen[word] = n
        out.append(word)
    if len(out) < 2:
        raise ValueError(f"{path}: line 1: need at least 2 concepts, got {len(out)}")
    return out


def write_concepts(concepts: Sequence[str], path: str | Path, header: str = "") -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"# {h}\n" for h in header.splitlines()) + "".join(f"{c}\n" for c in concepts))


class SESAEncoder(Encoder):
    """Frozen-LM vector -> one activation per named concept.

    Args:
        input_dim: width of the input vectors (384 for MiniLM).
        concepts: the concept list file (one per line), in dimension order.
        hidden_dim: optional hidden layer (0: a single linear map, the equal-budget comparison with a dense model).
        activation: ``sigmoid`` (concept probabilities), ``relu`` (sparse non-negative scores) or ``none`` (a plain
            dense linear embedding of the same size and budget whose dimensions have no meaning: the baseline).
        dropout: input dropout.

    The input vector is standardised per vector (layer norm without parameters) first, so the linear map reaches
    confident concept logits quickly whatever the scale of the frozen model's vectors.
    """

    modality = "vector"
    concurrent_forward = True

    def __init__(
        self,
        input_dim: int,
        concepts: str,
        hidden_dim: int = 0,
        activation: Literal["sigmoid", "relu", "none"] = "sigmoid",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if activation not in ("sigmoid", "relu", "none"):
            raise ValueError(f"activation must be sigmoid, relu or none, got {activation!r}")
        self.input_dim, self.concepts_path, self.hidden_dim = int(input_dim), concepts, int(hidden_dim)
        self.activation, self.dropout_p = activation, float(dropout)
        self.concepts = read_concepts(concepts)
        self.index = {c: i for i, c in enumerate(self.concepts)}
        layers: list[nn.Module] = [nn.LayerNorm(self.input_dim, elementwise_affine=False), nn.Dropout(self.dropout_p)]
        if self.hidden_dim:
            layers += [nn.Linear(self.input_dim, self.hidden_dim), nn.GELU()]
        layers.append(nn.Linear(self.hidden_dim or self.input_dim, len(self.concepts)))
        self.net = nn.Sequential(*layers)
        self._processor = VectorProcessor(self.input_dim)

    @property
    def processor(self) -> VectorProcessor:
        return self._processor

    @property
    def output_dim(self) -> int:
        return len(self.concepts)

    def logits(self, x: Tensor) -> Tensor:
        return self.net(x.float())  # (B, K)

    def activate(self, logits: Tensor) -> Tensor:
        if self.activation == "none":
            return logits
        return torch.sigmoid(logits) if self.activation == "sigmoid" else F.relu(logits)

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        logits = self.logits(inputs["x"])
        a = self.activate(logits)  # (B, K) concept activations
        mask = torch.ones(a.shape[0], 1, dtype=torch.bool, device=a.device)
        return Features(sequence=logits.unsqueeze(1), mask=mask, pooled=a)

    def targets(self, texts: Sequence[str]) -> Tensor:
        """Multi-hot ``(B, K)``: the concepts each text mentions."""
        y = torch.zeros(len(texts), len(self.concepts))
        stop = _stop_words()
        for i, t in enumerate(texts):
            ids = [self.index[w] for w in set(concept_words(t, stop)) if w in self.index]
            if ids:
                y[i, ids] = 1.0
        return y

    def get_config(self) -> dict[str, Any]:
        return {
            "input_dim": self.input_dim,
            "concepts": self.concepts_path,
            "hidden_dim": self.hidden_dim,
            "activation": self.activation,
            "dropout": self.dropout_p,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], directory: Path) -> SESAEncoder:
        return cls(**config)


def explain(
    concepts: Sequence[str], a: Tensor | np.ndarray, b: Tensor | np.ndarray, k: int = 5
) -> list[tuple[str, float]]:
    """Why two items match: the ``k`` concepts with the largest share of their similarity.

    The cosine of concept vectors ``a`` and ``b`` is a sum over concepts of ``a_c * b_c / (|a| |b|)``; each
    concept's term is its contribution. Returns ``(concept, contribution)`` pairs, largest first (contributions of
    all concepts sum to the cosine).
    """
    a = torch.as_tensor(a, dtype=torch.float64).flatten()
    b = torch.as_tensor(b, dtype=torch.float64).flatten()
    if a.shape != b.shape or a.numel() != len(concepts):
        raise ValueError(
            f"need two vectors of {len(concepts)} concept activations, got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    share = a * b / (a.norm() * b.norm()).clamp_min(1e-12)
    top = torch.argsort(share, descending=True)[:k]
    return [(concepts[int(i)], float(share[i])) for i in top]


def _tower(step: Step, column: str) -> SESAEncoder:
    tower = step.system.tower_for(column)
    if not isinstance(tower, SESAEncoder):
        raise TypeError(f"column {column!r} is encoded by {type(tower).__name__}, not a SESAEncoder")
    return tower


class ConceptSupervision(Objective):
    """Binary cross-entropy of a column's concept logits against the concepts its raw text mentions.

    Args:
        columns: vector columns encoded by a :class:`SESAEncoder`.
        texts: the meta column holding each vector column's raw text (same order).
        weight: weight in the total loss.
        stages: where it runs.
    """

    def __init__(
        self, columns: Sequence[str], texts: Sequence[str], weight: float = 1.0, stages: Sequence[str] = STAGES
    ) -> None:
        super().__init__(weight, stages)
        if len(columns) != len(texts) or not columns:
            raise ValueError("ConceptSupervision needs one text (meta) column per vector column")
        self.columns, self.texts = list(columns), list(texts)

    def requires(self) -> tuple[list[str], list[str]]:
        return list(self.columns), []

    def forward(self, step: Step) -> Tensor:
        losses = []
        for column, text in zip(self.columns, self.texts):
            if text not in step.batch.meta:
                raise ValueError(f"ConceptSupervision: the batch has no meta column {text!r}; add it to data.meta")
            tower = _tower(step, column)
            logits = step.features(column).sequence[:, 0]  # (B, K)
            y = tower.targets(step.batch.meta[text]).to(logits.device)
            losses.append(F.binary_cross_entropy_with_logits(logits, y))
        return torch.stack(losses).mean()


class ConceptPrecision(StepMetric):
    """Precision@k of a column's top activated concepts against the concept words of held-out text.

    Args:
        column: the vector column (a :class:`SESAEncoder` tower).
        heldout: meta column with held-out text about the same item (e.g. the image's other captions).
        ks: cut-offs. Keys: ``concept_p@k``.
    """

    def __init__(self, column: str, heldout: str = "others", ks: Sequence[int] = (1, 5, 10), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.column, self.heldout, self.ks = column, heldout, tuple(int(k) for k in ks)
        self.add_state("hits", default=[], dist_reduce_fx="cat")

    def applies(self, step: Step) -> bool:
        return self.column in step.batch.inputs and self.heldout in step.batch.meta

    def update(self, step: Step) -> None:
        tower = _tower(step, self.column)
        a = step.embed(self.column).detach()
        relevant = tower.targets(step.batch.meta[self.heldout]).to(a.device).bool()  # (B, K)
        top = torch.argsort(a, dim=1, descending=True)[:, : max(self.ks)]
        self.hits.append(torch.gather(relevant, 1, top).float())  # (B, kmax)

    def compute(self) -> dict[str, float]:
        if not self.hits:
            return {}
        hits = dim_zero_cat(self.hits)
        return {f"concept_p@{k}": float(hits[:, :k].mean()) for k in self.ks}


class ExplainMatches(pl.Callback):
    """After testing, write ``<default_root_dir>/explanations.md``: for the first ``n`` test queries, the item they
    retrieve first and the top shared concepts (:func:`explain`) of the query and that item.

    Relies only on the Lightning API and ``pl_module.embedding_model(column)`` (the export contract).

    Args:
        query: the query vector column; ``document``: the document vector column.
        query_text, document_text: meta columns with their raw texts.
        n: queries to explain; ``k``: concepts per explanation.
    """

    def __init__(
        self,
        query: str = "a_vec",
        document: str = "b_vec",
        query_text: str = "a",
        document_text: str = "b",
        n: int = 10,
        k: int = 5,
    ) -> None:
        self.query, self.document, self.query_text, self.document_text = query, document, query_text, document_text
        self.n, self.k = int(n), int(k)
        self._rows: list[tuple[Tensor, Tensor, list[str], list[str]]] = []

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._rows = []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        meta = getattr(batch, "meta", {})
        inputs = getattr(batch, "inputs", {})
        if self.query in inputs and self.document in inputs and self.query_text in meta:
            self._rows.append(
                (
                    inputs[self.query]["x"].cpu(),
                    inputs[self.document]["x"].cpu(),
                    list(meta[self.query_text]),
                    list(meta[self.document_text]),
                )
            )

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._rows or not trainer.is_global_zero:
            return
        model = pl_module.embedding_model(self.query)
        encoder = model.encoder
        if not isinstance(encoder, SESAEncoder):
            return
        xq = torch.cat([r[0] for r in self._rows])
        xd = torch.cat([r[1] for r in self._rows])
        tq = [t for r in self._rows for t in r[2]]
        td = [t for r in self._rows for t in r[3]]
        docs, first = np.unique(np.array(td, dtype=object), return_index=True)
        with torch.no_grad():
            encoder.eval()
            device = next(encoder.parameters()).device
            aq = encoder({"x": xq.to(device)}).pooled.cpu()
            ad = encoder({"x": xd[torch.as_tensor(first)].to(device)}).pooled.cpu()
        sims = F.normalize(aq, dim=1) @ F.normalize(ad, dim=1).T
        lines = ["# Why SESA matched these captions (top shared concepts: share of the cosine)", ""]
        for i in range(min(self.n, len(tq))):
            j = int(sims[i].argmax())
            verdict = "correct" if docs[j] == td[i] else f"wrong; true: {td[i]!r}"
            shared = ", ".join(f"{c} {s:.2f}" for c, s in explain(encoder.concepts, aq[i], ad[j], self.k))
            lines.append(f"- **{tq[i]}** -> {docs[j]!r} ({verdict}, cosine {float(sims[i, j]):.2f}): {shared}")
        out = Path(trainer.default_root_dir) / "explanations.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
