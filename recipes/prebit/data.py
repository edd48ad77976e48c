"""PreBit data: daily BTC candles + indicators, correlated assets, daily news sets, extreme-move labels.

Every example is one day ``d`` (prediction made at ``d``'s close) with up to three inputs,

* ``candles``: a ``(window, 16)`` block of BTC candlestick features and technical indicators,
* ``assets``: a ``(window, A)`` block of correlated assets' daily log returns aligned on Bitcoin's every-day
  calendar (forward-filled for at most ``ffill_limit`` days, never backward-filled),
* ``text``: the set of news embeddings dated ``d`` and the ``text_days_back`` days before (empty on days
  without news: the encoder sees a mask, not zeros passed off as data),

and the targets ``extreme_up`` / ``extreme_down`` for the next day's log return ``r = log(close[d+1] /
close[d])``: above / below the ``percentile`` / ``100 - percentile`` percentile of ``r`` over the *training*
period only. Periods are chronological (:func:`polymodal.data.splits.split_keys`, ``method="chronological"``):
``[start, val_start)``, ``[val_start, test_start)``, ``[test_start, end]``; the last day of each is purged (its
label needs the next period's first close). Input normalisers fit on the training period only (the data
module hands its windows to the System's ``fit_input_statistics``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.data import FeatureCache, Source, Table, TableDataModule, check_columns, read_table, split_keys
from polymodal.io import atomic_path

__all__ = ["CANDLE_FEATURES", "Period", "PhraseBank", "PreBitDataModule", "PreBitDays", "daily_sets"]

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
#: Candlestick/indicator features (stationary transforms of OHLCV), in column order.
CANDLE_FEATURES = [
    "log_return", "log_range", "log_body", "log_volume_change", "rsi", "macd_hist", "bb_pct_b", "atr",
    "stoch_k", "stoch_d", "roc", "rv_7", "rv_30", "sma_7_gap", "sma_30_gap", "obv_slope",
]  # fmt: skip


def candle_features(ohlcv: Any) -> Any:
    """Candlestick and indicator features of a daily OHLCV frame (causal: row ``d`` uses data up to ``d``)."""
    import pandas as pd

    from polymodal.plugins.timeseries import indicators as ind

    o, h, lo, c, v = (ohlcv[k].to_numpy(np.float64) for k in ("Open", "High", "Low", "Close", "Volume"))
    macd, st, ob = ind.macd(c), ind.stochastic(h, lo, c), ind.obv(c, v)
    obv_slope = np.full_like(c, np.nan)
    obv_slope[7:] = (ob[7:] - ob[:-7]) / np.maximum(ind.rolling(v, 7, "sum")[7:], 1.0)
    feats = {
        "log_return": ind.log_returns(c),
        "log_range": np.log(h / lo),
        "log_body": np.log(c / o),
        "log_volume_change": np.r_[np.nan, np.diff(np.log(np.maximum(v, 1.0)))],
        "rsi": ind.rsi(c, 14) / 100.0,
        "macd_hist": macd["macd_hist"] / c,
        "bb_pct_b": ind.bollinger(c, 20)["bb_pct_b"],
        "atr": ind.atr(h, lo, c, 14) / c,
        "stoch_k": st["stoch_k"] / 100.0,
        "stoch_d": st["stoch_d"] / 100.0,
        "roc": ind.roc(c, 12) / 100.0,
        "rv_7": ind.realized_volatility(c, 7),
        "rv_30": ind.realized_volatility(c, 30),
        "sma_7_gap": c / ind.sma(c, 7) - 1.0,
        "sma_30_gap": c / ind.sma(c, 30) - 1.0,
        "obv_slope": obv_slope,
    }
    return pd.DataFrame({k: feats[k] for k in CANDLE_FEATURES}, index=ohlcv.index)


def daily_sets(days: Any, news_dates: Any, emb: np.ndarray, days_back: int = 0, max_texts: int = 32, lag: int = 0):
    """For each day ``d``, the embeddings of articles dated in ``[d - lag - days_back, d - lag]`` (the most recent
    ``max_texts``; ``news_dates`` sorted, normalised to midnight): one ``(n_d, D)`` array per day."""
    import pandas as pd

    nd = pd.DatetimeIndex(news_dates).values.astype("datetime64[D]")
    dd = pd.DatetimeIndex(days).values.astype("datetime64[D]")
    hi = np.searchsorted(nd, dd - np.timedelta64(lag, "D"), side="right")
    lo = np.maximum(np.searchsorted(nd, dd - np.timedelta64(lag + days_back, "D"), side="left"), hi - max_texts)
    return [emb[a:b] for a, b in zip(lo, hi)]


def news_embeddings(path: str, model: str, cache_dir: str | None, max_chars: int = 400) -> tuple[Any, np.ndarray]:
    """Dated news (``date, headline[, content]``), sorted by date, and the embeddings of headline + the start of
    the body, computed once per (text, model weights) through :class:`~polymodal.data.FeatureCache`."""
    import pandas as pd

    import polymodal

    df = read_table(path)
    check_columns(df, ["date", "headline"], path)
    dates = pd.to_datetime(df["date"], errors="coerce")
    bad = np.flatnonzero(dates.isna().to_numpy())
    if len(bad):
        raise ValueError(f"{path}: row {bad[0] + 1}, column 'date': unparsable date {df['date'].iloc[bad[0]]!r}")
    df = df.assign(date=dates.dt.normalize()).sort_values("date", kind="stable").reset_index(drop=True)
    body = df["content"].fillna("").astype(str) if "content" in df.columns else [""] * len(df)
    texts = [(f"{h}".strip() + ". " + " ".join(b.split())[:max_chars]).strip() for h, b in zip(df["headline"], body)]
    return df, FeatureCache(polymodal.load(model), cache_dir).encode(texts, batch_size=32, normalize=True)


class PreBitDays(Source):
    """Every usable day of ``[start, end]``: input windows, ``date``, ``split``, ``close``, ``next_return``,
    ``extreme_up`` / ``extreme_down`` (see the module docstring).

    Args:
        prices: daily BTC OHLCV table (``Date, Open, High, Low, Close, Volume``).
        assets: asset name -> daily table with ``Date`` and ``Close`` (its log returns are features).
        news: dated news table (``date, headline[, content]``) for the ``text`` input.
        text_model: embedding model for the news: short name (``minilm-l6``) or a saved model folder.
        inputs: which inputs the model reads, in order: any of ``candles``, ``assets``, ``text``.
        start, val_start, test_start, end: period boundaries (ISO dates, ``end`` inclusive).
        window: days per candles/assets window.
        percentile: extreme-move percentile of training returns (90: top/bottom 10 %).
        text_days_back: news of the preceding days also in a day's set.
        text_lag: shift the news window back (1: only news dated before ``d``; news dates are the outlet's
            clock, so with 0 a late-evening article may postdate the UTC daily close by a few hours).
        max_texts: most articles per day's set (most recent kept).
        ffill_limit: most days an asset's last price is carried forward.
        cache_dir: where news embeddings are cached (:class:`~polymodal.data.FeatureCache`).
    """

    def __init__(
        self, prices: str, assets: dict[str, str] | None = None, news: str | None = None,
        text_model: str = "minilm-l6", inputs: list[str] | None = None, start: str = "2015-09-01",
        val_start: str = "2018-01-01", test_start: str = "2018-09-01", end: str = "2019-05-22", window: int = 30,
        percentile: float = 90.0, text_days_back: int = 2, text_lag: int = 0, max_texts: int = 32,
        ffill_limit: int = 3, cache_dir: str | None = "runs/prebit/cache",
    ) -> None:  # fmt: skip
        self.inputs = list(inputs or ["candles"])
        unknown = sorted(set(self.inputs) - {"candles", "assets", "text"})
        if unknown:
            raise ValueError(f"unknown input(s) {unknown}; choose from candles, assets, text")
        if "assets" in self.inputs and not assets:
            raise ValueError("the 'assets' input needs data.assets (name -> file)")
        if "text" in self.inputs and not news:
            raise ValueError("the 'text' input needs data.news (a dated news table)")
        if not 50.0 < percentile < 100.0:
            raise ValueError(f"percentile must be in (50, 100), got {percentile}")
        self.prices, self.assets, self.news, self.text_model = prices, dict(assets or {}), news, text_model
        self.bounds = {"start": start, "val_start": val_start, "test_start": test_start, "end": end}
        self.window, self.percentile, self.ffill_limit = int(window), float(percentile), ffill_limit
        self.cache_dir = cache_dir
        self.text = (text_days_back, max_texts, text_lag)
        self.meta: dict[str, Any] = {}

    def describe(self) -> str:
        return str(self.prices)

    def read(self) -> Any:
        import pandas as pd

        from polymodal.plugins.timeseries import align, check_gaps, make_windows, read_series

        btc = read_series(self.prices, min_rows=60)
        check_columns(btc, ["Open", "High", "Low", "Close", "Volume"], self.prices)
        check_gaps(btc, "D", max_gap=1, source=str(self.prices))
        series = {"btc": btc, **{n: read_series(p, columns=["Close"], min_rows=30) for n, p in self.assets.items()}}
        aligned, report = align(series, calendar="btc", ffill_limit=self.ffill_limit, columns={"btc": ["Close"]})
        if self.assets:
            print(f"polymodal prebit: {report.summary()}")
        b = {k: pd.Timestamp(v) for k, v in self.bounds.items()}
        if not b["start"] < b["val_start"] < b["test_start"] <= b["end"]:
            raise ValueError(f"need start < val_start < test_start <= end, got {self.bounds}")
        close = btc["Close"].to_numpy(np.float64)
        next_ret = np.r_[np.log(close[1:] / close[:-1]), np.nan]
        days = btc.index[(btc.index >= b["start"]) & (btc.index <= b["end"])]
        edges = [b["start"], b["val_start"], b["test_start"], b["end"] + pd.Timedelta(days=1)]
        sizes = [int(((days >= lo) & (days < hi)).sum()) for lo, hi in zip(edges[:-1], edges[1:])]
        parts = [p[:-1] for p in split_keys(list(days), sizes, method="chronological")]  # purge each period's last
        for split, part in zip(SPLITS, parts):
            if not part:
                raise ValueError(f"{self.prices}: the {split} period of {self.bounds} has no days")
        pos = {s: btc.index.get_indexer(p) for s, p in zip(SPLITS, parts)}
        up, down = (float(np.percentile(next_ret[pos["train"]], q)) for q in (self.percentile, 100 - self.percentile))
        p = np.concatenate([pos[s] for s in SPLITS])
        r = next_ret[p]
        frame = pd.DataFrame(
            {
                "date": btc.index[p].strftime("%Y-%m-%d"),
                "split": np.repeat(SPLITS, [len(pos[s]) for s in SPLITS]),
                "close": close[p],
                "next_return": r,
                "extreme_up": (r >= up).astype(int),
                "extreme_down": (r <= down).astype(int),
            }
        )
        returns = {n: np.log(aligned[f"{n}_Close"]).diff() for n in self.assets}
        blocks = {"candles": candle_features(btc), "assets": pd.DataFrame(returns, index=aligned.index)}
        for name in self.inputs:
            if name == "text":
                news, emb = news_embeddings(str(self.news), self.text_model, self.cache_dir)
                sets = daily_sets(btc.index[p], news["date"], emb, *self.text)
                frame["text"], frame["has_text"] = pd.Series(sets, dtype=object), [len(s) > 0 for s in sets]
            else:
                windows = make_windows(blocks[name], self.window, p, source=f"{self.prices} ({name} features)")
                frame[name] = pd.Series(list(windows), dtype=object)
        by_split = frame.groupby("split", sort=False)
        self.meta = {
            "thresholds": {"up": up, "down": down, "percentile": self.percentile},
            "bounds": self.bounds,
            "inputs": self.inputs,
            "sizes": {s: int(n) for s, n in by_split.size().items()},
            "positives": {s: {"up": int(g.extreme_up.sum()), "down": int(g.extreme_down.sum())} for s, g in by_split},
            "fill_report": {"ffill_limit": report.ffill_limit, "filled": report.filled, "missing": report.missing},
        }
        if "text" in frame:
            self.meta["days_with_text"] = {s: int(n) for s, n in by_split["has_text"].sum().items()}
        self.closes = btc["Close"]
        log.info("PreBit periods: %s", self.meta["sizes"])
        return frame

    def save_metadata(self, directory: str | Path) -> None:
        """``data.json`` (thresholds, period sizes, positives, fill report) and ``prices.csv`` (every close,
        for the report's moving-average baseline) in ``directory``."""
        self.frame()
        Path(directory).mkdir(parents=True, exist_ok=True)
        with atomic_path(Path(directory) / "data.json") as tmp:
            tmp.write_text(json.dumps(self.meta, indent=2))
        prices = self.closes.rename("close").rename_axis("date").reset_index()
        with atomic_path(Path(directory) / "prices.csv") as tmp:
            prices.assign(date=prices["date"].dt.strftime("%Y-%m-%d")).to_csv(tmp, index=False)


class Period(Source):
    """The days of some periods (``["val", "test"]``) of a :class:`PreBitDays` table."""

    def __init__(self, days: PreBitDays, periods: list[str]) -> None:
        self.days, self.periods = days, list(periods)

    def describe(self) -> str:
        return f"{self.days.describe()} ({'+'.join(self.periods)} period)"

    def read(self) -> Any:
        df = self.days.frame()
        return df[df["split"].isin(self.periods)].reset_index(drop=True)


class PreBitDataModule(TableDataModule):
    """:class:`PreBitDays` as a :class:`~polymodal.data.TableDataModule`: inputs ``candles`` / ``assets`` /
    ``text``, targets ``extreme_up`` / ``extreme_down``; ``predict`` = the validation and test periods, with
    ``date``, ``split``, ``close``, ``next_return`` and the labels as meta columns (what the report reads).
    ``setup`` writes ``data.json`` and ``prices.csv`` into the run folder.

    Args:
        days: the PreBit days (files, inputs, periods, labels).
        batch_size, num_workers, seed: as in :class:`~polymodal.data.TableDataModule`.
    """

    def __init__(self, days: PreBitDays, batch_size: int = 64, num_workers: int = 0, seed: int | None = None) -> None:
        self.days = days
        sources = {**{s: Period(days, [s]) for s in SPLITS}, "predict": Period(days, ["val", "test"])}
        super().__init__(
            sources=sources, inputs=days.inputs, target=["extreme_up", "extreme_down"], batch_size=batch_size,
            meta=["date", "split", "close", "next_return", "extreme_up", "extreme_down"], num_workers=num_workers,
            seed=seed,
        )  # fmt: skip

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if self.trainer is not None and self.trainer.is_global_zero:
            self.days.save_metadata(self.trainer.default_root_dir)


class PhraseBank(Table):
    """Financial PhraseBank (Malo et al., 2014; ``sentence<TAB>label`` TSV) for the finance-adapted encoder:
    labels as class indices (``negative`` 0, ``neutral`` 1, ``positive`` 2), duplicate sentences dropped so that
    no sentence is in two splits (split it with :class:`~polymodal.data.Split`, ``method: stratified``)."""

    LABELS = ("negative", "neutral", "positive")

    def __init__(self, path: str) -> None:
        super().__init__(path, read_options={"sep": "\t", "keep_default_na": False})

    def read(self) -> Any:
        df = super().read()
        check_columns(df, ["sentence", "label"], self.path)
        bad = np.flatnonzero(~df["label"].isin(self.LABELS) | (df["sentence"].astype(str).str.strip() == ""))
        if len(bad):
            row = df.iloc[bad[0]]
            raise ValueError(
                f"{self.path}: row {bad[0] + 1}: need a non-empty sentence and a label in {self.LABELS}, got "
                f"{row['sentence']!r:.40} / {row['label']!r}"
            )
        df = df.drop_duplicates("sentence", keep="first").reset_index(drop=True)
        return df.assign(sentence=df["sentence"].astype(str), label=df["label"].map(self.LABELS.index).astype(float))
