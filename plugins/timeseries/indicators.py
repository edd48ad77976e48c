"""Vectorised technical indicators on NumPy arrays (pandas Series/DataFrames accepted).

Every function takes 1-D price/volume arrays of equal length and returns float64 arrays of
the same length, ``NaN`` during the warm-up period (never a fake 0). Definitions follow the
`ta` package (Padial, https://github.com/bukosabino/ta) wherever the textbook leaves a choice,
so values agree to floating-point rounding; the exceptions are documented per function:

* ATR: ``ta`` writes ``0`` for the first ``window - 1`` bars; we write ``NaN``.
* log returns: ``ta.others.daily_log_return`` is in percent; ours is the plain log return.
* realised volatility has no ``ta`` counterpart.

Recursive smoothers (EMA, Wilder's RSI/ATR) run as one IIR filter
(:func:`scipy.signal.lfilter`) instead of a Python loop; rolling windows are a few shifted,
contiguous vector operations.

References:
    J. Welles Wilder, *New Concepts in Technical Trading Systems* (1978) — RSI, ATR.
    G. Appel — MACD. J. Bollinger, *Bollinger on Bollinger Bands* (2001). G. Lane — stochastic
    oscillator. J. Granville — on-balance volume.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "INDICATORS",
    "atr",
    "bollinger",
    "compute_indicators",
    "ema",
    "log_returns",
    "macd",
    "obv",
    "realized_volatility",
    "roc",
    "rolling",
    "rsi",
    "sma",
    "stochastic",
    "true_range",
]


def _arr(x: Any, name: str = "x") -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    return a


def _check_window(window: int, name: str = "window") -> int:
    if int(window) != window or window < 1:
        raise ValueError(f"{name} must be a positive integer, got {window!r}")
    return int(window)


def _nan_like(x: np.ndarray) -> np.ndarray:
    return np.full(x.shape, np.nan)


def _rolling(x: np.ndarray, window: int, fn: str, ddof: int = 0) -> np.ndarray:
    """``fn`` (mean/std/min/max/sum) over trailing windows; NaN for the first ``window - 1``.

    Runs as ``window`` shifted, contiguous vector operations (fast for the short windows of
    technical analysis); the standard deviation is an exact two-pass computation per window,
    not an online update, so it does not drift over long series.
    """
    out = _nan_like(x)
    n = len(x)
    if n < window:
        return out
    m = n - window + 1
    if fn in ("min", "max"):
        op = np.minimum if fn == "min" else np.maximum
        acc = x[:m].copy()
        for k in range(1, window):
            op(acc, x[k : k + m], out=acc)
        out[window - 1 :] = acc
        return out
    acc = x[:m].copy()
    for k in range(1, window):
        acc += x[k : k + m]
    if fn == "sum":
        out[window - 1 :] = acc
        return out
    mean = acc / window
    if fn == "mean":
        out[window - 1 :] = mean
        return out
    if fn != "std":  # pragma: no cover - internal
        raise ValueError(fn)
    dev = x[:m] - mean
    sq = dev * dev
    for k in range(1, window):
        np.subtract(x[k : k + m], mean, out=dev)
        sq += dev * dev
    out[window - 1 :] = np.sqrt(sq / (window - ddof))
    return out


def _ewm(x: np.ndarray, alpha: float, min_periods: int) -> np.ndarray:
    """``pandas.Series.ewm(alpha=alpha, adjust=False, min_periods=min_periods).mean()``.

    Leading NaNs are skipped (the recursion starts at the first finite value, as pandas does);
    interior NaNs fall back to pandas for exact semantics.
    """
    from scipy.signal import lfilter

    out = _nan_like(x)
    finite = np.isfinite(x)
    if not finite.any():
        return out
    start = int(np.argmax(finite))
    tail = x[start:]
    if not np.isfinite(tail).all():
        import pandas as pd

        return pd.Series(x).ewm(alpha=alpha, adjust=False, min_periods=min_periods).mean().to_numpy()
    # y[0] = x[0]; y[t] = (1 - a) y[t-1] + a x[t]  ==  IIR filter b=[a], a=[1, -(1-a)]
    y, _ = lfilter([alpha], [1.0, -(1.0 - alpha)], tail, zi=[(1.0 - alpha) * tail[0]])
    first = start + max(min_periods, 1) - 1
    out[first:] = y[first - start :]
    return out


# ----------------------------------------------------------------- indicators
def rolling(x: Any, window: int, fn: str = "mean", ddof: int = 0) -> np.ndarray:
    """Trailing-window ``fn`` (``mean``, ``std``, ``min``, ``max`` or ``sum``) of a 1-D series; NaN for the first
    ``window - 1`` values (the windows every indicator here uses; the standard deviation is exact two-pass)."""
    if fn not in ("mean", "std", "min", "max", "sum"):
        raise ValueError(f"fn must be mean, std, min, max or sum, got {fn!r}")
    return _rolling(_arr(x), _check_window(window), fn, ddof)


def sma(close: Any, window: int = 20) -> np.ndarray:
    """Simple moving average of the last ``window`` values."""
    return _rolling(_arr(close, "close"), _check_window(window), "mean")


def ema(close: Any, window: int = 20) -> np.ndarray:
    """Exponential moving average with ``alpha = 2 / (window + 1)``, seeded with the first value
    (``adjust=False``), NaN for the first ``window - 1`` bars."""
    window = _check_window(window)
    return _ewm(_arr(close, "close"), 2.0 / (window + 1.0), window)


def rsi(close: Any, window: int = 14) -> np.ndarray:
    """Wilder's relative strength index in [0, 100].

    Gains/losses are smoothed with ``alpha = 1 / window`` (the first bar counts as a zero
    change, as in ``ta``); 100 where the average loss is 0.
    """
    window = _check_window(window)
    c = _arr(close, "close")
    diff = np.empty_like(c)
    if len(c):
        diff[0] = 0.0
        diff[1:] = np.diff(c)
    up = _ewm(np.where(diff > 0, diff, 0.0), 1.0 / window, window)
    down = _ewm(np.where(diff < 0, -diff, 0.0), 1.0 / window, window)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 - 100.0 / (1.0 + up / down)
    out = np.where(down == 0, 100.0, out)
    out[np.isnan(up)] = np.nan
    return out


def macd(close: Any, fast: int = 12, slow: int = 26, signal: int = 9) -> dict[str, np.ndarray]:
    """MACD line (EMA(fast) - EMA(slow)), its signal line (EMA of the line) and histogram."""
    fast, slow, signal = _check_window(fast, "fast"), _check_window(slow, "slow"), _check_window(signal, "signal")
    c = _arr(close, "close")
    line = ema(c, fast) - ema(c, slow)
    sig = _ewm(line, 2.0 / (signal + 1.0), signal)
    return {"macd": line, "macd_signal": sig, "macd_hist": line - sig}


def bollinger(close: Any, window: int = 20, num_std: float = 2.0) -> dict[str, np.ndarray]:
    """Bollinger bands (SMA +- ``num_std`` population standard deviations) and %B.

    %B = (close - lower) / (upper - lower); NaN where the bands collapse (zero variance).
    """
    window = _check_window(window)
    c = _arr(close, "close")
    mid = _rolling(c, window, "mean")
    sd = _rolling(c, window, "std")
    upper, lower = mid + num_std * sd, mid - num_std * sd
    with np.errstate(divide="ignore", invalid="ignore"):
        pct_b = (c - lower) / (upper - lower)
    pct_b[~np.isfinite(pct_b)] = np.nan
    return {"bb_mid": mid, "bb_upper": upper, "bb_lower": lower, "bb_pct_b": pct_b}


def true_range(high: Any, low: Any, close: Any) -> np.ndarray:
    """max(high - low, |high - prev close|, |low - prev close|); the first bar is high - low."""
    h, lo, c = _arr(high, "high"), _arr(low, "low"), _arr(close, "close")
    tr = h - lo
    if len(c) > 1:
        prev = c[:-1]
        tr[1:] = np.maximum(tr[1:], np.maximum(np.abs(h[1:] - prev), np.abs(lo[1:] - prev)))
    return tr


def atr(high: Any, low: Any, close: Any, window: int = 14) -> np.ndarray:
    """Wilder's average true range: the mean of the first ``window`` true ranges, then
    ``atr[t] = (atr[t-1] * (window - 1) + tr[t]) / window``. NaN before bar ``window - 1``."""
    from scipy.signal import lfilter

    window = _check_window(window)
    tr = true_range(high, low, close)
    out = _nan_like(tr)
    if len(tr) < window:
        return out
    seed = tr[:window].mean()
    out[window - 1] = seed
    if len(tr) > window:
        k = (window - 1.0) / window
        y, _ = lfilter([1.0 / window], [1.0, -k], tr[window:], zi=[k * seed])
        out[window:] = y
    return out


def obv(close: Any, volume: Any) -> np.ndarray:
    """On-balance volume: cumulative volume, added on up/flat bars and subtracted on down bars
    (the first bar counts as up, as in ``ta``)."""
    c, v = _arr(close, "close"), _arr(volume, "volume")
    signed = v.copy()
    if len(c) > 1:
        signed[1:] = np.where(c[1:] < c[:-1], -v[1:], v[1:])
    return np.cumsum(signed)


def stochastic(high: Any, low: Any, close: Any, window: int = 14, smooth: int = 3) -> dict[str, np.ndarray]:
    """Stochastic oscillator %K = 100 (close - lowest low) / (highest high - lowest low) over
    ``window`` bars, and %D = SMA(%K, ``smooth``)."""
    window, smooth = _check_window(window), _check_window(smooth, "smooth")
    h, lo, c = _arr(high, "high"), _arr(low, "low"), _arr(close, "close")
    lowest, highest = _rolling(lo, window, "min"), _rolling(h, window, "max")
    with np.errstate(divide="ignore", invalid="ignore"):
        k = 100.0 * (c - lowest) / (highest - lowest)
    k[~np.isfinite(k)] = np.nan
    d = _nan_like(k)
    if len(k) >= window:
        d[window - 1 :] = _rolling(k[window - 1 :], smooth, "mean")
    return {"stoch_k": k, "stoch_d": d}


def roc(close: Any, window: int = 12) -> np.ndarray:
    """Rate of change in percent: 100 (close[t] - close[t-window]) / close[t-window]."""
    window = _check_window(window)
    c = _arr(close, "close")
    out = _nan_like(c)
    if len(c) > window:
        out[window:] = (c[window:] - c[:-window]) / c[:-window] * 100.0
    return out


def log_returns(close: Any) -> np.ndarray:
    """log(close[t] / close[t-1]); NaN on the first bar. (``ta``'s daily_log_return is x100.)"""
    c = _arr(close, "close")
    out = _nan_like(c)
    if len(c) > 1:
        lc = np.log(c)
        out[1:] = lc[1:] - lc[:-1]
    return out


def realized_volatility(close: Any, window: int = 20, periods_per_year: float | None = None) -> np.ndarray:
    """Rolling sample standard deviation (ddof=1) of log returns over ``window`` bars,
    multiplied by ``sqrt(periods_per_year)`` when given (e.g. 365 for daily crypto, 252 for
    stocks). NaN until ``window`` returns exist."""
    window = _check_window(window)
    if window < 2:
        raise ValueError("realized_volatility needs window >= 2")
    r = log_returns(close)
    out = _nan_like(r)
    if len(r) > window:
        out[1:] = _rolling(r[1:], window, "std", ddof=1)
    if periods_per_year is not None:
        out *= np.sqrt(periods_per_year)
    return out


# ----------------------------------------------------------------- table API
#: Indicator name -> the OHLCV columns it reads.
INDICATORS: dict[str, tuple[str, ...]] = {
    "sma": ("close",),
    "ema": ("close",),
    "rsi": ("close",),
    "macd": ("close",),
    "bollinger": ("close",),
    "atr": ("high", "low", "close"),
    "obv": ("close", "volume"),
    "stochastic": ("high", "low", "close"),
    "roc": ("close",),
    "log_returns": ("close",),
    "realized_volatility": ("close",),
}

_FUNCS = {
    "sma": sma,
    "ema": ema,
    "rsi": rsi,
    "macd": macd,
    "bollinger": bollinger,
    "atr": atr,
    "obv": obv,
    "stochastic": stochastic,
    "roc": roc,
    "log_returns": log_returns,
    "realized_volatility": realized_volatility,
}


def compute_indicators(
    frame: Any,
    indicators: Sequence[str | dict[str, Any]] | None = None,
    columns: dict[str, str] | None = None,
):
    """Compute indicators on an OHLCV DataFrame and return them as a new DataFrame (same index).

    Args:
        frame: DataFrame with (case-insensitive) ``open/high/low/close/volume`` columns.
        indicators: names from :data:`INDICATORS`, or dicts ``{"name": "sma", "window": 50}``
            with keyword arguments; all of them with defaults when ``None``. Output columns are
            named ``<name>`` or ``<name>_<window>`` when a window is given (multi-output
            indicators use their own names, e.g. ``macd_signal``).
        columns: maps the canonical names to the frame's column names, e.g. ``{"close": "Adj Close"}``.
    """
    import pandas as pd

    lower = {str(c).lower(): c for c in frame.columns}
    mapping = {k: lower.get(k, k) for k in ("open", "high", "low", "close", "volume")}
    mapping.update(columns or {})
    specs = [{"name": n} if isinstance(n, str) else dict(n) for n in (indicators or list(INDICATORS))]
    out: dict[str, np.ndarray] = {}
    for spec in specs:
        name = spec.pop("name", None)
        if name not in _FUNCS:
            raise ValueError(f"unknown indicator {name!r}; choose from {', '.join(INDICATORS)}")
        needed = INDICATORS[name]
        missing = [mapping[c] for c in needed if mapping[c] not in frame.columns]
        if missing:
            raise KeyError(
                f"indicator {name!r} needs column(s) {missing}; available: {', '.join(map(str, frame.columns))}"
            )
        args = [frame[mapping[c]].to_numpy(dtype=np.float64) for c in needed]
        result = _FUNCS[name](*args, **spec)
        suffix = f"_{spec['window']}" if "window" in spec else ""
        if isinstance(result, dict):
            for key, values in result.items():
                out[key + suffix] = values
        else:
            out[name + suffix] = result
    return pd.DataFrame(out, index=frame.index)
