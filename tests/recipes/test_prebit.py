"""PreBit recipe: labels, splits, daily text sets, ensembles, backtest, and the tiny end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from polymodal.recipes.prebit.data import PhraseBank, PreBitDays, daily_sets
from polymodal.recipes.prebit.report import backtest, best_f1_threshold, ensemble_probs, ma_crossover_positions

SAMPLE = {
    "prices": "package://prebit/data/btc_sample.csv.gz",
    "assets": {
        "sp500": "package://prebit/data/sp500_sample.csv.gz",
        "gold": "package://prebit/data/gold_sample.csv.gz",
    },
}


def test_backtest_hand_values():
    r = np.log([1.1, 0.9, 1.2])
    daily, perf = backtest(r, np.array([1.0, 0.0, 1.0]), cost=0.01)
    np.testing.assert_allclose(daily, [0.09, -0.01, 0.19])
    assert perf["trades"] == 3
    assert perf["cumulative_return"] == pytest.approx(1.09 * 0.99 * 1.19 - 1)
    assert perf["max_drawdown"] == pytest.approx(-0.01)
    assert perf["exposure"] == pytest.approx(2 / 3)
    assert perf["sharpe"] == pytest.approx(daily.mean() / daily.std(ddof=1) * np.sqrt(365))
    _, hold = backtest(r, np.ones(3), cost=0.01)
    assert hold["trades"] == 1 and hold["max_drawdown"] == pytest.approx((1.1 - 0.01) * 0.9 / (1.1 - 0.01) - 1)


def test_ma_crossover_uses_only_past_prices():
    close = pd.Series(
        np.r_[np.linspace(10, 1, 20), np.linspace(1, 30, 20)], index=pd.date_range("2020-01-01", periods=40)
    )
    pos = ma_crossover_positions(close, close.index.strftime("%Y-%m-%d"), fast=3, slow=6)
    assert pos[:20].sum() == 0 and pos[-5:].all()
    changed = close.copy()
    changed.iloc[30:] = 1000.0  # the future must not change earlier positions
    assert (ma_crossover_positions(changed, close.index, 3, 6)[:30] == pos[:30]).all()


def test_stacked_ensemble_is_l2_logistic_regression_on_logits():
    rng = np.random.default_rng(0)
    y = (rng.uniform(size=400) < 0.2).astype(int)
    p1, p2 = np.clip(0.2 + 0.3 * y * rng.uniform(size=400), 0.01, 0.99), rng.uniform(0.05, 0.5, size=400)
    frame = pd.DataFrame({"split": ["val"] * 300 + ["test"] * 100, "extreme_up": y, "p_up__a": p1, "p_up__b": p2})
    pv, pt = ensemble_probs(frame, "up", ["a", "b"], "stacked")
    logit = np.log(np.c_[p1, p2] / (1 - np.c_[p1, p2]))
    w = np.zeros(3)  # Newton's method on sum(log loss) + |w|^2 / 2 (bias unpenalised), by hand
    X = np.c_[np.ones(300), logit[:300]]
    for _ in range(50):
        q = 1 / (1 + np.exp(-X @ w))
        reg = np.diag([0.0, 1.0, 1.0])
        w -= np.linalg.solve((X * (q * (1 - q))[:, None]).T @ X + reg, X.T @ (q - y[:300]) + reg @ w)
    np.testing.assert_allclose(pt, 1 / (1 + np.exp(-(w[0] + logit[300:] @ w[1:]))), atol=1e-5)
    assert len(pv) == 300
    soft = ensemble_probs(frame, "up", ["a", "b"], "soft_vote")[1]
    np.testing.assert_allclose(soft, (p1[300:] + p2[300:]) / 2)
    assert best_f1_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.35)


def test_daily_sets_windows_and_empty_days():
    days = pd.date_range("2020-01-01", periods=5)
    news = pd.to_datetime(["2020-01-01", "2020-01-01", "2020-01-03", "2020-01-05"])
    emb = np.arange(8.0).reshape(4, 2)
    sets = daily_sets(days, news, emb, days_back=1, max_texts=2)
    assert [len(s) for s in sets] == [2, 2, 1, 1, 1]
    assert sets[1].tolist() == emb[0:2].tolist()  # Jan 2 sees Jan 1's two articles
    lagged = daily_sets(days, news, emb, days_back=0, lag=1)
    assert [len(s) for s in lagged] == [0, 2, 0, 1, 0]  # lag 1: only news dated the day before


def test_labels_and_chronological_splits_on_sample():
    days = PreBitDays(
        **SAMPLE,
        inputs=["candles", "assets"],
        start="2017-07-01",
        val_start="2018-02-01",
        test_start="2018-04-15",
        end="2018-06-29",
        window=14,
        percentile=80,
    )
    df = days.frame()
    tr, va, te = (df[df.split == s].reset_index(drop=True) for s in ("train", "val", "test"))
    assert tr["date"].max() < va["date"].min() and va["date"].max() < te["date"].min()
    assert tr["date"].iloc[-1] == "2018-01-30"  # 2018-01-31 purged: its label needs February's close
    assert va["date"].iloc[0] == "2018-02-01" and te["date"].iloc[-1] == "2018-06-28"
    thresholds = days.meta["thresholds"]
    assert thresholds["up"] == pytest.approx(np.percentile(tr["next_return"], 80))
    assert thresholds["down"] == pytest.approx(np.percentile(tr["next_return"], 20))
    assert tr["extreme_up"].mean() == pytest.approx(0.2, abs=0.01)
    assert (te["extreme_down"] == (te["next_return"] <= thresholds["down"])).all()  # val/test use train thresholds
    btc = pd.read_csv(_recipes() / "prebit" / "data" / "btc_sample.csv.gz")
    close = btc.set_index("Date")["Close"]
    d = te["date"].iloc[3]
    nxt = close.index[close.index.get_loc(d) + 1]
    assert te["next_return"].iloc[3] == pytest.approx(np.log(close[nxt] / close[d]), rel=1e-9)
    fill = days.meta["fill_report"]
    assert fill["filled"]["sp500"] > 50 and fill["missing"]["sp500"] == 0
    x = te["candles"].iloc[3]
    assert x.shape == (14, 16) and np.isfinite(x).all() and te["assets"].iloc[3].shape == (14, 2)
    assert days.meta["sizes"] == {"train": len(tr), "val": len(va), "test": len(te)}


def _recipes():
    from polymodal.recipes import recipe_root

    return recipe_root()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"inputs": ["tweets"]}, "unknown input"),
        ({"inputs": ["text"]}, "needs data.news"),
        ({"inputs": ["assets"], "assets": None}, "needs data.assets"),
        ({"percentile": 40}, "percentile must be in"),
    ],
)
def test_prebit_days_reject_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PreBitDays(**{**SAMPLE, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": "2018-05-01", "val_start": "2018-02-01"}, "start < val_start"),
        ({"start": "2016-01-01", "val_start": "2016-02-01"}, "the train period of .* has no days"),
        ({"start": "2017-07-01", "test_start": "2018-04-15", "end": "2018-04-15"}, "the test period of .* has no days"),
    ],
)
def test_prebit_days_reject_bad_periods(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PreBitDays(**SAMPLE, window=14, **kwargs).frame()


def test_phrasebank_labels_duplicates_and_bad_rows(tmp_path):
    path = tmp_path / "fpb.tsv"
    path.write_text("sentence\tlabel\nUp .\tpositive\nDown .\tnegative\nUp .\tpositive\nFlat .\tneutral\n")
    df = PhraseBank(str(path)).read()
    assert df["sentence"].tolist() == ["Up .", "Down .", "Flat ."] and df["label"].tolist() == [2.0, 0.0, 1.0]
    path.write_text("sentence\tlabel\nUp .\tpositive\nDown .\tbearish\n")
    with pytest.raises(ValueError, match="fpb.tsv: row 2: need a non-empty sentence and a label in"):
        PhraseBank(str(path)).read()


def _tiny_text_model(path):
    from polymodal.model import EmbeddingModel
    from polymodal.plugins.text import TextEncoder

    enc = TextEncoder(
        model={
            "model_type": "bert",
            "vocab_size": 261,
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 32,
            "max_position_embeddings": 128,
        },
        tokenizer="bytes",
        max_length=128,
    )
    return EmbeddingModel(enc).save(path)


def test_tiny_recipe_fit_then_report(tmp_path, repo):
    """Runs recipes/prebit/tiny.yaml (with a tiny random text embedder instead of MiniLM) and
    the report entry point on its predictions."""
    from polymodal.cli import main
    from polymodal.recipes.prebit.report import main as report_main

    cfg = yaml.safe_load((repo / "recipes" / "prebit" / "tiny.yaml").read_text())
    cfg["trainer"]["default_root_dir"] = str(tmp_path / "run")
    days = cfg["data"]["init_args"]["days"]["init_args"]
    days["text_model"] = str(_tiny_text_model(tmp_path / "embedder"))
    days["cache_dir"] = str(tmp_path / "cache")
    cfg["model"]["init_args"]["encoders"]["text"]["init_args"]["num_features"] = 16
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cli = main(["fit", "--config", str(path)])
    # normalisation statistics come from the training period only
    train_windows = np.stack(cli.datamodule.datasets["train"].columns["candles"])  # (N, T, F) candles
    np.testing.assert_allclose(
        cli.model.towers["candles"].normalizer.mean.numpy(),
        train_windows.reshape(-1, 16).mean(0),
        rtol=1e-4,
        atol=1e-6,
    )
    run = tmp_path / "run"
    pred = pd.read_csv(run / "predictions.csv")  # PredictionWriter(after_fit=True): the val + test days
    assert list(pred.columns) == ["date", "split", "close", "next_return", "extreme_up", "extreme_down", "up", "down"]
    assert pred["split"].tolist() == ["val"] * (pred.split == "val").sum() + ["test"] * (pred.split == "test").sum()
    assert pred[["up", "down"]].apply(lambda c: c.between(0, 1).all()).all()
    assert (pred.split == "test").sum() == cli.datamodule.days.meta["sizes"]["test"]
    meta = json.loads((run / "data.json").read_text())
    assert meta["days_with_text"]["test"] > 0 and meta["thresholds"]["percentile"] == 80
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1  # news embeddings in the one FeatureCache
    # second run folder (the sweep's <run>/seed0 layout): the same model family on other inputs
    cfg2 = yaml.safe_load(path.read_text())
    cfg2["trainer"]["default_root_dir"] = str(tmp_path / "candles" / "seed0")
    cfg2["data"]["init_args"]["days"]["init_args"]["inputs"] = ["candles"]
    cfg2["model"]["init_args"]["encoders"] = {"candles": cfg["model"]["init_args"]["encoders"]["candles"]}
    (tmp_path / "tiny2.yaml").write_text(yaml.safe_dump(cfg2))
    main(["fit", "--config", str(tmp_path / "tiny2.yaml")])
    out = tmp_path / "report"
    pytest.importorskip("matplotlib", reason="the backtest report's plot needs matplotlib")
    assert report_main(["report", "--runs", str(run), str(tmp_path / "candles" / "seed0"), "--out", str(out)]) == 0
    ablation = pd.read_csv(out / "ablation.csv")
    assert set(ablation["method"]) == {"single", "soft_vote", "stacked"} and set(ablation["models"]) >= {"candles"}
    assert len(ablation) == 2 * 4  # two tasks x (2 singles + soft vote + stacked)
    sweep = pd.read_csv(out / "backtest.csv")
    assert {"buy_and_hold", "ma_crossover_10_30", "avoid_down", "long_up"} <= set(sweep["strategy"])
    hold = sweep[sweep.strategy == "buy_and_hold"].iloc[0]
    test = pred[pred.split == "test"]
    assert hold["cumulative_return"] == pytest.approx(
        np.prod(np.expm1(test["next_return"]) + 1) * (1 - 0.001) - 1, rel=1e-3
    )
    assert (out / "equity.png").stat().st_size > 1000 and (out / "equity.csv").exists()


@pytest.mark.slow
def test_phrasebank_split_is_stratified_and_disjoint(shared_data):
    from polymodal.data import Split

    bank = PhraseBank(str(shared_data / "fin_sentiment" / "fpb_sentences_50Agree.tsv.gz"))
    split = {"sizes": [0.8, 0.1, 0.1], "key": "sentence", "method": "stratified", "stratify": "label"}
    parts = {s: Split(source=bank, part=s, **split).read() for s in ("train", "val", "test")}
    sets = {s: set(df["sentence"]) for s, df in parts.items()}
    assert not (sets["train"] & sets["test"]) and not (sets["train"] & sets["val"]) and not (sets["val"] & sets["test"])
    assert sum(len(v) for v in sets.values()) == 4838  # every unique sentence in exactly one part
    assert abs(int((parts["test"]["label"] == 1).sum()) - 288) <= 2  # neutral: 10 % of 2,879


@pytest.mark.slow
def test_real_prebit_data_builds(shared_data, repo):
    cfg = yaml.safe_load((repo / "recipes" / "prebit" / "assets.yaml").read_text())["data"]["init_args"]["days"]
    cfg = cfg["init_args"]
    for key in ("prices", "news"):
        cfg[key] = str(shared_data / cfg[key].removeprefix("data://"))
    cfg["assets"] = {k: str(shared_data / v.removeprefix("data://")) for k, v in cfg["assets"].items()}
    cfg["inputs"] = ["candles", "assets"]
    days = PreBitDays(**cfg)
    df = days.frame()
    assert days.meta["fill_report"]["missing"]["vix"] == 0 and days.meta["fill_report"]["filled"]["vix"] > 400
    assert days.meta["sizes"] == {"train": 822, "val": 242, "test": 263}  # as before the migration
    assert df[df.split == "train"]["extreme_down"].mean() == pytest.approx(0.1, abs=0.002)


@pytest.mark.parametrize("name", ["candles", "assets", "text", "fused", "finance_minilm", "tiny"])
def test_every_prebit_config_parses(name, repo, capsys):
    """Each shipped YAML resolves every class and argument (real runs need ../shared/data)."""
    from polymodal.cli import main

    with pytest.raises(SystemExit) as done:
        main(["fit", "--config", str(repo / "recipes" / "prebit" / f"{name}.yaml"), "--print_config"])
    assert done.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"] == "polymodal.PredictionSystem"
    if name != "finance_minilm":
        assert printed["trainer"]["callbacks"][-1]["init_args"]["after_fit"] is True
        assert [t["target"] for t in printed["model"]["init_args"]["tasks"]] == ["extreme_up", "extreme_down"]


def test_sweep_chains_the_text_models_to_the_finance_encoder_export(tmp_path, capsys):
    from polymodal.cli import main
    from polymodal.experiments import load_sweep, run_command

    sweep = load_sweep("recipes/prebit/sweep.yaml")
    runs = {r.name: r for r in sweep.runs}
    assert list(runs)[0] == "finance-minilm" and all(r.test for r in sweep.runs)  # the encoder first
    with pytest.raises(SystemExit):
        main([*run_command(runs["finance-minilm"], 0, str(tmp_path)), "--print_config"])
    export = yaml.safe_load(capsys.readouterr().out)["trainer"]["callbacks"][-1]
    assert export["class_path"].endswith("ExportModel")
    for name in ("text", "fused", "text-lag1"):
        assert f"--data.init_args.days.init_args.text_model={export['init_args']['dirpath']}" in run_command(
            runs[name], 0, str(tmp_path)
        )
    assert "--data.init_args.days.init_args.text_model=minilm-l6" in run_command(runs["text-minilm"], 0, "x")
