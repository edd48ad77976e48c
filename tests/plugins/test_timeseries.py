"""Time-series plugin: indicators (hand values and the `ta` peer), I/O errors, alignment,
windows, normalisation and encoders."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest
import torch

from polymodal.plugins.timeseries import (
    TimeSeriesCNN,
    TimeSeriesProcessor,
    TimeSeriesRNN,
    TimeSeriesTransformer,
    align,
    check_gaps,
    compute_indicators,
    make_windows,
    read_series,
)
from polymodal.plugins.timeseries import indicators as ind

CLOSE = np.array([10.0, 11.0, 12.0, 11.0, 13.0, 12.0])


# ------------------------------------------------------------ hand-computed values
def test_sma_ema_hand_values():
    np.testing.assert_allclose(ind.sma(CLOSE, 3), [np.nan, np.nan, 11.0, 34 / 3, 12.0, 12.0])
    # EMA(3): alpha = 0.5, seeded with the first value, NaN for 2 warm-up bars.
    e = [10.0]
    for x in CLOSE[1:]:
        e.append(0.5 * x + 0.5 * e[-1])
    np.testing.assert_allclose(ind.ema(CLOSE, 3), [np.nan, np.nan, *e[2:]])


def test_rsi_hand_values():
    # diffs: 0(first), 1, 1, -1, 2, -1; Wilder alpha=1/2
    up, dn = [0.0], [0.0]
    for d in [1, 1, -1, 2, -1]:
        up.append(0.5 * max(d, 0) + 0.5 * up[-1])
        dn.append(0.5 * max(-d, 0) + 0.5 * dn[-1])
    expected = [np.nan] + [100.0 if d == 0 else 100 - 100 / (1 + u / d) for u, d in zip(up[1:], dn[1:])]
    np.testing.assert_allclose(ind.rsi(CLOSE, 2), expected)
    assert ind.rsi(np.arange(1.0, 20.0), 5)[-1] == 100.0  # only gains


def test_macd_bollinger_roc_logret_hand_values():
    m = ind.macd(CLOSE, fast=2, slow=3, signal=2)
    np.testing.assert_allclose(m["macd"], ind.ema(CLOSE, 2) - ind.ema(CLOSE, 3))
    np.testing.assert_allclose(m["macd_hist"], m["macd"] - m["macd_signal"])
    b = ind.bollinger(CLOSE, window=3, num_std=2.0)
    w = CLOSE[3:6]
    sd = np.std(w)
    assert b["bb_upper"][5] == pytest.approx(w.mean() + 2 * sd)
    assert b["bb_pct_b"][5] == pytest.approx((12.0 - (w.mean() - 2 * sd)) / (4 * sd))
    assert ind.roc(CLOSE, 2)[4] == pytest.approx((13 - 12) / 12 * 100)
    assert ind.log_returns(CLOSE)[1] == pytest.approx(np.log(11 / 10))
    assert np.isnan(ind.log_returns(CLOSE)[0])


def test_atr_obv_stochastic_hand_values():
    high = np.array([11.0, 12.0, 13.0, 12.5])
    low = np.array([9.0, 10.5, 11.0, 10.0])
    close = np.array([10.0, 11.0, 12.0, 11.0])
    tr = ind.true_range(high, low, close)
    np.testing.assert_allclose(tr, [2.0, 2.0, 2.0, 2.5])  # bar 3: max(2.5, 0.5, 2.0)
    a = ind.atr(high, low, close, window=2)
    np.testing.assert_allclose(a, [np.nan, 2.0, 2.0, (2.0 * 1 + 2.5) / 2])
    np.testing.assert_allclose(ind.obv(close, [5, 6, 7, 8]), [5, 11, 18, 10])
    s = ind.stochastic(high, low, close, window=2, smooth=2)
    k1 = 100 * (11 - 9) / (12 - 9)
    k2 = 100 * (12 - 10.5) / (13 - 10.5)
    np.testing.assert_allclose(s["stoch_k"][1:3], [k1, k2])
    assert s["stoch_d"][2] == pytest.approx((k1 + k2) / 2)
    assert np.isnan(s["stoch_d"][1])


def test_realized_volatility_hand_value():
    r = np.log(CLOSE[1:] / CLOSE[:-1])
    rv = ind.realized_volatility(CLOSE, window=3, periods_per_year=365)
    assert rv[3] == pytest.approx(np.std(r[0:3], ddof=1) * np.sqrt(365))
    assert np.isnan(rv[2])
    with pytest.raises(ValueError, match="window"):
        ind.sma(CLOSE, 0)


# ------------------------------------------------------------------------ vs ta
def _walk(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    h = c * (1 + rng.uniform(0, 0.01, n))
    lo = c * (1 - rng.uniform(0, 0.01, n))
    v = rng.integers(1, 1000, n).astype(float)
    return c, h, lo, v


def _same(ours, theirs, tol=1e-8):
    a, b = np.asarray(ours, float), np.asarray(theirs, float)
    both = np.isfinite(a) & np.isfinite(b)
    assert both.sum() > 0.9 * len(a)
    np.testing.assert_allclose(a[both], b[both], rtol=0, atol=tol)
    # warm-up NaNs coincide (ATR excepted, where ta writes 0)
    return (np.isnan(a) != np.isnan(b)).sum()


def test_indicators_match_ta_package():
    ta = pytest.importorskip("ta")
    c, h, lo, v = _walk()
    C, H, L, V = map(pd.Series, (c, h, lo, v))
    assert _same(ind.sma(c, 20), ta.trend.sma_indicator(C, 20)) == 0
    assert _same(ind.ema(c, 20), ta.trend.ema_indicator(C, 20)) == 0
    assert _same(ind.rsi(c, 14), ta.momentum.rsi(C, 14)) == 0
    m, M = ind.macd(c), ta.trend.MACD(C)
    assert _same(m["macd"], M.macd()) == 0
    assert _same(m["macd_signal"], M.macd_signal()) == 0
    assert _same(m["macd_hist"], M.macd_diff()) == 0
    b, B = ind.bollinger(c), ta.volatility.BollingerBands(C)
    assert _same(b["bb_upper"], B.bollinger_hband()) == 0
    assert _same(b["bb_lower"], B.bollinger_lband()) == 0
    assert _same(b["bb_pct_b"], B.bollinger_pband()) == 0
    ours_atr, ta_atr = ind.atr(h, lo, c, 14), ta.volatility.average_true_range(H, L, C, 14).to_numpy()
    _same(ours_atr[13:], ta_atr[13:])
    assert np.isnan(ours_atr[:13]).all() and (ta_atr[:13] == 0).all()  # documented difference
    assert _same(ind.obv(c, v), ta.volume.on_balance_volume(C, V)) == 0
    s, S = ind.stochastic(h, lo, c), ta.momentum.StochasticOscillator(H, L, C)
    assert _same(s["stoch_k"], S.stoch()) == 0
    assert _same(s["stoch_d"], S.stoch_signal()) == 0
    assert _same(ind.roc(c, 12), ta.momentum.roc(C, 12)) == 0
    assert _same(ind.log_returns(c) * 100, ta.others.daily_log_return(C)) == 0


def test_compute_indicators_table():
    c, h, lo, v = _walk(200)
    df = pd.DataFrame({"Open": c, "High": h, "Low": lo, "Close": c, "Volume": v})
    out = compute_indicators(df, ["rsi", {"name": "sma", "window": 5}, "macd"])
    assert list(out.columns) == ["rsi", "sma_5", "macd", "macd_signal", "macd_hist"]
    np.testing.assert_allclose(out["sma_5"], ind.sma(c, 5))
    with pytest.raises(ValueError, match="unknown indicator 'nope'"):
        compute_indicators(df, ["nope"])
    with pytest.raises(KeyError, match="needs column"):
        compute_indicators(df[["Close"]], ["atr"])


# --------------------------------------------------------------------------- I/O
def _write(tmp_path, name, text):
    p = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(p, "wt") as fh:
            fh.write(text)
    else:
        p.write_text(text)
    return p


def test_read_series_csv_gz_and_parquet(tmp_path):
    p = _write(tmp_path, "a.csv.gz", "Date,Close,Volume\n2020-01-01,1,10\n2020-01-02,2,20\n2020-01-03,3,30\n")
    df = read_series(p)
    assert isinstance(df.index, pd.DatetimeIndex) and list(df.columns) == ["Close", "Volume"]
    assert df["Close"].tolist() == [1.0, 2.0, 3.0]
    pytest.importorskip("pyarrow")
    df.reset_index().to_parquet(tmp_path / "a.parquet")
    back = read_series(tmp_path / "a.parquet", date_column="date")
    pd.testing.assert_frame_equal(back, df)


@pytest.mark.parametrize(
    ("body", "kwargs", "message"),
    [
        ("2020-01-01,1\n2020-01-02,nan\n2020-01-03,3\n", {}, r"NaN in column 'Close' at row 2 \(2020-01-02\)"),
        ("2020-01-01,1\n2020-01-02,inf\n", {}, r"inf in column 'Close' at row 2"),
        ("2020-01-02,1\n2020-01-01,2\n2020-01-03,3\n", {}, r"not sorted: row 2 \(2020-01-01\) comes after row 1"),
        ("2020-01-01,1\n2020-01-02,2\n2020-01-02,3\n", {}, r"duplicate timestamp 2020-01-02 00:00:00 at row\(s\) 2, 3"),
        ("2020-01-01,1\n2020-01-02,2\n", {"min_rows": 5}, r"too short: 2 row\(s\), need at least 5"),
        ("2020-01-01,1\nyesterday,2\n", {}, r"unparsable date\(s\) at row\(s\) 2 \(first: 'yesterday'\)"),
    ],
)
def test_read_series_errors_name_file_and_rows(tmp_path, body, kwargs, message):
    p = _write(tmp_path, "bad.csv", "Date,Close\n" + body)
    with pytest.raises(ValueError, match=message) as err:
        read_series(p, **kwargs)
    assert "bad.csv" in str(err.value)


def test_read_series_documented_handling(tmp_path):
    p = _write(tmp_path, "x.csv", "Date,Close\n2020-01-02,2\n2020-01-01,1\n2020-01-02,5\n")
    df = read_series(p, on_unsorted="sort", on_duplicate="last")
    assert df["Close"].tolist() == [1.0, 5.0]


def test_check_gaps():
    idx = pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-06"])
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0]}, index=idx)
    with pytest.raises(ValueError, match=r"gap of 4 D-periods between row 2 \(2020-01-02\) and row 3"):
        check_gaps(df, "D", max_gap=1, source="f.csv")
    biz = pd.DataFrame({"x": [1.0, 2.0]}, index=pd.to_datetime(["2020-01-03", "2020-01-06"]))  # Fri -> Mon
    check_gaps(biz, "B", max_gap=1)


def test_align_forward_fills_with_limit_never_backfills():
    days = pd.date_range("2020-01-01", periods=10, freq="D")
    btc = pd.DataFrame({"Close": np.arange(10.0)}, index=days)
    # index trades on days 1, 2, 8 only (0-based); day 0 has no prior value
    spx = pd.DataFrame({"Close": [100.0, 101.0, 108.0]}, index=days[[1, 2, 8]])
    out, report = align({"btc": btc, "spx": spx}, calendar="btc", ffill_limit=3)
    col = out["spx_Close"]
    assert np.isnan(col.iloc[0])  # never backward-filled
    assert col.iloc[3:6].tolist() == [101.0] * 3  # filled up to the limit
    assert col.iloc[6:8].isna().all()  # beyond the limit: still missing
    assert report.filled["spx"] == 4 and report.missing["spx"] == 3  # days 3-5 and 9
    assert report.filled_dates["spx"][0] == "2020-01-04"
    assert "4 day(s) forward-filled" in report.summary()
    # a split boundary on day 4: filling restarts there, nothing crosses it
    out2, report2 = align({"btc": btc, "spx": spx}, calendar="btc", ffill_limit=3, boundaries=[days[4]])
    assert out2["spx_Close"].iloc[3] == 101.0 and np.isnan(out2["spx_Close"].iloc[4])
    assert report2.filled["spx"] == 2  # days 3 and 9


# ------------------------------------------------------------ windows / encoders
def test_make_windows_and_errors():
    df = pd.DataFrame({"a": np.arange(6.0), "b": np.arange(6.0) * 10}, index=pd.date_range("2020-01-01", periods=6))
    w = make_windows(df, 3, ends=[2, 5])
    assert w.shape == (2, 3, 2) and w.dtype == np.float32
    np.testing.assert_array_equal(w[1, :, 0], [3, 4, 5])
    with pytest.raises(ValueError, match="ending at row 2 needs rows 0..2"):
        make_windows(df, 3, ends=[1], source="t.csv")
    df.iloc[4, 1] = np.nan
    with pytest.raises(ValueError, match=r"t.csv: NaN/inf in column 'b' at row 5 \(2020-01-05"):
        make_windows(df, 3, ends=[5], source="t.csv")
    with pytest.raises(ValueError, match="too short"):
        make_windows(df.iloc[:2], 3)


def test_processor_pads_truncates_and_validates():
    proc = TimeSeriesProcessor(2, max_length=3)
    batch = proc([np.ones((2, 2)), np.arange(10.0).reshape(5, 2)])
    assert batch["values"].shape == (2, 3, 2)
    assert batch["mask"].tolist() == [[True, True, False], [True, True, True]]
    assert batch["values"][1, 0].tolist() == [4.0, 5.0]  # kept the most recent steps
    with pytest.raises(ValueError, match="expected 2 features"):
        proc.validate(np.ones((3, 4)))
    with pytest.raises(ValueError, match="step 2, feature 1"):
        proc.validate(np.array([[1.0, 1.0], [np.nan, 1.0]]))
    with pytest.raises(ValueError, match="empty window"):
        proc([np.zeros((0, 2))])


@pytest.mark.parametrize(
    "make",
    [
        lambda: TimeSeriesCNN(3, hidden_dim=8, max_length=6, presence_channel=True),
        lambda: TimeSeriesRNN(3, hidden_dim=8, cell="gru"),
        lambda: TimeSeriesRNN(3, hidden_dim=8, cell="lstm", num_layers=2),
        lambda: TimeSeriesTransformer(3, hidden_dim=8, num_heads=2, max_length=6),
    ],
)
def test_encoders_features_and_save_load(tmp_path, make):
    from polymodal.model import EmbeddingModel

    torch.manual_seed(0)
    enc = make()
    rng = np.random.default_rng(0)
    train = rng.normal(5.0, 3.0, size=(20, 6, 3))
    enc.fit_normalizer(train)
    assert enc.normalizer_fitted
    np.testing.assert_allclose(enc.normalizer.mean.numpy(), train.reshape(-1, 3).mean(0), rtol=1e-5)
    windows = [rng.normal(size=(6, 3)), rng.normal(size=(4, 3))]
    enc.eval()
    feats = enc(enc.processor(windows))
    assert feats.sequence.shape == (2, 6, 8) and feats.mask.sum(1).tolist() == [6, 4]
    model = EmbeddingModel(enc)
    emb = model.encode(windows)
    model.save(tmp_path / "m")
    back = EmbeddingModel.from_folder(tmp_path / "m")
    assert back.encoder.normalizer_fitted  # statistics travel with the weights
    np.testing.assert_allclose(back.encode(windows), emb, rtol=1e-5, atol=1e-6)


def test_cnn_presence_channel_marks_empty_windows():
    enc = TimeSeriesCNN(2, hidden_dim=5, allow_empty=True, normalize=False, presence_channel=True).eval()
    feats = enc(enc.processor([np.zeros((0, 2)), np.ones((3, 2))]))
    assert feats.mask[0].sum() == 0
    from polymodal.poolers import MeanPooler

    pooled = MeanPooler()(feats)
    assert pooled[0, -1] == 0 and pooled[1, -1] == 1  # "no text" is visible to the head


def test_plugin_registers_timeseries_modality():
    from polymodal.plugins_manager import get_modality

    mod = get_modality("timeseries")
    assert TimeSeriesCNN in mod.encoders and TimeSeriesTransformer in mod.encoders


@pytest.mark.slow
def test_real_btc_files_load_and_align(shared_data):
    btc = read_series(shared_data / "btc" / "btc_usd_daily_yahoo.csv.gz")
    check_gaps(btc, "D", max_gap=1, source="btc")
    spx = read_series(shared_data / "btc" / "sp500_gspc_daily_yahoo.csv.gz")
    eth = read_series(
        shared_data / "btc" / "eth_usd_adjclose_2019_2023.csv.gz", rename={"Adjusted": "Close"}, columns=["Close"]
    )
    assert btc.loc["2018-01-02", "Close"] == pytest.approx(14982.10, rel=1e-6)
    out, report = align({"btc": btc, "spx": spx, "eth": eth}, calendar="btc", ffill_limit=3, columns={"spx": ["Close"]})
    assert report.filled["spx"] > 500  # weekends
    assert out.loc["2018-01-06", "spx_Close"] == out.loc["2018-01-05", "spx_Close"]
    feats = compute_indicators(btc)
    assert feats.shape[0] == len(btc) and feats["rsi"].iloc[20:].between(0, 100).all()


# ------------------------------------------------------------ backends: TA-Lib vs pure numpy
def _all_outputs(c, h, lo, v):
    out = {"sma": ind.sma(c, 20), "ema": ind.ema(c, 20), "rsi": ind.rsi(c, 14), "roc": ind.roc(c, 12)}
    out.update(ind.macd(c))
    out.update(ind.bollinger(c))
    out.update(ind.stochastic(h, lo, c))
    out.update(atr=ind.atr(h, lo, c, 14), obv=ind.obv(c, v), rv=ind.realized_volatility(c, 20))
    out.update(wilder_long=ind.ema(c, 199), min3=ind._rolling(lo, 3, "min"), max4=ind._rolling(h, 4, "max"))
    return out


@pytest.fixture()
def backend():
    yield ind.set_backend
    ind.set_backend("auto")


@pytest.mark.parametrize("holes", [False, True])
def test_talib_backend_equals_numpy_backend(backend, holes):
    pytest.importorskip("talib")
    c, h, lo, v = _walk(5000, seed=3)
    if holes:  # leading and interior NaN: TA-Lib would carry them forward, so these inputs use numpy
        c, h = c.copy(), h.copy()
        c[:5], c[2000], h[3000] = np.nan, np.nan, np.nan
    backend("numpy")
    assert ind.active_backend() == "numpy"
    ref = _all_outputs(c, h, lo, v)
    backend("talib")
    assert ind.active_backend() == "talib"
    got = _all_outputs(c, h, lo, v)
    for name in ref:
        np.testing.assert_array_equal(np.isnan(got[name]), np.isnan(ref[name]), err_msg=name)
        ok = np.isfinite(ref[name])
        if not ok.any():
            continue
        scale = np.maximum(1.0, np.abs(ref[name][ok]))
        assert np.max(np.abs(got[name][ok] - ref[name][ok]) / scale) < 1e-9, name


def test_backend_falls_back_without_talib(backend, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "talib", None)  # import talib -> ImportError
    backend("auto")
    assert ind.active_backend() == "numpy"
    c, h, lo, v = _walk(300)
    assert np.isfinite(ind.rsi(c)[14:]).all()
    with pytest.raises(ImportError, match="pip install TA-Lib"):
        backend("talib")
    with pytest.raises(ValueError, match="'auto', 'talib' or 'numpy'"):
        backend("fast")


@pytest.mark.parametrize("fn", ["mean", "std", "min", "max", "sum"])
def test_public_rolling_matches_pandas(fn):
    from polymodal.plugins.timeseries.indicators import rolling

    x = np.random.default_rng(0).normal(size=200).cumsum()
    expected = getattr(pd.Series(x).rolling(7), fn)(**({"ddof": 0} if fn == "std" else {})).to_numpy()
    np.testing.assert_allclose(rolling(x, 7, fn), expected, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="fn must be"):
        rolling(x, 7, "median")
    with pytest.raises(ValueError, match="window must be a positive integer"):
        rolling(x, 0, fn)
