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


def test_tiny_topical_stage_starts_from_the_average_of_stage_0_variants(tmp_path):
    """Stage 0 twice (all perturbations / characters only, same seed), then the topical stage from their average."""
    from polymodal.data.groups import GroupedPairs
    from polymodal.plugins.pixel import Perturber, PixelEncoder

    exports = []
    for name, extra in (("all", []), ("char", ["--config", "recipes/pixel_linguist/overlays/stage0_char.yaml"])):
        cli = main(
            [
                "fit",
                "--config",
                "recipes/pixel_linguist/tiny.yaml",
                *extra,
                f"--trainer.default_root_dir={tmp_path / name}",
            ]
        )
        perturber = cli.datamodule.augment["positive"]
        assert isinstance(perturber, Perturber)
        assert ("word_shuffle" in perturber.ops) == (name == "all")
        exports.append(polymodal.load(tmp_path / name / "model").encoder.patch_embed.weight.detach().clone())
    assert not torch.equal(*exports)  # different augmentations, different weights ...
    seen = {}

    def spy(module, args):  # the tower's weights at its first training forward
        if isinstance(module, PixelEncoder) and module.training:
            seen.setdefault("w", module.patch_embed.weight.detach().clone())

    handle = torch.nn.modules.module.register_module_forward_pre_hook(spy)
    try:
        topical = main(
            [
                "fit",
                "--config",
                "recipes/pixel_linguist/tiny_topical.yaml",
                f"--trainer.default_root_dir={tmp_path / 't'}",
                f"--trainer.callbacks.init_args.path=[{tmp_path / 'all' / 'model'},{tmp_path / 'char' / 'model'}]",
            ]
        )
    finally:
        handle.remove()
    torch.testing.assert_close(seen["w"], (exports[0] + exports[1]) / 2)  # ... whose average stage 1 starts from
    source = topical.datamodule.sources["train"]
    assert isinstance(source, GroupedPairs) and topical.datamodule.inputs == ["a", "b"]
    frame = source.frame()
    assert (frame.groupby("group_id").size() >= 2).all()  # every anchor has a same-text positive
    assert topical.model.objectives["loss"].loss.exclude_same_group
    assert math.isfinite(float(topical.trainer.callback_metrics["train/loss"]))
    assert -1 <= float(topical.trainer.callback_metrics["val/spearman"]) <= 1
    assert polymodal.load(tmp_path / "t" / "model").encode(["a test"]).shape == (1, 32)


def test_source_spans_keep_the_longest_opening_of_each_text(tmp_path):
    import gzip
    import json

    from polymodal.recipes.pixel_linguist.topical import SourceSpans

    docs = [
        {"segments": [["A1.", "A2."], ["B1.", "B2.", "B3."]]},
        {"segments": [["A1.", "A2.", "A3."], ["C1."], []]},  # A again, longer; C has one sentence
    ]
    path = tmp_path / "docs.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(json.dumps(d) for d in docs) + "\n")
    df = SourceSpans(str(path)).frame()
    assert df.groupby("source").span.apply(list).to_dict() == {"t0": ["A1.", "A2.", "A3."], "t1": ["B1.", "B2.", "B3."]}
    two = SourceSpans(str(path), sentences=2, min_spans=1, max_chars=4).frame()
    assert two.span.tolist() == ["A1. ", "A3.", "B1. ", "B3.", "C1."]


@pytest.mark.parametrize(
    ("content", "kwargs", "expected"),
    [
        ('{"segments": [["a", "b"]]}\nnot json\n', {}, "line 2: not JSON"),
        ('{"segments": "abc"}\n', {}, "line 1, field 'segments': expected a list of lists"),
        ('{"path": "x"}\n', {}, "line 1, field 'segments'"),
        ('{"segments": [["only one"]]}\n', {}, "no source text with 2+ spans"),
        ('{"segments": [["a", "b"]]}\n', {"sentences": 0}, "sentences must be >= 1"),
        ('{"segments": [["a", "b"]]}\n', {"max_chars": 0}, "max_chars must be >= 1"),
    ],
)
def test_source_spans_bad_input_is_one_line(tmp_path, content, kwargs, expected):
    from polymodal.recipes.pixel_linguist.topical import SourceSpans

    path = tmp_path / "docs.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError) as err:
        SourceSpans(str(path), **kwargs).frame()
    msg = str(err.value)
    assert "\n" not in msg and expected in msg, msg


def test_topical_config_parses_and_overlays_change_only_the_perturbations(capsys):
    for overlay, ops in (("stage0_char", ["swap", "drop", "insert", "keyboard", "homoglyph"]), ("stage0_word", None)):
        with pytest.raises(SystemExit):
            main(
                [
                    "fit",
                    "--config",
                    "recipes/pixel_linguist/unsup.yaml",
                    "--config",
                    f"recipes/pixel_linguist/overlays/{overlay}.yaml",
                    "--print_config",
                ]
            )
        printed = yaml.safe_load(capsys.readouterr().out)
        perturber = printed["data"]["init_args"]["augment"]["positive"]["init_args"]
        assert perturber["ops"] == (ops or ["word_shuffle"])
        assert overlay != "stage0_word" or perturber["shuffle_prob"] == 1.0
        assert printed["model"]["init_args"]["encoder"]["init_args"]["hidden_size"] == 192  # the model is unsup.yaml's
    with pytest.raises(SystemExit):
        main(["fit", "--config", "recipes/pixel_linguist/topical.yaml", "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["init_args"]["loss"]["init_args"]["exclude_same_group"] is True
    assert printed["data"]["init_args"]["sources"]["train"]["init_args"]["source"]["init_args"]["path"].startswith(
        "data://topicseg_choi/"
    )
    assert printed["trainer"]["callbacks"][-1]["class_path"].endswith("LoadEncoderWeights")


def test_topical_sweep_chains_ensemble_topical_nli(tmp_path):
    from polymodal.experiments import load_sweep, run_command

    sweep = load_sweep("recipes/pixel_linguist/sweep_topical.yaml")
    runs = {r.name: r for r in sweep.runs}
    assert list(runs)[:3] == ["s0_all", "s0_char", "s0_word"] and sweep.seeds == [0, 1]
    soup = f"[{tmp_path}/s0_all/seed1/model,{tmp_path}/s0_char/seed1/model,{tmp_path}/s0_word/seed1/model]"
    assert runs["s0_ensemble"].command == "validate"
    for name in ("s0_ensemble", "topical", "nli_ensemble"):
        assert f"--trainer.callbacks.init_args.path={soup}" in run_command(runs[name], 1, str(tmp_path))
    argv = run_command(runs["nli_topical"], 1, str(tmp_path))
    assert f"--trainer.callbacks.init_args.path={tmp_path}/topical/seed1/model" in argv
    order = list(runs)
    assert order.index("topical") < order.index("nli_topical") and order.index("s0_word") < order.index("topical")


@pytest.mark.slow
def test_source_spans_of_the_real_choi_data(shared_data):
    from polymodal.data.groups import GroupedPairs
    from polymodal.recipes.pixel_linguist.topical import SourceSpans

    spans = SourceSpans(str(shared_data / "topicseg_choi" / "choi.jsonl.gz"))
    frame = spans.frame()
    assert frame.source.nunique() == 399 and len(frame) == 5132  # the Brown texts behind Choi's 9,200 segments
    pairs = GroupedPairs(spans, "source", "span").frame()
    assert len(pairs) == 5132 and (pairs.a != pairs.b).all()
