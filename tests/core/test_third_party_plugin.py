"""The plugin-authoring guide's example (docs/examples/polymodal-vectors) is discovered through
its entry point and trained in a two-tower fit next to the built-in text modality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from polymodal import plugins_manager as pmod
from polymodal.cli import main
from tests.conftest import REPO
from tests.helpers import TINY_BERT
from tests.plugin_fixtures import activate, forget_modules, make_dist

EXAMPLE = REPO / "docs" / "examples" / "polymodal-vectors"


@pytest.fixture
def vectors_plugin(tmp_path, monkeypatch):
    pmod.reset_plugins()
    entry = {"vectors": "polymodal_vectors"}
    # Same metadata pip would write when installing the example package.
    site = make_dist(tmp_path / "site", "polymodal-vectors", entry)
    activate(monkeypatch, site, EXAMPLE)
    yield
    pmod.reset_plugins()
    forget_modules(("polymodal_vectors",))


def test_example_plugin_metadata_matches_its_pyproject():
    text = (EXAMPLE / "pyproject.toml").read_text()
    assert '[project.entry-points.polymodal]\nvectors = "polymodal_vectors"' in text


def test_third_party_modality_trains_in_a_fit(vectors_plugin, tmp_path, capsys):
    plugins = pmod.load_plugins(force=True)
    assert plugins["vectors"].status == "loaded" and plugins["vectors"].distribution == "polymodal-vectors"
    assert main(["plugins"]) == 0
    assert "vectors" in capsys.readouterr().out

    rng = np.random.default_rng(0)
    words = ["red", "green", "blue", "black"]
    rows = []
    for i in range(64):
        k = i % 4
        vec = np.eye(4)[k] + rng.normal(scale=0.05, size=4)
        rows.append({"caption": f"a {words[k]} thing", "features": " ".join(f"{x:.4f}" for x in vec)})
    table = tmp_path / "pairs.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "max_epochs": 2,
            "logger": False,
            "enable_progress_bar": False,
            "enable_checkpointing": False,
            "default_root_dir": str(tmp_path),
        },
        "model": {
            "class_path": "polymodal.ContrastiveSystem",
            "init_args": {
                "encoders": {
                    "text": {
                        "class_path": "TextEncoder",
                        "init_args": {"model": TINY_BERT, "tokenizer": "bytes", "max_length": 32},
                    },
                    "vec": {"class_path": "VectorEncoder", "init_args": {"size": 4, "dim": 32}},
                },
                "routes": {"caption": "text", "features": "vec"},
                "loss": {
                    "class_path": "polymodal.losses.InfoNCELoss",
                    "init_args": {"temperature": 0.1, "symmetric": True},
                },
                "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.003}},
                "warmup_ratio": 0.0,
            },
        },
        "data": {
            "class_path": "TableDataModule",
            "init_args": {"train": str(table), "inputs": ["caption", "features"], "batch_size": 16},
        },
    }
    cfg = tmp_path / "two_tower.yaml"
    cfg.write_text(yaml.safe_dump(config))
    cli = main(["fit", "--config", str(cfg)])
    from polymodal_vectors import VectorEncoder

    assert isinstance(cli.model.towers["vec"], VectorEncoder)
    assert cli.trainer.global_step == 8
    assert float(cli.trainer.callback_metrics["train/loss"]) < np.log(16)  # better than chance


def test_bad_vector_row_is_reported_by_row_and_column(vectors_plugin, tmp_path):
    pmod.load_plugins(force=True)
    from polymodal_vectors import VectorProcessor

    from polymodal.data import TableDataModule

    table = tmp_path / "v.csv"
    pd.DataFrame({"features": ["1 2", "1 x"], "other": ["1 2", "3 4"]}).to_csv(table, index=False)
    dm = TableDataModule(train=str(table), inputs=["features", "other"])
    dm.set_processors([VectorProcessor(2), VectorProcessor(2)])
    with pytest.raises(ValueError, match="v.csv: row 2, column 'features': not a list of numbers"):
        dm.setup("fit")
