"""The pixel_linguist recipe: tiny unsupervised (augmented views) and NLI stages, stage chaining, sweep file."""

from __future__ import annotations

import math

import pytest
import torch
import yaml

import polymodal
from polymodal.cli import main


def test_tiny_stages_train_export_and_chain(tmp_path):
    from polymodal import System
    from polymodal.data.views import AugmentedRows

    cli = main(["fit", "--config", "recipes/pixel_linguist/tiny.yaml", f"--trainer.default_root_dir={tmp_path / 'u'}"])
    logged = cli.trainer.callback_metrics
    assert isinstance(cli.model, System) and isinstance(cli.datamodule.datasets["train"], AugmentedRows)
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

    from polymodal.plugins.pixel import PixelEncoder

    def spy(module, args):  # the tower's weights at its first training forward
        if isinstance(module, PixelEncoder) and module.training:
            seen.setdefault("w", module.patch_embed.weight.detach().clone())

    handle = torch.nn.modules.module.register_module_forward_pre_hook(spy)
    try:
        nli = main(["fit", "--config", str(path), f"--trainer.default_root_dir={tmp_path / 'n'}"])
    finally:
        handle.remove()
    torch.testing.assert_close(seen["w"], model.encoder.patch_embed.weight)  # stage 2 starts from stage 1
    assert nli.datamodule.inputs == ["anchor", "positive", "negative"]  # anchor, positive, hard negative
    assert -1 <= float(nli.trainer.callback_metrics["val/spearman"]) <= 1


@pytest.mark.parametrize("config", ["unsup.yaml", "nli.yaml", "text_unsup.yaml", "text_nli.yaml"])
def test_real_configs_parse(config, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--config", f"recipes/pixel_linguist/{config}", "--print_config"])
    assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    assert ("PixelEncoder" in out) != config.startswith("text_")
    printed = yaml.safe_load(out)
    assert printed["model"]["class_path"] == "polymodal.ContrastiveSystem"  # the preset factory
    if "nli" in config:  # the sweep points the last callback (LoadEncoderWeights) at the stage-1 export
        assert printed["trainer"]["callbacks"][-1]["class_path"].endswith("LoadEncoderWeights")
    else:
        assert printed["data"]["init_args"]["augment"]["positive"]["class_path"].endswith("Perturber")


def test_sweep_chains_each_stage_2_to_its_stage_1_export(tmp_path):
    from polymodal.experiments import load_sweep, run_command

    sweep = load_sweep("recipes/pixel_linguist/sweep.yaml")
    runs = {r.name: r for r in sweep.runs}
    assert list(runs) == ["pixel_unsup", "text_unsup", "pixel_nli", "text_nli"]  # stage 1 before stage 2
    for stage1, stage2 in (("pixel_unsup", "pixel_nli"), ("text_unsup", "text_nli")):
        argv = run_command(runs[stage2], 1, str(tmp_path))
        assert f"--trainer.callbacks.init_args.path={tmp_path}/{stage1}/seed1/model" in argv
        # the stage-1 run exports to <default_root_dir>/model, which is exactly that folder
        assert f"--trainer.default_root_dir={tmp_path}/{stage1}/seed1" in run_command(runs[stage1], 1, str(tmp_path))
