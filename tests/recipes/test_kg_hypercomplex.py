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
    """In a subprocess: importing pykeen registers nn.Module classes named like ours (``TextEncoder``,
    ``InfoNCELoss``), which would make short ``class_path`` names ambiguous for later tests in this process."""
    import json
    import subprocess
    import sys

    pytest.importorskip("pykeen")
    code = (
        "import json; from polymodal.recipes.kg_hypercomplex.pykeen_baselines import run; "
        "print(json.dumps(run('nations', 'TransE', seed=0, epochs=1)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert 0 < res["mrr"] <= 1 and res["hits@1"] <= res["hits@10"]


def _printed(configs: list[str], capsys) -> dict:
    import yaml

    args = ["fit"] + [a for c in configs for a in ("--config", f"recipes/kg_hypercomplex/{c}.yaml")]
    with pytest.raises(SystemExit) as exit_info:
        main(args + ["--print_config"])
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("configs, graph", [(["umls"], "umls"), (["umls", "overlays/nations"], "nations")])
def test_shipped_configs_parse_and_name_one_graph(configs, graph, capsys):
    cfg = _printed(configs, capsys)
    tower = cfg["model"]["init_args"]["tower"]["init_args"]
    sources = cfg["data"]["init_args"]["sources"]
    assert tower["graph"] == f"package://kg_hypercomplex/data/{graph}" and tower["text_model"] == "minilm-l6"
    assert [sources[s]["init_args"]["graph"] for s in ("train", "val", "test")] == [tower["graph"]] * 3
    assert [sources[s]["init_args"]["split"] for s in ("train", "val", "test")] == ["train", "val", "test"]


def test_sweep_holds_the_ablations_on_shipped_configs():
    from pathlib import Path

    from polymodal.experiments import load_sweep, run_command

    sweep = load_sweep("recipes/kg_hypercomplex/sweep.yaml", root="R")
    names = [r.name for r in sweep.runs]
    assert {"umls_full", "umls_no_name", "umls_no_description", "umls_structure_only", "umls_dihedron"} <= set(names)
    assert sweep.seeds == [0, 1] and all(r.test for r in sweep.runs) and "test/mrr" in sweep.metrics
    assert all(Path(c).is_file() for r in sweep.runs for c in r.configs)
    by_name = {r.name: " ".join(run_command(r, 0, "R")) for r in sweep.runs}
    assert "components=[structure, structure, structure, structure]" in by_name["umls_structure_only"]
    assert "name" not in by_name["umls_no_name"].split("components=")[1].split("]")[0]
    assert "recipes/kg_hypercomplex/overlays/nations.yaml" in by_name["nations_full"]
