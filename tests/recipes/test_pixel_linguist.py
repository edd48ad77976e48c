"""The pixel_linguist recipe: tiny unsupervised and NLI stages, stage chaining, its data modules."""

from __future__ import annotations

import math

import pytest
import torch
import yaml

import polymodal
from polymodal.cli import main


def test_tiny_stages_train_export_and_chain(tmp_path):
    cli = main(["fit", "--config", "recipes/pixel_linguist/tiny.yaml", f"--trainer.default_root_dir={tmp_path / 'u'}"])
    logged = cli.trainer.callback_metrics
    assert cli.trainer.global_step == 3 and math.isfinite(float(logged["train/loss"]))
    assert -1 <= float(logged["val/spearman"]) <= 1
    model = polymodal.load(tmp_path / "u" / "model")
    assert model.modality == "pixel" and model.encode(["a test"]).shape == (1, 32)

    cfg = yaml.safe_load(open("recipes/pixel_linguist/tiny_nli.yaml"))
    cfg["trainer"]["callbacks"][0]["init_args"]["path"] = str(tmp_path / "u" / "model")
    cfg["trainer"]["limit_train_batches"] = 1
    path = tmp_path / "nli.yaml"
    path.write_text(yaml.safe_dump(cfg))
    seen = {}

    def spy(module, batch, batch_idx):  # weights at the first step are the stage-1 export
        seen.setdefault("w", module.encoders["shared"].patch_embed.weight.detach().clone())
        seen["n_inputs"] = len(batch["inputs"])

    from polymodal.systems import ContrastiveSystem

    original = ContrastiveSystem.on_train_batch_start
    ContrastiveSystem.on_train_batch_start = spy
    try:
        nli = main(["fit", "--config", str(path), f"--trainer.default_root_dir={tmp_path / 'n'}"])
    finally:
        ContrastiveSystem.on_train_batch_start = original
    torch.testing.assert_close(seen["w"], model.encoder.patch_embed.weight)
    assert seen["n_inputs"] == 3  # anchor, positive, hard negative
    assert -1 <= float(nli.trainer.callback_metrics["val/spearman"]) <= 1


def test_perturbed_pairs_rows():
    from polymodal.recipes.pixel_linguist.datamodules import PerturbedPairsDataModule

    dm = PerturbedPairsDataModule(train="package://sbert/data/stsb_train_sample.tsv.gz", seed=1, max_rows=50)
    ds = dm.load_split("train")
    assert len(ds) == 50
    rows = [ds[i] for i in range(50)]
    assert all(r[1] is None and len(r[0]) == 2 for r in rows)
    assert sum(a != p for (a, p), _ in rows) >= 45  # nearly every positive is perturbed
    again = PerturbedPairsDataModule(train="package://sbert/data/stsb_train_sample.tsv.gz", seed=1, max_rows=50)
    assert [again.load_split("train")[i] for i in range(50)] == rows
    with pytest.raises(KeyError, match="missing column"):
        PerturbedPairsDataModule(train="package://sbert/data/stsb_train_sample.tsv.gz", text_columns=["x"]).load_split(
            "train"
        )


def test_nli_triplets(tmp_path):
    from polymodal.recipes.pixel_linguist.datamodules import NLITripletsDataModule

    table = tmp_path / "nli.tsv"
    table.write_text(
        "premise\thypothesis\tlabel\n"
        'A "dog" runs .\tAn animal moves .\tentailment\n'
        'A "dog" runs .\tA cat sleeps .\tcontradiction\n'
        'A "dog" runs .\tThe dog is old .\tneutral\n'
        "Kids play .\tChildren play .\tentailment\n"
    )
    dm = NLITripletsDataModule(train=str(table), val="package://sbert/data/stsb_dev_sample.tsv.gz")
    ds = dm.load_split("train")
    assert ds.columns == [['A "dog" runs .'], ["An animal moves ."], ["A cat sleeps ."]]  # Kids: no contradiction
    val = dm.load_split("val")
    assert len(val.columns) == 2 and val.target is not None


def test_load_encoder_weights_rejects_a_folder_without_encoder(tmp_path):
    from safetensors.torch import save_file

    from polymodal.recipes.pixel_linguist.callbacks import LoadEncoderWeights

    save_file({"pooler.x": torch.zeros(1)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="no encoder"):
        LoadEncoderWeights(str(tmp_path)).on_fit_start(None, None)
    with pytest.raises(FileNotFoundError, match="exported model folder"):
        LoadEncoderWeights(str(tmp_path / "nope")).on_fit_start(None, None)


@pytest.mark.parametrize("config", ["unsup.yaml", "nli.yaml", "text_unsup.yaml", "text_nli.yaml"])
def test_real_configs_parse(config, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--config", f"recipes/pixel_linguist/{config}", "--print_config"])
    assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    assert ("PixelEncoder" in out) != config.startswith("text_")
