"""Vectorised technical indicators on NumPy arrays (pandas Series/DataFrames accepted).

Every function takes 1-D price/volume arrays of equal length and returns float64 arrays of
the same length, ``NaN`` during the warm-up period (never a fake 0). Definitions follow the
`ta` package (Padial, https://github.com/bukosabino/ta) wherever the textbook leaves a choice,
so values agree to floating-point rounding; the exceptions are documented per function:

* ATR: ``ta`` writes ``0`` for the first ``window - 1`` bars; we write ``NaN``.
* log returns: ``ta.others.daily_log_return`` is in percent; ours is the plain log return.
* realised volatility has no ``ta`` counterpart.

Two backends compute the same definitions (:func:`set_backend`):

* ``"talib"`` (the default when the ``TA-Lib`` wheel is installed, ``pip install 'polymodal[timeseries]'``):
  TA-Lib's C loops keep O(n) running sums and minima. Where TA-Lib seeds a recursion differently (its EMA
  starts from an SMA, ours from the first value, as ``ta`` and pandas do), the difference is an exactly
  known geometric term, ``delta * (1 - alpha) ** t``, which is added back, so values equal the pure backend
  to floating-point rounding (tests check 1e-9). Inputs with NaN/inf use the pure backend (TA-Lib's running
  sums would carry a NaN forward forever).
* ``"numpy"`` (pure fallback): recursive smoothers (EMA, Wilder's RSI/ATR) run as one IIR filter
  (:func:`scipy.signal.lfilter`); rolling sums are a few shifted, contiguous vector operations, rolling
  minima/maxima :func:`scipy.ndimage.minimum_filter1d` / ``maximum_filter1d``.

``benchmarks/indicators.py`` times both against TA-Lib and ``ta`` on 1M bars.

References:
    J. Welles Wilder, *New Concepts in Technical Trading Systems* (1978) — RSI, ATR.
    G. Appel — MACD. J. Bollinger, *Bollinger on Bollinger Bands* (2001). G. Lane — stochastic
    oscillator. J. Granville — on-balance volume.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

Backend = Literal["auto", "talib", "numpy"]

__all__ = [
    "INDICATORS",
    "atr",
    "bollinger",
    "compute_indicators",
    "active_backend",
    "ema",
    "log_returns",
    "macd",
    "obv",
    "realized_volatility",
    "roc",
    "rolling",
    "rsi",
    "set_backend",
    "sma",
    "stochastic",
    "true_range",
]


def _lfilter():
    """scipy's ``lfilter``, or the install hint (scipy comes with the timeseries extra)."""
    try:
        from scipy.signal import lfilter
    except ImportError:
        raise ImportError("compute_indicators needs scipy: pip install 'polymodal[timeseries]'") from None
    return lfilter


_BACKEND: str = os.environ.get("POLYMODAL_INDICATORS", "auto")


def set_backend(name: Backend) -> None:
    """Choose how indicators are computed: ``"talib"`` (TA-Lib's C loops; raises ImportError when the
    ``TA-Lib`` wheel is missing), ``"numpy"`` (the pure fallback) or ``"auto"`` (TA-Lib when installed).
    The environment variable ``POLYMODAL_INDICATORS`` sets the initial choice."""
    global _BACKEND
    if name not in ("auto", "talib", "numpy"):
        raise ValueError(f"indicator backend must be 'auto', 'talib' or 'numpy', got {name!r}")
    if name == "talib":
        _import_talib(required=True)
    _BACKEND = name


def active_backend() -> str:
    """``"talib"`` or ``"numpy"``: the backend finite inputs are computed with now."""
    return "talib" if _talib() is not None else "numpy"


def _import_talib(required: bool = False) -> Any:
    try:
        import talib
    except ImportError:
        if required:
            raise ImportError("the 'talib' indicator backend needs the TA-Lib wheel: pip install TA-Lib") from None
        return None
    return talib


def _talib(*arrays: np.ndarray) -> Any:
    """The ``talib`` module when the backend allows it and every array is finite, else ``None``."""
    if _BACKEND == "numpy":
        return None
    tl = _import_talib(required=_BACKEND == "talib")
    if tl is None or not all(_finite(a) for a in arrays):
        return None
    return tl


def _finite(a: np.ndarray) -> bool:
    """All values finite (one summing pass; an overflowing sum only sends the input to the fallback)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.add.reduce(a, axis=None)))


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
    n = len(x)
    if n < window:
        return _nan_like(x)
    m = n - window + 1
    tl = _talib(x) if window >= 2 and fn != "sum" else None
    if tl is not None:
        if fn in ("min", "max"):
            return tl.MIN(x, window) if fn == "min" else tl.MAX(x, window)
        if fn == "mean":
            return tl.SMA(x, window)
        if ddof == 0:  # TA-Lib keeps running sums of x and x^2: centre first, the std is shift-invariant
            return tl.STDDEV(x - x.mean(), window, 1.0)
        return tl.STDDEV(x - x.mean(), window, 1.0) * np.sqrt(window / (window - ddof))
    out = _nan_like(x)
    if fn in ("min", "max") and _finite(x):  # O(n) running extremes (NaN order is undefined there)
        from scipy.ndimage import maximum_filter1d, minimum_filter1d

        filt = minimum_filter1d if fn == "min" else maximum_filter1d
        out[window - 1 :] = filt(x, window, origin=(window - 1) // 2)[window - 1 :]  # trailing window
        return out
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
    start, tail = 0, x
    if not _finite(x):
        finite = np.isfinite(x)
        if not finite.any():
            return _nan_like(x)
        start = int(np.argmax(finite))
        tail = x[start:]
    if tail is not x and not finite[start:].all():
        import pandas as pd

        return pd.Series(x).ewm(alpha=alpha, adjust=False, min_periods=min_periods).mean().to_numpy()
    # y[0] = x[0]; y[t] = (1 - a) y[t-1] + a x[t]  ==  IIR filter b=[a], a=[1, -(1-a)]
    y = _smooth(tail, alpha, tail[0])
    first = start + max(min_periods, 1) - 1
    if start == 0:  # write the warm-up NaNs in place instead of copying 1M values
        y[:first] = np.nan
        return y
    out = _nan_like(x)
    out[first:] = y[first - start :]
    return out


def _smooth(x: np.ndarray, alpha: float, seed: float) -> np.ndarray:
    """``y[0] = seed``, ``y[t] = (1 - alpha) y[t-1] + alpha x[t]`` over finite ``x``.

    With TA-Lib: its EMA of period ``p = 2 / alpha - 1`` runs the same recursion but starts at bar ``p - 1``
    from ``mean(x[:p])``. Both recursions are linear, so ours is TA-Lib's plus ``delta (1 - alpha)^t`` with
    ``delta`` the difference at bar ``p - 1``; that term is added until it falls below 1e-18 of ``delta``.
    """
    lfilter = _lfilter()
    n = len(x)
    period = round(2.0 / alpha - 1.0)
    tl = _talib(x) if n > period >= 2 and abs(2.0 / alpha - 1.0 - period) < 1e-9 else None
    if tl is None:
        y = np.empty(n)
        if n:
            y[0] = seed
            y[1:], _ = lfilter([alpha], [1.0, -(1.0 - alpha)], x[1:], zi=[(1.0 - alpha) * seed])
        return y
    y = tl.EMA(x, period)  # (n,), NaN before bar period - 1, which holds mean(x[:period])
    theirs = y[period - 1]
    y[0] = seed
    y[1:period], _ = lfilter([alpha], [1.0, -(1.0 - alpha)], x[1:period], zi=[(1.0 - alpha) * seed])
    delta = y[period - 1] - theirs
    k = min(n - period, int(np.ceil(np.log(1e-18) / np.log1p(-alpha))))
    y[period : period + k] += delta * np.power(1.0 - alpha, np.arange(1, k + 1))
    return y


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
    up = _ewm(np.fmax(diff, 0.0), 1.0 / window, window)  # fmax: a NaN change counts as 0, as before
    down = _ewm(np.fmax(-diff, 0.0), 1.0 / window, window)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 - 100.0 / (1.0 + up / down)
    out[down == 0] = 100.0
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
    tl = _talib(h, lo, c) if len(c) > 1 else None
    if tl is not None:  # the same three differences and maxima, in C
        tr = tl.TRANGE(h, lo, c)
        tr[0] = h[0] - lo[0]
        return tr
    tr = h - lo
    if len(c) > 1:
        prev = c[:-1]
        tr[1:] = np.maximum(tr[1:], np.maximum(np.abs(h[1:] - prev), np.abs(lo[1:] - prev)))
    return tr


def atr(high: Any, low: Any, close: Any, window: int = 14) -> np.ndarray:
    """Wilder's average true range: the mean of the first ``window`` true ranges, then
    ``atr[t] = (atr[t-1] * (window - 1) + tr[t]) / window``. NaN before bar ``window - 1``."""
    window = _check_window(window)
    tr = true_range(high, low, close)
    out = _nan_like(tr)
    if len(tr) < window:
        return out
    seed = tr[:window].mean()
    out[window - 1 :] = _smooth(tr[window - 1 :], 1.0 / window, seed)
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
    """log(close[t] / close[t-1]); NaN on the first bar. (``ta``'s daily_log_return is x100.)

    Raises:
        ValueError: a price is zero or negative (its log is undefined), naming the first such bar.
    """
    c = _arr(close, "close")
    bad = np.flatnonzero(c <= 0)  # NaN compares False: missing bars stay NaN
    if len(bad):
        raise ValueError(
            f"log returns need positive prices: close[{bad[0]}] = {c[bad[0]]!r} ({len(bad)} bar(s) <= 0); "
            "clean the series or use roc for a signed series"
        )
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
