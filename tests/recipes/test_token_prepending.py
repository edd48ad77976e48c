"""The token_prepending recipe: tiny training-free validate run and the variant comparison."""

from __future__ import annotations

import pytest
import torch

from polymodal.cli import main
from polymodal.plugins.text.decoder import DecoderTextEncoder
from polymodal.recipes import recipe_root


def _tiny_decoder(layers: int) -> DecoderTextEncoder:
    """A seeded random Llama over byte tokens (no weights needed)."""
    torch.manual_seed(0)
    return DecoderTextEncoder(
        model={
            "model_type": "llama",
            "vocab_size": 261,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": layers,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 256,
        },
        tokenizer="bytes",
        max_length=192,
    ).eval()


def test_tiny_validate_reports_spearman(tmp_path):
    cli = main(["validate", "--config", "recipes/token_prepending/tiny.yaml", f"--trainer.default_root_dir={tmp_path}"])
    enc = cli.model.towers["shared"]
    assert isinstance(enc, DecoderTextEncoder) and enc.token_prepending and enc.prompt is not None
    assert -1 <= float(cli.trainer.callback_metrics["val/spearman"]) <= 1


def test_compare_switches_variants_on_one_encoder():
    from polymodal.recipes.token_prepending.compare import VARIANTS, compare

    enc = _tiny_decoder(layers=3)
    sample = recipe_root() / "sbert" / "data" / "stsb_dev_sample.tsv.gz"
    results = compare(enc, str(sample), limit=40, batch_size=16)
    assert list(results) == list(VARIANTS)
    assert len(set(results.values())) >= 6  # the switches really change the embeddings
    assert enc.token_prepending and enc._prepender is not None  # last variant (official defaults) left on
    assert (enc.tp_starting_layer, enc.tp_exiting_layer, enc.tp_placement) == (1, None, "slot")
    with pytest.raises(ValueError, match="unknown variant"):
        compare(enc, str(sample), limit=4, names=["no such variant"])


def test_compare_cli_rejects_an_unknown_variant_before_loading_the_model(capsys, monkeypatch):
    from polymodal.plugins.text import decoder
    from polymodal.recipes.token_prepending.compare import main as compare_main

    monkeypatch.setattr(decoder, "DecoderTextEncoder", None)  # a load would fail loudly
    with pytest.raises(SystemExit) as exc:
        compare_main(["--only", "prompteol"])
    assert exc.value.code == 2 and "unknown variant(s) ['prompteol']" in capsys.readouterr().err


def test_sweep_file_runs_exactly_the_compare_variants():
    from polymodal.experiments import load_sweep
    from polymodal.recipes.token_prepending.compare import variants

    sweep = load_sweep(recipe_root() / "token_prepending" / "sweep.yaml")
    assert all(run.command == "validate" for run in sweep.runs)
    table = variants(grid=True)
    assert len(sweep.runs) == len(table)
    prefix = "--model.init_args.encoder.init_args."
    defaults = {"tp_placement": "slot", "tp_starting_layer": 1, "tp_exiting_layer": None, "output_layer": -1}
    for run, switches in zip(sweep.runs, table.values()):
        given = dict(a[len(prefix) :].split("=", 1) for a in run.args)
        for key, value in {**defaults, **switches}.items():
            expected = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
            assert given[key] == expected, (run.name, key)


@pytest.mark.slow
def test_smollm2_compare_on_a_few_stsb_pairs(shared_data):
    pytest.importorskip("gguf")
    from polymodal.plugins.text.decoder import smollm2_folder
    from polymodal.recipes.token_prepending.compare import compare

    try:
        smollm2_folder()
    except (ImportError, FileNotFoundError) as exc:
        pytest.skip(str(exc))
    torch.set_num_threads(2)
    enc = DecoderTextEncoder("smollm2-135m").eval()
    names = ["PromptEOL", "earlier TP (start, 0-7)", "TP official defaults (slot, 1-all)"]  # one per code path
    results = compare(enc, str(shared_data / "stsb" / "sts-dev.csv.gz"), limit=32, names=names)
    assert list(results) == names and all(-1 <= v <= 1 for v in results.values())
