"""Hypercomplex knowledge-graph embeddings whose entity components come from structure and from text.

:class:`HypercomplexKGE` is a polymodal :class:`~polymodal.modality.Encoder` over link-prediction queries
``(entity, relation)``. Each entity is ``D`` hypercomplex numbers (quaternions or dihedrons); each of its four
components (``1, i, j, k``) is either *learned* (``"structure"``, a free embedding) or derived from *text*
(``"name"``: the entity's readable name; ``"description"``: its definition or a templated text of its training
triples), embedded once by a frozen language model (MiniLM by default, through the feature cache) and mapped to
``D`` dimensions by a trainable linear layer. Relations are rotations: unit hypercomplex numbers ``r``, and a query
embeds as ``q = h ⊗ r`` (Hamilton or dihedron product); a candidate tail ``t`` scores ``<q, t>`` (QuatE).
Reciprocal relations ``r^-1`` turn head prediction into tail prediction, so training is 1-N: every query scores
all entities at once (:class:`OneToNLoss`) and evaluation ranks the answer among all filtered entities
(:class:`LinkPrediction`).

With ``components: [structure, structure, structure, structure]`` the model is plain QuatE (structure only); the
paper's "integration" models put one text representation in each imaginary component (Nayyeri et al., 2023).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.utilities import dim_zero_cat

from polymodal.features import Features
from polymodal.metrics import functional as fn
from polymodal.metrics.step import StepMetric
from polymodal.modality import Encoder, Processor
from polymodal.objectives.base import STAGES, Objective
from polymodal.plugins.graph.hypercomplex import Algebra, hypercomplex_product, normalize
from polymodal.plugins.graph.triples import KnowledgeGraph, entity_descriptions

if TYPE_CHECKING:  # pragma: no cover
    from polymodal.system import Step

__all__ = ["COMPONENTS", "HypercomplexKGE", "KGQueryProcessor", "LinkPrediction", "OneToNLoss"]

Component = Literal["structure", "name", "description"]
COMPONENTS = ("structure", "name", "description")


class KGQueryProcessor(Processor):
    """``(entity, query relation, answers, known)`` by name -> ids and masks.

    Output: ``entity`` ``(B,)``, ``relation`` ``(B,)``, ``answer`` ``(B,)`` (the first answer), ``answers``
    ``(B, N)`` multi-hot float, ``known`` ``(B, N)`` bool (the filter of evaluation queries).
    """

    def __init__(self, entities: Sequence[str], relations: Sequence[str]) -> None:
        self.entities = {e: i for i, e in enumerate(entities)}
        self.relations = {r: i for i, r in enumerate(relations)}

    def validate(self, value: Any) -> None:
        if not isinstance(value, tuple | list) or len(value) != 4:
            raise ValueError("expected a query (entity, relation, answers, known)")
        entity, relation, answers, known = value
        if entity not in self.entities:
            raise ValueError(f"entity {entity!r} is not in the model's training graph")
        if relation not in self.relations:
            raise ValueError(f"relation {relation!r} is not in the model's training graph")
        if not answers:
            raise ValueError("the query has no answer")
        for e in list(answers) + list(known):
            if e not in self.entities:
                raise ValueError(f"entity {e!r} is not in the model's training graph")

    def __call__(self, values: Sequence[Any]) -> dict[str, Tensor]:
        B, N = len(values), len(self.entities)
        entity = torch.empty(B, dtype=torch.long)
        relation = torch.empty(B, dtype=torch.long)
        answer = torch.empty(B, dtype=torch.long)
        answers = torch.zeros(B, N)
        known = torch.zeros(B, N, dtype=torch.bool)
        for i, value in enumerate(values):
            self.validate(value)
            e, r, ans, kn = value
            entity[i], relation[i] = self.entities[e], self.relations[r]
            ids = [self.entities[a] for a in ans]
            answer[i] = ids[0]
            answers[i, ids] = 1.0
            if kn:
                known[i, [self.entities[k] for k in kn]] = True
        return {"entity": entity, "relation": relation, "answer": answer, "answers": answers, "known": known}

    def lengths(self, values: Sequence[Any]) -> list[int]:
        return [1] * len(values)


class HypercomplexKGE(Encoder):
    """Quaternion / dihedron entity and relation embeddings; entity components from structure and text.

    Args:
        graph: the graph folder (its training triples define the entity and relation vocabularies and the
            templated descriptions).
        components: what each of the four components ``(1, i, j, k)`` holds: ``structure`` (learned),
            ``name`` or ``description`` (frozen LM text vector -> trainable linear map).
        algebra: ``quaternion`` (Hamilton product, QuatE) or ``dihedron`` (split quaternions).
        dim: hypercomplex numbers per entity (the embedding has ``4 * dim`` reals).
        text_model: registered text model for the text components (``minilm-l6``; ``test-bert`` in tests).
        cache_dir: feature-cache folder for the text vectors.
        max_facts: facts per templated description.
        dropout: dropout on the query before scoring.
        init_scale: standard deviation of the learned embeddings' initialisation.
    """

    modality = "graph"
    concurrent_forward = True

    def __init__(
        self,
        graph: str,
        components: Sequence[Component] = ("structure", "name", "description", "structure"),
        algebra: Algebra = "quaternion",
        dim: int = 64,
        text_model: str = "minilm-l6",
        cache_dir: str | None = None,
        max_facts: int = 16,
        dropout: float = 0.0,
        init_scale: float = 0.1,
    ) -> None:
        super().__init__()
        components = [str(c) for c in components]
        if len(components) != 4 or any(c not in COMPONENTS for c in components):
            raise ValueError(f"components must be four of {list(COMPONENTS)}, got {components}")
        if algebra not in ("quaternion", "dihedron"):
            raise ValueError(f"algebra must be quaternion or dihedron, got {algebra!r}")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.graph_path, self.components, self.algebra, self.dim = graph, components, algebra, int(dim)
        self.text_model, self.cache_dir, self.max_facts = text_model, cache_dir, int(max_facts)
        self.dropout_p, self.init_scale = float(dropout), float(init_scale)
        kg = KnowledgeGraph.read(graph)
        self.entity_names, self.relation_names = list(kg.entities), kg.query_relations
        N, Rq = kg.num_entities, len(self.relation_names)
        self.structure = nn.ParameterDict()
        self.project = nn.ModuleDict()
        texts: dict[str, list[str]] = {}
        if "name" in components:
            texts["name"] = [kg.names[e] for e in kg.entities]
        if "description" in components:
            texts["description"] = entity_descriptions(kg, self.max_facts)
        for kind, values in texts.items():
            from polymodal.data.embedded import text_features

            vectors = torch.from_numpy(text_features(values, text_model, cache_dir))  # (N, H)
            vectors = (vectors - vectors.mean(0)) / vectors.std(0).clamp_min(1e-6)  # standardised per dimension
            self.register_buffer(f"text_{kind}", vectors)
            self.project[kind] = nn.Linear(vectors.shape[1], self.dim)
        for slot, kind in enumerate(components):
            if kind == "structure":
                self.structure[str(slot)] = nn.Parameter(torch.randn(N, self.dim) * self.init_scale)
        self.relation = nn.Parameter(torch.randn(Rq, 4, self.dim) * self.init_scale)
        self.dropout = nn.Dropout(self.dropout_p)
        self._processor = KGQueryProcessor(self.entity_names, self.relation_names)

    @property
    def processor(self) -> KGQueryProcessor:
        return self._processor

    @property
    def output_dim(self) -> int:
        return 4 * self.dim

    @property
    def num_entities(self) -> int:
        return len(self.entity_names)

    def entity_matrix(self) -> Tensor:
        """Every entity's hypercomplex embedding ``(N, 4, D)``."""
        parts = []
        for slot, kind in enumerate(self.components):
            if kind == "structure":
                parts.append(self.structure[str(slot)])
            else:
                parts.append(self.project[kind](getattr(self, f"text_{kind}")))  # (N, D)
        return torch.stack(parts, dim=1)

    def query(self, entity: Tensor, relation: Tensor) -> Tensor:
        """``h ⊗ r̂`` for ids ``(B,)``: ``(B, 4, D)``."""
        h = self.entity_matrix()[entity]  # (B, 4, D)
        return hypercomplex_product(h, normalize(self.relation[relation]), self.algebra)

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        q = self.query(inputs["entity"], inputs["relation"]).flatten(1)  # (B, 4D)
        mask = torch.ones(q.shape[0], 1, dtype=torch.bool, device=q.device)
        return Features(sequence=q.unsqueeze(1), mask=mask, pooled=q)

    def score(self, query: Tensor) -> Tensor:
        """Scores ``(B, N)`` of flattened queries ``(B, 4D)`` against every entity (inner product)."""
        return self.dropout(query) @ self.entity_matrix().flatten(1).T

    def get_config(self) -> dict[str, Any]:
        return {
            "graph": self.graph_path,
            "components": self.components,
            "algebra": self.algebra,
            "dim": self.dim,
            "text_model": self.text_model,
            "cache_dir": self.cache_dir,
            "max_facts": self.max_facts,
            "dropout": self.dropout_p,
            "init_scale": self.init_scale,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], directory: Path) -> HypercomplexKGE:
        return cls(**config)


def _scores(step: Step, column: str) -> tuple[Tensor, HypercomplexKGE]:
    tower = step.system.tower_for(column)
    if not isinstance(tower, HypercomplexKGE):
        raise TypeError(f"column {column!r} is encoded by {type(tower).__name__}, not a HypercomplexKGE")
    return step.memo(f"kge/{column}", lambda: tower.score(step.features(column).pooled)), tower


class OneToNLoss(Objective):
    """1-N binary cross-entropy of a query against every entity (ConvE / QuatE-style training).

    Args:
        column: the query column.
        label_smoothing: targets become ``(1 - s) * y + s / N``.
        weight: weight in the total loss.
        stages: where it runs.
    """

    def __init__(
        self, column: str = "query", label_smoothing: float = 0.1, weight: float = 1.0, stages: Sequence[str] = STAGES
    ) -> None:
        super().__init__(weight, stages)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.column, self.label_smoothing = column, float(label_smoothing)

    def requires(self) -> tuple[list[str], list[str]]:
        return [self.column], []

    def forward(self, step: Step) -> Tensor:
        scores, _ = _scores(step, self.column)  # (B, N)
        y = step.inputs_of(self.column)["answers"].to(scores.dtype)
        y = (1.0 - self.label_smoothing) * y + self.label_smoothing / y.shape[1]
        return F.binary_cross_entropy_with_logits(scores, y)


class LinkPrediction(StepMetric):
    """Filtered link-prediction ranks over the whole split: ``mrr``, ``mr``, ``hits@k``
    (:func:`polymodal.metrics.functional.filtered_ranks`, realistic ties; both directions via reciprocal queries).

    Args:
        column: the query column.
        ks: Hits@k cut-offs.
    """

    def __init__(self, column: str = "query", ks: Sequence[int] = (1, 3, 10), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.column, self.ks = column, tuple(int(k) for k in ks)
        self.add_state("ranks", default=[], dist_reduce_fx="cat")

    def requires(self) -> tuple[list[str], list[str]]:
        return [self.column], []

    def update(self, step: Step) -> None:
        scores, _ = _scores(step, self.column)
        inputs = step.inputs_of(self.column)
        ranks = fn.filtered_ranks(
            scores.detach().float().cpu().numpy(), inputs["answer"].cpu().numpy(), inputs["known"].cpu().numpy()
        )
        self.ranks.append(torch.as_tensor(ranks, dtype=torch.float64, device=scores.device))

    def compute(self) -> dict[str, float]:
        ranks = dim_zero_cat(self.ranks).cpu().numpy() if self.ranks else np.empty(0)
        return fn.rank_metrics(ranks, self.ks) if len(ranks) else {}
