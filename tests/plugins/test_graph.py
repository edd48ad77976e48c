"""Graph plugin: hypercomplex products and filtered ranks against hand values, triple / graph files, the KGE."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polymodal.metrics.functional import filtered_ranks, rank_metrics
from polymodal.plugins.graph import (
    HypercomplexKGE,
    KGQueries,
    KnowledgeGraph,
    WalkPairs,
    dihedron_product,
    entity_descriptions,
    hamilton_product,
    normalize,
    random_walks,
    read_graph,
    read_triples,
)

TINY = "package://kg_hypercomplex/data/tiny"


def quat(*c: float) -> torch.Tensor:
    return torch.tensor(c, dtype=torch.float64).view(4, 1)  # (4, D=1)


def test_hamilton_product_hand_values():
    # (1 + 2i + 3j + 4k)(5 + 6i + 7j + 8k) = -60 + 12i + 30j + 24k
    out = hamilton_product(quat(1, 2, 3, 4), quat(5, 6, 7, 8))
    assert out.view(-1).tolist() == [-60.0, 12.0, 30.0, 24.0]
    # basis: ij = k, ji = -k, i^2 = -1 (non-commutative)
    i, j = quat(0, 1, 0, 0), quat(0, 0, 1, 0)
    assert hamilton_product(i, j).view(-1).tolist() == [0, 0, 0, 1]
    assert hamilton_product(j, i).view(-1).tolist() == [0, 0, 0, -1]
    assert hamilton_product(i, i).view(-1).tolist() == [-1, 0, 0, 0]


def test_dihedron_product_hand_values():
    # split quaternions: i^2 = -1, j^2 = k^2 = +1, ij = k, jk = -i, ki = j
    out = dihedron_product(quat(1, 2, 3, 4), quat(5, 6, 7, 8))
    assert out.view(-1).tolist() == [46.0, 20.0, 30.0, 24.0]
    j, k = quat(0, 0, 1, 0), quat(0, 0, 0, 1)
    assert dihedron_product(j, j).view(-1).tolist() == [1, 0, 0, 0]
    assert dihedron_product(j, k).view(-1).tolist() == [0, -1, 0, 0]


def test_unit_quaternion_rotation_preserves_norm_and_is_batched():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    r = normalize(torch.randn(3, 4, 5, generator=g, dtype=torch.float64))
    out = hamilton_product(h, r)
    assert out.shape == (3, 4, 5)
    assert torch.allclose(out.norm(dim=-2), h.norm(dim=-2))  # |h r| = |h| |r| = |h|
    assert torch.allclose(out[1, :, 2], hamilton_product(h[1, :, 2:3], r[1, :, 2:3])[:, 0])


def test_filtered_rank_hand_values():
    scores = np.array([[0.9, 0.5, 0.7, 0.7, 0.1]])
    known = np.array([[True, False, False, False, False]])
    # answer 2 (0.7): entity 0 (0.9) is filtered, entity 3 ties -> realistic rank 1 + 0 + 1/2
    assert filtered_ranks(scores, np.array([2]), known).tolist() == [1.5]
    assert filtered_ranks(scores, np.array([2])).tolist() == [2.5]  # unfiltered: 0.9 is better, 0.7 ties
    assert filtered_ranks(scores, np.array([2]), np.ones((1, 5), bool)).tolist() == [1.0]  # its own entry ignored
    m = rank_metrics(np.array([1.5, 2.5, 1.0]), ks=(1, 3))
    assert m["mrr"] == pytest.approx((1 / 1.5 + 1 / 2.5 + 1) / 3)
    assert m["hits@1"] == pytest.approx(1 / 3) and m["hits@3"] == 1.0 and m["mr"] == pytest.approx(5 / 3)


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def _folder(tmp_path, train="a\tr\tb\nb\tr\tc\n", valid="a\tr\tc\n", test="c\tr\ta\n"):
    for name, text in (("train", train), ("valid", valid), ("test", test)):
        _write(tmp_path / f"{name}.txt", text)
    return str(tmp_path)


@pytest.mark.parametrize(
    "files, message",
    [
        ({"train": "a\tr\tb\nb\tr\n"}, "train.txt: line 2: expected 3 tab-separated fields"),
        ({"train": "a\tr\tb\tx\n"}, "train.txt: line 1: expected 3 tab-separated fields"),
        (
            {"train": "a\tr\t \n"},
            "train.txt: line 1: expected 3 tab-separated fields (head, relation, tail), got an empty",
        ),
        ({"train": "\n\n"}, "train.txt: line 1: no triples (an empty graph)"),
        ({"test": "a\tr\tb\nzz\tr\ta\n"}, "test.txt: line 2: entity 'zz' does not occur in the training graph"),
        ({"valid": "a\tq\tb\n"}, "valid.txt: line 1: relation 'q' does not occur in the training graph"),
        ({"test": "a\tr\n"}, "test.txt: line 1: expected 3 tab-separated fields"),
    ],
)
def test_bad_triple_files_give_one_line(tmp_path, files, message):
    folder = _folder(tmp_path, **files)
    with pytest.raises(ValueError) as err:
        KnowledgeGraph.read(folder)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_split_file(tmp_path):
    _write(tmp_path / "train.txt", "a\tr\tb\n")
    with pytest.raises(FileNotFoundError, match="no valid.txt"):
        KnowledgeGraph.read(str(tmp_path))


def test_queries_are_one_to_n_in_training_and_filtered_in_evaluation(tmp_path):
    folder = _folder(tmp_path, train="a\tr\tb\na\tr\tc\nb\ts\tc\n", valid="c\ts\tb\n", test="b\tr\ta\n")
    train = KGQueries(folder, "train").read()
    rows = {q[:2]: q[2] for q in train["query"]}
    assert rows[("a", "r")] == ("b", "c") and rows[("b", "r^-1")] == ("a",) and rows[("c", "r^-1")] == ("a",)
    test = KGQueries(folder, "test").read()["query"].tolist()
    # tail query (b, r, ?) answer a; head query (a, r^-1, ?) answer b; filters: every true answer in any split
    assert test[0] == ("b", "r", ("a",), ("a",))
    assert test[1] == ("a", "r^-1", ("b",), ("b",))


def test_descriptions_use_training_triples_only(tmp_path):
    folder = _folder(tmp_path, train="a_x\tr_y\tb\n", valid="a_x\tr_y\tb\n", test="b\tr_y\ta_x\n")
    kg = KnowledgeGraph.read(folder)
    texts = dict(zip(kg.entities, entity_descriptions(kg)))
    assert texts["a_x"] == "a x. a x r y b."
    assert texts["b"] == "b. a x r y b."  # the test triple b -> a_x is not described


def test_kge_scores_every_entity_and_ablations_change_parameters():
    full = HypercomplexKGE(
        TINY, components=["structure", "name", "description", "structure"], dim=4, text_model="test-bert"
    )
    plain = HypercomplexKGE(TINY, components=["structure"] * 4, dim=4, text_model="test-bert")
    value = (full.entity_names[0], full.relation_names[0], (full.entity_names[1],), ())
    batch = full.processor([value, value])
    q = full(batch).pooled
    assert q.shape == (2, 16) and full.score(q).shape == (2, full.num_entities)
    assert len(plain.structure) == 4 and len(full.structure) == 2 and set(full.project) == {"name", "description"}
    with pytest.raises(ValueError, match="components must be four"):
        HypercomplexKGE(TINY, components=["structure", "words", "structure", "structure"], text_model="test-bert")
    with pytest.raises(ValueError, match="entity 'nope' is not in the model's training graph"):
        full.processor.validate(("nope", full.relation_names[0], (full.entity_names[1],), ()))


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "line 1: the graph has no edges (an empty graph)"),
        ("\n \n", "line 1: the graph has no edges"),
        ("tuple:1\tvalue:a\ntuple:1\n", "line 2: expected 2 tab-separated node names"),
        ("tuple:1\tvalue:a\tx\n", "line 1: expected 2 tab-separated node names"),
        ("tuple:1\tplain\n", "line 1: node 'plain' has no kind"),
    ],
)
def test_bad_graph_files_give_one_line(tmp_path, text, message):
    path = _write(tmp_path / "g.tsv", text)
    with pytest.raises(ValueError) as err:
        read_graph(str(path))
    assert str(path) in str(err.value) and message in str(err.value) and "\n" not in str(err.value)


def test_random_walks_follow_edges_and_pairs_stay_in_window(tmp_path):
    path = _write(tmp_path / "g.tsv", "a:1\tb:1\nb:1\tc:1\nc:1\td:1\nx:1\ty:1\n")
    g = read_graph(str(path))
    walks = random_walks(g, walks_per_node=3, length=6, seed=1)
    assert walks.shape == (3 * g.num_nodes, 6)
    edges = {tuple(sorted(e)) for e in g.edges()}
    for w in walks:
        for a, b in zip(w[:-1], w[1:]):
            assert (tuple(sorted((g.nodes[a], g.nodes[b]))) in edges) or a == b
    pairs = WalkPairs(str(path), walks_per_node=2, walk_length=4, window=1).read()
    assert {tuple(sorted(p)) for p in pairs.itertuples(index=False)} <= edges
    assert np.array_equal(random_walks(g, 3, 6, seed=1), walks)  # seeded


def test_triple_reader_keeps_line_numbers(tmp_path):
    path = _write(tmp_path / "t.txt", "\na\tr\tb\n\nc\tr\td\n")
    assert [t[3] for t in read_triples(path)] == [2, 4]
