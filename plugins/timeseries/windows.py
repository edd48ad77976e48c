"""Rolling windows over a dated feature table, and leakage-free normalisation.

A *window* is the ``(T, F)`` block of the ``T`` rows ending at (and including) one row, i.e.
everything known at that row's close. :class:`Normalizer` holds per-feature statistics that
are fit on training rows only and live in the model's weights (buffers), so a saved model
normalises exactly as it did in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch import Tensor, nn

__all__ = ["Normalizer", "make_windows", "stack_values"]


def make_windows(
    values: Any,
    window: int,
    ends: Sequence[int] | np.ndarray | None = None,
    source: str = "<table>",
    index: Any = None,
) -> np.ndarray:
    """Windows of ``window`` consecutive rows ending at each position in ``ends``.

    Args:
        values: ``(N, F)`` array or DataFrame.
        window: rows per window (``T``).
        ends: 0-based row positions where windows end (inclusive); all possible by default.
        source: name used in error messages (file or table).
        index: optional row labels (e.g. dates) used in error messages.

    Returns:
        ``(M, T, F)`` float32 array (a copy).

    Raises:
        ValueError: a window would start before row 0 (series too short), or contains NaN/inf
            (naming the row and column).
    """
    columns = list(getattr(values, "columns", []))
    if index is None and hasattr(values, "index"):
        index = values.index
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{source}: expected a (rows, features) table, got shape {arr.shape}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    n = arr.shape[0]
    if n < window:
        raise ValueError(f"{source}: too short: {n} row(s), a window needs {window}")
    ends = np.arange(window - 1, n) if ends is None else np.asarray(ends, dtype=np.int64)
    if len(ends) and (ends.min() < window - 1 or ends.max() >= n):
        bad = int(ends[(ends < window - 1) | (ends >= n)][0])
        raise ValueError(
            f"{source}: a window of {window} row(s) ending at row {bad + 1} needs rows {bad - window + 2}..{bad + 1}, "
            f"but the table has rows 1..{n}"
        )
    starts = ends - window + 1
    view = sliding_window_view(arr, window, axis=0)  # (N - T + 1, F, T)
    out = np.ascontiguousarray(view[starts].transpose(0, 2, 1)).astype(np.float32)  # (M, T, F)
    finite = np.isfinite(out)
    if not finite.all():
        m, t, f = (int(x[0]) for x in np.nonzero(~finite))
        row = starts[m] + t
        label = f" ({index[row]})" if index is not None else ""
        col = columns[f] if columns else f
        raise ValueError(
            f"{source}: NaN/inf in column {col!r} at row {row + 1}{label}, inside the window ending at row "
            f"{ends[m] + 1}; fill or drop it before windowing"
        )
    return out


def stack_values(values: Sequence[Any]) -> np.ndarray:
    """Concatenate ``(T_i, F)`` windows (or one ``(N, F)`` array) to ``(sum T_i, F)`` rows."""
    if isinstance(values, np.ndarray) and values.ndim == 3:
        return values.reshape(-1, values.shape[-1])
    if isinstance(values, np.ndarray) and values.ndim == 2:
        return values
    parts = [np.asarray(v, dtype=np.float64).reshape(-1, np.shape(v)[-1]) for v in values if len(v)]
    if not parts:
        raise ValueError("no values to fit normalisation statistics on")
    return np.concatenate(parts)


class Normalizer(nn.Module):
    """Per-feature standardisation ``(x - mean) / std`` with statistics held as buffers.

    Fit it on the training period only (:meth:`fit`); the statistics are then part of the
    ``state_dict`` and therefore of every checkpoint and exported model. Until it is fit it is
    the identity (``fitted`` is False), so an unfitted model is visible, not silently wrong.

    A feature whose training standard deviation is (numerically) zero is only centred (its std
    is set to 1, as scikit-learn's ``StandardScaler`` does) and named in a warning: flooring the std
    at a tiny value would turn any change of that feature at inference into values of ~1e8.

    Args:
        num_features: ``F``.
        eps: a std below ``eps * max(1, |mean|)`` counts as constant.
    """

    def __init__(self, num_features: int, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("std", torch.ones(num_features))
        self.register_buffer("fitted", torch.tensor(False))

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted)

    def fit(self, values: Any) -> Normalizer:
        """Compute mean/std per feature from ``(N, F)`` rows, ``(M, T, F)`` windows or a list of windows."""
        rows = stack_values(values)
        if rows.shape[-1] != self.mean.numel():
            raise ValueError(f"expected {self.mean.numel()} features, got {rows.shape[-1]}")
        if not np.isfinite(rows).all():
            raise ValueError("normalisation statistics: the training values contain NaN/inf")
        mean, std = rows.mean(axis=0), rows.std(axis=0)
        constant = std <= self.eps * np.maximum(1.0, np.abs(mean))
        if constant.any():
            import warnings

            idx = np.flatnonzero(constant)
            warnings.warn(
                f"Normalizer: feature(s) {idx[:10].tolist()} are constant in the training values; they are only "
                "centred (std 1), so they carry no signal the model learnt from",
                UserWarning,
                stacklevel=2,
            )
        self.mean.copy_(torch.as_tensor(mean, dtype=self.mean.dtype))
        self.std.copy_(torch.as_tensor(np.where(constant, 1.0, std), dtype=self.std.dtype))
        self.fitted.fill_(True)
        return self

    def forward(self, x: Tensor) -> Tensor:  # (B, T, F) -> (B, T, F)
        return (x - self.mean) / self.std
