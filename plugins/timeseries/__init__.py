"""Time-series modality: dated series I/O and calendar alignment, vectorised technical
indicators, rolling windows with leakage-free normalisation, and CNN/RNN/transformer encoders.

Install with ``pip install 'polymodal[timeseries]'``.

Example:
    >>> from polymodal.plugins.timeseries import read_series, compute_indicators, make_windows
    >>> btc = read_series("btc_usd_daily_yahoo.csv.gz")          # DatetimeIndex, validated
    >>> feats = compute_indicators(btc, ["rsi", "macd", {"name": "sma", "window": 50}])
    >>> windows = make_windows(feats.dropna(), window=30)           # (M, 30, F)
"""

from __future__ import annotations

from polymodal.plugins_manager import require_extra

#: What this plugin imports beyond the core (its ``timeseries`` extra), checked before anything else.
polymodal_extra = "timeseries"
polymodal_requires = ("pandas", "scipy")
require_extra("timeseries", polymodal_requires, polymodal_extra)

from polymodal.hookspecs import hookimpl
from polymodal.modality import Modality
from polymodal.plugins.timeseries.encoder import (
    TimeSeriesCNN,
    TimeSeriesEncoder,
    TimeSeriesRNN,
    TimeSeriesTransformer,
)
from polymodal.plugins.timeseries.indicators import INDICATORS, compute_indicators
from polymodal.plugins.timeseries.io import FillReport, align, check_gaps, read_series, validate_series
from polymodal.plugins.timeseries.processor import TimeSeriesProcessor
from polymodal.plugins.timeseries.windows import Normalizer, make_windows

__all__ = [
    "INDICATORS",
    "FillReport",
    "Normalizer",
    "TimeSeriesCNN",
    "TimeSeriesEncoder",
    "TimeSeriesProcessor",
    "TimeSeriesRNN",
    "TimeSeriesTransformer",
    "align",
    "check_gaps",
    "compute_indicators",
    "make_windows",
    "read_series",
    "validate_series",
]

polymodal_api_version = 1


@hookimpl
def register_modalities(register):
    register(
        Modality(
            name="timeseries",
            description="dated series (OHLCV...): indicators, windows, CNN/GRU/LSTM/transformer encoders",
            encoders=(TimeSeriesCNN, TimeSeriesRNN, TimeSeriesTransformer),
        )
    )
