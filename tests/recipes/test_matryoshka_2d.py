"""The matryoshka_2d recipe: tiny 2DMSE fit through the CLI, export, (layer, dim) evaluation."""

from __future__ import annotations

import numpy as np
import yaml

import polymodal
from polymodal.cli import main
from polymodal.losses import Matryoshka2DLoss
from polymodal.recipes import recipe_root
from polymodal.system import System


def test_tiny_fit_exports_and_evaluates_every_layer_dim(tmp_path, capsys):
    cli = main(["fit", "--config", "recipes/matryoshka_2d/tiny.yaml", f"--trainer.default_root_dir={tmp_path}"])
    assert cli.trainer.state.finished
    loss = cli.model.objectives["loss"]
    assert isinstance(cli.model, System) and isinstance(loss, Matryoshka2DLoss)
    assert loss.layer_weighting == "uniform"
    assert np.isfinite(float(cli.trainer.callback_metrics["train/loss"]))
    model = polymodal.load(tmp_path / "model")
    np.testing.assert_allclose(model.encode(["a b"]), cli.model.embedding_model().encode(["a b"]), atol=1e-6)

    # the (layer, dim) table is a test-time metric of the System: every cell, from the exported encoder too
    results = cli.trainer.test(cli.model, datamodule=cli.datamodule)[0]
    assert {"test/l1_d8", "test/l1_d32", "test/l3_d8", "test/l3_d32"} <= set(results)
    assert all(-1 <= results[k] <= 1 for k in results if k.startswith("test/l") and "_d" in k)
    from polymodal.data import read_table
    from polymodal.evaluation import ElasticEvaluator, STSEvaluator
    from polymodal.recipes import recipe_root as root

    df = read_table(root() / "sbert" / "data" / "stsb_dev_sample.tsv.gz")
    sts = STSEvaluator(df["sentence1"].tolist(), df["sentence2"].tolist(), df["score"].tolist())
    offline = ElasticEvaluator(sts, layers=[3], dims=[8], metric="spearman")(model).scores[(3, 8)]
    assert abs(offline - results["test/l3_d8"]) < 1e-5  # the metric and the evaluator agree


def test_real_configs_parse_and_pair_up():
    root = recipe_root() / "matryoshka_2d"
    real = yaml.safe_load((root / "minilm.yaml").read_text())
    base = yaml.safe_load((root / "minilm_baseline.yaml").read_text())
    loss = real["model"]["init_args"]["loss"]["init_args"]
    assert loss["dims"] == [384, 192, 96, 48] and loss["layer_weighting"] == "uniform"
    assert real["model"]["init_args"]["encoder"]["init_args"]["hidden_states"] is True
    # the baseline differs only in the loss: same data, optimizer, metrics, seed
    assert real["data"] == base["data"] and real["seed_everything"] == base["seed_everything"]
    assert real["model"]["init_args"]["metrics"] == base["model"]["init_args"]["metrics"]
    assert real["model"]["init_args"]["optimizer"] == base["model"]["init_args"]["optimizer"]
