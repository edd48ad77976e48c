"""PreBit data: daily BTC candles + indicators, correlated assets, daily news sets, extreme-move labels.

Every example is one day ``d`` (prediction made at ``d``'s close) with up to three inputs,

* ``candles``: a ``(window, F)`` block of BTC candlestick features and technical indicators,
* ``assets``: a ``(window, A)`` block of correlated assets' daily log returns (S&P 500,
  gold, VIX, EUR/USD, ETH, ...) aligned on Bitcoin's every-day calendar (forward-filled
  for at most ``ffill_limit`` days, never backward-filled),
* ``text``: the set of news embeddings dated ``d`` and the ``text_days_back`` days before,

and a target row ``[extreme_up, extreme_down]`` for the next day's log return
``r = log(close[d+1] / close[d])``. The thresholds are percentiles of ``r`` over the
*training* period only (``percentile=90``: the top and bottom 10 % of training days).

Splits are chronological: ``[start, val_start)``, ``[val_start, test_start)``,
``[test_start, end]``. The last day of each period is dropped (purged) because its label needs
the next period's first close. Input normalisation statistics are fit on the training period
only (through the model's ``fit_input_statistics``) and saved with the weights.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader

from polymodal.data.datamodule import Collator, RowsDataset
from polymodal.io import atomic_path

__all__ = ["CANDLE_FEATURES", "PreBitDataModule", "build_daily_table"]

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")

#: Candlestick/indicator features (stationary transforms of OHLCV), in column order.
CANDLE_FEATURES = [
    "log_return",
    "log_range",
    "log_body",
    "log_volume_change",
    "rsi",
    "macd_hist",
    "bb_pct_b",
    "atr",
    "stoch_k",
    "stoch_d",
    "roc",
    "rv_7",
    "rv_30",
    "sma_7_gap",
    "sma_30_gap",
    "obv_slope",
]


def candle_features(ohlcv) -> Any:
    """Candlestick and indicator features of a daily OHLCV frame (causal: row ``d`` uses data up to ``d``)."""
    import pandas as pd

    from polymodal.plugins.timeseries import indicators as ind

    o, h, lo, c, v = (ohlcv[k].to_numpy(np.float64) for k in ("Open", "High", "Low", "Close", "Volume"))
    macd = ind.macd(c)
    st = ind.stochastic(h, lo, c)
    ob = ind.obv(c, v)
    vol7 = ind._rolling(v, 7, "sum")
    obv_slope = np.full_like(c, np.nan)
    obv_slope[7:] = (ob[7:] - ob[:-7]) / np.maximum(vol7[7:], 1.0)
    lv = np.log(np.maximum(v, 1.0))
    feats = {
        "log_return": ind.log_returns(c),
        "log_range": np.log(h / lo),
        "log_body": np.log(c / o),
        "log_volume_change": np.r_[np.nan, np.diff(lv)],
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


def build_daily_table(prices: str, assets: dict[str, str], ffill_limit: int = 3):
    """BTC OHLCV + candle features + asset log returns on BTC's calendar, with the fill report."""
    import pandas as pd

    from polymodal.plugins.timeseries import align, check_gaps, read_series

    btc = read_series(prices, min_rows=60)
    missing = [c for c in ("Open", "High", "Low", "Close", "Volume") if c not in btc.columns]
    if missing:
        raise KeyError(f"{prices}: missing OHLCV column(s) {missing}")
    check_gaps(btc, "D", max_gap=1, source=str(prices))
    series = {"btc": btc}
    for name, path in assets.items():
        series[name] = read_series(path, columns=["Close"], min_rows=30)
    aligned, report = align(series, calendar="btc", ffill_limit=ffill_limit, columns={"btc": ["Close"]})
    log.info(report.summary())
    asset_returns = pd.DataFrame(
        {name: np.log(aligned[f"{name}_Close"]).diff() for name in assets}, index=aligned.index
    )
    return btc, candle_features(btc), asset_returns, report


class PreBitDataModule(pl.LightningDataModule):
    """Daily PreBit examples with chronological splits (see the module docstring).

    Args:
        prices: daily BTC OHLCV table (``Date, Open, High, Low, Close, Volume``).
        assets: asset name -> daily table with ``Date`` and ``Close`` (its log returns are features).
        news: dated news table (``date, headline, content``) for the ``text`` input.
        text_model: embedding model for the news: short name (``minilm-l6``) or a saved model folder.
        inputs: which inputs the model reads, in order: any of ``candles``, ``assets``, ``text``.
        start, val_start, test_start, end: period boundaries (ISO dates, ``end`` inclusive).
        window: days per candles/assets window.
        percentile: extreme-move percentile of training returns (90: top/bottom 10 %).
        text_days_back: news of the preceding days also in a day's set.
        text_lag: shift the news window back (1: only news dated before ``d``). News dates are
            publication dates in the outlet's clock (Reuters: US-Eastern), so with 0 a late-evening
            article may postdate the UTC daily close by a few hours; 1 rules that out.
        max_texts: most articles per day's set (most recent kept).
        ffill_limit: most days an asset's last price is carried forward.
        cache_dir: where news embeddings are cached.
        batch_size: training batch size.
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        prices: str,
        assets: dict[str, str] | None = None,
        news: str | None = None,
        text_model: str = "minilm-l6",
        inputs: list[str] | None = None,
        start: str = "2015-09-01",
        val_start: str = "2018-01-01",
        test_start: str = "2018-09-01",
        end: str = "2019-05-22",
        window: int = 30,
        percentile: float = 90.0,
        text_days_back: int = 2,
        text_lag: int = 0,
        max_texts: int = 32,
        ffill_limit: int = 3,
        cache_dir: str | None = "runs/prebit/cache",
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
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
        self.prices, self.assets, self.news = prices, dict(assets or {}), news
        self.text_model = text_model
        self.bounds = {"start": start, "val_start": val_start, "test_start": test_start, "end": end}
        self.window, self.percentile = int(window), float(percentile)
        self.text_days_back, self.text_lag, self.max_texts = text_days_back, text_lag, max_texts
        self.ffill_limit, self.cache_dir = ffill_limit, cache_dir
        self.batch_size, self.num_workers = batch_size, num_workers
        self.frames: dict[str, Any] = {}
        self.datasets: dict[str, RowsDataset] = {}
        self.thresholds: dict[str, float] = {}
        self.fill_report: Any = None
        self._built = False

    # ----------------------------------------------------------------- build
    def _period_days(self, index) -> dict[str, Any]:
        import pandas as pd

        b = {k: pd.Timestamp(v) for k, v in self.bounds.items()}
        if not b["start"] < b["val_start"] < b["test_start"] <= b["end"]:
            raise ValueError(f"need start < val_start < test_start <= end, got {self.bounds}")
        edges = [b["start"], b["val_start"], b["test_start"], b["end"] + pd.Timedelta(days=1)]
        out = {}
        for split, lo, hi in zip(SPLITS, edges[:-1], edges[1:]):
            days = index[(index >= lo) & (index < hi)]
            out[split] = days[:-1]  # purge: the last day's label needs the next period's close
        return out

    def build(self) -> None:
        """Read the files, compute features, labels and splits (idempotent)."""
        if self._built:
            return
        from polymodal.plugins.timeseries import make_windows

        btc, candles, asset_ret, self.fill_report = build_daily_table(self.prices, self.assets, self.ffill_limit)
        if self.assets:
            print(f"polymodal prebit: {self.fill_report.summary()}")
        self.close_series = btc["Close"]
        close = btc["Close"].to_numpy(np.float64)
        next_ret = np.full(len(close), np.nan)
        next_ret[:-1] = np.log(close[1:] / close[:-1])
        days = self._period_days(btc.index)
        for split, d in days.items():
            if len(d) == 0:
                raise ValueError(f"{self.prices}: the {split} period {self._describe(split)} has no days")
        pos = {s: btc.index.get_indexer(d) for s, d in days.items()}
        train_ret = next_ret[pos["train"]]
        if np.isnan(train_ret).any():
            raise ValueError(
                f"{self.prices}: next-day returns missing in the training period (does the file end early?)"
            )
        self.thresholds = {
            "up": float(np.percentile(train_ret, self.percentile)),
            "down": float(np.percentile(train_ret, 100.0 - self.percentile)),
            "percentile": self.percentile,
        }
        text_sets: list[np.ndarray] | None = None
        if "text" in self.inputs:
            text_sets = self._text_sets(btc.index)
        for split in SPLITS:
            p = pos[split]
            r = next_ret[p]
            if np.isnan(r).any():
                raise ValueError(f"{self.prices}: no next-day close for the last day of {split}; move data.end back")
            columns: list[list[Any]] = []
            for name in self.inputs:
                if name == "candles":
                    w = make_windows(candles, self.window, p, source=f"{self.prices} (candle features)")
                    columns.append(list(w))
                elif name == "assets":
                    w = make_windows(asset_ret, self.window, p, source="aligned asset returns")
                    columns.append(list(w))
                else:
                    assert text_sets is not None
                    columns.append([text_sets[i] for i in p])
            up = (r >= self.thresholds["up"]).astype(np.float32)
            down = (r <= self.thresholds["down"]).astype(np.float32)
            target = [(float(a), float(b)) for a, b in zip(up, down)]
            self.datasets[split] = RowsDataset(columns, target)  # type: ignore[arg-type]
            import pandas as pd

            self.frames[split] = pd.DataFrame(
                {
                    "date": days[split].strftime("%Y-%m-%d"),
                    "close": close[p],
                    "next_return": r,
                    "extreme_up": up.astype(int),
                    "extreme_down": down.astype(int),
                    "has_text": [len(text_sets[i]) > 0 for i in p] if text_sets is not None else np.nan,
                }
            )
        self._built = True
        log.info("PreBit splits: %s", {s: len(f) for s, f in self.frames.items()})

    def _describe(self, split: str) -> str:
        keys = {"train": ("start", "val_start"), "val": ("val_start", "test_start"), "test": ("test_start", "end")}
        a, b = keys[split]
        return f"[{self.bounds[a]}, {self.bounds[b]}{']' if split == 'test' else ')'}"

    def _text_sets(self, calendar) -> list[np.ndarray]:
        from polymodal.recipes.prebit.text import article_texts, daily_sets, embed_texts, load_news, resolve

        news = load_news(resolve(self.news))  # type: ignore[arg-type]
        emb = embed_texts(article_texts(news), resolve(self.text_model) or "minilm-l6", self.cache_dir)
        return daily_sets(calendar, news["date"], emb, self.text_days_back, self.max_texts, self.text_lag)

    def input_dims(self) -> dict[str, int]:
        """Features per step of each input (for building encoders)."""
        self.build()
        ds = self.datasets["train"]
        return {name: int(np.shape(col[0])[-1]) for name, col in zip(self.inputs, ds.columns)}

    # ----------------------------------------------------------- lightning
    def setup(self, stage: str | None = None) -> None:
        self.build()
        model = self.trainer.lightning_module if self.trainer is not None else None
        if model is None or not hasattr(model, "processors_for"):
            raise RuntimeError("PreBitDataModule needs a polymodal system (with processors_for)")
        self._processors = model.processors_for(self.inputs)
        if hasattr(model, "fit_input_statistics"):
            # statistics of the training period only; a fitted (loaded) model is never refit
            model.fit_input_statistics(self.inputs, self.datasets["train"].columns)

    def _loader(self, split: str, train: bool) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=train,  # order within the training period only; periods never mix
            num_workers=self.num_workers,
            collate_fn=Collator(self._processors),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", False)

    def save_metadata(self, directory: str | Path) -> None:
        """Write thresholds, split sizes and the calendar fill report next to a run."""
        meta = {
            "thresholds": self.thresholds,
            "bounds": self.bounds,
            "inputs": self.inputs,
            "sizes": {s: len(f) for s, f in self.frames.items()},
            "positives": {
                s: {"up": int(f["extreme_up"].sum()), "down": int(f["extreme_down"].sum())}
                for s, f in self.frames.items()
            },
            "fill_report": None
            if self.fill_report is None
            else {
                "ffill_limit": self.fill_report.ffill_limit,
                "filled": self.fill_report.filled,
                "missing": self.fill_report.missing,
            },
        }
        if "text" in self.inputs:
            meta["days_with_text"] = {s: int(f["has_text"].sum()) for s, f in self.frames.items()}
        with atomic_path(Path(directory) / "data.json") as tmp:
            tmp.write_text(json.dumps(meta, indent=2))
        prices = self.close_series.rename("close").rename_axis("date").reset_index()
        prices["date"] = prices["date"].dt.strftime("%Y-%m-%d")
        with atomic_path(Path(directory) / "prices.csv") as tmp:
            prices.to_csv(tmp, index=False)
