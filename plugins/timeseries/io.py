"""Reading dated series (CSV/Parquet, gzip) and aligning several assets on one calendar.

Errors name the file and the rows (1-based data rows, header excluded, as a spreadsheet user
counts them) so a bad download can be found and fixed.

Alignment policy (:func:`align`):

* the calendar is the reference asset's dates (e.g. Bitcoin, which trades every day);
* other assets are reindexed onto it and **forward-filled** for at most ``ffill_limit``
  consecutive calendar days (weekends and holidays of stock indices: 3 covers a long
  weekend); longer holes stay NaN and are reported;
* never backward-filled: a value is only ever carried *forward* in time, which a live system
  could also do, so no future value leaks into the past. With ``boundaries`` (split start
  dates) each period is filled on its own as well, so not even a forward fill crosses from
  one split into the next (strict separation; a period may then start with NaN rows);
* a :class:`FillReport` says, per asset, how many values were filled and which remain missing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from polymodal.io import resolve_path

__all__ = ["FillReport", "align", "check_gaps", "read_series", "validate_series"]


def _pd():
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("the timeseries modality needs pandas: pip install 'polymodal[timeseries]'") from None
    return pd


def _rows(positions: Sequence[int], limit: int = 5) -> str:
    shown = ", ".join(str(int(p) + 1) for p in list(positions)[:limit])
    more = len(positions) - limit
    return shown + (f" (+{more} more)" if more > 0 else "")


def read_series(
    path: str | os.PathLike[str],
    date_column: str | None = None,
    columns: Sequence[str] | None = None,
    date_format: str | None = None,
    on_unsorted: Literal["error", "sort"] = "error",
    on_duplicate: Literal["error", "first", "last"] = "error",
    allow_missing: bool = False,
    min_rows: int = 1,
    rename: Mapping[str, str] | None = None,
    **read_options: Any,
):
    """Read a dated table into a DataFrame indexed by a sorted, unique ``DatetimeIndex``.

    Args:
        path: ``.csv``/``.tsv``/``.parquet`` (optionally ``.gz``) or ``package://...``.
        date_column: the date column; default: the first of ``Date``/``date``/``timestamp``/``time``.
        columns: keep only these value columns (after ``rename``); all numeric ones by default.
        date_format: ``strptime`` format; inferred (ISO dates) when ``None``.
        on_unsorted: ``"error"`` names the first out-of-order rows; ``"sort"`` sorts them.
        on_duplicate: ``"error"`` names duplicated timestamps' rows; ``"first"``/``"last"`` keep one.
        allow_missing: keep NaN values (e.g. to fill later); by default NaN/inf are errors.
        min_rows: fewer rows is an error ("too short").
        rename: column renames applied before selection (e.g. ``{"Adjusted": "Close"}``).
        **read_options: passed to ``pandas.read_csv``/``read_parquet``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unparsable dates, NaN/inf, unsorted or duplicate timestamps, too few rows;
            the message names the file, the rows and the column.
    """
    from polymodal.data.tables import read_table

    pd = _pd()
    p = resolve_path(path, what="series file")
    df = read_table(p, **read_options)
    if rename:
        df = df.rename(columns=dict(rename))
    if date_column is None:
        date_column = next((c for c in ("Date", "date", "timestamp", "time", "datetime") if c in df.columns), None)
        if date_column is None:
            raise KeyError(f"{p}: no date column found; set date_column (columns: {', '.join(map(str, df.columns))})")
    if date_column not in df.columns:
        raise KeyError(f"{p}: missing date column {date_column!r}; available: {', '.join(map(str, df.columns))}")
    raw = df[date_column]
    dates = pd.to_datetime(raw, format=date_format, errors="coerce")
    bad = np.flatnonzero(dates.isna().to_numpy())
    if len(bad):
        raise ValueError(
            f"{p}: column {date_column!r}: unparsable date(s) at row(s) {_rows(bad)} (first: {raw.iloc[bad[0]]!r})"
        )
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
    values = df.drop(columns=[date_column])
    if columns is not None:
        missing = [c for c in columns if c not in values.columns]
        if missing:
            raise KeyError(f"{p}: missing column(s) {missing}; available: {', '.join(map(str, values.columns))}")
        values = values[list(columns)]
    else:
        values = values.select_dtypes(include=[np.number])
    values = values.astype(np.float64)
    values.index = pd.DatetimeIndex(dates.to_numpy(), name="date")
    return validate_series(
        values,
        source=str(p),
        on_unsorted=on_unsorted,
        on_duplicate=on_duplicate,
        allow_missing=allow_missing,
        min_rows=min_rows,
    )


def validate_series(
    frame,
    source: str = "<frame>",
    on_unsorted: Literal["error", "sort"] = "error",
    on_duplicate: Literal["error", "first", "last"] = "error",
    allow_missing: bool = False,
    min_rows: int = 1,
):
    """Check a DatetimeIndex-ed frame: sorted, unique, finite, long enough (see :func:`read_series`).

    Row numbers in messages are 1-based positions in ``frame`` as given.
    """
    pd = _pd()
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise TypeError(f"{source}: expected a DatetimeIndex, got {type(frame.index).__name__}")
    ts = frame.index.asi8
    if len(ts) > 1:
        back = np.flatnonzero(ts[1:] < ts[:-1]) + 1
        if len(back):
            if on_unsorted == "error":
                first = back[0]
                raise ValueError(
                    f"{source}: timestamps not sorted: row {first + 1} ({frame.index[first].date()}) comes after "
                    f"row {first} ({frame.index[first - 1].date()}); {len(back)} row(s) out of order at "
                    f"{_rows(back)} (pass on_unsorted='sort' to sort)"
                )
            frame = frame.iloc[np.argsort(ts, kind="stable")]
    dup = frame.index.duplicated(keep=False)
    if dup.any():
        where = np.flatnonzero(dup)
        if on_duplicate == "error":
            raise ValueError(
                f"{source}: duplicate timestamp {frame.index[where[0]]} at row(s) {_rows(where)} "
                f"({int(frame.index.duplicated().sum())} duplicate(s); pass on_duplicate='first' or 'last')"
            )
        frame = frame[~frame.index.duplicated(keep=on_duplicate)]
    if not allow_missing:
        arr = frame.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(arr)
        if bad.any():
            rows, cols = np.nonzero(bad)
            kind = "NaN" if np.isnan(arr[rows[0], cols[0]]) else "inf"
            raise ValueError(
                f"{source}: {kind} in column {frame.columns[cols[0]]!r} at row {rows[0] + 1} "
                f"({frame.index[rows[0]].date()}); {int(bad.any(axis=1).sum())} row(s) with NaN/inf: "
                f"{_rows(np.unique(rows))} (pass allow_missing=True and fill explicitly)"
            )
    if len(frame) < min_rows:
        raise ValueError(f"{source}: too short: {len(frame)} row(s), need at least {min_rows}")
    return frame


def check_gaps(frame, freq: str = "D", max_gap: int = 1, source: str = "<frame>") -> None:
    """Raise if consecutive timestamps are more than ``max_gap`` periods of ``freq`` apart.

    ``freq="D"`` counts calendar days (crypto), ``"B"`` business days (stock indices, where a
    weekend is not a gap).
    """
    pd = _pd()
    idx = frame.index
    if len(idx) < 2:
        return
    if freq == "B":
        steps = np.busday_count(idx[:-1].values.astype("datetime64[D]"), idx[1:].values.astype("datetime64[D]"))
    else:
        steps = (idx[1:] - idx[:-1]) / pd.Timedelta(1, unit=freq)
        steps = np.asarray(steps, dtype=np.float64)
    big = np.flatnonzero(steps > max_gap)
    if len(big):
        i = big[0]
        raise ValueError(
            f"{source}: gap of {steps[i]:g} {freq}-periods between row {i + 1} ({idx[i].date()}) and row "
            f"{i + 2} ({idx[i + 1].date()}); {len(big)} gap(s) longer than {max_gap} at rows {_rows(big)}"
        )


@dataclass
class FillReport:
    """What :func:`align` filled and what it could not.

    Attributes:
        filled: asset -> number of calendar days whose values were forward-filled.
        missing: asset -> calendar days still missing after filling (kept as NaN).
        filled_dates: asset -> the filled dates (for audits).
        ffill_limit: the limit used.
    """

    filled: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    filled_dates: dict[str, list[str]] = field(default_factory=dict)
    missing_dates: dict[str, list[str]] = field(default_factory=dict)
    ffill_limit: int = 0

    def summary(self) -> str:
        lines = [f"calendar alignment (forward-fill limit {self.ffill_limit} day(s), no backward fill):"]
        for name in self.filled:
            lines.append(f"  {name}: {self.filled[name]} day(s) forward-filled, {self.missing[name]} still missing")
        return "\n".join(lines)


def align(
    series: Mapping[str, Any],
    calendar: str | Any,
    ffill_limit: int = 3,
    boundaries: Sequence[Any] = (),
    columns: Mapping[str, Sequence[str]] | None = None,
):
    """Align several dated frames on one calendar, forward-filling short holes.

    Args:
        series: asset name -> DataFrame with a DatetimeIndex (e.g. from :func:`read_series`).
        calendar: the name of the reference asset in ``series`` (its dates are the calendar),
            or a ``DatetimeIndex``.
        ffill_limit: most consecutive days one value may be carried forward (0 disables).
        boundaries: split start dates (e.g. first validation day, first test day): filling
            restarts at each, so no value crosses from one period into the next.
        columns: asset -> columns to keep (all by default).

    Returns:
        ``(frame, report)``: columns named ``<asset>_<column>`` on the calendar, and a
        :class:`FillReport`.
    """
    pd = _pd()
    if ffill_limit < 0:
        raise ValueError(f"ffill_limit must be >= 0, got {ffill_limit}")
    if isinstance(calendar, str):
        if calendar not in series:
            raise KeyError(f"calendar asset {calendar!r} not in series ({', '.join(series)})")
        index = series[calendar].index
    else:
        index = pd.DatetimeIndex(calendar)
    cuts = sorted(pd.Timestamp(b) for b in boundaries)
    segment = np.searchsorted(np.asarray(cuts, dtype="datetime64[ns]"), index.values, side="right")
    report = FillReport(ffill_limit=ffill_limit)
    parts = []
    for name, frame in series.items():
        keep = list(columns[name]) if columns and name in columns else list(frame.columns)
        sub = frame[keep].reindex(index)
        before = sub.isna().any(axis=1).to_numpy()
        if ffill_limit > 0 and before.any():
            sub = sub.groupby(segment).ffill(limit=ffill_limit)
        after = sub.isna().any(axis=1).to_numpy()
        filled = before & ~after
        report.filled[name] = int(filled.sum())
        report.missing[name] = int(after.sum())
        report.filled_dates[name] = [str(d.date()) for d in index[filled]]
        report.missing_dates[name] = [str(d.date()) for d in index[after]]
        sub.columns = [f"{name}_{c}" for c in sub.columns]
        parts.append(sub)
    out = pd.concat(parts, axis=1)
    out.index.name = "date"
    return out, report
