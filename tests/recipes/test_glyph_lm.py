"""The glyph_lm recipe: tiny glyph / trainable fits, the LM system and the text-blocks data module."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from polymodal.cli import main
from polymodal.plugins.pixel.fonts import resolve_font

# the glyph table needs Unifont (fonts-unifont); without it the tests draw with DejaVu
FONT = "unifont" if resolve_font("unifont", required=False) is not None else "dejavu"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYMODAL_CACHE", str(tmp_path / "cache"))


def fit(tmp_path, *extra):
    return main(
        [
            "fit",
            "--config",
            "recipes/glyph_lm/tiny.yaml",
            f"--trainer.default_root_dir={tmp_path}",
            f"--model.init_args.model.init_args.font={FONT}",
            *extra,
        ]
    )


def test_tiny_glyph_fit_keeps_the_glyph_table_frozen(tmp_path):
    from polymodal.plugins.glyph import build_glyph_table

    cli = fit(tmp_path)
    assert cli.trainer.state.finished and cli.trainer.global_step == 6
    logged = cli.trainer.callback_metrics
    assert math.isfinite(float(logged["val/loss"]))
    assert float(logged["val/ppl"]) == pytest.approx(math.exp(float(logged["val/loss"])), rel=1e-4)
    lm = cli.model.model
    emb = lm.model.get_input_embeddings().weight
    assert not emb.requires_grad
    table = build_glyph_table(lm.tokenizer, emb.shape[1], font=FONT)
    np.testing.assert_array_equal(emb[: table.shape[0]].numpy(), table)  # unchanged by training
    optimised = {id(p) for g in cli.trainer.optimizers[0].param_groups for p in g["params"]}
    assert id(emb) not in optimised and id(lm.model.get_output_embeddings().weight) in optimised


def test_tiny_trainable_fit_trains_its_embeddings(tmp_path):
    cli = fit(tmp_path, "--model.init_args.model.init_args.embeddings=trainable")
    lm = cli.model.model
    assert lm.embeddings == "trainable" and lm.model.get_input_embeddings().weight.requires_grad
    from polymodal.plugins.glyph import GlyphCausalLM

    fresh = GlyphCausalLM(
        dict(cli.config["fit"]["model"]["init_args"]["model"]["init_args"]["config"]),
        tokenizer="package://glyph_lm/data/tokenizer.json",
        embeddings="trainable",
        font=FONT,
    )
    assert not torch.equal(fresh.model.get_input_embeddings().weight, lm.model.get_input_embeddings().weight)


def test_text_blocks_data_module(tmp_path):
    from polymodal.recipes.glyph_lm.datamodule import TextBlocksDataModule

    dm = TextBlocksDataModule("package://glyph_lm/data/tiny_corpus.txt", tokenizer="codepoints", block_size=16)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == (32, 16)
    (tmp_path / "small.txt").write_text("too short")
    with pytest.raises(ValueError, match="small.txt: the train part has"):
        TextBlocksDataModule(str(tmp_path / "small.txt"), tokenizer="codepoints", block_size=16).setup("fit")
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe bad")
    with pytest.raises(ValueError, match="bad.txt: not UTF-8"):
        TextBlocksDataModule(str(tmp_path / "bad.txt"), tokenizer="codepoints").setup("fit")


def test_language_model_system_validation_loss_is_token_weighted():
    from polymodal.systems.language_model import LanguageModelSystem

    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, input_ids, attention_mask=None, labels=None):
            return {"loss": input_ids.float().mean() + self.w[0]}

    system = LanguageModelSystem(Fixed())
    logged = {}
    system.log = lambda name, value, **kw: logged.__setitem__(name, value)
    system.on_validation_epoch_start()
    system.validation_step({"input_ids": torch.full((1, 3), 1)}, 0)  # loss 1 over 2 tokens
    system.validation_step({"input_ids": torch.full((1, 5), 4)}, 1)  # loss 4 over 4 tokens
    system.on_validation_epoch_end()
    assert logged["val/loss"] == pytest.approx((1 * 2 + 4 * 4) / 6)
    with pytest.raises(ValueError, match="warmup_ratio"):
        LanguageModelSystem(Fixed(), warmup_ratio=1.0)


@pytest.mark.parametrize("config", ["glyph.yaml", "trainable.yaml"])
def test_real_configs_parse(config, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--config", f"recipes/glyph_lm/{config}", "--print_config"])
    assert exc.value.code in (0, None)
    assert "GlyphCausalLM" in capsys.readouterr().out


def test_compare_run_shorter_than_one_log_interval_writes_empty_curve(tmp_path):
    """``compare`` reads the run's metrics.csv, which does not exist before the first logging step."""
    import json

    import yaml

    from polymodal.recipes.glyph_lm.compare import run_one

    cfg = yaml.safe_load(open("recipes/glyph_lm/tiny.yaml"))
    cfg["trainer"]["logger"] = {"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": "x"}}
    cfg["model"]["init_args"]["model"]["init_args"]["font"] = FONT
    config = tmp_path / "short.yaml"
    config.write_text(yaml.safe_dump(cfg))
    run_one(str(config), tmp_path, 1, ["--trainer.max_steps=2"])
    result = json.loads((tmp_path / "short.json").read_text())
    assert result["val_curve"] == [] and result["final_val_loss"] is None
    assert result["params_trainable"] < result["params_total"]  # the glyph table stays frozen
    assert all(isinstance(s, str) and s for s in result["samples"].values())
