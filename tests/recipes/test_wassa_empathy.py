"""WASSA empathy recipe: the source (dev/gold join and its checks), the tiny YAML end to end, the sweep file."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from polymodal.cli import main
from polymodal.data import Split
from polymodal.experiments import load_sweep
from polymodal.io import resolve_path
from polymodal.recipes.wassa_empathy import WassaEssays
from polymodal.recipes.wassa_empathy.data import FILES

SAMPLE = "package://wassa_empathy/data"
TINY = "recipes/wassa_empathy/tiny.yaml"


def _copy_sample(tmp_path: Path) -> Path:
    dst = tmp_path / "wassa"
    shutil.copytree(resolve_path(SAMPLE), dst)
    return dst


def _rewrite(path: Path, edit) -> None:
    lines = gzip.decompress(path.read_bytes()).decode().splitlines(keepends=True)
    path.write_bytes(gzip.compress("".join(edit(lines)).encode()))


def test_dev_is_joined_with_gold_by_row():
    train, dev = WassaEssays(SAMPLE).frame(), WassaEssays(SAMPLE, "dev").frame()
    assert len(train) == 60 and len(dev) == 30
    # first gold row of the official dev file: empathy 7.0, distress 7.0, sadness
    assert dev.loc[0, ["empathy", "distress"]].tolist() == [7.0, 7.0] and dev["emotion"].iloc[0] == "sadness"
    assert dev.loc[1, "empathy"] == pytest.approx(3.167) and dev.loc[1, "distress"] == pytest.approx(3.625)
    assert train["empathy"].between(1, 7).all() and set(train["stratum"]) <= set(range(10))


def _drop_last(lines):
    return lines[:-1]


def _shift(lines):
    return [ln.split("\t", 1)[1] for ln in lines]


def _bad_emotion(lines):
    return [lines[0].replace("sadness", "sad", 1), *lines[1:]]


def _bad_rating(lines):
    fields = lines[2].split("\t")
    fields[3] = "9.5"  # empathy of the second data row
    return [lines[0], lines[1], "\t".join(fields), *lines[3:]]


@pytest.mark.parametrize(
    ("file", "edit", "part", "message"),
    [
        ("gold", _drop_last, "dev", "29 rows but .* has 30"),
        ("gold", _shift, "dev", "expected 12 tab-separated columns"),
        ("gold", _bad_emotion, "dev", "row 1, column 3 \\(emotion\\): not one of"),
        ("train", _bad_rating, "train", "row 2, column 'empathy': expected a rating in \\[1, 7\\], got '9.5'"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path, file, edit, part, message):
    root = _copy_sample(tmp_path)
    _rewrite(root / FILES[file], edit)
    with pytest.raises(ValueError, match=message):
        WassaEssays(str(root), part).frame()


def test_stratified_hold_out_keeps_the_joint_bins():
    source = WassaEssays(SAMPLE, bins=2)
    train, val = (
        Split([0.8, 0.2], p, source=source, method="stratified", stratify="stratum").frame() for p in ("train", "val")
    )
    assert len(train) + len(val) == 60 and not set(train["essay"]) & set(val["essay"])
    assert set(val["stratum"]) == set(source.frame()["stratum"])  # every joint bin is represented


def test_tiny_config_fits_keeps_best_and_tests(tmp_path):
    cli = main(["fit", "--config", TINY, f"--trainer.default_root_dir={tmp_path}", "--trainer.max_epochs=3"])
    logged = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    avg = logged["val/pearson_avg"]
    assert avg == pytest.approx((logged["val/empathy/pearson"] + logged["val/distress/pearson"]) / 2, abs=1e-6)
    assert logged["val/pearson_avg_best"] >= avg - 1e-6  # KeepBest restored the best epoch
    (test,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    assert -1 <= test["test/pearson_avg"] <= 1 and len(cli.datamodule.datasets["test"]) == 30
    mlp = cli.model.towers["shared"]
    train = np.stack(cli.datamodule.datasets["train"].columns["essay"])
    np.testing.assert_allclose(mlp.mean.numpy(), train.mean(axis=0), rtol=1e-4, atol=1e-6)  # train split only


def test_tiny_config_rejects_wrong_input_dim(tmp_path):
    with pytest.raises(ValueError, match="row 1, column 'essay': expected a feature vector of 7 numbers"):
        main(
            [
                "fit",
                "--config",
                TINY,
                f"--trainer.default_root_dir={tmp_path}",
                "--model.init_args.encoder.init_args.input_dim=7",
            ]
        )


@pytest.mark.parametrize(
    "config",
    [
        "minilm.yaml",
        "revised.yaml",
        "lexical.yaml",
        "lexical4.yaml",
        "lsa.yaml",
        "smollm2.yaml",
        "emotion.yaml",
        "traits.yaml",
    ],
)
def test_real_data_configs_parse(config, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", f"recipes/wassa_empathy/{config}", "--print_config"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and out.count("class_path: polymodal.data.features.TextFeatures") >= 3
    if config == "emotion.yaml":
        assert "kind: multiclass" in out and "monitor: val/macro_f1" in out
    else:
        assert "class_path: polymodal.metrics.step.HeadMean" in out and "monitor: val/pearson_avg" in out


def test_smollm2_config_featurises_essays_with_the_prompted_decoder(tmp_path):
    """smollm2.yaml as shipped, on the sample and a tiny random Llama: PromptEOL last-token features of layer -2."""
    import torch

    from polymodal.plugins.text.decoder import DecoderTextEncoder

    text = Path("recipes/wassa_empathy/smollm2.yaml").read_text()
    for old, new in [
        ("model: smollm2-135m", "model: test-llama"),
        ("data://wassa22", "package://wassa_empathy/data"),
        ("input_dim: 576", "input_dim: 32"),
        ("/tmp/polymodal_cache/wassa", str(tmp_path / "cache")),
    ]:
        assert old in text
        text = text.replace(old, new)
    config = tmp_path / "smollm2.yaml"
    config.write_text(text)
    torch.manual_seed(0)
    cli = main(["fit", "--config", str(config), f"--trainer.default_root_dir={tmp_path}", "--trainer.max_epochs=1"])
    features = np.stack(cli.datamodule.datasets["train"].columns["essay"])
    assert features.shape[1] == 32 and np.isfinite(features).all()
    assert len({f.tobytes() for f in features}) == len(features)  # one vector per essay, not a constant
    (featurizer,) = cli.datamodule.sources["train"].featurizers
    encoder = featurizer.encoder
    assert isinstance(encoder, DecoderTextEncoder) and encoder.output_layer == -2
    assert encoder.prompt is not None and "{text}" in encoder.prompt
    assert type(featurizer.pooler).__name__ == "LastTokenPooler"


@pytest.mark.parametrize("name", ["sweep_fidelity.yaml", "sweep_tasks.yaml"])
def test_fidelity_sweeps_name_shipped_configs(name):
    sweep = load_sweep(f"recipes/wassa_empathy/{name}")
    assert all(Path(c).is_file() for r in sweep.runs for c in r.configs) and sweep.seeds == [0, 1]


def test_emotion_and_traits_columns_of_the_sample():
    from polymodal.recipes.wassa_empathy import EMOTION_CLASSES, TRAITS

    train, dev = WassaEssays(SAMPLE).frame(), WassaEssays(SAMPLE, "dev").frame()
    for df in (train, dev):
        assert set(df["emotion"]) <= set(EMOTION_CLASSES) and df[list(TRAITS)].to_numpy().min() >= 1
    # first gold row: ..., conscientiousness 5.5, openess 5.5, ..., iri_empathatic_concern 3.143
    assert dev.loc[0, "personality_conscientiousness"] == 5.5 and dev.loc[0, "iri_empathatic_concern"] == 3.143


def test_tiny_emotion_and_traits_fit_and_ensemble(tmp_path, capsys):
    """tiny_emotion.yaml / tiny_traits.yaml (four lexicons + LSA) fit, write dev predictions; ensemble.py averages."""
    from polymodal.recipes.wassa_empathy.ensemble import main as ensemble

    for run, config, key in (("E", "tiny_emotion", "val/macro_f1"), ("P", "tiny_traits", "val/pearson_avg")):
        for seed in (0, 1):
            cli = main(
                [
                    "fit",
                    "--config",
                    f"recipes/wassa_empathy/{config}.yaml",
                    f"--seed_everything={seed}",
                    f"--trainer.default_root_dir={tmp_path / run / f'seed{seed}'}",
                ]
            )
            assert key in cli.trainer.callback_metrics and cli.model.towers["shared"].mean.shape == (229,)
    records = {r["model"]: r for r in ensemble([str(tmp_path), "--data", SAMPLE, "--out", str(tmp_path / "e.json")])}
    assert records["ensemble: emotion"]["members"] == 2 and records["ensemble: traits"]["members"] == 2
    assert (
        0 <= records["ensemble: emotion"]["emotion_macro_f1"] <= 1
        and "| ensemble: traits | 2 |" in capsys.readouterr().out
    )
    import pandas as pd

    a, b = (pd.read_csv(tmp_path / "E" / f"seed{s}" / "predictions.csv") for s in (0, 1))
    mean = (a.filter(like="emotion_").to_numpy() + b.filter(like="emotion_").to_numpy()) / 2
    dev = WassaEssays(SAMPLE, "dev").frame()
    from polymodal.recipes.wassa_empathy import EMOTION_CLASSES

    acc = float((mean.argmax(1) == dev["emotion"].map(EMOTION_CLASSES.index).to_numpy()).mean())
    assert records["ensemble: emotion"]["emotion_accuracy"] == pytest.approx(acc)


def test_sweep_file_names_shipped_configs():
    sweep = load_sweep("recipes/wassa_empathy/sweep.yaml")
    assert {"S1_mean", "S2b", "S2f"} <= {r.name for r in sweep.runs} and sweep.seeds == [0, 1, 2]
    assert all(Path(c).is_file() for r in sweep.runs for c in r.configs) and all(r.test for r in sweep.runs)


@pytest.mark.slow
def test_real_data_revised_config(shared_data, tmp_path):
    """S2b on the real files: 1,860 / 270 essays and a real signal on dev (the table's S2b mean is 0.38)."""
    root = shared_data / "wassa22"
    if not root.is_dir():
        pytest.skip("no wassa22 in shared data")
    assert (len(WassaEssays(str(root)).frame()), len(WassaEssays(str(root), "dev").frame())) == (1860, 270)
    cli = main(["fit", "--config", "recipes/wassa_empathy/revised.yaml", f"--trainer.default_root_dir={tmp_path}"])
    (test,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    assert test["test/pearson_avg"] > 0.3 and min(test["test/empathy/pearson"], test["test/distress/pearson"]) > 0.25
