"""sesa: named concept dimensions, concept supervision, explanations, and the tiny composition end to end."""

from __future__ import annotations

import pytest
import torch

from polymodal.cli import main
from polymodal.recipes.sesa import SESAEncoder, concept_words, derive_concepts, explain, read_concepts


def test_concepts_are_frequent_content_words():
    texts = ["Two dogs run on the grass .", "A dog is running .", "A black dog on grass", "The man smiles"]
    assert concept_words("Two dogs run on the grass .") == ["dog", "run", "grass"]
    assert derive_concepts(texts, 3) == ["dog", "grass", "black"]  # by document frequency, ties alphabetical


def test_explain_splits_the_cosine_over_concepts():
    concepts = ["dog", "grass", "ball"]
    a, b = torch.tensor([0.9, 0.1, 0.5]), torch.tensor([0.8, 0.0, 0.6])
    top = explain(concepts, a, b, k=3)
    norm = float(a.norm() * b.norm())
    assert [c for c, _ in top] == ["dog", "ball", "grass"]
    assert top[0][1] == pytest.approx(0.72 / norm) and top[1][1] == pytest.approx(0.30 / norm)
    assert sum(s for _, s in top) == pytest.approx(float(torch.nn.functional.cosine_similarity(a, b, dim=0)))
    with pytest.raises(ValueError, match="3 concept activations"):
        explain(concepts, a[:2], b[:2])


def test_encoder_targets_name_the_mentioned_concepts(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("# header\ndog\ngrass\nball\n")
    enc = SESAEncoder(input_dim=4, concepts=str(path))
    assert enc.targets(["Dogs on the grass", "nothing here"]).tolist() == [[1, 1, 0], [0, 0, 0]]
    out = enc({"x": torch.randn(2, 4)})
    assert out.pooled.shape == (2, 3) and bool(((out.pooled > 0) & (out.pooled < 1)).all())


@pytest.mark.parametrize(
    "text, message",
    [("dog\ngrass\ndog\n", "line 3: concept 'dog' already on line 1"), ("# only\ndog\n", "line 1: need at least 2")],
)
def test_bad_concept_lists(tmp_path, text, message):
    path = tmp_path / "c.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_concepts(str(path))


def test_tiny_fits_tests_and_explains(tmp_path):
    cli = main(["fit", "--config", "recipes/sesa/tiny.yaml", f"--trainer.default_root_dir={tmp_path}"])
    cli.trainer.test(cli.model, datamodule=cli.datamodule)
    test = cli.model.results["test"]
    assert {"q2d_r1", "q2d_mrr", "concept_p@1", "concept_p@5"} <= set(test)
    assert 0 <= test["concept_p@5"] <= 1 and 0 <= test["q2d_r1"] <= 1
    text = (tmp_path / "explanations.md").read_text()
    assert text.count("\n- **") == 4 and "cosine" in text
    # the embedding is the concept logits; overlays/activations.yaml switches it to the sigmoid activations
    tower = next(iter(cli.model.towers.values()))
    x = torch.randn(3, 32)
    with torch.no_grad():
        logits = tower.logits(x)
        pooled = cli.model.pool(tower({"x": x}), "a_vec")
        exported = cli.model.embedding_model("a_vec").pooler(tower({"x": x}))
    norm = torch.nn.functional.normalize if cli.model.normalize else (lambda t, dim: t)
    assert torch.allclose(pooled, norm(logits, dim=-1), atol=1e-6) and torch.allclose(exported, logits, atol=1e-6)


@pytest.mark.parametrize("config, activation, supervised", [("flickr8k", "sigmoid", True), ("dense", "none", False)])
def test_shipped_configs_parse(config, activation, supervised, capsys):
    import yaml

    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", f"recipes/sesa/{config}.yaml", "--print_config"])
    assert exit_info.value.code in (0, None)
    cfg = yaml.safe_load(capsys.readouterr().out)
    init = cfg["model"]["init_args"]
    assert init["tower"]["init_args"]["activation"] == activation
    assert ("concepts" in init["objectives"]) is supervised  # the dense baseline has no concept supervision
    sources = cfg["data"]["init_args"]["sources"]
    parts = [sources[s]["init_args"]["source"]["init_args"]["source"]["init_args"]["part"] for s in ("train", "val")]
    assert parts == ["train", "val"] and init["optimizer"]["init_args"]["lr"] == 0.003


def test_sweep_compares_sesa_with_the_dense_model():
    from pathlib import Path

    from polymodal.experiments import load_sweep, run_command

    sweep = load_sweep("recipes/sesa/sweep.yaml", root="R")
    runs = {r.name: r for r in sweep.runs}
    ablations = {"sesa", "sesa_ranking_only", "sesa_concepts_only"}
    expected = {"dense"} | ablations | {a.replace("sesa", "sesa_activations") for a in ablations}
    assert set(runs) == expected and sweep.seeds == [0, 1]
    assert all("recipes/sesa/overlays/activations.yaml" in runs[r].configs for r in runs if "activations" in r)
    assert all(Path(c).is_file() for r in sweep.runs for c in r.configs) and all(r.test for r in sweep.runs)
    no_concepts = "--model.init_args.objectives.concepts.init_args.weight=0.0"
    assert no_concepts in run_command(runs["sesa_ranking_only"], 0, "R")


def test_zero_shot_reference(tmp_path, capsys):
    import json

    from polymodal.recipes.sesa.__main__ import main as sesa_main

    args = "zero-shot --captions package://sesa/data/tiny_captions.tsv --sizes 16 4 4 --model test-bert --cache-dir"
    sesa_main([*args.split(), str(tmp_path)])

    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["model"] == "test-bert" and 0 <= out["q2d_r1"] <= out["q2d_r5"] <= 1 and 0 < out["q2d_mrr"] <= 1


@pytest.mark.parametrize(
    "captions, message",
    [("nope.tsv", "data file not found"), ("bad.tsv", "missing column(s) 'image'")],
)
def test_command_line_bad_captions_give_one_line(tmp_path, monkeypatch, captions, message):
    from polymodal.recipes.sesa.__main__ import cli

    monkeypatch.delenv("POLYMODAL_TRACEBACK", raising=False)
    (tmp_path / "bad.tsv").write_text("img\tcaption\na.jpg\tA dog runs .\n")
    with pytest.raises(SystemExit) as exit_info:
        cli(["concepts", "--captions", str(tmp_path / captions), "--out", str(tmp_path / "c.txt")])
    text = str(exit_info.value.code)
    assert text.startswith("python -m polymodal.recipes.sesa: error: ") and message in text and "\n" not in text
    assert not (tmp_path / "c.txt").exists()


def test_activations_overlay_embeds_with_the_sigmoid(tmp_path):
    cli = main(
        [
            "fit",
            "--config",
            "recipes/sesa/tiny.yaml",
            "--config",
            "recipes/sesa/overlays/activations.yaml",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.max_epochs=1",
        ]
    )
    tower = next(iter(cli.model.towers.values()))
    x = torch.randn(3, 32)
    with torch.no_grad():
        activations = torch.sigmoid(tower.logits(x))
        pooled = cli.model.pool(tower({"x": x}), "a_vec")
        exported = cli.model.embedding_model("a_vec").pooler(tower({"x": x}))
    norm = torch.nn.functional.normalize if cli.model.normalize else (lambda t, dim: t)
    assert torch.allclose(pooled, norm(activations, dim=-1), atol=1e-6)
    assert torch.allclose(exported, activations, atol=1e-6) and (exported >= 0).all()
