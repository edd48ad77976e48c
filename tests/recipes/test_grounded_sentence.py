"""The grounded_sentence recipe as a YAML composition of polymodal.System: tiny fit exporting both towers,
grouped Recall@k, STS at test (EvaluateSTS), the shipped configs and sweep."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

import polymodal
from polymodal.cli import main
from polymodal.plugins.image import ImageProjection
from polymodal.plugins.text import CharGRUEncoder
from polymodal.recipes import recipe_root

TINY = "recipes/grounded_sentence/tiny.yaml"
DATA = recipe_root() / "grounded_sentence" / "data"


def test_tiny_fit_exports_both_towers_and_logs_retrieval_and_sts(tmp_path):
    sts = tmp_path / "sts.tsv"
    rows = [
        ("A red circle .", "A circle that is red .", 5.0),
        ("A blue square .", "A green triangle .", 0.5),
        ("A yellow triangle .", "A triangle, yellow .", 4.0),
        ("A red square .", "A blue circle .", 1.0),
    ]
    sts.write_text("sentence1\tsentence2\tscore\n" + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in rows))
    callback = json.dumps([{"class_path": "polymodal.callbacks.EvaluateSTS", "init_args": {"data": str(sts)}}])
    cli = main(["fit", "--config", TINY, f"--trainer.default_root_dir={tmp_path}", f"--trainer.callbacks+={callback}"])
    assert cli.trainer.state.finished
    for key in ("val/c2i_r1", "val/i2c_r5", "val/rsum", "val/c2i_medr"):
        assert math.isfinite(float(cli.trainer.callback_metrics[key]))
    results = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)[0]
    assert 0 <= results["test/c2i_r1"] <= 1 and results["test/c2i_r10"] == 1.0  # 2 test images
    caption, image = polymodal.load(tmp_path / "model"), polymodal.load(tmp_path / "image_model")
    assert isinstance(caption.encoder, CharGRUEncoder) and isinstance(image.encoder, ImageProjection)
    from polymodal.evaluation.sts import STSEvaluator

    a, b, gold = zip(*rows)
    assert results["test/sts_spearman"] == pytest.approx(STSEvaluator(a, b, gold)(caption).spearman, abs=1e-6)
    texts = ["A red circle on a white background ."]
    np.testing.assert_allclose(caption.encode(texts), cli.model.embedding_model("caption").encode(texts), atol=1e-6)
    paths = [str(DATA / "shape_red_circle.png")]
    np.testing.assert_allclose(image.encode(paths), cli.model.embedding_model("image").encode(paths), atol=1e-5)
    assert np.allclose(np.linalg.norm(image.encode(paths), axis=1), 1.0, atol=1e-5)  # normalised like in training


@pytest.mark.parametrize("config", ["flickr8k", "flickr8k_paper", "tiny"])
def test_shipped_configs_parse(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", f"recipes/grounded_sentence/{config}.yaml", "--print_config"])
    assert exit_info.value.code in (0, None)
    cfg = yaml.safe_load(capsys.readouterr().out)
    init = cfg["model"]["init_args"]
    assert set(init["towers"]) == {"caption", "image"} and init["normalize"] is True
    parts = [cfg["data"]["init_args"]["sources"][s]["init_args"]["part"] for s in ("train", "val", "test")]
    assert parts == ["train", "val", "test"]


def test_sweep_runs_the_shipped_config_with_each_loss_and_a_random_control():
    from polymodal.experiments import load_sweep, run_command

    sweep = load_sweep("recipes/grounded_sentence/sweep.yaml", root="R")
    assert [r.name for r in sweep.runs] == ["hinge_sum", "infonce", "hinge_max", "random_init"]
    assert sweep.seeds == [0, 1] and all(r.test for r in sweep.runs)
    assert "--trainer.max_epochs=0" in run_command(sweep.runs[3], 1, "R")
    assert "test/sts_spearman" in sweep.metrics and "test/rsum" in sweep.metrics


@pytest.mark.slow
def test_both_image_recipes_hold_out_the_same_flickr8k_images(shared_data: Path):
    from polymodal.data import Captions

    def held_out(recipe: str, config: str) -> set[str]:
        cfg = yaml.safe_load((recipe_root() / recipe / config).read_text())
        args = dict(cfg["data"]["init_args"]["sources"]["test"]["init_args"])
        args["path"] = str(shared_data / "captions" / "captions.tsv")
        args.pop("prompt", None)
        return set(Captions(**args).frame()["image_name"])

    assert held_out("grounded_sentence", "flickr8k.yaml") == held_out("cg_vlm", "stage1_cg.yaml")
    assert len(held_out("grounded_sentence", "flickr8k.yaml")) == 100
