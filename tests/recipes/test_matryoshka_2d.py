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

    from polymodal.recipes.matryoshka_2d.evaluate import main as evaluate

    sample = recipe_root() / "sbert" / "data" / "stsb_dev_sample.tsv.gz"
    scores = evaluate(
        [
            "--models",
            str(tmp_path / "model"),
            "--data",
            str(sample),
            "--layers",
            "1",
            "3",
            "--dims",
            "8",
            "32",
            "--limit",
            "50",
        ]
    )
    table = scores[str(tmp_path / "model")]
    assert set(table) == {"1x8", "1x32", "3x8", "3x32"}
    assert all(-1 <= v <= 1 for v in table.values())
    assert "| layer \\ dim | 8 | 32 |" in capsys.readouterr().out


def test_real_configs_parse_and_pair_up():
    root = recipe_root() / "matryoshka_2d"
    real = yaml.safe_load((root / "minilm.yaml").read_text())
    base = yaml.safe_load((root / "minilm_baseline.yaml").read_text())
    loss = real["model"]["init_args"]["loss"]["init_args"]
    assert loss["dims"] == [384, 192, 96, 48] and loss["layer_weighting"] == "uniform"
    assert real["model"]["init_args"]["encoder"]["init_args"]["hidden_states"] is True
    # the baseline differs only in the loss and system: same data, optimizer, seed
    assert real["data"] == base["data"] and real["seed_everything"] == base["seed_everything"]
    assert real["model"]["init_args"]["optimizer"] == base["model"]["init_args"]["optimizer"]
