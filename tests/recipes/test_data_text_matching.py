"""data_text_matching: sentences, tokens, the expand / compress graph, the tiny composition, the peers."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from polymodal.cli import main
from polymodal.plugins.graph import read_graph
from polymodal.recipes.data_text_matching import SCHEMA, build_graph, read_corpora, render_sentence, text_tokens
from polymodal.recipes.data_text_matching.matching import baselines

TINY = "package://data_text_matching/data/tiny"


def test_sentences_and_tokens():
    row = {c: "" for c in SCHEMA.columns}
    row.update(given_name="ann", surname="lee", date_of_birth="1965-10-03", suburb="dapto", state="nsw")
    texts = {render_sentence(row, random.Random(s), drop=0.0) for s in range(30)}
    assert len(texts) == 3  # three templates
    assert any("3 October 1965" in t for t in texts) and any("New South Wales" in t.title() for t in texts)
    assert text_tokens("Lee, Ann: dapto; date of birth 03/10/1965.") == [
        "lee",
        "ann",
        "dapto",
        "date",
        "of",
        "birth",
        "3",
        "october",
        "1965",
    ]


def test_expand_links_typos_and_compress_prunes_useless_values():
    tuples = pd.DataFrame({"rec_id": ["a", "b"], **{c: "" for c in SCHEMA.columns}})
    tuples.loc[0, ["given_name", "surname"]] = ["michaela", "neumann"]
    tuples.loc[1, ["given_name", "surname"]] = ["courtney", "painter"]
    sentences = pd.DataFrame({"sid": ["x", "y"], "sentence": ["Michaela Neuman lives here", "Courtney Painter too"]})
    g, stats = build_graph(tuples, sentences, expand=True, compress=True, max_df=0.9)
    edges = set(g.edges())
    assert ("value:neuman", "value:neumann") in edges  # expand: one deletion apart
    assert ("sentence:x", "value:michaela") in edges and ("tuple:a", "value:michaela") in edges
    assert not any("value:lives" in e for e in edges)  # compress: reached from one object only
    assert stats["expansion_edges"] == 1
    g2, _ = build_graph(tuples, sentences, expand=False, compress=True, max_df=0.9)
    assert not any("neuman" in n for n in g2.nodes)  # without expansion both spellings reach one object each
    assert set(g2.nodes) >= {"tuple:a", "tuple:b", "sentence:x", "sentence:y"}  # objects are never pruned


def test_shipped_tiny_graph_is_reproducible(tmp_path):
    from polymodal.plugins.graph import write_graph

    tuples, sentences = read_corpora(TINY)
    graph, _ = build_graph(tuples, sentences, max_df=0.2)
    write_graph(graph, tmp_path / "g.tsv")
    shipped = read_graph(f"{TINY}/graph.tsv")
    assert read_graph(str(tmp_path / "g.tsv")).edges() == shipped.edges()


def test_tiny_fits_and_matches(tmp_path):
    cli = main(["fit", "--config", "recipes/data_text_matching/tiny.yaml", f"--trainer.default_root_dir={tmp_path}"])
    cli.trainer.test(cli.model, datamodule=cli.datamodule)
    test = cli.model.results["test"]
    assert {"s2t_r1", "s2t_r10", "s2t_mrr", "t2s_r1"} <= set(test) and 0 <= test["s2t_r1"] <= test["s2t_r10"] <= 1


def test_tfidf_peer_on_the_tiny_corpus():
    res = baselines(TINY, ["tfidf"])["tfidf"]
    assert 0.5 < res["recall@1"] <= res["recall@10"] <= 1.0 and res["seconds"] >= 0


@pytest.mark.slow
def test_recordlinkage_peer_on_the_tiny_corpus():
    pytest.importorskip("recordlinkage")
    res = baselines(TINY, ["recordlinkage"])["recordlinkage"]
    assert res["recall@1"] > 0.8


def test_febrl_config_parses(capsys):
    import yaml

    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", "recipes/data_text_matching/febrl.yaml", "--print_config"])
    assert exit_info.value.code in (0, None)
    cfg = yaml.safe_load(capsys.readouterr().out)
    graph = cfg["model"]["init_args"]["tower"]["init_args"]["graph"]
    assert graph == cfg["data"]["init_args"]["sources"]["train"]["init_args"]["graph"] == "runs/dtm/febrl/graph.tsv"
    assert cfg["data"]["init_args"]["test"] == "runs/dtm/febrl/links.tsv"


def test_sweep_ablations_swap_the_graph_in_both_places():
    from pathlib import Path

    from polymodal.experiments import load_sweep, run_command

    sweep = load_sweep("recipes/data_text_matching/sweep.yaml", root="R")
    runs = {r.name: r for r in sweep.runs}
    assert set(runs) == {"graph_full", "graph_no_expand", "graph_no_compress"} and sweep.seeds == [0, 1]
    assert all(Path(c).is_file() for r in sweep.runs for c in r.configs)
    for name, graph in [("graph_no_expand", "graph_noexpand.tsv"), ("graph_no_compress", "graph_nocompress.tsv")]:
        assert " ".join(run_command(runs[name], 0, "R")).count(f"runs/dtm/febrl/{graph}") == 2


@pytest.mark.parametrize(
    "edit, message",
    [
        ("drop_column", "tuples.tsv: line 1 (header): missing column(s) ['street_number']"),
        ("empty_sentences", "sentences.tsv: line 2: the table has no rows"),
    ],
)
def test_command_line_bad_corpora_give_one_line(tmp_path, monkeypatch, edit, message):
    import shutil

    from polymodal.io import resolve_path
    from polymodal.recipes.data_text_matching.__main__ import cli

    monkeypatch.delenv("POLYMODAL_TRACEBACK", raising=False)
    for f in resolve_path(TINY, what="folder").glob("*.tsv"):
        shutil.copy(f, tmp_path / f.name)
    if edit == "drop_column":
        rows = [line.split("\t") for line in (tmp_path / "tuples.tsv").read_text().splitlines()]
        (tmp_path / "tuples.tsv").write_text("".join("\t".join(r[:3] + r[4:]) + "\n" for r in rows))
    else:
        (tmp_path / "sentences.tsv").write_text("sid\tsentence\n")
    with pytest.raises(SystemExit) as exit_info:
        cli(["graph", "--data", str(tmp_path), "--out", str(tmp_path / "g.tsv")])
    text = str(exit_info.value.code)
    assert text.startswith("python -m polymodal.recipes.data_text_matching: error: ") and message in text
    assert "\n" not in text and not (tmp_path / "g.tsv").exists()
