"""Graph modality: knowledge-graph triples and hypercomplex (quaternion / dihedron) embeddings whose entity
components come from structure and from frozen-LM text vectors; plain graphs as edge lists, random walks and
node embeddings.

Example:
    >>> from polymodal.plugins.graph import KnowledgeGraph, hamilton_product
    >>> kg = KnowledgeGraph.read("package://kg_hypercomplex/data/umls")   # train/valid/test.txt
    >>> kg.num_entities, len(kg.relations)
    (135, 46)
"""

from __future__ import annotations

from polymodal.plugins_manager import require_extra

#: What this plugin imports beyond the core (its ``graph`` extra), checked before anything else.
polymodal_extra = "graph"
polymodal_requires = ("pandas",)
require_extra("graph", polymodal_requires, polymodal_extra)

from polymodal.hookspecs import hookimpl
from polymodal.modality import Modality
from polymodal.plugins.graph.hypercomplex import dihedron_product, hamilton_product, hypercomplex_product, normalize
from polymodal.plugins.graph.kge import HypercomplexKGE, KGQueryProcessor, LinkPrediction, OneToNLoss
from polymodal.plugins.graph.triples import INVERSE, KGQueries, KnowledgeGraph, entity_descriptions, read_triples
from polymodal.plugins.graph.walks import (
    Graph,
    NodeEmbedding,
    NodeProcessor,
    WalkPairs,
    random_walks,
    read_graph,
    write_graph,
)

__all__ = [
    "INVERSE",
    "Graph",
    "HypercomplexKGE",
    "KGQueries",
    "KGQueryProcessor",
    "KnowledgeGraph",
    "LinkPrediction",
    "NodeEmbedding",
    "NodeProcessor",
    "OneToNLoss",
    "WalkPairs",
    "dihedron_product",
    "entity_descriptions",
    "hamilton_product",
    "hypercomplex_product",
    "normalize",
    "random_walks",
    "read_graph",
    "read_triples",
    "write_graph",
]

polymodal_api_version = 1


@hookimpl
def register_modalities(register):
    register(
        Modality(
            name="graph",
            description="knowledge-graph triples (quaternion/dihedron KGE with text components), graphs, walks",
            encoders=(HypercomplexKGE, NodeEmbedding),
        )
    )
