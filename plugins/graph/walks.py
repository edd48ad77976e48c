"""Plain graphs as edge-list files, random walks over them, and node embeddings learned from the walks.

A graph file is tab-separated, one undirected edge per line: ``node<TAB>node``. A node name is
``kind:value`` (``tuple:17``, ``sentence:17``, ``value:smith``): the kind before the first ``:`` says what the node
stands for. :class:`WalkPairs` turns uniform random walks into ``(node, context)`` rows (DeepWalk / node2vec with
p = q = 1; skip-gram windows), and :class:`NodeEmbedding` is an encoder of node names, so that
``polymodal fit`` learns node vectors with any pair objective (InfoNCE with in-batch negatives = skip-gram with
negative sampling over the batch).
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from polymodal.data.sources import Source
from polymodal.features import Features
from polymodal.io import atomic_path, resolve_path
from polymodal.modality import Encoder, Processor

__all__ = ["Graph", "NodeEmbedding", "NodeProcessor", "WalkPairs", "random_walks", "read_graph", "write_graph"]


@dataclass
class Graph:
    """An undirected graph: node names, their kinds and an adjacency list (CSR)."""

    nodes: list[str]
    indptr: np.ndarray  # (N + 1,)
    neighbours: np.ndarray  # (2E,)

    @property
    def num_nodes(self) -> int:
        return len(self.nodes)

    @property
    def num_edges(self) -> int:
        return len(self.neighbours) // 2

    def kind(self, i: int) -> str:
        return self.nodes[i].partition(":")[0]

    def degree(self) -> np.ndarray:
        return np.diff(self.indptr)

    @classmethod
    def from_edges(cls, edges: Sequence[tuple[str, str]], nodes: Sequence[str] = ()) -> Graph:
        names = sorted(set(nodes) | {a for a, _ in edges} | {b for _, b in edges})
        index = {n: i for i, n in enumerate(names)}
        pairs = {(min(index[a], index[b]), max(index[a], index[b])) for a, b in edges if a != b}
        src = np.array([p[0] for p in pairs] + [p[1] for p in pairs], dtype=np.int64)
        dst = np.array([p[1] for p in pairs] + [p[0] for p in pairs], dtype=np.int64)
        order = np.lexsort((dst, src))
        src, dst = src[order], dst[order]
        indptr = np.zeros(len(names) + 1, dtype=np.int64)
        np.add.at(indptr, src + 1, 1)
        return cls(names, np.cumsum(indptr), dst)

    def edges(self) -> list[tuple[str, str]]:
        out = []
        for i in range(self.num_nodes):
            for j in self.neighbours[self.indptr[i] : self.indptr[i + 1]]:
                if i < j:
                    out.append((self.nodes[i], self.nodes[int(j)]))
        return out


def write_graph(graph: Graph, path: str | Path) -> None:
    """Write the edge list (atomically; ``.gz`` compresses)."""
    text = "".join(f"{a}\t{b}\n" for a, b in graph.edges()).encode("utf-8")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(gzip.compress(text, mtime=0) if str(path).endswith(".gz") else text)


@lru_cache(maxsize=4)
def _read_graph(resolved: str, shown: str) -> Graph:
    raw = Path(resolved).read_bytes()
    text = gzip.decompress(raw).decode("utf-8") if resolved.endswith(".gz") else raw.decode("utf-8")
    edges = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not all(p.strip() for p in parts):
            raise ValueError(f"{shown}: line {n}: expected 2 tab-separated node names, got {line[:60]!r}")
        for p in parts:
            if ":" not in p:
                raise ValueError(f"{shown}: line {n}: node {p[:40]!r} has no kind (write it as kind:value)")
        edges.append((parts[0], parts[1]))
    if not edges:
        raise ValueError(f"{shown}: line 1: the graph has no edges (an empty graph)")
    return Graph.from_edges(edges)


def read_graph(path: str | Path) -> Graph:
    """Read an edge-list file (cached per path). Raises one-line errors naming the file and line."""
    return _read_graph(str(resolve_path(path, what="graph file")), str(path))


def random_walks(graph: Graph, walks_per_node: int = 10, length: int = 20, seed: int = 0) -> np.ndarray:
    """Uniform random walks ``(walks_per_node * N, length)`` of node ids, ``-1`` after a dead end."""
    rng = np.random.default_rng(seed)
    N = graph.num_nodes
    starts = np.tile(np.arange(N), walks_per_node)
    walks = np.full((len(starts), length), -1, dtype=np.int64)
    walks[:, 0] = starts
    degree = graph.degree()
    current = starts.copy()
    alive = degree[current] > 0
    for step in range(1, length):
        d = degree[current]
        pick = (rng.random(len(current)) * np.maximum(d, 1)).astype(np.int64)
        nxt = graph.neighbours[np.minimum(graph.indptr[current] + pick, len(graph.neighbours) - 1)]
        alive &= d > 0
        current = np.where(alive, nxt, current)
        walks[:, step] = np.where(alive, current, -1)
    return walks


class WalkPairs(Source):
    """``(node, context)`` rows from random walks: every pair of nodes at most ``window`` steps apart in a walk.

    Args:
        graph: the graph file.
        walks_per_node: walks started at every node.
        walk_length: nodes per walk.
        window: skip-gram window.
        seed: walk seed.
        max_pairs: keep a random subset of at most this many pairs (the training budget).
        kinds: keep only pairs whose centre node is of these kinds (default: all).
    """

    def __init__(
        self,
        graph: str,
        walks_per_node: int = 10,
        walk_length: int = 20,
        window: int = 3,
        seed: int = 0,
        max_pairs: int | None = None,
        kinds: list[str] | None = None,
    ) -> None:
        if walks_per_node < 1 or walk_length < 2 or window < 1:
            raise ValueError("walks_per_node >= 1, walk_length >= 2 and window >= 1 are needed")
        self.graph, self.walks_per_node, self.walk_length, self.window = graph, walks_per_node, walk_length, window
        self.seed, self.max_pairs, self.kinds = seed, max_pairs, kinds

    def describe(self) -> str:
        return f"{self.graph} (random walks)"

    def read(self) -> Any:
        import pandas as pd

        g = read_graph(self.graph)
        walks = random_walks(g, self.walks_per_node, self.walk_length, self.seed)
        centre, context = [], []
        for offset in range(1, self.window + 1):
            a, b = walks[:, :-offset].ravel(), walks[:, offset:].ravel()
            keep = (a >= 0) & (b >= 0) & (a != b)
            centre += [a[keep], b[keep]]
            context += [b[keep], a[keep]]
        c, x = np.concatenate(centre), np.concatenate(context)
        if self.kinds:
            kinds = np.array([g.kind(i) in self.kinds for i in range(g.num_nodes)])
            keep = kinds[c]
            c, x = c[keep], x[keep]
        if self.max_pairs is not None and len(c) > self.max_pairs:
            pick = np.random.default_rng(self.seed + 1).choice(len(c), self.max_pairs, replace=False)
            c, x = c[np.sort(pick)], x[np.sort(pick)]
        names = np.array(g.nodes, dtype=object)
        return pd.DataFrame({"node": names[c], "context": names[x]})


class NodeProcessor(Processor):
    """Node names -> ``{"node": (B,)}`` ids."""

    def __init__(self, nodes: Sequence[str]) -> None:
        self.index = {n: i for i, n in enumerate(nodes)}

    def validate(self, value: Any) -> None:
        if value not in self.index:
            raise ValueError(f"node {str(value)[:40]!r} is not in the graph")

    def __call__(self, values: Sequence[Any]) -> dict[str, Tensor]:
        for v in values:
            self.validate(v)
        return {"node": torch.tensor([self.index[v] for v in values], dtype=torch.long)}

    def lengths(self, values: Sequence[Any]) -> list[int]:
        return [1] * len(values)


class NodeEmbedding(Encoder):
    """One learned vector per node of a graph file.

    Args:
        graph: the graph file (its nodes are the vocabulary).
        dim: embedding width.
        init_scale: standard deviation of the initial vectors.
    """

    modality = "graph"
    concurrent_forward = True

    def __init__(self, graph: str, dim: int = 64, init_scale: float = 0.1) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.graph_path, self.dim, self.init_scale = graph, int(dim), float(init_scale)
        self.node_names = read_graph(graph).nodes
        self.embedding = nn.Embedding(len(self.node_names), self.dim)
        nn.init.normal_(self.embedding.weight, std=self.init_scale)
        self._processor = NodeProcessor(self.node_names)

    @property
    def processor(self) -> NodeProcessor:
        return self._processor

    @property
    def output_dim(self) -> int:
        return self.dim

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        v = self.embedding(inputs["node"])  # (B, D)
        mask = torch.ones(v.shape[0], 1, dtype=torch.bool, device=v.device)
        return Features(sequence=v.unsqueeze(1), mask=mask, pooled=v)

    def vectors(self, names: Sequence[str]) -> np.ndarray:
        """The learned vectors of ``names`` ``(len(names), D)``."""
        ids = torch.tensor([self._processor.index[n] for n in names], dtype=torch.long)
        return self.embedding.weight[ids].detach().cpu().numpy()

    def get_config(self) -> dict[str, Any]:
        return {"graph": self.graph_path, "dim": self.dim, "init_scale": self.init_scale}

    @classmethod
    def from_config(cls, config: dict[str, Any], directory: Path) -> NodeEmbedding:
        return cls(**config)
