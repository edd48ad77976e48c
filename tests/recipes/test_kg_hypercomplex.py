"""kg_hypercomplex: the tiny composition trains and tests with filtered link-prediction metrics; shipped splits."""

from __future__ import annotations

import math

import pytest

from polymodal.cli import main
from polymodal.plugins.graph import KnowledgeGraph


def test_tiny_fits_and_tests_with_filtered_metrics(tmp_path):
    cli = main(["fit", "--config", "recipes/kg_hypercomplex/tiny.yaml", f"--trainer.default_root_dir={tmp_path}"])
    cli.trainer.test(cli.model, datamodule=cli.datamodule)
    test = cli.model.results["test"]
    assert {"mrr", "mr", "hits@1", "hits@3", "hits@10"} <= set(test)
    n = KnowledgeGraph.read("package://kg_hypercomplex/data/tiny").num_entities
    assert 1.0 <= test["mr"] <= n and 1.0 / n <= test["mrr"] <= 1.0 and math.isfinite(test["mrr"])
    assert test["hits@1"] <= test["hits@3"] <= test["hits@10"]


@pytest.mark.parametrize(
    "graph, sizes",
    [("umls", (135, 46, 5216, 652, 661)), ("nations", (14, 55, 1592, 199, 201))],
)
def test_shipped_splits(graph, sizes):
    kg = KnowledgeGraph.read(f"package://kg_hypercomplex/data/{graph}")
    got = (kg.num_entities, len(kg.relations), *(len(kg.triples[s]) for s in ("train", "val", "test")))
    assert got == sizes


@pytest.mark.slow
def test_pykeen_baseline_runs_on_the_shipped_split():
    pytest.importorskip("pykeen")
    from polymodal.recipes.kg_hypercomplex.pykeen_baselines import run

    res = run("nations", "TransE", seed=0, epochs=1)
    assert 0 < res["mrr"] <= 1 and res["hits@1"] <= res["hits@10"]
