"""Collate ``(T, F)`` windows into a padded batch (runs in DataLoader workers)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from polymodal.modality import Processor

__all__ = ["TimeSeriesProcessor"]


class TimeSeriesProcessor(Processor):
    """Stack windows (arrays, nested lists or DataFrames of shape ``(T, F)``) into
    ``{"values": (B, T, F) float32, "mask": (B, T) bool}``, right-padded to the longest.

    Windows longer than ``max_length`` keep their *last* ``max_length`` steps (the most recent
    ones). Normalisation is not done here but in the encoder (its statistics are weights).

    Args:
        num_features: ``F``; every window must have it.
        max_length: longest window kept (``None``: no limit).
        allow_empty: accept ``T = 0`` windows (e.g. a day without any text); their mask is all False.
    """

    def __init__(self, num_features: int, max_length: int | None = None, allow_empty: bool = False) -> None:
        if num_features < 1:
            raise ValueError(f"num_features must be >= 1, got {num_features}")
        self.num_features = int(num_features)
        self.max_length = None if max_length is None else int(max_length)
        self.allow_empty = allow_empty

    def _array(self, value: Any) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float32)
        if arr.ndim == 1 and arr.size == 0:
            arr = arr.reshape(0, self.num_features)
        if arr.ndim != 2:
            raise ValueError(f"expected a (steps, features) window, got shape {arr.shape}")
        if arr.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} features per step, got {arr.shape[1]}")
        if arr.shape[0] == 0 and not self.allow_empty:
            raise ValueError("empty window (0 steps); build the encoder with allow_empty=True to accept it")
        if self.max_length is not None and arr.shape[0] > self.max_length:
            arr = arr[-self.max_length :]
        return arr

    def validate(self, value: Any) -> None:
        arr = self._array(value)
        bad = ~np.isfinite(arr)
        if bad.any():
            t, f = (int(x[0]) for x in np.nonzero(bad))
            raise ValueError(f"NaN/inf at step {t + 1}, feature {f + 1} of the window")

    def lengths(self, values: Sequence[Any]) -> list[int]:
        return [self._array(v).shape[0] for v in values]

    def __call__(self, values: Sequence[Any]) -> dict[str, Tensor]:
        arrays = [self._array(v) for v in values]
        T = max((a.shape[0] for a in arrays), default=0)
        T = max(T, 1)
        out = np.zeros((len(arrays), T, self.num_features), dtype=np.float32)
        mask = np.zeros((len(arrays), T), dtype=bool)
        for i, a in enumerate(arrays):
            n = a.shape[0]
            out[i, :n] = a
            mask[i, :n] = True
        if not np.isfinite(out).all():
            i, t, f = (int(x[0]) for x in np.nonzero(~np.isfinite(out)))
            raise ValueError(f"NaN/inf in window {i + 1} of the batch at step {t + 1}, feature {f + 1}")
        return {"values": torch.from_numpy(out), "mask": torch.from_numpy(mask)}

    def get_config(self) -> dict[str, Any]:
        return {"num_features": self.num_features, "max_length": self.max_length, "allow_empty": self.allow_empty}
