"""The glyph_lm recipe: tiny glyph / trainable fits through LanguageModelSystem, the sweep file and the plot."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml

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
    from polymodal import System
    from polymodal.plugins.glyph import build_glyph_table

    cli = fit(tmp_path)
    assert isinstance(cli.model, System) and cli.trainer.state.finished and cli.trainer.global_step == 6
    logged = cli.trainer.callback_metrics
    assert math.isfinite(float(logged["val/loss"]))
    assert float(logged["val/ppl"]) == pytest.approx(math.exp(float(logged["val/token_loss"])), rel=1e-4)
    lm = cli.model.towers["lm"]
    emb = lm.model.get_input_embeddings().weight
    assert not emb.requires_grad
    table = build_glyph_table(lm.tokenizer, emb.shape[1], font=FONT)
    np.testing.assert_array_equal(emb[: table.shape[0]].numpy(), table)  # unchanged by training
    optimised = {id(p) for g in cli.trainer.optimizers[0].param_groups for p in g["params"]}
    assert id(emb) not in optimised and id(lm.model.get_output_embeddings().weight) in optimised


def test_tiny_trainable_fit_trains_its_embeddings(tmp_path):
    cli = fit(tmp_path, "--model.init_args.model.init_args.embeddings=trainable")
    lm = cli.model.towers["lm"]
    assert lm.embeddings == "trainable" and lm.model.get_input_embeddings().weight.requires_grad
    from polymodal.plugins.glyph import GlyphCausalLM

    fresh = GlyphCausalLM(
        dict(cli.config["fit"]["model"]["init_args"]["model"]["init_args"]["config"]),
        tokenizer="package://glyph_lm/data/tokenizer.json",
        embeddings="trainable",
        font=FONT,
    )
    assert not torch.equal(fresh.model.get_input_embeddings().weight, lm.model.get_input_embeddings().weight)


def test_blocks_tokenise_like_the_model(tmp_path):
    """The data module's tokenizer.json and the glyph LM's tokenizer give the same ids."""
    from polymodal.data.blocks import TextBlocksDataModule
    from polymodal.io import resolve_path
    from polymodal.plugins.glyph import as_glyph_tokenizer

    dm = TextBlocksDataModule("package://glyph_lm/data/tiny_corpus.txt", "package://glyph_lm/data/tokenizer.json")
    dm.setup("fit")
    text = resolve_path(dm.path).read_text(encoding="utf-8")
    ours = as_glyph_tokenizer("package://glyph_lm/data/tokenizer.json").encode(text[: int(len(text) * 0.9)])
    assert dm.ids["train"].tolist() == ours


@pytest.mark.parametrize("config", ["glyph.yaml", "trainable.yaml"])
def test_real_configs_parse(config, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--config", f"recipes/glyph_lm/{config}", "--print_config"])
    assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    assert "GlyphCausalLM" in out and "TextBlocksDataModule" in out


def test_sweep_file_and_plot(tmp_path):
    """The shipped sweep names both configs; the plot reads the runs' CSV logs in the sweep's layout."""
    from polymodal.experiments import load_sweep, run_command
    from polymodal.recipes.glyph_lm.plot import curves, plot

    sweep = load_sweep("recipes/glyph_lm/sweep.yaml")
    assert [r.name for r in sweep.runs] == ["glyph", "trainable"] and sweep.root == "runs/sweeps/glyph_lm"
    argv = run_command(sweep.runs[1], 0, str(tmp_path))
    assert "recipes/glyph_lm/trainable.yaml" in argv
    assert f"--trainer.logger.init_args.save_dir={tmp_path}/trainable/seed0" in argv
    for run, values in (("glyph", [5.0, 4.5]), ("trainable", [5.1, 4.7])):
        log = tmp_path / run / "seed0" / "logs" / "version_0" / "metrics.csv"
        log.parent.mkdir(parents=True)
        log.write_text(f"epoch,step,train/loss,val/loss\n0,19,,{values[0]}\n0,29,6.0,\n0,39,,{values[1]}\n")
    assert curves(tmp_path) == {"glyph/seed0": [(19, 5.0), (39, 4.5)], "trainable/seed0": [(19, 5.1), (39, 4.7)]}
    pytest.importorskip("matplotlib")
    assert plot(tmp_path).stat().st_size > 1000
    with pytest.raises(FileNotFoundError, match="run the sweep first"):
        curves(tmp_path / "empty")


@pytest.mark.parametrize("embeddings", ["glyph", "trainable"])
def test_tiny_probe_scores_the_trained_lm_on_the_cloze_items(tmp_path, embeddings):
    from polymodal.callbacks import ClozeProbe
    from polymodal.evaluation.cloze import choice_logprobs

    cli = main(
        [
            "fit",
            "--config",
            "recipes/glyph_lm/tiny_probe.yaml",
            f"--trainer.default_root_dir={tmp_path}",
            f"--model.init_args.model.init_args.font={FONT}",
            f"--model.init_args.model.init_args.embeddings={embeddings}",
        ]
    )
    logged = cli.trainer.callback_metrics
    probe = next(c for c in cli.trainer.callbacks if isinstance(c, ClozeProbe))
    assert len(probe.items) == 6 and float(logged["val/probe_items"]) == 6
    assert float(logged["val/probe_chance"]) == 0.25 and 0 <= float(logged["val/probe_unigram"]) <= 1
    lm = cli.model.towers["lm"]
    scores = choice_logprobs(lm.model, lm.tokenizer.encode, probe.items, max_length=64)  # the final weights
    right = np.mean(scores.argmax(1) == np.array([it.answer for it in probe.items]))
    assert float(logged["val/probe_accuracy"]) == pytest.approx(right)
    assert probe.last["accuracy"] == pytest.approx(right)


def test_probe_runs_only_at_the_last_validation_of_a_fit(tmp_path, capsys):
    fit(tmp_path, "--config", "recipes/glyph_lm/tiny_probe.yaml")
    assert capsys.readouterr().out.count("polymodal: cloze probe (6 items) val accuracy") == 1  # of 2 validations


def test_probe_on_a_tower_without_a_tokenizer_is_one_line():
    from polymodal.callbacks import ClozeProbe

    probe = ClozeProbe("package://glyph_lm/data/tiny_corpus.txt", tower="nope")
    module = type("M", (), {"towers": {"lm": torch.nn.Linear(2, 2)}})()
    trainer = type("T", (), {"sanity_checking": False, "state": type("S", (), {"fn": None})()})()
    with pytest.raises(ValueError, match="no tower 'nope'"):
        probe._evaluate(trainer, module, "val")
    probe.tower = "lm"
    with pytest.raises(ValueError, match=r"has no \.tokenizer\.encode"):
        probe._evaluate(trainer, module, "val")
    with pytest.raises(ValueError, match="stages must be val and/or test"):
        ClozeProbe("x", stages=["train"])


def test_probe_config_and_sweep(tmp_path, capsys):
    from polymodal.experiments import load_sweep, run_command

    with pytest.raises(SystemExit):
        main(["fit", "--config", "recipes/glyph_lm/probe.yaml", "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    (probe,) = [c for c in printed["trainer"]["callbacks"] if c["class_path"].endswith("ClozeProbe")]
    assert probe["init_args"]["corpus"] == printed["data"]["init_args"]["path"]  # the data module's corpus and cut
    assert probe["init_args"]["n_items"] == 1000 and probe["init_args"]["val_fraction"] == 0.1
    assert printed["data"]["init_args"]["val_fraction"] == 0.1
    assert printed["trainer"]["max_steps"] % printed["trainer"]["val_check_interval"] == 0  # scored at the end
    sweep = load_sweep("recipes/glyph_lm/sweep_probe.yaml")
    runs = {r.name: r for r in sweep.runs}
    assert sweep.seeds == [0, 1] and runs["untrained_glyph"].command == "validate"
    for name in ("trainable", "untrained_trainable"):
        assert "--model.init_args.model.init_args.embeddings=trainable" in run_command(runs[name], 0, str(tmp_path))
    assert not any("embeddings" in a for a in run_command(runs["glyph"], 0, str(tmp_path)))


@pytest.mark.slow
def test_probe_items_of_tiny_shakespeare(shared_data):
    """The shipped probe: 1,000 items from the held-out 10 % (lines after the cut), frequency-matched distractors."""
    import gzip

    from polymodal.evaluation.cloze import cloze_items, unigram_accuracy
    from polymodal.plugins.glyph import as_glyph_tokenizer

    text = gzip.open(shared_data / "text_corpus" / "tinyshakespeare_input.txt.gz", "rt").read()
    encode = as_glyph_tokenizer("package://glyph_lm/data/tokenizer.json").encode
    items, counts = cloze_items(text, encode)
    assert len(items) == 1000 and min(it.line for it in items) > text.count("\n", 0, int(len(text) * 0.9))
    assert unigram_accuracy(items, counts) < 0.25  # word frequency alone is no shortcut
    assert {len({len(encode(o)) for o in it.options}) for it in items} == {1}
