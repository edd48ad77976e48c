"""PreBit recipe: labels, splits, daily text sets, ensembles, backtest, and the tiny end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from polymodal.recipes.prebit.data import PreBitDataModule
from polymodal.recipes.prebit.report import backtest, best_f1_threshold, fit_logistic, ma_crossover_positions
from polymodal.recipes.prebit.text import daily_sets

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


def test_fit_logistic_matches_sklearn():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y = (rng.uniform(size=400) < 1 / (1 + np.exp(-(0.5 + 2 * x[:, 0] - x[:, 1])))).astype(float)
    w = fit_logistic(x, y, l2=1.0)
    lm = pytest.importorskip("sklearn.linear_model")
    ref = lm.LogisticRegression(C=1.0, tol=1e-12, max_iter=10_000).fit(x, y)
    np.testing.assert_allclose(w, np.r_[ref.intercept_, ref.coef_[0]], atol=1e-4)
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
    dm = PreBitDataModule(
        **SAMPLE,
        inputs=["candles", "assets"],
        start="2017-07-01",
        val_start="2018-02-01",
        test_start="2018-04-15",
        end="2018-06-29",
        window=14,
        percentile=80,
    )
    dm.build()
    tr, va, te = (dm.frames[s] for s in ("train", "val", "test"))
    assert tr["date"].max() < va["date"].min() and va["date"].max() < te["date"].min()
    assert tr["date"].iloc[-1] == "2018-01-30"  # 2018-01-31 purged: its label needs February's close
    assert dm.thresholds["up"] == pytest.approx(np.percentile(tr["next_return"], 80))
    assert dm.thresholds["down"] == pytest.approx(np.percentile(tr["next_return"], 20))
    assert tr["extreme_up"].mean() == pytest.approx(0.2, abs=0.01)
    btc = pd.read_csv(dm.prices.replace("package://", str(_recipes()) + "/"))
    close = btc.set_index("Date")["Close"]
    d = te["date"].iloc[3]
    nxt = close.index[close.index.get_loc(d) + 1]
    assert te["next_return"].iloc[3] == pytest.approx(np.log(close[nxt] / close[d]), rel=1e-9)
    assert dm.fill_report.filled["sp500"] > 50 and dm.fill_report.missing["sp500"] == 0
    dims = dm.input_dims()
    assert dims == {"candles": 16, "assets": 2}
    x = dm.datasets["test"].columns[0][3]
    assert x.shape == (14, 16) and np.isfinite(x).all()


def _recipes():
    from polymodal.recipes import recipe_root

    return recipe_root()


def test_prebit_datamodule_rejects_bad_settings():
    with pytest.raises(ValueError, match="unknown input"):
        PreBitDataModule(**SAMPLE, inputs=["tweets"])
    with pytest.raises(ValueError, match="needs data.news"):
        PreBitDataModule(**SAMPLE, inputs=["text"])
    dm = PreBitDataModule(**SAMPLE, start="2018-05-01", val_start="2018-02-01")
    with pytest.raises(ValueError, match="start < val_start"):
        dm.build()


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
    cfg["data"]["init_args"]["text_model"] = str(_tiny_text_model(tmp_path / "embedder"))
    cfg["data"]["init_args"]["cache_dir"] = str(tmp_path / "cache")
    cfg["model"]["init_args"]["encoders"]["text"]["init_args"]["num_features"] = 16
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cli = main(["fit", "--config", str(path)])
    # normalisation statistics come from the training period only
    train_windows = np.stack(cli.datamodule.datasets["train"].columns[0])  # (N, T, F) candles
    np.testing.assert_allclose(
        cli.model.encoders["candles"].normalizer.mean.numpy(),
        train_windows.reshape(-1, 16).mean(0),
        rtol=1e-4,
        atol=1e-6,
    )
    run = tmp_path / "run"
    pred = pd.read_csv(run / "predictions.csv")
    assert set(pred["split"]) == {"val", "test"}
    assert pred[["p_up", "p_down"]].apply(lambda c: c.between(0, 1).all()).all()
    meta = json.loads((run / "data.json").read_text())
    assert meta["days_with_text"]["test"] > 0 and meta["thresholds"]["percentile"] == 80
    assert list((tmp_path / "cache").glob("news-embeddings-*.npy"))  # embeddings cached
    # second run folder: the same model family on other inputs, to exercise the ensembles
    cfg2 = yaml.safe_load(path.read_text())
    cfg2["trainer"]["default_root_dir"] = str(tmp_path / "run2")
    cfg2["data"]["init_args"]["inputs"] = ["candles"]
    cfg2["model"]["init_args"]["encoders"] = {"candles": cfg["model"]["init_args"]["encoders"]["candles"]}
    (tmp_path / "tiny2.yaml").write_text(yaml.safe_dump(cfg2))
    main(["fit", "--config", str(tmp_path / "tiny2.yaml")])
    out = tmp_path / "report"
    pytest.importorskip("matplotlib", reason="the backtest report's plot needs matplotlib")
    assert report_main(["report", "--runs", str(run), str(tmp_path / "run2"), "--out", str(out)]) == 0
    ablation = pd.read_csv(out / "ablation.csv")
    assert set(ablation["method"]) == {"single", "soft_vote", "stacked"}
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
    from polymodal.recipes.prebit.fin_sentiment import PhraseBankDataModule

    dm = PhraseBankDataModule(str(shared_data / "fin_sentiment" / "fpb_sentences_50Agree.tsv.gz"))
    sets = {s: set(dm.load_split(s).columns[0]) for s in ("train", "val", "test")}
    assert not (sets["train"] & sets["test"]) and not (sets["train"] & sets["val"])
    assert sum(len(v) for v in sets.values()) == 4838  # unique sentences
    assert dm.counts["test"]["neutral"] == round(2879 * 0.1) or abs(dm.counts["test"]["neutral"] - 288) <= 2


@pytest.mark.slow
def test_real_prebit_data_builds(shared_data, repo):
    cfg = yaml.safe_load((repo / "recipes" / "prebit" / "assets.yaml").read_text())["data"]["init_args"]
    root = shared_data.parent.parent
    for key in ("prices", "news"):
        cfg[key] = str(root / cfg[key].removeprefix("../"))
    cfg["assets"] = {k: str(root / v.removeprefix("../")) for k, v in cfg["assets"].items()}
    cfg["inputs"] = ["candles", "assets"]
    dm = PreBitDataModule(**cfg)
    dm.build()
    assert dm.fill_report.missing["vix"] == 0 and dm.fill_report.filled["vix"] > 400
    assert len(dm.frames["test"]) == 263 and dm.frames["train"]["extreme_down"].mean() == pytest.approx(0.1, abs=0.002)


@pytest.mark.parametrize("name", ["candles", "assets", "text", "fused", "finance_minilm", "tiny"])
def test_every_prebit_config_parses(name, repo, capsys):
    """Each shipped YAML resolves every class and argument (real runs need ../shared/data)."""
    from polymodal.cli import main

    with pytest.raises(SystemExit) as done:
        main(["fit", "--config", str(repo / "recipes" / "prebit" / f"{name}.yaml"), "--print_config"])
    assert done.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"] == "polymodal.systems.prediction.PredictionSystem"
